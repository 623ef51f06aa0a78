/**
 * `GET /models/{id}/card`: a model's `MODEL_CARD.md` rendered to HTML (marked), with its figures at
 * `/models/{id}/{file}.png`. CDS cards link here (`source.url` and an `absolute` link), so a clinician can see what
 * the number rests on. Only folders under MODELS_DIR holding a MODEL_CARD.md, and only image files, are served.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Router } from 'express';
import { marked } from 'marked';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const FIGURE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(png|svg|jpg|jpeg)$/;
const TYPES: Record<string, string> = { png: 'image/png', svg: 'image/svg+xml', jpg: 'image/jpeg', jpeg: 'image/jpeg' };

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function createModelCardRouter(modelsDir: string): Router {
  const r = Router();
  const cache = new Map<string, string>();
  r.get('/:id/card', (req, res) => {
    const id = String(req.params['id']);
    const file = join(modelsDir, id, 'MODEL_CARD.md');
    if (!ID.test(id) || !existsSync(file)) {
      res.status(404).json({ error: `No model card for ${id}`, status: 404 });
      return;
    }
    let html = cache.get(id);
    if (!html) {
      const body = marked.parse(readFileSync(file, 'utf8'), { async: false });
      html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Model card: ${escape(id)}</title>`
        + '<meta name="viewport" content="width=device-width, initial-scale=1">'
        + '<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}.notice{background:#fff3cd;padding:.5rem 1rem;border:1px solid #e0c36a}</style></head>'
        + `<body><p class="notice"><strong>Research use — trained on synthetic data.</strong> Not for clinical decisions.</p>${body}</body></html>`;
      cache.set(id, html);
    }
    res.type('text/html').set('Cache-Control', 'public, max-age=300').send(html);
  });
  r.get('/:id/:file', (req, res) => {
    const id = String(req.params['id']);
    const name = String(req.params['file']);
    const m = FIGURE.exec(name);
    const file = join(modelsDir, id, name);
    if (!ID.test(id) || !m || !existsSync(join(modelsDir, id, 'MODEL_CARD.md')) || !existsSync(file)) {
      res.status(404).json({ error: 'Not found', status: 404 });
      return;
    }
    res.type(TYPES[m[1]!]!).set('Cache-Control', 'public, max-age=3600').send(readFileSync(file));
  });
  return r;
}
