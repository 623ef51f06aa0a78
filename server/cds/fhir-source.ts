/**
 * The chart of a hook call as a {@link FhirDataSource}: answered from the request's prefetch first, then from the
 * client's FHIR server (`fhirServer` + `fhirAuthorization`), within the token's scopes and patient.
 *
 * CDS Hooks 2.0 §Prefetch: a key the client could not satisfy is omitted (→ fetch it ourselves); a key whose query
 * found nothing is `null` (→ empty, no call). Data that is required and can be had neither way is a
 * {@link PrefetchUnavailableError} (the hook answers 412). MedicationStatement and FamilyMemberHistory are optional:
 * without them the estimate is still made and the card says which data the service could not see.
 *
 * `fhirServer` is contacted only when it is on the calling client's `fhirServerAllowlist` and its addresses pass the
 * rules of `ssrf.ts` (checked before the first request and on the socket of every request). A server that is not
 * (or that answers with a redirect, which is never followed) is treated as "cannot be asked": the hook goes on with
 * the prefetch alone, and required data missing from it is a {@link FhirServerRefusedError} — one fixed 412 text
 * whatever the URL, so the answer tells nothing about what listens where. At most `maxConcurrent` requests of one
 * hook are in flight at a time (and at most `clientLimit`'s size for all hooks of a client).
 *
 * Results are memoised per query, including in-flight promises, so the full assessment and the clinical-only
 * estimate racing it read the chart once.
 * @see https://cds-hooks.hl7.org/2.0/#prefetch-template
 * @see https://cds-hooks.hl7.org/2.0/#fhir-resource-access
 * @see https://cds-hooks.hl7.org/2.0/#http-response
 */
import type { Bundle, Coding, Observation, Patient, Resource } from '@medplum/fhirtypes';
import { FhirAccessError, FhirHttpError, FhirUnavailableError, HttpFhirClient, type FhirDataSource } from '../fhir/client.ts';
import { checkHost, OutboundAddressRefusedError, Semaphore, withConnectionPolicy, type HostCheck, type HostLookup } from '../fhir/outbound.ts';
import { DXA_RESULT_TOKENS, FACTOR_LOINC } from './services.ts';
import { matchFhirServer, type FhirServerRefusal, type FhirServerRule } from './ssrf.ts';
import type { FhirAuthorization } from './types.ts';

/** Required data is neither in the prefetch nor obtainable from the client's FHIR server. */
export class PrefetchUnavailableError extends FhirAccessError {
  override readonly name: string = 'PrefetchUnavailableError';
  readonly code = 'PREFETCH_UNAVAILABLE';
  readonly retryable = false;
}

/**
 * The one answer text when required data is missing from the prefetch and the hook's `fhirServer` may not be read
 * from (not on the client's list, a refused address, a redirect): the same for every such URL.
 */
export const FHIR_SERVER_REFUSED_TEXT =
  'Required data is not in the prefetch, and the fhirServer of this call is not one this service reads from for this client; send the data as prefetch or ask the service operator to list the FHIR server';

/** Required data is missing from the prefetch and the hook's `fhirServer` was refused (see {@link FHIR_SERVER_REFUSED_TEXT}). */
export class FhirServerRefusedError extends PrefetchUnavailableError {
  override readonly name: string = 'FhirServerRefusedError';
  constructor() {
    super(FHIR_SERVER_REFUSED_TEXT);
  }
}

/** {@link HookFhirSource.baseUrl} of a call answered from its prefetch alone. */
export const PREFETCH_SOURCE = 'urn:cds-hooks:prefetch';

/** Marks a request the server was refused for (a redirect, a refused address) or that did not go out because of it. */
const REFUSED = Symbol('refused');

/** Requests of one hook in flight at a time towards its FHIR server. */
export const DEFAULT_HOOK_FHIR_CONCURRENCY = 4;

interface KeySpec {
  key: string;
  /** The assessment can do without it (the card then says which data it could not see). */
  optional: boolean;
  what: string;
  /** The `system|code` tokens the key's template asks for: the key answers a search only for codes among them. */
  codes?: ReadonlySet<string>;
}

/**
 * Resource type → prefetch keys (services.ts). Observations have two keys with different codes (QFracture factors,
 * DXA results): a search is answered from the key whose template covers every code it asks for, and fetched
 * otherwise — filtering one key's resources for another's codes would wrongly answer "none".
 */
const KEYS: Record<string, KeySpec[]> = {
  Patient: [{ key: 'patient', optional: false, what: 'the patient' }],
  ImagingStudy: [{ key: 'imagingStudies', optional: false, what: 'imaging studies' }],
  Observation: [
    { key: 'observations', optional: false, what: 'observations', codes: new Set(FACTOR_LOINC.map((c) => `http://loinc.org|${c}`)) },
    { key: 'dxaResults', optional: false, what: 'DXA results', codes: new Set(DXA_RESULT_TOKENS) },
  ],
  Condition: [{ key: 'conditions', optional: false, what: 'conditions' }],
  MedicationRequest: [{ key: 'medicationRequests', optional: false, what: 'medication orders' }],
  MedicationStatement: [{ key: 'medicationStatements', optional: true, what: 'medication statements' }],
  FamilyMemberHistory: [{ key: 'familyHistory', optional: true, what: 'family history' }],
  ServiceRequest: [{ key: 'serviceRequests', optional: false, what: 'orders and referrals' }],
};

/** The prefetch key that can answer a search of `type` with `params`, if any. */
function specFor(type: string, params: Record<string, string>): KeySpec | undefined {
  const specs = KEYS[type];
  if (!specs) return undefined;
  const asked = params['code']?.split(',').filter((c) => c !== '');
  return specs.find((s) => !s.codes || (!!asked && asked.length > 0 && asked.every((c) => s.codes!.has(c) || [...s.codes!].some((t) => t.endsWith(`|${c}`)))));
}

/**
 * True when a SMART scope string grants reading/searching `type` (v1 `patient/Observation.read`, `user/*.*`;
 * v2 `patient/Observation.rs`, `system/*.r`).
 * @see https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
 */
export function scopeAllows(scope: string, type: string): boolean {
  return scope.split(/\s+/).some((s) => {
    const m = /^(patient|user|system)\/([A-Za-z*]+)\.([a-z*]+)(\?.*)?$/.exec(s);
    if (!m || (m[2] !== '*' && m[2] !== type)) return false;
    const perm = m[3]!;
    return perm === '*' || perm === 'read' || (/^c?r?u?d?s?$/.test(perm) && (perm.includes('r') || perm.includes('s')));
  });
}

export interface HookFhirSourceOptions {
  patientId: string;
  prefetch?: Record<string, Resource | null>;
  fhirServer?: string;
  fhirAuthorization?: FhirAuthorization;
  /** The calling client's FHIR bases (`CdsClient.fhirServerAllowlist`): a `fhirServer` not on it is never contacted. */
  fhirServerAllowlist: readonly FhirServerRule[];
  timeoutMs: number;
  /** Requests of this hook in flight at a time (default {@link DEFAULT_HOOK_FHIR_CONCURRENCY}). */
  maxConcurrent?: number;
  /** Shared by all hooks of the calling client: caps the client's requests in flight together. */
  clientLimit?: Semaphore;
  /** Resolver for the host check (default: the system's; tests pass their own). */
  lookup?: HostLookup;
  /** Told once when `fhirServer` is not contacted, and why (for the log; no patient data in it). */
  onRefused?: (refusal: FhirServerRefusal) => void;
  /** Used instead of building an HttpFhirClient for `fhirServer` (tests, or a configured client); not allowlisted. */
  fallback?: FhirDataSource;
}

function entriesOf<T extends Resource>(b: Resource | null | undefined, type: string): T[] | undefined {
  if (b === null) return [];
  if (!b) return undefined;
  if (b.resourceType === type) return [b as T]; // a lone resource where a Bundle was expected: tolerate it
  if (b.resourceType !== 'Bundle') return undefined;
  return ((b as Bundle).entry ?? []).map((e) => e.resource).filter((r): r is T => r?.resourceType === type);
}

/** The patient a resource is about, as `Patient/<id>` (subject or patient element), if it says. */
function patientRefOf(r: Resource): string | undefined {
  const x = r as { subject?: { reference?: string }; patient?: { reference?: string } };
  return x.subject?.reference ?? x.patient?.reference;
}

export class HookFhirSource implements FhirDataSource {
  readonly baseUrl: string;
  readonly #opts: HookFhirSourceOptions;
  /** Where missing data may be read: the configured fallback, or the allowlisted `fhirServer` and its rule. */
  readonly #server: { source: FhirDataSource; rule?: FhirServerRule } | undefined;
  readonly #limit: Semaphore;
  #hostCheck: Promise<HostCheck> | undefined;
  /** `fhirServer` was named but may not be read from (not listed, refused address, redirect). */
  #refused = false;
  readonly #memo = new Map<string, Promise<unknown>>();
  /** Optional data the service could not see (for the card's warnings). */
  readonly unavailable: string[] = [];
  /** Counts for logs/tests: how many queries were answered by prefetch and by the FHIR server. */
  readonly stats = { prefetch: 0, fhir: 0 };

  constructor(opts: HookFhirSourceOptions) {
    this.#opts = opts;
    this.#limit = new Semaphore(opts.maxConcurrent ?? DEFAULT_HOOK_FHIR_CONCURRENCY);
    const auth = opts.fhirAuthorization;
    const patientOk = !auth?.patient || auth.patient === opts.patientId;
    let server: { source: FhirDataSource; rule?: FhirServerRule } | undefined;
    if (opts.fallback) server = { source: opts.fallback };
    else if (opts.fhirServer !== undefined) {
      const rule = matchFhirServer(opts.fhirServerAllowlist, opts.fhirServer);
      // Requests are built from the listed base, so what is fetched is exactly what the operator listed.
      if (rule) server = { source: new HttpFhirClient({ baseUrl: rule.base, timeoutMs: opts.timeoutMs, ...(auth ? { token: auth.access_token } : {}) }), rule };
      else this.#refuse({ reason: 'not-allowlisted' });
    }
    this.#server = patientOk ? server : undefined;
    // Where the chart comes from (memo and "last spoken" keys): a refused fhirServer is no source, so the call is a
    // prefetch-only one whatever URL it named, and cannot pick the memo of a server it may not read.
    const named = opts.fallback ? (opts.fhirServer ?? opts.fallback.baseUrl) : server?.rule?.base;
    this.baseUrl = (named ?? PREFETCH_SOURCE).replace(/\/+$/, '');
  }

  #refuse(refusal: FhirServerRefusal): void {
    if (this.#refused) return;
    this.#refused = true;
    this.#opts.onRefused?.(refusal);
  }

  /** Whether the client's FHIR server may be asked for `type` (present, allowed, right patient, scope allows it). */
  #canFetch(type: string): boolean {
    if (!this.#server || this.#refused) return false;
    const auth = this.#opts.fhirAuthorization;
    return !auth || scopeAllows(auth.scope, type);
  }

  /** What to throw for required data that cannot be had: the fixed text when `fhirServer` was refused. */
  #unavailable(message: string): PrefetchUnavailableError {
    return this.#refused ? new FhirServerRefusedError() : new PrefetchUnavailableError(message);
  }

  /**
   * Runs one read or search against the server: host check first (once per hook), then the request under the
   * connection check and the concurrency caps. `{ ok: false }` when the server turned out to be refused.
   */
  async #fromServer<T>(f: (source: FhirDataSource) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false }> {
    const { source, rule } = this.#server!;
    if (rule) {
      this.#hostCheck ??= checkHost(rule.hostname, rule.policy, this.#opts.lookup);
      let check: HostCheck;
      try {
        check = await this.#hostCheck;
      } catch (err) {
        throw new FhirUnavailableError(`the FHIR server's host could not be resolved (${(err as Error).message})`);
      }
      if (!check.ok) this.#refuse({ reason: 'address', hostKind: rule.hostKind, addressClass: check.addressClass });
    }
    if (this.#refused) return { ok: false };
    // The refusal is decided inside the place a request holds, and checked again once a place is free: a request
    // that waited while another got a redirect does not go out.
    const attempt = async (): Promise<T | typeof REFUSED> => {
      if (this.#refused) return REFUSED;
      try {
        return await (rule ? withConnectionPolicy(rule.policy, () => f(source), { expectRequest: true }) : f(source));
      } catch (err) {
        if (err instanceof OutboundAddressRefusedError) {
          this.#refuse({ reason: 'connected-address', hostKind: rule?.hostKind ?? 'name', addressClass: err.addressClass });
          return REFUSED;
        }
        // server/fhir/client.ts does not follow redirects; a 3xx means the data is somewhere this call may not go.
        if (err instanceof FhirHttpError && err.status >= 300 && err.status < 400) {
          this.#refuse({ reason: 'redirect', status: err.status });
          return REFUSED;
        }
        throw err;
      }
    };
    const client = this.#opts.clientLimit;
    const value = await this.#limit.run(() => (client ? client.run(attempt) : attempt()));
    return value === REFUSED ? { ok: false } : { ok: true, value };
  }

  #once<T>(key: string, f: () => Promise<T>): Promise<T> {
    let p = this.#memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = f();
      this.#memo.set(key, p);
    }
    return p;
  }

  read<T extends Resource>(type: T['resourceType'], id: string, signal?: AbortSignal): Promise<T> {
    return this.#once(`read|${type}|${id}`, async () => {
      if (type === 'Patient' && id === this.#opts.patientId) {
        const p = this.#opts.prefetch?.['patient'];
        const found = entriesOf<Patient>(p, 'Patient')?.find((x) => x.id === id);
        if (found) {
          this.stats.prefetch++;
          return found as unknown as T;
        }
      }
      if (this.#canFetch(type)) {
        this.stats.fhir++;
        const got = await this.#fromServer((s) => s.read<T>(type, id, signal));
        if (got.ok) return got.value;
      }
      throw this.#unavailable(`${type}/${id} is not in the prefetch and the client's FHIR server cannot be asked for it`);
    });
  }

  search<T extends Resource>(type: T['resourceType'], params: Record<string, string>, signal?: AbortSignal): Promise<T[]> {
    return this.#once(`search|${type}|${JSON.stringify(params)}`, async () => {
      const spec = specFor(type, params);
      const pre = spec ? entriesOf<T>(this.#opts.prefetch?.[spec.key], type) : undefined;
      if (pre) {
        this.stats.prefetch++;
        return this.#filter(pre, type, params);
      }
      if (this.#canFetch(type)) {
        this.stats.fhir++;
        const got = await this.#fromServer((s) => s.search<T>(type, params, signal));
        if (got.ok) return got.value;
      }
      if (spec?.optional) {
        this.unavailable.push(spec.what);
        return [];
      }
      throw this.#unavailable(`${spec?.what ?? type} are not in the prefetch and the client's FHIR server cannot be asked for them`);
    });
  }

  /** Keeps prefetched resources about this patient and, for Observations, the codes asked for. */
  #filter<T extends Resource>(rs: T[], type: string, params: Record<string, string>): T[] {
    const me = `Patient/${this.#opts.patientId}`;
    let out = rs.filter((r) => {
      const ref = patientRefOf(r);
      return ref === undefined || ref === me || ref.endsWith(`/${me}`);
    });
    if (type === 'Observation' && params['code']) {
      const wanted = new Set(params['code'].split(','));
      out = out.filter((o) => ((o as unknown as Observation).code?.coding ?? []).some((c: Coding) => wanted.has(`${c.system}|${c.code}`) || wanted.has(c.code ?? '')));
    }
    return out;
  }

  write<T extends Resource>(resource: T): Promise<T> {
    return Promise.reject(new PrefetchUnavailableError(`a CDS hook's data source is read-only (${resource.resourceType})`));
  }
}
