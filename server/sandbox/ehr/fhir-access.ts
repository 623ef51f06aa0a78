/**
 * How the demo EHR reaches its own chart data: plain FHIR R4 REST against the sandbox FHIR server, with a bearer
 * token from the sandbox authorization server when one is configured (the sandbox FHIR server enforces tokens).
 *
 * Not `HttpFhirClient` (server/fhir/client.ts): prefetch needs raw GETs of arbitrary relative queries returning
 * the server's own Bundle, and the EHR must tell "not found" (prefetch value `null`) from "failed" (key omitted).
 * @see https://hl7.org/fhir/R4/http.html
 */
import type { Bundle, Resource } from '@medplum/fhirtypes';

export class EhrFhirError extends Error {
  override readonly name = 'EhrFhirError';
  constructor(
    readonly status: number | undefined,
    message: string,
  ) {
    super(message);
  }
  get notFound(): boolean {
    return this.status === 404 || this.status === 410;
  }
}

/** Supplies the bearer token for the EHR's own FHIR calls; `undefined` when the server needs none. */
export type TokenProvider = () => Promise<string | undefined>;

export interface EhrFhirOptions {
  baseUrl: string;
  timeoutMs: number;
  token?: TokenProvider;
}

export class EhrFhir {
  readonly baseUrl: string;
  readonly #timeoutMs: number;
  readonly #token: TokenProvider;

  constructor(options: EhrFhirOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs;
    this.#token = options.token ?? (async () => undefined);
  }

  async #request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', relative: string, body?: unknown): Promise<unknown> {
    const url = `${this.baseUrl}/${relative.replace(/^\/+/, '')}`;
    const headers: Record<string, string> = { Accept: 'application/fhir+json' };
    if (body !== undefined) headers['Content-Type'] = 'application/fhir+json';
    const token = await this.#token();
    if (token) headers['Authorization'] = `Bearer ${token}`;
    const where = `${method} ${relative.split('?')[0]}`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.#timeoutMs) });
      text = await res.text();
    } catch (err) {
      throw new EhrFhirError(undefined, `${where}: ${(err as Error).message}`);
    }
    if (!res.ok) throw new EhrFhirError(res.status, `${where}: HTTP ${res.status}`);
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new EhrFhirError(res.status, `${where}: the body is not JSON`);
    }
  }

  /** GET of a path relative to the base (`Patient/1`, `Condition?patient=1`). */
  async get<T extends Resource = Resource>(relative: string): Promise<T> {
    const r = (await this.#request('GET', relative)) as T;
    if (typeof r?.resourceType !== 'string') throw new EhrFhirError(200, `GET ${relative.split('?')[0]}: not a FHIR resource`);
    return r;
  }

  /** Resources of one type from a search (first page only: the chart shows the most recent `_count`). */
  async search<T extends Resource>(type: T['resourceType'], params: Record<string, string>): Promise<{ resources: T[]; total?: number; bundle: Bundle }> {
    const bundle = await this.get<Bundle>(`${type}?${new URLSearchParams(params).toString()}`);
    const resources = (bundle.entry ?? []).filter((e) => e.resource?.resourceType === type && e.search?.mode !== 'include').map((e) => e.resource as T);
    return { resources, ...(bundle.total === undefined ? {} : { total: bundle.total }), bundle };
  }

  async create<T extends Resource>(resource: T): Promise<T> {
    const { id: _drop, ...body } = resource;
    return (await this.#request('POST', resource.resourceType, body)) as T;
  }

  async update<T extends Resource>(resource: T & { id: string }): Promise<T> {
    return (await this.#request('PUT', `${resource.resourceType}/${resource.id}`, resource)) as T;
  }

  /** DELETE of `Type/id`. */
  async delete(reference: string): Promise<void> {
    if (!/^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(reference)) throw new EhrFhirError(undefined, 'DELETE: not a Type/id reference');
    await this.#request('DELETE', reference);
  }
}
