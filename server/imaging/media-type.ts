/**
 * Media types and Accept headers as DICOMweb uses them (RFC 9110 §8.3.1, §12.5.1; PS3.18 §8.7.3).
 * Hand-written because the parameters that matter here (`type`, `transfer-syntax`, `boundary`) are DICOMweb
 * specifics that generic content-negotiation packages drop or lower-case, and it is ~60 lines.
 */

export interface MediaType {
  /** Lower-cased `type/subtype`. */
  readonly type: string;
  /** Parameter names lower-cased; values unquoted, case kept (UIDs, boundaries). */
  readonly params: Readonly<Record<string, string>>;
}

export interface AcceptEntry extends MediaType {
  readonly q: number;
}

/** Splits on `sep` outside double quotes. */
function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"' && s[i - 1] !== '\\') quoted = !quoted;
    if (c === sep && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function unquote(v: string): string {
  const t = v.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/\\(.)/g, '$1');
  return t;
}

/** Parses one media type with parameters, e.g. `multipart/related; type="application/dicom"; boundary=abc`. */
export function parseMediaType(value: string): MediaType {
  const [head = '', ...rest] = splitOutsideQuotes(value, ';');
  const params: Record<string, string> = {};
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const name = p.slice(0, eq).trim().toLowerCase();
    if (name) params[name] = unquote(p.slice(eq + 1));
  }
  return { type: head.trim().toLowerCase(), params };
}

/** Parses an Accept header into entries sorted by descending q (stable for equal q). Entries with q=0 are dropped. */
export function parseAccept(header: string | undefined): AcceptEntry[] {
  if (!header || !header.trim()) return [];
  const entries = splitOutsideQuotes(header, ',')
    .map((part, index) => {
      const mt = parseMediaType(part);
      const { q: qRaw, ...params } = mt.params;
      const q = qRaw === undefined ? 1 : Number(qRaw);
      return { entry: { type: mt.type, params, q: Number.isFinite(q) ? q : 0 }, index };
    })
    .filter((e) => e.entry.type !== '' && e.entry.q > 0);
  entries.sort((a, b) => b.entry.q - a.entry.q || a.index - b.index);
  return entries.map((e) => e.entry);
}

/** Serialises a media type; parameter values that are not HTTP tokens are quoted. */
export function formatMediaType(type: string, params: Readonly<Record<string, string>> = {}): string {
  const parts = [type];
  for (const [k, v] of Object.entries(params)) {
    parts.push(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(v) ? `${k}=${v}` : `${k}="${v.replace(/(["\\])/g, '\\$1')}"`);
  }
  return parts.join('; ');
}
