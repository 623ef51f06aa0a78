/**
 * DICOMweb client (PS3.18): QIDO-RS search (§10.6), WADO-RS metadata, instances and frames (§10.4), STOW-RS store
 * (§10.5), on Node's fetch. Every call has a time-out (AbortSignal), a response-size limit and typed errors.
 * Authentication: bearer token (static or refreshed by a callback) or HTTP basic.
 *
 * Retries: only GETs (idempotent), only after transient failures — a network error (refused, reset, DNS), a
 * time-out, or HTTP 408/502/503/504, and 429 when it says when (Retry-After); exponential back-off with jitter, or
 * the server's Retry-After when it gives one (a Retry-After beyond {@link MAX_RETRY_AFTER_MS} is not waited for).
 * Never retried: 500 (a DICOMweb server says so when it fails on this very instance — a file it cannot parse or
 * transcode), 501, every other 4xx, malformed or oversized answers, and anything after the answer was read (a
 * decode failure). See TRANSIENT_HTTP_STATUSES in errors.ts.
 *
 * Messages name the request by its route template (`GET /studies/{study}/series/{series}/instances/{instance}/
 * frames/1`): no UIDs, no query string (QIDO queries may hold patient identifiers), no host. What the PACS said in
 * an error body is kept apart, shortened and scrubbed, in `PacsHttpError.pacsDetail` for logs.
 */
import type { Logger } from 'pino';
import { isDicomJsonArray, type DicomJsonDataset } from './dicom-json.ts';
import {
  ImagingError,
  MalformedResponseError,
  NotAcceptableError,
  PacsAuthError,
  PacsHttpError,
  PacsTimeoutError,
  PacsUnavailableError,
  ResponseTooLargeError,
} from './errors.ts';
import { readJpegFrameHeader } from './decode/jpeg-markers.ts';
import { formatMediaType, parseMediaType } from './media-type.ts';
import { parseMultipart, writeMultipart } from './multipart.ts';
import { defaultSyntaxForMediaType, frameMediaType, TS } from './transfer-syntax.ts';
import { readCappedBody } from '../http-body.ts';

export type DicomWebAuth =
  | { type: 'bearer'; token: string | (() => string | Promise<string>) }
  | { type: 'basic'; username: string; password: string };

export interface DicomWebClientOptions {
  /** DICOMweb root, e.g. `https://pacs.example.org/dicom-web` (no trailing slash needed). */
  baseUrl: string;
  auth?: DicomWebAuth;
  /** Per-attempt time-out covering connect, headers and body (default 15 s). */
  timeoutMs?: number;
  /** Extra attempts for idempotent requests (default 2). */
  retries?: number;
  /** First back-off delay; doubles per attempt, with ±50 % jitter, capped at 5 s (default 200 ms). */
  retryBaseDelayMs?: number;
  /** Largest response body accepted (default 512 MiB). */
  maxResponseBytes?: number;
  logger?: Logger;
}

export type QidoParams = Record<string, string | number | readonly string[] | undefined>;

export interface RetrievedFrame {
  /** Transfer syntax of `body` (from the part's Content-Type, else sniffed from the bitstream). */
  transferSyntaxUid: string;
  contentType: string;
  body: Uint8Array;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** A smaller response-size limit for this call than the client's `maxResponseBytes`. */
  maxResponseBytes?: number;
}

/** Longest Retry-After the client waits for before trying again; a longer one ends the call at once. */
export const MAX_RETRY_AFTER_MS = 5_000;

const UID_SEGMENT: Record<string, string> = { studies: '{study}', series: '{series}', instances: '{instance}' };

/**
 * The route template of a DICOMweb path: UIDs after `studies`/`series`/`instances` become placeholders and the
 * query string is dropped (`/studies/1.2.3/series/4.5/metadata?x=1` → `/studies/{study}/series/{series}/metadata`).
 */
export function routeOf(path: string): string {
  const parts = path.split('?')[0]!.split('/');
  return parts.map((p, i) => (i > 0 && UID_SEGMENT[parts[i - 1]!] ? UID_SEGMENT[parts[i - 1]!]! : p)).join('/');
}

/** DICOM UIDs (dotted numbers) and the request's own query values are removed from text a PACS sent back. */
const UID_PATTERN = /\b\d+(?:\.\d+){3,}\b/g;

/**
 * A short, scrubbed summary of an error body for logs: the message fields of a JSON error (Orthanc's `Message`,
 * `OrthancError`, `Details`; `message`, `error`, `errorMessage` elsewhere) or the text with markup removed; UIDs
 * and the request's query values replaced; at most 200 characters. Never shown to clinicians.
 */
export function summarizePacsBody(text: string, queryValues: readonly string[] = []): string {
  let out = text.trim();
  try {
    const j = JSON.parse(out) as unknown;
    if (typeof j === 'object' && j !== null && !Array.isArray(j)) {
      const o = j as Record<string, unknown>;
      const picked = ['Message', 'OrthancError', 'Details', 'message', 'error', 'errorMessage', 'error_description']
        .map((k) => o[k])
        .filter((v): v is string => typeof v === 'string' && v.trim() !== '');
      out = [...new Set(picked)].join('; ');
    }
  } catch {
    out = out.replace(/<[^>]*>/g, ' ');
  }
  for (const v of queryValues) if (v.length >= 2) out = out.split(v).join('{query}');
  out = out.replace(UID_PATTERN, '{uid}').replace(/[^\x20-\x7e]+/g, ' ').replace(/\s+/g, ' ').trim();
  return out.length > 200 ? `${out.slice(0, 199)}…` : out;
}

/** Retry-After (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) in ms from now, or undefined. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

/** Infers the syntax of a frame whose part Content-Type names none (PS3.18 Table 8.7.3-5 defaults, refined by SOF). */
export function sniffFrameSyntax(contentType: string, body: Uint8Array): string {
  const mt = parseMediaType(contentType);
  const named = mt.params['transfer-syntax'];
  if (named) return named;
  if (mt.type === 'image/jpeg' || mt.type === 'image/jls') {
    const sof = readJpegFrameHeader(body);
    if (sof?.marker === 0xc0) return TS.jpegBaseline;
    if (sof?.marker === 0xc1) return TS.jpegExtended;
    if (sof?.marker === 0xc3) return TS.jpegLosslessSV1;
    if (sof?.marker === 0xf7) return TS.jpegLS;
  }
  return defaultSyntaxForMediaType(mt.type || 'application/octet-stream') ?? TS.explicitLE;
}

export class DicomWebClient {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxResponseBytes: number;

  /** The logger the client was given (fetchFrame logs its fallbacks there). */
  get logger(): Logger | undefined {
    return this.options.logger;
  }

  constructor(private readonly options: DicomWebClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.retries = options.retries ?? 2;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 200;
    this.maxResponseBytes = options.maxResponseBytes ?? 512 * 1024 * 1024;
  }

  // ---- QIDO-RS ------------------------------------------------------------------------------------------------

  /** `GET {root}/studies?…` */
  searchStudies(query: QidoParams = {}, call?: CallOptions): Promise<DicomJsonDataset[]> {
    return this.getJson(`/studies${this.qs(query)}`, call);
  }

  /** `GET {root}/studies/{study}/series?…` or `{root}/series?…` */
  searchSeries(studyUid: string | undefined, query: QidoParams = {}, call?: CallOptions): Promise<DicomJsonDataset[]> {
    const path = studyUid ? `/studies/${enc(studyUid)}/series` : '/series';
    return this.getJson(`${path}${this.qs(query)}`, call);
  }

  /** `GET {root}/studies/{study}/series/{series}/instances?…` (or the study- or root-level variants). */
  searchInstances(studyUid: string | undefined, seriesUid: string | undefined, query: QidoParams = {}, call?: CallOptions): Promise<DicomJsonDataset[]> {
    let path = '';
    if (studyUid) path += `/studies/${enc(studyUid)}`;
    if (studyUid && seriesUid) path += `/series/${enc(seriesUid)}`;
    return this.getJson(`${path}/instances${this.qs(query)}`, call);
  }

  // ---- WADO-RS ------------------------------------------------------------------------------------------------

  /** Metadata of a study, series or instance as DICOM JSON (Pixel Data as BulkDataURI). */
  retrieveMetadata(studyUid: string, seriesUid?: string, sopUid?: string, call?: CallOptions): Promise<DicomJsonDataset[]> {
    return this.getJson(`${this.path(studyUid, seriesUid, sopUid)}/metadata`, call);
  }

  /**
   * Part 10 instance(s). `transferSyntax`: a UID, or '*' for the stored syntax (default explicit VR LE, as PS3.18
   * makes it the default for application/dicom).
   */
  async retrieveInstances(
    studyUid: string,
    seriesUid?: string,
    sopUid?: string,
    opts: CallOptions & { transferSyntax?: string } = {},
  ): Promise<Uint8Array[]> {
    const accept = formatMediaType('multipart/related', { type: 'application/dicom', 'transfer-syntax': opts.transferSyntax ?? TS.explicitLE });
    const res = await this.request('GET', this.path(studyUid, seriesUid, sopUid), { accept }, opts);
    return parseMultipart(res.body, res.contentType, { maxPartBytes: this.limitOf(opts) }).map((p) => p.body);
  }

  /**
   * Frames (1-based numbers) as stored bitstreams or native pixels. `transferSyntaxes`: '*' for the stored syntax
   * (what a client that decodes everything asks), or the UIDs acceptable in order of preference; each becomes one
   * Accept entry with its media type.
   */
  async retrieveFrames(
    studyUid: string,
    seriesUid: string,
    sopUid: string,
    frames: readonly number[],
    opts: CallOptions & { transferSyntaxes?: '*' | readonly string[] } = {},
  ): Promise<RetrievedFrame[]> {
    const wanted = opts.transferSyntaxes ?? '*';
    const accept =
      wanted === '*'
        ? formatMediaType('multipart/related', { type: 'application/octet-stream', 'transfer-syntax': '*' })
        : wanted.map((ts) => formatMediaType('multipart/related', { type: frameMediaType(ts), 'transfer-syntax': ts })).join(', ');
    const path = `${this.path(studyUid, seriesUid, sopUid)}/frames/${frames.join(',')}`;
    const res = await this.request('GET', path, { accept }, opts);
    const parts = parseMultipart(res.body, res.contentType, { maxPartBytes: this.limitOf(opts) });
    if (parts.length !== frames.length) {
      throw new MalformedResponseError(`asked for ${frames.length} frame(s), the PACS sent ${parts.length} part(s)`);
    }
    return parts.map((p) => ({ transferSyntaxUid: sniffFrameSyntax(p.contentType, p.body), contentType: p.contentType, body: p.body }));
  }

  // ---- STOW-RS ------------------------------------------------------------------------------------------------

  /** Stores Part 10 files (never retried: a store is not idempotent for every PACS). Returns the response JSON. */
  async store(instances: readonly Uint8Array[], studyUid?: string, call?: CallOptions): Promise<unknown> {
    const mp = writeMultipart(instances.map((body) => ({ contentType: 'application/dicom', body })), 'application/dicom');
    const path = studyUid ? `/studies/${enc(studyUid)}` : '/studies';
    const res = await this.request('POST', path, { accept: 'application/dicom+json', 'content-type': mp.contentType }, call ?? {}, mp.body);
    if (res.body.length === 0) return null;
    try {
      return JSON.parse(Buffer.from(res.body).toString('utf8')) as unknown;
    } catch {
      throw new MalformedResponseError('STOW-RS response is not JSON');
    }
  }

  // ---- plumbing -----------------------------------------------------------------------------------------------

  private limitOf(call: CallOptions): number {
    return Math.min(this.maxResponseBytes, call.maxResponseBytes ?? Number.POSITIVE_INFINITY);
  }

  private path(studyUid: string, seriesUid?: string, sopUid?: string): string {
    let p = `/studies/${enc(studyUid)}`;
    if (seriesUid) p += `/series/${enc(seriesUid)}`;
    if (seriesUid && sopUid) p += `/instances/${enc(sopUid)}`;
    return p;
  }

  private qs(query: QidoParams): string {
    const sp = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) sp.append(k, x);
      else sp.append(k, String(v));
    }
    const s = sp.toString();
    return s ? `?${s}` : '';
  }

  private async getJson(path: string, call?: CallOptions): Promise<DicomJsonDataset[]> {
    const res = await this.request('GET', path, { accept: 'application/dicom+json' }, call ?? {});
    if (res.status === 204 || res.body.length === 0) return [];
    const mt = parseMediaType(res.contentType).type;
    if (mt !== 'application/dicom+json' && mt !== 'application/json') {
      throw new MalformedResponseError(`expected application/dicom+json, got "${mt || '(no Content-Type)'}"`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(res.body).toString('utf8'));
    } catch {
      throw new MalformedResponseError(`response to GET ${routeOf(path)} is not valid JSON`);
    }
    if (!isDicomJsonArray(parsed)) throw new MalformedResponseError(`response to GET ${routeOf(path)} is not a DICOM JSON array`);
    return parsed;
  }

  private async authHeader(): Promise<string | undefined> {
    const a = this.options.auth;
    if (!a) return undefined;
    if (a.type === 'basic') return `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
    const token = typeof a.token === 'function' ? await a.token() : a.token;
    return `Bearer ${token}`;
  }

  /**
   * One logical request: attempts with back-off for GET after transient failures only (see the file header);
   * maps every failure to a typed ImagingError.
   */
  private async request(
    method: 'GET' | 'POST',
    path: string,
    headers: Record<string, string>,
    call: CallOptions,
    body?: Uint8Array,
  ): Promise<{ status: number; contentType: string; body: Uint8Array }> {
    const attempts = method === 'GET' ? this.retries + 1 : 1;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(method, path, headers, call, body);
      } catch (e) {
        const wait = attempt + 1 < attempts ? this.retryDelay(e, attempt) : undefined;
        if (wait === undefined) throw e;
        this.options.logger?.debug({ attempt: attempt + 1, delayMs: Math.round(wait), code: (e as ImagingError).code, route: routeOf(path) }, 'DICOMweb: retrying');
        await sleep(wait, call.signal);
      }
    }
  }

  /** How long to wait before trying again after `e`, or undefined when it must not be retried. */
  private retryDelay(e: unknown, attempt: number): number | undefined {
    if (!(e instanceof ImagingError) || !e.retryable) return undefined;
    const backoff = Math.min(5_000, this.retryBaseDelayMs * 2 ** attempt) * (0.5 + Math.random());
    if (!(e instanceof PacsHttpError)) return backoff;
    if (e.retryAfterMs === undefined) return e.status === 429 ? undefined : backoff;
    return e.retryAfterMs <= MAX_RETRY_AFTER_MS ? e.retryAfterMs : undefined;
  }

  private async attempt(
    method: 'GET' | 'POST',
    path: string,
    headers: Record<string, string>,
    call: CallOptions,
    body?: Uint8Array,
  ): Promise<{ status: number; contentType: string; body: Uint8Array }> {
    const url = this.base + path;
    // Messages and logs name the route only: UIDs and query strings (which may carry identifiers) stay out.
    const shown = `${method} ${routeOf(path)}`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = call.signal ? AbortSignal.any([timeout, call.signal]) : timeout;
    const auth = await this.authHeader();
    const h: Record<string, string> = { ...headers };
    if (auth) h.authorization = auth;
    let res: globalThis.Response;
    try {
      res = await fetch(url, { method, headers: h, body: body as Uint8Array<ArrayBuffer> | undefined, signal, redirect: 'follow' });
    } catch (e) {
      throw this.networkError(e, timeout, call.signal, shown);
    }
    try {
      if (res.status === 401 || res.status === 403) throw new PacsAuthError(res.status, shown);
      if (res.status === 406) {
        const said = summarizePacsBody(await this.readText(res), queryValues(path));
        throw new NotAcceptableError(`PACS cannot deliver the requested representation for ${shown} (406)${said ? `: ${said}` : ''}`);
      }
      if (res.status >= 400) {
        const said = summarizePacsBody(await this.readText(res), queryValues(path));
        const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
        throw new PacsHttpError(res.status, routeOf(path), `PACS answered HTTP ${res.status} for ${shown}`, {
          ...(said ? { pacsDetail: said } : {}),
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        });
      }
      const data = await this.readBody(res, shown, this.limitOf(call));
      return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: data };
    } catch (e) {
      if (e instanceof ImagingError) throw e;
      throw this.networkError(e, timeout, call.signal, shown);
    } finally {
      // Release the socket if we stopped reading early.
      if (!res.bodyUsed) await res.body?.cancel().catch(() => undefined);
    }
  }

  private networkError(e: unknown, timeout: AbortSignal, caller: AbortSignal | undefined, shown: string): Error {
    if (caller?.aborted) return caller.reason instanceof Error ? caller.reason : new Error('request aborted by caller');
    if (timeout.aborted) return new PacsTimeoutError(this.timeoutMs, `PACS did not answer ${shown} within ${this.timeoutMs} ms`);
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
    const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String((cause as { code: unknown }).code) : '';
    const msg = cause instanceof Error ? cause.message : String(cause);
    return new PacsUnavailableError(`PACS unreachable for ${shown}${code ? ` (${code})` : ''}: ${msg}`, { cause: e, networkCode: code });
  }

  private async readText(res: globalThis.Response): Promise<string> {
    try {
      return Buffer.from(await this.readBody(res, '', 64 * 1024)).toString('utf8').trim();
    } catch {
      return '';
    }
  }

  /** Reads the body chunk by chunk, stopping as soon as it passes the limit. */
  private readBody(res: globalThis.Response, url: string, limit = this.maxResponseBytes): Promise<Uint8Array> {
    return readCappedBody(res, limit, (p) =>
      p.kind === 'too-large'
        ? new ResponseTooLargeError(limit, p.declared !== undefined ? `response to ${url} declares ${p.declared} bytes, more than the limit of ${limit}` : `response to ${url} is larger than the limit of ${limit} bytes`)
        : p.received > p.declared
          ? new MalformedResponseError(`response to ${url} is longer than its Content-Length`)
          : new MalformedResponseError(`response to ${url} ended after ${p.received} of ${p.declared} bytes`),
    );
  }
}

function enc(uid: string): string {
  return encodeURIComponent(uid);
}

/** The values of a path's query string (scrubbed from error bodies: a PACS may echo them). */
function queryValues(path: string): string[] {
  const q = path.indexOf('?');
  return q < 0 ? [] : [...new URLSearchParams(path.slice(q + 1)).values()];
}
