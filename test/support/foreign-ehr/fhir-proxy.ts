/**
 * The FHIR endpoint of a simulated EHR tenant: SMART discovery (`.well-known/smart-configuration`), a
 * CapabilityStatement (`metadata`), and reads and searches answered from the service's sandbox FHIR server
 * (started with `SANDBOX_FHIR_OPEN=true`, so the proxy needs no token upstream) after checking the EHR's OWN access
 * token:
 * - the token must be one this tenant issued and still valid;
 * - its scopes must allow reading the resource type (SMART v1 `.read`/`.*` or v2 `.r`/`.s` permissions);
 * - a patient-limited token (launch patient P) may read `Patient/P`, search `Patient?_id=P`, and search other types
 *   only with `patient` or `subject` naming P (`P`, `Patient/P` or an absolute URL ending in `Patient/P`); a read by
 *   id of another type is answered only when the resource's `subject`/`patient` is P; `_include`/`_revinclude` are
 *   refused (they could reach other patients' data).
 * Absolute URLs of the upstream server in the answers are rewritten to this base, as smart-launcher-v2's FHIR proxy
 * does, so nothing the EHR answers points at the sandbox. The simulator is read-only: writes are refused (405).
 * @see https://hl7.org/fhir/smart-app-launch/STU2/conformance.html (discovery)
 * @see https://hl7.org/fhir/smart-app-launch/STU2/scopes-and-launch-context.html (scopes)
 * @see https://hl7.org/fhir/R4/compartmentdefinition-patient.html (patient compartment)
 */
import { Router, type Request } from 'express';
import type { EhrTokens } from './tokens.ts';
import { fhirError } from './http.ts';
import type { Grant, TenantConvention } from './types.ts';

/** One request the FHIR endpoint saw (for assertions: who called, with which token and `Accept`, and the answer). */
export interface FhirRequestRecord {
  readonly tenant: string;
  readonly method: string;
  /** Path below the FHIR base, with the query string. */
  readonly url: string;
  readonly accept: string | undefined;
  /** `none`, `refused` (unknown/expired token) or the `sub` of the grant. */
  readonly caller: string;
  readonly status: number;
  readonly contentType: string | undefined;
}

export interface FhirProxyOptions {
  readonly tenant: TenantConvention;
  /** This tenant's public FHIR base (no trailing slash). */
  readonly fhirBase: string;
  readonly mediaType: string;
  readonly tokens: EhrTokens;
  /** The sandbox FHIR base the answers come from; undefined until the EHR is connected to the service. */
  readonly upstream: () => string | undefined;
  readonly smartConfiguration: () => Record<string, unknown>;
  readonly capabilityStatement: () => Record<string, unknown>;
  readonly log: FhirRequestRecord[];
}

const SCOPE = /^(patient|user|system)\/([A-Za-z]+|\*)\.([a-z*]+)$/;

/** Whether `scope` lets its holder read or search `type`. */
export function scopeReads(scope: string, type: string): boolean {
  return scope.split(/\s+/).some((s) => {
    const m = SCOPE.exec(s);
    if (!m || (m[2] !== '*' && m[2] !== type)) return false;
    const perm = m[3]!;
    return perm === '*' || perm === 'read' || (/^c?r?u?d?s?$/.test(perm) && /[rs]/.test(perm));
  });
}

/** True when a reference search value names patient `p` (`p`, `Patient/p`, or an absolute URL ending in `/Patient/p`). */
function namesPatient(value: string, p: string): boolean {
  return value === p || value === `Patient/${p}` || value.endsWith(`/Patient/${p}`);
}

/** The patient a resource belongs to, from `subject` or `patient` (`Patient/<id>` only), or undefined. */
function compartmentOf(resource: Record<string, unknown>): string | null | undefined {
  for (const field of ['subject', 'patient']) {
    const ref = (resource[field] as { reference?: unknown } | undefined)?.reference;
    if (typeof ref === 'string') {
      const m = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref);
      return m ? m[1]! : null;
    }
  }
  return undefined;
}

/** Why a patient-limited grant may not make this request, or undefined when it may. */
function patientLimitRefusal(grant: Grant, type: string, id: string | undefined, query: URLSearchParams): string | undefined {
  const p = grant.patient;
  if (!p) return undefined;
  if (query.has('_include') || query.has('_revinclude')) return '_include/_revinclude are not allowed with a patient-limited token';
  if (type === 'Patient') {
    if (id !== undefined) return id === p ? undefined : 'the token is limited to another patient';
    const ids = query.getAll('_id').flatMap((v) => v.split(','));
    return ids.length > 0 && ids.every((v) => v === p) ? undefined : 'a Patient search must name the token\'s patient with _id';
  }
  if (id !== undefined) return undefined; // checked on the answer (its subject/patient)
  const values = [...query.getAll('patient'), ...query.getAll('subject'), ...query.getAll('subject:Patient')].flatMap((v) => v.split(','));
  if (values.length === 0) return `a ${type} search must name the token's patient (patient= or subject=)`;
  return values.every((v) => namesPatient(v, p)) ? undefined : 'the token is limited to another patient';
}

export function createFhirProxy(o: FhirProxyOptions): Router {
  const router = Router();
  const record = (req: Request, caller: string, status: number, contentType: string | undefined): void => {
    o.log.push({ tenant: o.tenant.id, method: req.method, url: req.url, accept: req.get('accept'), caller, status, contentType });
  };

  router.get('/.well-known/smart-configuration', (req, res) => {
    res.set('Cache-Control', 'no-store').json(o.smartConfiguration());
    record(req, 'none', 200, 'application/json');
  });

  router.get('/metadata', (req, res) => {
    res.type(o.mediaType).send(JSON.stringify(o.capabilityStatement()));
    record(req, 'none', 200, o.mediaType);
  });

  router.use(async (req, res) => {
    const refuse = (status: number, code: string, text: string, caller = 'none'): void => {
      if (status === 401) res.set('WWW-Authenticate', `Bearer realm="${o.tenant.id}", error="invalid_token"`);
      fhirError(res, o.mediaType, status, code, text);
      record(req, caller, status, o.mediaType);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(405, 'not-supported', 'this simulated EHR answers reads and searches only');
    const m = /^Bearer ([\x21-\x7e]+)$/.exec(req.get('authorization') ?? '');
    if (!m) return refuse(401, 'login', 'an access token of this EHR is required');
    const grant = await o.tokens.verify(m[1]!);
    if (!grant || grant.tenant !== o.tenant.id) return refuse(401, 'login', 'unknown, expired or foreign access token', 'refused');

    const url = new URL(req.url, 'http://x');
    const segments = url.pathname.split('/').filter(Boolean);
    const [type, id, ...rest] = segments;
    if (!type || !/^[A-Z][A-Za-z]+$/.test(type) || rest.length > 0 || (id !== undefined && !/^[A-Za-z0-9\-.]{1,64}$/.test(id))) {
      return refuse(400, 'not-supported', 'only <type>/<id> reads and <type>?<params> searches are supported', grant.sub);
    }
    if (!scopeReads(grant.scope, type)) return refuse(403, 'forbidden', `the token's scopes do not allow reading ${type}`, grant.sub);
    const why = patientLimitRefusal(grant, type, id, url.searchParams);
    if (why) return refuse(403, 'forbidden', why, grant.sub);

    const upstream = o.upstream();
    if (!upstream) return refuse(503, 'transient', 'the EHR is not connected to a FHIR store yet', grant.sub);
    let status: number;
    let text: string;
    try {
      const answer = await fetch(`${upstream}${url.pathname}${url.search}`, { headers: { Accept: o.mediaType }, signal: AbortSignal.timeout(20_000) });
      status = answer.status;
      text = (await answer.text()).replaceAll(upstream, o.fhirBase);
    } catch (err) {
      return refuse(502, 'transient', `the FHIR store did not answer (${(err as Error).message})`, grant.sub);
    }
    if (status === 200 && id !== undefined && type !== 'Patient' && grant.patient) {
      const owner = compartmentOf(JSON.parse(text) as Record<string, unknown>);
      if (owner !== undefined && owner !== grant.patient) return refuse(403, 'forbidden', 'the resource belongs to another patient', grant.sub);
    }
    res.status(status).type(o.mediaType).send(text);
    record(req, grant.sub, status, o.mediaType);
  });
  return router;
}
