/**
 * Shared set-up of the CDS Hooks tests: a CDS client's signing keys served as a JWKS over real HTTP, JWT minting,
 * prefetch built by running the discovery templates against the sandbox FHIR server, card-shape checks, and
 * small real HTTP servers that are slow on purpose (the faults the deadline must survive).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { Resource } from '@medplum/fhirtypes';
import { SUMMARY_MAX } from '../../server/cds/cards.ts';
import { PREFETCH } from '../../server/cds/services.ts';
import type { Card, HookResponse } from '../../server/cds/types.ts';
import { freePort } from '../support/net.ts';

export interface SigningKey {
  privateKey: CryptoKey;
  jwk: JWK;
  kid: string;
  alg: string;
}

export async function signingKey(alg = 'ES384'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { privateKey, jwk, kid, alg };
}

/** Serves `{keys}` at `/jwks.json` on loopback; `keys` may be swapped (rotation). */
export async function jwksServer(keys: JWK[]): Promise<{ url: string; set(k: JWK[]): void; hits: () => number; close(): Promise<void> }> {
  let current = keys;
  let hits = 0;
  const port = await freePort();
  const server = createServer((req, res) => {
    hits++;
    if (req.url !== '/jwks.json') return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: current }));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${port}/jwks.json`, set: (k) => void (current = k), hits: () => hits, close: () => closeServer(server) };
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
}

export interface MintOptions {
  iss: string;
  aud: string;
  key: SigningKey;
  jku?: string;
  jti?: string;
  expiresIn?: number;
  iat?: number;
  tenant?: string;
  alg?: string;
}

export async function mint(o: MintOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const header: Record<string, string> = { alg: o.alg ?? o.key.alg, typ: 'JWT', kid: o.key.kid };
  if (o.jku) header['jku'] = o.jku;
  const jwt = new SignJWT({ ...(o.tenant ? { tenant: o.tenant } : {}) })
    .setProtectedHeader(header as { alg: string })
    .setIssuer(o.iss)
    .setAudience(o.aud)
    .setIssuedAt(o.iat ?? now)
    .setExpirationTime((o.iat ?? now) + (o.expiresIn ?? 300))
    .setJti(o.jti ?? randomUUID());
  return jwt.sign(o.key.privateKey);
}

/** Runs each discovery prefetch template for `patientId` against `fhirBase` (what a conforming EHR does). */
export async function buildPrefetch(fhirBase: string, patientId: string, headers: Record<string, string> = {}): Promise<Record<string, Resource | null>> {
  const out: Record<string, Resource | null> = {};
  for (const [key, template] of Object.entries(PREFETCH)) {
    const url = `${fhirBase}/${template.replaceAll('{{context.patientId}}', patientId)}`;
    const res = await fetch(url, { headers: { Accept: 'application/fhir+json', ...headers } });
    assert.equal(res.status, 200, `prefetch ${key}: ${url} → ${res.status}`);
    const body = (await res.json()) as Resource & { entry?: unknown[] };
    out[key] = body.resourceType === 'Bundle' && (body.entry ?? []).length === 0 ? null : body;
  }
  return out;
}

/** CDS Hooks 2.0 card constraints (§Card Attributes) plus this product's promises; applied to every card seen. */
export function checkCard(card: Card, base: string): void {
  assert.equal(typeof card.uuid, 'string');
  assert.ok(typeof card.summary === 'string' && card.summary.length > 0 && card.summary.length < 140 && card.summary.length <= SUMMARY_MAX, `summary < 140 chars: ${card.summary}`);
  assert.ok(['info', 'warning', 'critical'].includes(card.indicator), `indicator ${card.indicator}`);
  assert.ok(card.source && typeof card.source.label === 'string' && card.source.label.length > 0, 'source.label');
  assert.ok(card.source.url?.startsWith(`${base}/models/`), 'source.url links the model card');
  assert.ok(card.detail?.includes('Research use — trained on synthetic data'), 'research-use notice in detail');
  if (card.suggestions) {
    assert.equal(card.selectionBehavior, 'any');
    for (const s of card.suggestions) {
      assert.ok(s.label && s.uuid, 'suggestion label + uuid');
      assert.equal(typeof s.isRecommended, 'boolean');
      for (const a of s.actions ?? []) {
        assert.equal(a.type, 'create');
        assert.ok(a.description);
        assert.equal(a.resource?.resourceType, 'ServiceRequest');
      }
    }
  }
  for (const r of card.overrideReasons ?? []) assert.ok(r.code && r.system && r.display, 'override reason is a Coding with display');
  assert.ok(card.links && card.links.length >= 2);
  for (const l of card.links) {
    assert.ok(l.label && /^https?:\/\//.test(l.url), 'link label + absolute url');
    assert.ok(l.type === 'absolute' || l.type === 'smart');
    if (l.type === 'smart') {
      assert.equal(l.url, `${base}/app/launch.html`);
      assert.equal(typeof l.appContext, 'string');
    } else assert.equal(l.appContext, undefined, 'appContext only on smart links');
  }
}

/** Every card of every hook response goes through {@link checkCard}. */
export function checkResponse(body: HookResponse, base: string): Card[] {
  assert.ok(Array.isArray(body.cards), 'cards array');
  for (const c of body.cards) checkCard(c, base);
  return body.cards;
}

/** A real HTTP server that waits `delayMs` then proxies to `target` (or answers 503 when `target` is undefined). */
export async function slowProxy(target: string | undefined, delayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const port = await freePort();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const timer = setTimeout(async () => {
      if (!target) return void res.writeHead(503).end();
      try {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const upstream = await fetch(`${target}${req.url}`, { method: req.method, headers: { accept: req.headers.accept ?? '*/*' }, ...(chunks.length ? { body: Buffer.concat(chunks) } : {}) });
        const buf = Buffer.from(await upstream.arrayBuffer());
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' }).end(buf);
      } catch {
        if (!res.headersSent) res.writeHead(502).end();
      }
    }, delayMs);
    res.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${port}`, close: () => closeServer(server) };
}
