/**
 * Bearer-token and SMART v2 scope enforcement in front of the sandbox FHIR router (`/sandbox/fhir`).
 *
 * Public: `GET /metadata` (with the SMART security section) and `GET /.well-known/smart-configuration`, plus CORS
 * preflights. Everything else needs a token from the sandbox authorization server:
 * - 401 (OperationOutcome saying how to get a token) when it is missing, invalid or expired;
 * - the interaction needs the matching permission letter — read `r` (read, vread, instance history), search `s`,
 *   create `c`, update `u` (PUT, PATCH), delete `d` — on the type or `*`;
 * - `user/` and `system/` scopes reach every resource (Subscriptions: `system/` only);
 * - `patient/` scopes reach only the Patient compartment of the token's `patient` (FHIR R4
 *   CompartmentDefinition/patient) plus the read-only shared types of `PATIENT_SCOPE_SHARED_TYPES` (compartment.ts);
 *   every other type is 403. Searches are confined to the compartment: a compartment parameter naming another
 *   patient, or carrying a modifier (`patient:not`, `_id:not` on Patient, `subject:missing`, `subject:identifier`…),
 *   is refused, and so are chains, `_has` and the other parameters that select through other resources; a search
 *   without a compartment parameter gets one. Answers are checked too: entries another patient's (e.g.
 *   `_include`d/`_revinclude`d ones) are removed, `Bundle.total` then counts what is left (or is dropped when the
 *   result spans pages), paging links carry the confined query, and a read or vread whose resource is outside the
 *   compartment is 403. Writes must refer to the token's patient, and every Patient reference in any compartment
 *   field of the type (subject, performer, asserter, recorder, participant, link, …) must be that patient; the same
 *   holds for the resource an update or delete replaces. PATCH, conditional writes (`If-None-Exist` included),
 *   operations and batch/transaction Bundles need `user/` or `system/` scopes.
 *
 * Interop demo mode (`openReads`, setting `SANDBOX_FHIR_OPEN`): a request WITHOUT an `Authorization` header may
 * read and search (GET/HEAD, and `POST <type>/_search`) everything, as if it held `system/*.rs`; anything else
 * without a token still gets the 401. A request WITH a token is checked exactly as above, so an app that holds a
 * patient-scoped token still sees only its patient.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/scopes-and-launch-context.html
 * @see https://hl7.org/fhir/R4/compartmentdefinition-patient.html
 * @see https://hl7.org/fhir/R4/search.html#modifiers
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Bundle, BundleEntry, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { bearerToken } from '../../auth/require.ts';
import { grantingContexts, type Permission } from '../../auth/scopes.ts';
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess } from '../../auth/types.ts';
import { FHIR_JSON_BODY_TYPES } from '../../fhir/media-type.ts';
import type { FhirSandbox } from '../fhir/router.ts';
import {
  compartmentParams,
  foreignPatientReferences,
  inPatientCompartment,
  isPatientDataType,
  PATIENT_SCOPE_SHARED_TYPES,
  reachableTypeForPatientScope,
  reachableWithPatientScope,
  refersToPatient,
  type ForeignReference,
} from './compartment.ts';

const FHIR_JSON = 'application/fhir+json';

export interface FhirGuardOptions {
  readonly verifier: AccessTokenVerifier;
  readonly fhir: FhirSandbox;
  /** Serves `/.well-known/smart-configuration`. */
  readonly wellKnown: RequestHandler;
  /** Public token endpoint and the developer client, for the 401 message. */
  readonly help: { readonly tokenUrl: string; readonly clientId: string };
  readonly maxRequestBytes: number;
  /** Token-less reads and searches are allowed (`SANDBOX_FHIR_OPEN`; the configuration limits it to loopback). */
  readonly openReads?: boolean;
}

/** A read or search that open mode lets through without a token: GET/HEAD anywhere, or `POST <type>/_search`. */
/**
 * Types only system/ scopes reach: a Subscription's `channel.header` holds the credential of the notification
 * endpoint, so a patient- or user-level token (or an open read) must never see one.
 */
const SYSTEM_ONLY_TYPES: ReadonlySet<string> = new Set(['Subscription']);

function isOpenRead(method: string, path: string): boolean {
  const segments = path.split('/').filter(Boolean);
  if (segments.length === 0 || SYSTEM_ONLY_TYPES.has(segments[0]!)) return false;
  if (method === 'GET' || method === 'HEAD') return true;
  return method === 'POST' && segments.length === 2 && segments[1] === '_search';
}

function outcomeOf(code: string, text: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: code as 'security', details: { text } }] };
}

function outcome(res: Response, status: number, code: string, text: string): void {
  res.status(status).type(FHIR_JSON).send(JSON.stringify(outcomeOf(code, text)));
}

function describeForeign(refs: readonly ForeignReference[]): string {
  return refs.map((r) => `${r.param} → ${r.value} (${r.why === 'other-patient' ? 'another patient' : 'not a literal Type/id reference, so it cannot be checked'})`).join(', ');
}

/**
 * Search parameters a `patient/` token may not use, whatever the type: each selects resources through other
 * resources (other patients' included) or through server-side lists, so confining the searched type is not enough.
 * The sandbox router does not support most of them either (400); refusing here says why (403).
 */
const REFUSED_UNDER_PATIENT_SCOPE: Readonly<Record<string, string>> = {
  _has: 'reverse chaining (_has) selects resources by what other resources, other patients\' included, say about them',
  _filter: '_filter can express conditions on any reference',
  _query: 'named queries are not confined to one patient',
  _list: 'a List may gather other patients\' resources',
  _contained: '_contained searches inside other resources',
  _containedType: '_containedType searches inside other resources',
  _type: '_type belongs to system-level searches',
};

/**
 * Confines a search by a `patient/` token of `patient` to the token's compartment; returns the query to run, or the
 * reason it is refused. On a compartment type:
 * - a compartment parameter (or `patient`/`subject`, or `_id` on Patient) may carry no modifier other than the
 *   `:Patient` type, and every value must be the token's patient — `patient:not`, `_id:not`, `:missing`,
 *   `:identifier`, `:above`… would select other patients' resources (and leak their count in `Bundle.total`);
 * - values are rewritten to the canonical `Patient/<id>` (a bare id matches every target type, e.g. a Group of the
 *   same id);
 * - without such a parameter, one is added (`_id` on Patient, else `patient` or the first compartment parameter).
 * On every type, chained parameters and {@link REFUSED_UNDER_PATIENT_SCOPE} are refused. Idempotent: a confined
 * query passes unchanged (paging links are checked with it).
 */
export function confineSearch(type: string, query: URLSearchParams, patient: string): { query: URLSearchParams } | { refuse: string } {
  const patientData = isPatientDataType(type);
  const compartment = new Set(type === 'Patient' ? ['_id'] : compartmentParams(type));
  const named = type === 'Patient' ? compartment : new Set([...compartment, 'patient', 'subject']);
  const out = new URLSearchParams();
  let constrained = false;
  for (const [key, value] of query) {
    const colon = key.indexOf(':');
    const code = colon >= 0 ? key.slice(0, colon) : key;
    const modifier = colon >= 0 ? key.slice(colon + 1) : undefined;
    const refused = Object.hasOwn(REFUSED_UNDER_PATIENT_SCOPE, code) ? REFUSED_UNDER_PATIENT_SCOPE[code] : code.startsWith('_has') ? REFUSED_UNDER_PATIENT_SCOPE['_has'] : undefined;
    if (refused) return { refuse: `${code} is not allowed with patient/ scopes: ${refused}` };
    if (key.includes('.')) return { refuse: `chained search parameters (${key}) are not allowed with patient/ scopes: a chain selects through other resources, other patients' included` };
    if (!patientData || !named.has(code)) {
      out.append(key, value);
      continue;
    }
    if (modifier !== undefined && !(modifier === 'Patient' && code !== '_id')) {
      return { refuse: `the modifier :${modifier} on ${code} is not allowed with patient/ scopes: ${code} must name the token's patient exactly (e.g. ${code}=${code === '_id' ? patient : `Patient/${patient}`})` };
    }
    for (const v of value.split(',')) {
      if (!refersToPatient(v, patient)) return { refuse: `the search parameter ${code} names another patient; this token is limited to its own patient` };
    }
    out.append(code, code === '_id' ? patient : `Patient/${patient}`);
    if (compartment.has(code)) constrained = true;
  }
  if (patientData && !constrained) {
    const params = compartmentParams(type);
    if (type === 'Patient') out.append('_id', patient);
    else out.append(params.includes('patient') ? 'patient' : params[0]!, `Patient/${patient}`);
  }
  return { query: out };
}

/** Paging links: re-confined (a link that would not pass is dropped; a confined query passes unchanged). */
function confineLink(url: string, patient: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const type = u.pathname.split('/').filter(Boolean).pop() ?? '';
  if (!reachableTypeForPatientScope(type)) return u.search === '' ? url : undefined;
  const confined = confineSearch(type, u.searchParams, patient);
  if ('refuse' in confined) return undefined;
  u.search = confined.query.toString();
  return u.toString();
}

/**
 * What a `patient/` token of `patient` may receive of a router answer: a Bundle (searchset, history) without the
 * entries outside its reach, `total` recomputed from the remaining matches when the answer is the whole result (no
 * next/previous page) and dropped otherwise, paging links re-confined; a single resource as is when reachable,
 * `'refuse'` when not (a vread of a version that belonged to another patient). Returns `resource` itself when
 * nothing changes.
 */
export function confineAnswer(resource: Resource, patient: string): Resource | 'refuse' {
  if (resource.resourceType === 'OperationOutcome') return resource;
  if (resource.resourceType !== 'Bundle') return reachableWithPatientScope(resource, patient) ? resource : 'refuse';
  const bundle = resource;
  const isMatch = (e: BundleEntry): boolean => e.search?.mode !== 'include' && e.search?.mode !== 'outcome';
  let removedMatches = 0;
  const entries = (bundle.entry ?? []).filter((e) => {
    if (!e.resource || e.resource.resourceType === 'OperationOutcome' || reachableWithPatientScope(e.resource, patient)) return true;
    if (isMatch(e)) removedMatches++;
    return false;
  });
  const links = bundle.link?.flatMap((l) => {
    const url = l.url === undefined ? undefined : confineLink(l.url, patient);
    return url === undefined ? [] : [{ ...l, url }];
  });
  const changed = entries.length !== (bundle.entry ?? []).length || links?.length !== bundle.link?.length || links?.some((l, i) => l.url !== bundle.link![i]!.url);
  if (!changed) return bundle;
  const out: Bundle = { ...bundle, ...(bundle.entry ? { entry: entries } : {}), ...(links ? { link: links } : {}) };
  if (removedMatches > 0 && out.total !== undefined) {
    const paged = (bundle.link ?? []).some((l) => l.relation === 'next' || l.relation === 'previous' || l.relation === 'prev');
    if (paged) delete out.total;
    else out.total = entries.filter((e) => e.resource && isMatch(e)).length;
  }
  return out;
}

interface Interaction {
  readonly type: string;
  readonly id?: string;
  readonly permission: Permission;
  /** PATCH, conditional writes, batch/transaction: not allowed in compartment mode. */
  readonly complex: boolean;
  readonly search: boolean;
}

function classify(method: string, segments: readonly string[], hasQuery: boolean): Interaction | undefined {
  const [type, second] = segments;
  if (!type) return undefined;
  const id = second && !second.startsWith('_') ? second : undefined;
  if (method === 'GET' || method === 'HEAD') {
    if (segments.length === 1 || second === '_history') return { type, permission: 's', complex: second === '_history', search: segments.length === 1 };
    return { type, ...(id ? { id } : {}), permission: 'r', complex: false, search: false };
  }
  if (method === 'POST') {
    if (second === '_search') return { type, permission: 's', complex: false, search: true };
    return { type, permission: 'c', complex: segments.length !== 1 || hasQuery, search: false };
  }
  if (method === 'PUT') return { type, ...(id ? { id } : {}), permission: 'u', complex: !id, search: false };
  if (method === 'PATCH') return { type, ...(id ? { id } : {}), permission: 'u', complex: true, search: false };
  if (method === 'DELETE') return { type, ...(id ? { id } : {}), permission: 'd', complex: !id, search: false };
  return undefined;
}

const PERMISSION_WORD: Record<Permission, string> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };

export function smartFhirGuard(options: FhirGuardOptions): RequestHandler {
  const { verifier, fhir, help } = options;
  // The same body types as the router: a body the guard skipped (e.g. DSTU2's application/json+fhir) would reach
  // the router parsed there but unchecked here, bypassing the compartment checks of writes.
  const json = express.json({ limit: options.maxRequestBytes, type: [...FHIR_JSON_BODY_TYPES] });
  const howTo =
    `Send "Authorization: Bearer <access token>". Apps get one with SMART App Launch (see ${help.tokenUrl.replace(/\/token$/, '')} and .well-known/smart-configuration); ` +
    `developers with: curl -s -u ${help.clientId}:<secret from smart-config/smart-clients.json> -d grant_type=client_credentials -d scope=system/*.rs ${help.tokenUrl}`;

  const parseBody = (req: Request, res: Response): Promise<boolean> =>
    new Promise((resolve) => {
      json(req, res, (err?: unknown) => {
        if (!err) return resolve(true);
        const e = err as { type?: string };
        if (e.type === 'entity.too.large') outcome(res, 413, 'too-costly', `The body exceeds ${options.maxRequestBytes} bytes`);
        else outcome(res, 400, 'structure', 'The body is not valid JSON');
        resolve(false);
      });
    });

  const form = express.urlencoded({ extended: false, limit: options.maxRequestBytes });
  const parseForm = (req: Request, res: Response): Promise<boolean> =>
    new Promise((resolve) => {
      form(req, res, (err?: unknown) => {
        if (!err) return resolve(true);
        const e = err as { type?: string };
        if (e.type === 'entity.too.large') outcome(res, 413, 'too-costly', `The body exceeds ${options.maxRequestBytes} bytes`);
        else outcome(res, 400, 'structure', 'The form body could not be read');
        resolve(false);
      });
    });

  const current = async (type: string, id: string): Promise<Resource | undefined> => {
    const r = await fhir.handle('GET', `${type}/${id}`);
    return r.status === 200 ? r.body : undefined;
  };

  /** Checks one write in compartment mode; returns a refusal text or undefined. */
  const compartmentWrite = async (it: Interaction, body: unknown, patient: string, conditional: boolean): Promise<string | undefined> => {
    if (it.complex || conditional) return 'PATCH, conditional writes and batch/transaction Bundles need user/ or system/ scopes';
    if (!isPatientDataType(it.type) || it.type === 'Patient' && it.permission === 'c') return `${it.type} is outside the patient's record: patient/ scopes cannot ${PERMISSION_WORD[it.permission]} it`;
    if (it.id) {
      const existing = await current(it.type, it.id);
      if (existing && !inPatientCompartment(existing, patient)) return `${it.type}/${it.id} belongs to another patient`;
      const shared = existing ? foreignPatientReferences(existing, patient) : [];
      if (shared.length > 0) return `${it.type}/${it.id} is also in another patient's record (${describeForeign(shared)}): patient/ scopes cannot ${PERMISSION_WORD[it.permission]} it`;
    }
    if (it.permission !== 'd') {
      const r = body as Resource | undefined;
      if (!r || typeof r !== 'object' || r.resourceType !== it.type) return undefined; // the router answers 400
      if (!inPatientCompartment(r, patient)) return `the ${it.type} does not refer to the token's patient`;
      const foreign = foreignPatientReferences(r, patient);
      if (foreign.length > 0) return `the ${it.type} would enter another patient's record: ${describeForeign(foreign)}; with patient/ scopes every Patient reference in its compartment fields (${compartmentParams(it.type).join(', ')}) must be Patient/${patient}`;
    }
    return undefined;
  };

  /** Checks the answer of a router call before it leaves: see {@link confineAnswer}. */
  const guardAnswer = (res: Response, patient: string): void => {
    const send = res.send.bind(res);
    res.send = ((body: unknown) => {
      if (typeof body !== 'string' || res.statusCode < 200 || res.statusCode >= 300) return send(body as string);
      let parsed: Resource;
      try {
        parsed = JSON.parse(body) as Resource;
      } catch {
        return send(body); // not JSON: nothing of a resource to check
      }
      const confined = confineAnswer(parsed, patient);
      if (confined === 'refuse') {
        for (const h of ['ETag', 'Last-Modified', 'Location', 'Content-Location']) res.removeHeader(h);
        res.status(403).type(FHIR_JSON);
        return send(JSON.stringify(outcomeOf('forbidden', `this ${parsed.resourceType} is outside the token's patient compartment`)));
      }
      return send(confined === parsed ? body : JSON.stringify(confined));
    }) as Response['send'];
  };

  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const method = req.method.toUpperCase();
      if (method === 'OPTIONS') return fhir.router(req, res, next);
      if ((method === 'GET' || method === 'HEAD') && req.path === '/.well-known/smart-configuration') return options.wellKnown(req, res, next);
      if ((method === 'GET' || method === 'HEAD') && req.path === '/metadata') return fhir.router(req, res, next);
      res.set('Access-Control-Allow-Origin', '*');

      const token = bearerToken(req.get('authorization'));
      if (!token) {
        // Open mode: only a request with no Authorization header at all; a malformed one is still refused below.
        if (options.openReads && req.get('authorization') === undefined && isOpenRead(method, req.path)) return fhir.router(req, res, next);
        res.set('WWW-Authenticate', 'Bearer realm="sandbox-fhir"');
        const why = options.openReads ? 'Reads and searches are open (SANDBOX_FHIR_OPEN=true), but this request needs a SMART access token.' : 'This sandbox FHIR server needs a SMART access token.';
        return outcome(res, 401, 'login', `${why} ${howTo}`);
      }
      let access: SmartAccess;
      try {
        access = await verifier.verify(token);
      } catch (err) {
        const e = err instanceof AccessTokenError ? err : new AccessTokenError('invalid', 'the access token could not be verified');
        res.set('WWW-Authenticate', `Bearer realm="sandbox-fhir", error="invalid_token", error_description="${e.message.replace(/"/g, '')}"`);
        return outcome(res, 401, e.code === 'expired' ? 'expired' : 'login', `The access token was refused: ${e.message}. ${howTo}`);
      }

      const segments = req.path.split('/').filter(Boolean);
      const hasQuery = req.originalUrl.includes('?');
      if (segments.length === 0) {
        // Batch/transaction: user/ or system/ scopes covering every entry.
        if (method !== 'POST') return fhir.router(req, res, next);
        if (!(await parseBody(req, res))) return;
        const bundle = req.body as Bundle | undefined;
        for (const entry of bundle?.entry ?? []) {
          const url = entry.request?.url ?? '';
          const [path = '', q] = url.split('?', 2);
          const it = classify((entry.request?.method ?? 'GET').toUpperCase(), path.split('/').filter(Boolean), q !== undefined);
          if (!it) continue; // the router rejects it
          const ctxs = grantingContexts(access.scopes, it.type, it.permission);
          if (SYSTEM_ONLY_TYPES.has(it.type) && !ctxs.has('system')) return outcome(res, 403, 'forbidden', `${it.type} resources are reachable with system/ scopes only`);
          if (!ctxs.has('user') && !ctxs.has('system')) {
            return outcome(res, 403, 'forbidden', `A ${bundle?.type ?? 'batch'} entry needs user/ or system/ scope to ${PERMISSION_WORD[it.permission]} ${it.type}`);
          }
        }
        return fhir.router(req, res, next);
      }
      const it = classify(method, segments, hasQuery);
      if (!it) return fhir.router(req, res, next);
      const ctxs = grantingContexts(access.scopes, it.type, it.permission);
      if (SYSTEM_ONLY_TYPES.has(it.type) && !ctxs.has('system')) return outcome(res, 403, 'forbidden', `${it.type} resources hold endpoint credentials: they are reachable with system/ scopes only`);
      if (ctxs.has('user') || ctxs.has('system')) {
        // Creating through PUT (update-as-create) also needs the create permission.
        if (method === 'PUT' && it.id && !(await current(it.type, it.id))) {
          const create = grantingContexts(access.scopes, it.type, 'c');
          if (!create.has('user') && !create.has('system')) return outcome(res, 403, 'forbidden', `${it.type}/${it.id} does not exist: creating it needs the create permission (.c)`);
        }
        return fhir.router(req, res, next);
      }
      if (!ctxs.has('patient')) {
        return outcome(res, 403, 'forbidden', `The access token's scopes do not allow ${PERMISSION_WORD[it.permission]} on ${it.type} (needs e.g. patient/${it.type}.${it.permission})`);
      }
      const patient = access.patient;
      if (!patient) return outcome(res, 403, 'forbidden', 'patient/ scopes need a patient in the token (launch/patient)');

      if (segments.some((seg) => seg.startsWith('$'))) return outcome(res, 403, 'forbidden', 'FHIR operations need user/ or system/ scopes');
      if (!reachableTypeForPatientScope(it.type)) {
        return outcome(res, 403, 'forbidden', `${it.type} is outside the patient's record: patient/ scopes reach the patient's compartment and, read-only, ${[...PATIENT_SCOPE_SHARED_TYPES].join(', ')}`);
      }

      if (it.search) {
        const query = new URLSearchParams(hasQuery ? req.originalUrl.slice(req.originalUrl.indexOf('?') + 1) : '');
        if (method === 'POST') {
          // POST _search: the form (or JSON) body is part of the query; it is confined with it and moved to the URL.
          if (!(await parseBody(req, res)) || !(await parseForm(req, res))) return;
          for (const [k, v] of Object.entries((req.body ?? {}) as Record<string, unknown>)) {
            for (const item of Array.isArray(v) ? v : [v]) query.append(k, String(item));
          }
          req.body = {};
        }
        const confined = confineSearch(it.type, query, patient);
        if ('refuse' in confined) return outcome(res, 403, 'forbidden', confined.refuse);
        const qs = confined.query.toString();
        const path = req.originalUrl.split('?')[0]!;
        req.url = `${req.url.split('?')[0]}?${qs}`;
        req.originalUrl = `${path}?${qs}`;
        guardAnswer(res, patient);
        return fhir.router(req, res, next);
      }
      if (it.permission === 'r' || (it.permission === 's' && it.complex)) {
        if (it.complex || !it.id) return outcome(res, 403, 'forbidden', 'history across resources needs user/ or system/ scopes');
        const existing = isPatientDataType(it.type) ? await current(it.type, it.id) : undefined;
        if (existing && !inPatientCompartment(existing, patient)) return outcome(res, 403, 'forbidden', `${it.type}/${it.id} belongs to another patient; this token is limited to its own patient`);
        // Instance history and vread answer older versions, which may have belonged to another patient.
        guardAnswer(res, patient);
        return fhir.router(req, res, next);
      }
      // Writes.
      if (method !== 'DELETE' && !(await parseBody(req, res))) return;
      const refusal = await compartmentWrite(it, req.body, patient, req.get('if-none-exist') !== undefined);
      if (refusal) return outcome(res, 403, 'forbidden', refusal);
      if (method === 'PUT' && it.id && !(await current(it.type, it.id)) && !grantingContexts(access.scopes, it.type, 'c').has('patient')) {
        return outcome(res, 403, 'forbidden', `${it.type}/${it.id} does not exist: creating it needs the create permission (.c)`);
      }
      return fhir.router(req, res, next);
    } catch (err) {
      next(err);
    }
  };
}
