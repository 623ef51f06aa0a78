/**
 * The chart of a hook call as a {@link FhirDataSource}: answered from the request's prefetch first, then from the
 * client's FHIR server (`fhirServer` + `fhirAuthorization`), within the token's scopes and patient.
 *
 * CDS Hooks 2.0 §Prefetch: a key the client could not satisfy is omitted (→ fetch it ourselves); a key whose query
 * found nothing is `null` (→ empty, no call). Data that is required and can be had neither way is a
 * {@link PrefetchUnavailableError} (the hook answers 412). MedicationStatement and FamilyMemberHistory are optional:
 * without them the estimate is still made and the card says which data the service could not see.
 *
 * Results are memoised per query, including in-flight promises, so the full assessment and the clinical-only
 * estimate racing it read the chart once.
 * @see https://cds-hooks.hl7.org/2.0/#prefetch-template
 * @see https://cds-hooks.hl7.org/2.0/#fhir-resource-access
 */
import type { Bundle, Coding, Observation, Patient, Resource } from '@medplum/fhirtypes';
import { FhirAccessError, HttpFhirClient, type FhirDataSource } from '../fhir/client.ts';
import type { FhirAuthorization } from './types.ts';

/** Required data is neither in the prefetch nor obtainable from the client's FHIR server. */
export class PrefetchUnavailableError extends FhirAccessError {
  override readonly name = 'PrefetchUnavailableError';
  readonly code = 'PREFETCH_UNAVAILABLE';
  readonly retryable = false;
}

/** Resource type → prefetch key (services.ts) and whether the assessment can do without it. */
const KEYS: Record<string, { key: string; optional: boolean; what: string }> = {
  Patient: { key: 'patient', optional: false, what: 'the patient' },
  ImagingStudy: { key: 'imagingStudies', optional: false, what: 'imaging studies' },
  Observation: { key: 'observations', optional: false, what: 'observations' },
  Condition: { key: 'conditions', optional: false, what: 'conditions' },
  MedicationRequest: { key: 'medicationRequests', optional: false, what: 'medication orders' },
  MedicationStatement: { key: 'medicationStatements', optional: true, what: 'medication statements' },
  FamilyMemberHistory: { key: 'familyHistory', optional: true, what: 'family history' },
};

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
  timeoutMs: number;
  /** Used instead of building an HttpFhirClient for `fhirServer` (tests, or a configured client). */
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
  readonly #fallback: FhirDataSource | undefined;
  readonly #memo = new Map<string, Promise<unknown>>();
  /** Optional data the service could not see (for the card's warnings). */
  readonly unavailable: string[] = [];
  /** Counts for logs/tests: how many queries were answered by prefetch and by the FHIR server. */
  readonly stats = { prefetch: 0, fhir: 0 };

  constructor(opts: HookFhirSourceOptions) {
    this.#opts = opts;
    const auth = opts.fhirAuthorization;
    const patientOk = !auth?.patient || auth.patient === opts.patientId;
    this.#fallback = !patientOk ? undefined : opts.fallback ?? (opts.fhirServer ? new HttpFhirClient({ baseUrl: opts.fhirServer, timeoutMs: opts.timeoutMs, ...(auth ? { token: auth.access_token } : {}) }) : undefined);
    this.baseUrl = (opts.fhirServer ?? opts.fallback?.baseUrl ?? 'urn:cds-hooks:prefetch').replace(/\/+$/, '');
  }

  /** Whether the client's FHIR server may be asked for `type` (present, right patient, scope allows it). */
  #canFetch(type: string): boolean {
    if (!this.#fallback) return false;
    const auth = this.#opts.fhirAuthorization;
    return !auth || scopeAllows(auth.scope, type);
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
      if (!this.#canFetch(type)) throw new PrefetchUnavailableError(`${type}/${id} is not in the prefetch and the client's FHIR server cannot be asked for it`);
      this.stats.fhir++;
      return this.#fallback!.read<T>(type, id, signal);
    });
  }

  search<T extends Resource>(type: T['resourceType'], params: Record<string, string>, signal?: AbortSignal): Promise<T[]> {
    return this.#once(`search|${type}|${JSON.stringify(params)}`, async () => {
      const spec = KEYS[type];
      const pre = spec ? entriesOf<T>(this.#opts.prefetch?.[spec.key], type) : undefined;
      if (pre) {
        this.stats.prefetch++;
        return this.#filter(pre, type, params);
      }
      if (this.#canFetch(type)) {
        this.stats.fhir++;
        return this.#fallback!.search<T>(type, params, signal);
      }
      if (spec?.optional) {
        this.unavailable.push(spec.what);
        return [];
      }
      throw new PrefetchUnavailableError(`${spec?.what ?? type} are not in the prefetch and the client's FHIR server cannot be asked for them`);
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
