/**
 * FHIR R4 data access for the risk engine: a small interface ({@link FhirDataSource}) and its implementation over
 * HTTP ({@link HttpFhirClient}, Node's fetch with a per-request time-out), usable against the embedded sandbox
 * (`/sandbox/fhir`) and any R4 server (bearer token or none).
 *
 * Hand-written instead of `fhirclient` because that library is built around the SMART browser launch (session
 * storage, redirects); the engine needs four server-side calls — read, search with paging, create/update — with
 * time-outs and typed errors, which is shorter to write than to adapt.
 *
 * Media types (`media-type.ts`): asks for `application/fhir+json` first and also takes the DSTU2-era
 * `application/json+fhir` and plain `application/json` (any parameters, e.g. `charset`, `fhirVersion=4.0`), which
 * servers in the field still answer; sends bodies as `application/fhir+json`. An answer typed as something else
 * (XML, an HTML page of a proxy) or for another FHIR version is a {@link FhirMalformedError} that names the type.
 * @see https://hl7.org/fhir/R4/http.html
 * @see https://hl7.org/fhir/R4/http.html#mime-type
 */
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { BearerTokenProvider } from '../auth/token-provider.ts';
import { readCappedBody } from '../http-body.ts';
import { checkFhirJsonAnswer, FHIR_JSON, FHIR_JSON_ACCEPT } from './media-type.ts';

export { FHIR_JSON };

/** Base class of every FHIR access error; `retryable` says whether trying again later can help. */
export abstract class FhirAccessError extends Error {
  abstract readonly code: string;
  abstract readonly retryable: boolean;
}

export class FhirNotFoundError extends FhirAccessError {
  override readonly name = 'FhirNotFoundError';
  readonly code = 'FHIR_NOT_FOUND';
  readonly retryable = false;
}
export class FhirHttpError extends FhirAccessError {
  override readonly name = 'FhirHttpError';
  readonly code = 'FHIR_HTTP';
  constructor(readonly status: number, message: string) {
    super(message);
  }
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}
export class FhirTimeoutError extends FhirAccessError {
  override readonly name = 'FhirTimeoutError';
  readonly code = 'FHIR_TIMEOUT';
  readonly retryable = true;
}
export class FhirUnavailableError extends FhirAccessError {
  override readonly name = 'FhirUnavailableError';
  readonly code = 'FHIR_UNAVAILABLE';
  readonly retryable = true;
}
export class FhirMalformedError extends FhirAccessError {
  override readonly name = 'FhirMalformedError';
  readonly code = 'FHIR_MALFORMED';
  readonly retryable = false;
}

/** What the risk engine needs from a FHIR server. */
export interface FhirDataSource {
  /** The server's base URL (for provenance and for resolving relative references). */
  readonly baseUrl: string;
  read<T extends Resource>(type: T['resourceType'], id: string, signal?: AbortSignal): Promise<T>;
  /** All matching resources of `type` (follows `next` links up to `maxResources`); `_include`d resources are dropped. */
  search<T extends Resource>(type: T['resourceType'], params: Record<string, string>, signal?: AbortSignal): Promise<T[]>;
  /** Creates (no id) or updates (with id) a resource; returns what the server stored. */
  write<T extends Resource>(resource: T, signal?: AbortSignal): Promise<T>;
}

export interface HttpFhirClientOptions {
  baseUrl: string;
  /** Per-request time-out covering connection, headers and body (ms). */
  timeoutMs: number;
  /** Bearer token (e.g. from a SMART launch or CDS Hooks `fhirAuthorization`). */
  token?: string;
  /**
   * Source of bearer tokens renewed over time (e.g. client_credentials, server/auth/token-provider.ts); takes
   * precedence over `token`. A 401 answer drops the token and the request is tried once more with a fresh one.
   */
  tokenProvider?: BearerTokenProvider;
  /** Cap on resources collected by one search over all pages (default 2,000). */
  maxResources?: number;
  /** Cap on the bytes of one answer (default {@link DEFAULT_MAX_FHIR_ANSWER_BYTES}); a larger one is refused unread. */
  maxResponseBytes?: number;
}

/** Default cap on one FHIR answer: a 200-entry search page of a real chart is a few MB at most. */
export const DEFAULT_MAX_FHIR_ANSWER_BYTES = 32 * 1024 * 1024;

/** The answer was larger than the client's byte cap; it was not read further. */
export class FhirTooLargeError extends FhirAccessError {
  override readonly name = 'FhirTooLargeError';
  readonly code = 'FHIR_TOO_LARGE';
  readonly retryable = false;
}

/** A relative or absolute `next` link must stay on the same server (a malicious page must not redirect us). */
function sameOrigin(base: string, url: string): boolean {
  try {
    return new URL(url, base).origin === new URL(base).origin;
  } catch {
    return false;
  }
}

const CONNECTION_RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

/** Whether a fetch failed because the connection was closed under it (not refused, not timed out). */
function isConnectionReset(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' && CONNECTION_RESET_CODES.has(cause.code);
}

export class HttpFhirClient implements FhirDataSource {
  readonly baseUrl: string;
  readonly #timeoutMs: number;
  readonly #token: string | undefined;
  readonly #tokenProvider: BearerTokenProvider | undefined;
  readonly #max: number;
  readonly #maxBytes: number;

  constructor(options: HttpFhirClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs;
    this.#token = options.token;
    this.#tokenProvider = options.tokenProvider;
    this.#max = options.maxResources ?? 2000;
    this.#maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_FHIR_ANSWER_BYTES;
  }

  async #bearer(where: string, signal: AbortSignal): Promise<string | undefined> {
    if (!this.#tokenProvider) return this.#token;
    try {
      return await this.#tokenProvider.token(signal);
    } catch (err) {
      if (signal.aborted) throw err;
      // The authorization server is part of the FHIR server's availability: no token, no data.
      const retryable = (err as { retryable?: unknown }).retryable !== false;
      if (retryable) throw new FhirUnavailableError(`${where}: no access token (${(err as Error).message})`);
      throw new FhirHttpError(401, `${where}: no access token (${(err as Error).message})`);
    }
  }

  async #request(method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown, signal?: AbortSignal, retried = false, resent = false): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const headers: Record<string, string> = { Accept: FHIR_JSON_ACCEPT };
    if (body !== undefined) headers['Content-Type'] = FHIR_JSON;
    const where = `${method} ${url.split('?')[0]}`;
    let res: Response;
    let text: string;
    try {
      const bearer = await this.#bearer(where, combined);
      if (bearer) headers['Authorization'] = `Bearer ${bearer}`;
      // Redirects are not followed: the server was chosen (and, for a CDS client's fhirServer, allowlisted) by its
      // URL, and a 3xx must not send the bearer token or the request anywhere else.
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: combined, redirect: 'manual' });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        throw new FhirHttpError(res.status, `${where}: HTTP ${res.status} redirect not followed`);
      }
      const limit = this.#maxBytes;
      text = Buffer.from(await readCappedBody(res, limit, (p) => p.kind === 'too-large'
        ? new FhirTooLargeError(`${where}: the answer is larger than the limit of ${limit} bytes`)
        : new FhirMalformedError(`${where}: the answer ended after ${p.received} of ${p.declared} bytes`))).toString('utf8');
    } catch (err) {
      if (err instanceof FhirAccessError) throw err;
      if (timeout.aborted) throw new FhirTimeoutError(`${where}: no complete answer within ${this.#timeoutMs} ms`);
      if (signal?.aborted) throw err;
      // A kept-alive connection the server closed as the request went out (its idle timer and our send crossing, most
      // often after a long pause of this process): a read is idempotent (RFC 9110 §9.2.2), so it is sent once more on a
      // new connection. Writes are not resent: the server may have applied them.
      if (method === 'GET' && !resent && isConnectionReset(err)) return this.#request(method, url, body, signal, retried, true);
      throw new FhirUnavailableError(`${where}: ${(err as Error).message}`);
    }
    if (res.status === 401 && this.#tokenProvider?.invalidate && !retried) {
      // The token may have been revoked or the server restarted with new keys: one retry with a fresh token.
      this.#tokenProvider.invalidate();
      return this.#request(method, url, body, signal, true, resent);
    }
    if (res.status === 404 || res.status === 410) throw new FhirNotFoundError(`${where}: ${res.status}`);
    if (!res.ok) throw new FhirHttpError(res.status, `${where}: HTTP ${res.status}`);
    const typeCheck = checkFhirJsonAnswer(res.headers.get('content-type'));
    if (!typeCheck.ok) throw new FhirMalformedError(`${where}: ${typeCheck.reason}`);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new FhirMalformedError(`${where}: the body is not JSON`);
    }
  }

  async read<T extends Resource>(type: T['resourceType'], id: string, signal?: AbortSignal): Promise<T> {
    if (!/^[A-Za-z0-9\-.]{1,64}$/.test(id)) throw new FhirNotFoundError(`${type}/${id}: not a valid FHIR id`);
    const r = (await this.#request('GET', `${this.baseUrl}/${type}/${id}`, undefined, signal)) as Resource;
    if (r?.resourceType !== type) throw new FhirMalformedError(`GET ${type}/${id}: answered a ${String(r?.resourceType)}`);
    return r as T;
  }

  async search<T extends Resource>(type: T['resourceType'], params: Record<string, string>, signal?: AbortSignal): Promise<T[]> {
    const q = new URLSearchParams(params);
    if (!q.has('_count')) q.set('_count', '200');
    let url: string | undefined = `${this.baseUrl}/${type}?${q.toString()}`;
    const out: T[] = [];
    const seen = new Set<string>();
    while (url) {
      if (seen.has(url)) throw new FhirMalformedError(`search ${type}: paging loops`);
      seen.add(url);
      const b = (await this.#request('GET', url, undefined, signal)) as Bundle;
      if (b?.resourceType !== 'Bundle') throw new FhirMalformedError(`search ${type}: answered a ${String(b?.resourceType)}`);
      for (const e of b.entry ?? []) {
        if (e.resource?.resourceType === type && e.search?.mode !== 'include' && e.search?.mode !== 'outcome') out.push(e.resource as T);
      }
      if (out.length >= this.#max) break;
      const next = b.link?.find((l) => l.relation === 'next')?.url;
      url = next && sameOrigin(this.baseUrl, next) ? new URL(next, `${this.baseUrl}/`).toString() : undefined;
    }
    return out.slice(0, this.#max);
  }

  async write<T extends Resource>(resource: T, signal?: AbortSignal): Promise<T> {
    const url = resource.id ? `${this.baseUrl}/${resource.resourceType}/${resource.id}` : `${this.baseUrl}/${resource.resourceType}`;
    const stored = (await this.#request(resource.id ? 'PUT' : 'POST', url, resource, signal)) as Resource;
    if (stored?.resourceType !== resource.resourceType) throw new FhirMalformedError(`write ${resource.resourceType}: answered a ${String(stored?.resourceType)}`);
    return stored as T;
  }
}
