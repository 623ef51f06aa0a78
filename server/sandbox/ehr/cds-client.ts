/**
 * The demo EHR's CDS Hooks client: discovery, hook calls with prefetch, and feedback — real HTTP to the service's
 * published URL, each call carrying a fresh ES384 JWT whose `aud` is the exact URL called.
 * @see https://cds-hooks.hl7.org/2.0/#discovery
 * @see https://cds-hooks.hl7.org/2.0/#calling-a-cds-service
 * @see https://cds-hooks.hl7.org/2.0/#prefetch-template
 * @see https://cds-hooks.hl7.org/2.0/#feedback
 */
import { randomUUID } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import type { Logger } from '../../logging.ts';
import type { CdsResponse, CdsServiceDescriptor, FeedbackItem, FhirAuthorization, HookRequest } from './cds-types.ts';
import type { EhrFhir } from './fhir-access.ts';
import type { CdsClientSigner } from './signing.ts';

/** Why a call to the CDS service failed (the EHR shows it and carries on, as EHRs do with a failing service). */
export class CdsCallError extends Error {
  override readonly name = 'CdsCallError';
  constructor(
    readonly kind: 'timeout' | 'network' | 'http' | 'malformed',
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface CdsClientOptions {
  /** `{base}/cds-services` of the service, as published (`${PUBLIC_BASE_URL}/cds-services`). */
  servicesUrl: string;
  signer: CdsClientSigner;
  fhir: EhrFhir;
  /** The FHIR base the service is told to use (`fhirServer`): the sandbox's public base. */
  fhirServer: string;
  /** How long the EHR waits for a hook before dropping it (EHRs drop slow services). */
  timeoutMs: number;
  /** How long discovery results are reused. */
  discoveryTtlMs?: number;
  logger: Logger;
}

/** What the EHR knows about the user and the moment, used to fill prefetch tokens. */
export interface PrefetchUser {
  /** `Practitioner/<id>` of the signed-in user. */
  userId: string;
}

const TOKEN = /\{\{\s*([A-Za-z.]+)\s*\}\}/g;

/**
 * Fills a 2.0 prefetch template: `{{context.<root-level primitive>}}` and `{{userPractitionerId}}` (and the other
 * user* tokens when the user is of that type). Returns `undefined` when a token cannot be filled — the key is
 * then omitted, as the spec says a client does with a template it cannot satisfy.
 */
export function fillPrefetchTemplate(template: string, context: Record<string, unknown>, user: PrefetchUser): string | undefined {
  let ok = true;
  const [userType, userIdPart] = user.userId.split('/');
  const out = template.replace(TOKEN, (_m, name: string) => {
    let value: unknown;
    if (name.startsWith('context.')) {
      const key = name.slice('context.'.length);
      value = key.includes('.') ? undefined : context[key];
    } else if (name === `user${userType}Id`) {
      value = userIdPart;
    }
    if (typeof value !== 'string' && typeof value !== 'number') {
      ok = false;
      return '';
    }
    // Token values go into a query string or path: encode them so an id cannot change the query.
    return encodeURIComponent(String(value));
  });
  return ok ? out : undefined;
}

export class CdsClient {
  readonly servicesUrl: string;
  readonly #o: CdsClientOptions;
  #discovery: { at: number; services: CdsServiceDescriptor[] } | undefined;

  constructor(options: CdsClientOptions) {
    this.servicesUrl = options.servicesUrl.replace(/\/+$/, '');
    this.#o = options;
  }

  async #post(url: string, body: unknown, timeoutMs: number): Promise<Response> {
    const jwt = await this.#o.signer.sign(url);
    try {
      return await fetch(url, {
        method: 'POST',
        headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const e = err as Error;
      if (e.name === 'TimeoutError') throw new CdsCallError('timeout', `no answer within ${timeoutMs} ms`);
      throw new CdsCallError('network', e.message);
    }
  }

  /** `GET /cds-services` (signed like every call), cached for `discoveryTtlMs`. */
  async discover(force = false): Promise<CdsServiceDescriptor[]> {
    const ttl = this.#o.discoveryTtlMs ?? 60_000;
    if (!force && this.#discovery && Date.now() - this.#discovery.at < ttl) return this.#discovery.services;
    const url = this.servicesUrl;
    const jwt = await this.#o.signer.sign(url);
    let res: Response;
    try {
      res = await fetch(url, { headers: { Authorization: `Bearer ${jwt}`, Accept: 'application/json' }, signal: AbortSignal.timeout(this.#o.timeoutMs) });
    } catch (err) {
      throw new CdsCallError((err as Error).name === 'TimeoutError' ? 'timeout' : 'network', `discovery: ${(err as Error).message}`);
    }
    if (!res.ok) throw new CdsCallError('http', `discovery: HTTP ${res.status}`, res.status);
    const body = (await res.json().catch(() => undefined)) as { services?: unknown } | undefined;
    if (!body || !Array.isArray(body.services)) throw new CdsCallError('malformed', 'discovery: no services array');
    const services = (body.services as CdsServiceDescriptor[]).filter((s) => typeof s?.id === 'string' && typeof s.hook === 'string');
    this.#discovery = { at: Date.now(), services };
    return services;
  }

  /** The services that listen to `hook`. */
  async servicesFor(hook: string): Promise<CdsServiceDescriptor[]> {
    return (await this.discover()).filter((s) => s.hook === hook);
  }

  /**
   * Runs the service's prefetch templates against the EHR's FHIR server. A read that finds nothing gives `null`; a
   * template the EHR cannot fill or a query that fails is left out (the service then fetches, or answers 412).
   */
  async prefetch(service: CdsServiceDescriptor, context: Record<string, unknown>, user: PrefetchUser): Promise<Record<string, Resource | null>> {
    const out: Record<string, Resource | null> = {};
    await Promise.all(
      Object.entries(service.prefetch ?? {}).map(async ([key, template]) => {
        const query = fillPrefetchTemplate(template, context, user);
        if (query === undefined) return;
        try {
          out[key] = await this.#o.fhir.get(query);
        } catch (err) {
          const e = err as { notFound?: boolean };
          if (e.notFound) out[key] = null;
          else this.#o.logger.warn({ service: service.id, prefetchKey: key, err: (err as Error).message }, 'demo EHR: prefetch query failed; key omitted');
        }
      }),
    );
    return out;
  }

  /** Calls one service for one hook; returns its response and the request's `hookInstance`. */
  async call(
    service: CdsServiceDescriptor,
    context: Record<string, unknown>,
    user: PrefetchUser,
    fhirAuthorization: FhirAuthorization | undefined,
  ): Promise<{ response: CdsResponse; hookInstance: string; ms: number; prefetchMs: number }> {
    const started = performance.now();
    const prefetch = await this.prefetch(service, context, user);
    const prefetchMs = performance.now() - started;
    const request: HookRequest = {
      hook: service.hook,
      hookInstance: randomUUID(),
      fhirServer: this.#o.fhirServer,
      ...(fhirAuthorization ? { fhirAuthorization } : {}),
      context,
      prefetch,
    };
    const url = `${this.servicesUrl}/${encodeURIComponent(service.id)}`;
    const res = await this.#post(url, request, this.#o.timeoutMs);
    const text = await res.text();
    if (!res.ok) throw new CdsCallError('http', `${service.id}: HTTP ${res.status}`, res.status);
    let body: CdsResponse;
    try {
      body = JSON.parse(text) as CdsResponse;
    } catch {
      throw new CdsCallError('malformed', `${service.id}: the response is not JSON`);
    }
    if (!body || !Array.isArray(body.cards)) throw new CdsCallError('malformed', `${service.id}: the response has no cards array`);
    const ms = performance.now() - started;
    this.#o.logger.info({ service: service.id, hook: service.hook, hookInstance: request.hookInstance, cards: body.cards.length, ms: Math.round(ms), prefetchMs: Math.round(prefetchMs) }, 'demo EHR: CDS hook answered');
    return { response: body, hookInstance: request.hookInstance, ms, prefetchMs };
  }

  /** `POST /cds-services/{id}/feedback`. */
  async feedback(serviceId: string, feedback: FeedbackItem[]): Promise<void> {
    const url = `${this.servicesUrl}/${encodeURIComponent(serviceId)}/feedback`;
    const res = await this.#post(url, { feedback }, this.#o.timeoutMs);
    await res.arrayBuffer();
    if (!res.ok) throw new CdsCallError('http', `${serviceId} feedback: HTTP ${res.status}`, res.status);
  }
}
