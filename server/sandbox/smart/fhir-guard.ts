/**
 * Bearer-token and SMART v2 scope enforcement in front of the sandbox FHIR router (`/sandbox/fhir`).
 *
 * Public: `GET /metadata` (with the SMART security section) and `GET /.well-known/smart-configuration`, plus CORS
 * preflights. Everything else needs a token from the sandbox authorization server:
 * - 401 (OperationOutcome saying how to get a token) when it is missing, invalid or expired;
 * - the interaction needs the matching permission letter — read `r` (read, vread, instance history), search `s`,
 *   create `c`, update `u` (PUT, PATCH), delete `d` — on the type or `*`;
 * - `user/` and `system/` scopes reach every resource; `patient/` scopes reach only the Patient compartment of the
 *   token's `patient`: searches are confined to it (a compartment parameter naming another patient is refused,
 *   a missing one is added), reads and writes of resources outside it are refused (403), and search results that
 *   `_include`/`_revinclude` another patient's data are filtered out. Resources outside every patient compartment
 *   (Practitioner, Endpoint, Binary, …) are readable, not writable, with `patient/` scopes. PATCH, conditional
 *   writes and batch/transaction Bundles need `user/` or `system/` scopes.
 *
 * Interop demo mode (`openReads`, setting `SANDBOX_FHIR_OPEN`): a request WITHOUT an `Authorization` header may
 * read and search (GET/HEAD, and `POST <type>/_search`) everything, as if it held `system/*.rs`; anything else
 * without a token still gets the 401. A request WITH a token is checked exactly as above, so an app that holds a
 * patient-scoped token still sees only its patient.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/scopes-and-launch-context.html
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Bundle, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { bearerToken } from '../../auth/require.ts';
import { grantingContexts, type Permission } from '../../auth/scopes.ts';
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess } from '../../auth/types.ts';
import { FHIR_JSON_BODY_TYPES } from '../../fhir/media-type.ts';
import type { FhirSandbox } from '../fhir/router.ts';
import { compartmentParams, inPatientCompartment, isPatientDataType, refersToPatient } from './compartment.ts';

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

function outcome(res: Response, status: number, code: string, text: string): void {
  const oo: OperationOutcome = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: code as 'security', details: { text } }] };
  res.status(status).type(FHIR_JSON).send(JSON.stringify(oo));
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

  const current = async (type: string, id: string): Promise<Resource | undefined> => {
    const r = await fhir.handle('GET', `${type}/${id}`);
    return r.status === 200 ? r.body : undefined;
  };

  /** Checks one write in compartment mode; returns a refusal text or undefined. */
  const compartmentWrite = async (it: Interaction, body: unknown, patient: string): Promise<string | undefined> => {
    if (it.complex) return 'PATCH, conditional writes and batch/transaction Bundles need user/ or system/ scopes';
    if (!isPatientDataType(it.type) || it.type === 'Patient' && it.permission === 'c') return `${it.type} is outside the patient's record: patient/ scopes cannot ${PERMISSION_WORD[it.permission]} it`;
    if (it.id) {
      const existing = await current(it.type, it.id);
      if (existing && !inPatientCompartment(existing, patient)) return `${it.type}/${it.id} belongs to another patient`;
    }
    if (it.permission !== 'd') {
      const r = body as Resource | undefined;
      if (!r || typeof r !== 'object' || r.resourceType !== it.type) return undefined; // the router answers 400
      if (!inPatientCompartment(r, patient)) return `the ${it.type} does not refer to the token's patient`;
    }
    return undefined;
  };

  /** Confines a search to the patient's compartment; returns the rewritten query or a refusal. */
  const confineSearch = (type: string, query: URLSearchParams, patient: string): { query: URLSearchParams } | { refuse: string } => {
    if (!isPatientDataType(type)) return { query };
    const linkParams = type === 'Patient' ? ['_id'] : [...new Set(['patient', 'subject', ...compartmentParams(type)])];
    let constrained = false;
    for (const [key, value] of query) {
      const base = key.split(':')[0]!.split('.')[0]!;
      if (!linkParams.includes(base)) continue;
      for (const v of value.split(',')) {
        if (!refersToPatient(v, patient)) return { refuse: `the search parameter ${base} names another patient; this token is limited to its own patient` };
      }
      constrained = true;
    }
    if (!constrained) {
      if (type === 'Patient') query.set('_id', patient);
      else query.set(compartmentParams(type).includes('patient') || compartmentParams(type).length === 0 ? 'patient' : compartmentParams(type)[0]!, `Patient/${patient}`);
    }
    return { query };
  };

  /** Drops entries of other patients' data from a search response (e.g. `_revinclude`d ones). */
  const filterResponse = (res: Response, patient: string): void => {
    const send = res.send.bind(res);
    res.send = ((body: unknown) => {
      if (typeof body === 'string' && res.statusCode === 200) {
        try {
          const b = JSON.parse(body) as Bundle;
          if (b.resourceType === 'Bundle' && b.entry) {
            const before = b.entry.length;
            b.entry = b.entry.filter((e) => !e.resource || !isPatientDataType(e.resource.resourceType) || inPatientCompartment(e.resource, patient));
            if (b.entry.length !== before) return send(JSON.stringify(b));
          }
        } catch {
          // not JSON: pass through unchanged
        }
      }
      return send(body as string);
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

      if (it.search) {
        const query = new URLSearchParams(hasQuery ? req.originalUrl.slice(req.originalUrl.indexOf('?') + 1) : '');
        const confined = confineSearch(it.type, query, patient);
        if ('refuse' in confined) return outcome(res, 403, 'forbidden', confined.refuse);
        const qs = confined.query.toString();
        const path = req.originalUrl.split('?')[0]!;
        req.url = `${req.url.split('?')[0]}?${qs}`;
        req.originalUrl = `${path}?${qs}`;
        filterResponse(res, patient);
        return fhir.router(req, res, next);
      }
      if (it.permission === 'r' || (it.permission === 's' && it.complex)) {
        if (it.complex || !it.id) return outcome(res, 403, 'forbidden', 'history across resources needs user/ or system/ scopes');
        const existing = isPatientDataType(it.type) ? await current(it.type, it.id) : undefined;
        if (existing && !inPatientCompartment(existing, patient)) return outcome(res, 403, 'forbidden', `${it.type}/${it.id} belongs to another patient; this token is limited to its own patient`);
        return fhir.router(req, res, next);
      }
      // Writes.
      if (method !== 'DELETE' && !(await parseBody(req, res))) return;
      const refusal = await compartmentWrite(it, req.body, patient);
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
