/**
 * HTTP side of the CDS Hooks service (CDS Hooks 2.0): `GET /cds-services` (discovery), `POST /cds-services/{id}`
 * (the hooks), `POST /cds-services/{id}/feedback`; and `GET /api/feedback/summary` (separate router).
 *
 * Order of checks per call: CORS headers (also on errors, so browser clients can read them) → preflight answered
 * without auth → client JWT (bare 401 on any failure) → JSON body → schema (400 + OperationOutcome) → hook.
 * @see https://cds-hooks.hl7.org/2.0/#discovery
 * @see https://cds-hooks.hl7.org/2.0/#calling-a-cds-service
 * @see https://cds-hooks.hl7.org/2.0/#cross-origin-resource-sharing
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { FhirAccessError, FhirNotFoundError } from '../fhir/client.ts';
import { loadOrderCodeMaps, type OrderCodeIndex } from '../fhir/conceptmaps.ts';
import { ModelNotFoundError } from '../inference/registry.ts';
import { hashPatientId, type Logger } from '../logging.ts';
import { FactorError } from '../risk/factors.ts';
import type { RiskService } from '../risk/service.ts';
import { Semaphore, type HostLookup } from '../fhir/outbound.ts';
import { DEFAULT_HOOK_FHIR_CONCURRENCY, HookFhirSource, PrefetchUnavailableError } from './fhir-source.ts';
import { loadCareStatus } from '../orders/care-status.ts';
import { assessWithin, careWithin, cardsFor, orderFacts, type HookSettings } from './hooks.ts';
import { CdsAuthError, type CdsJwtVerifier, type VerifiedClient } from './jwt.ts';
import { SERVICES, serviceById } from './services.ts';
import { fhirServerForLog } from './ssrf.ts';
import { StateUnavailableError, type CardLogStore } from '../state/types.ts';
import type { HookResponse } from './types.ts';
import { operationOutcome, validateFeedback, validateHookRequest } from './validate.ts';

export interface CdsRouterDeps {
  risk: RiskService;
  verifier: CdsJwtVerifier;
  /** The card log and feedback (embedded SQLite, or PostgreSQL shared by the replicas). */
  store: CardLogStore;
  settings: HookSettings & { fhirTimeoutMs: number };
  logger: Logger;
  /** Order codes → order categories (default: the shipped ConceptMaps only; `mount.ts` adds `ORDER_CODE_MAPS_DIR`). */
  orderCodes?: OrderCodeIndex;
  /** Caps on requests to a client's FHIR server in flight at a time: per hook call, and for all calls of one client. */
  fhirConcurrency?: { perHook?: number; perClient?: number };
  /** Resolver for the `fhirServer` host check (default: the system's; tests pass their own). */
  lookup?: HostLookup;
}

/** Requests in flight at a time to the FHIR servers of one client, all its hook calls together. */
export const DEFAULT_CLIENT_FHIR_CONCURRENCY = 32;

/** Time reserved after the deadline for building and sending the cards, in ms. */
const SEND_MARGIN_MS = 15;

/** CORS for browser-based CDS clients (CDS Hooks 2.0 §CORS): any origin, no cookies, Authorization allowed. */
function cors(req: Request, res: Response, next: NextFunction): void {
  res.set('Access-Control-Allow-Origin', '*');
  res.set('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
  res.set('Access-Control-Allow-Headers', 'Authorization, Content-Type, Accept');
  res.set('Access-Control-Max-Age', '600');
  if (req.method === 'OPTIONS') {
    res.status(204).end();
    return;
  }
  next();
}

/** A body-parser error met while the JWT check read the body (too large, not JSON): answered by the router's 4xx handler. */
class BodyReadError extends Error {
  override readonly name = 'BodyReadError';
}

const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');
const EMPTY_BODY_HASH = sha256(Buffer.alloc(0));

function bad(res: Response, status: number, code: Parameters<typeof operationOutcome>[0], texts: string[]): void {
  res.status(status).type('application/fhir+json').json(operationOutcome(code, texts));
}

export function createCdsRouter(deps: CdsRouterDeps): Router {
  const { risk, verifier, store, settings, logger } = deps;
  const orderCodes = deps.orderCodes ?? loadOrderCodeMaps();
  const log = logger.child({ component: 'cds' });
  const base = settings.publicBaseUrl;
  const r = Router();
  const perHook = deps.fhirConcurrency?.perHook ?? DEFAULT_HOOK_FHIR_CONCURRENCY;
  const perClient = deps.fhirConcurrency?.perClient ?? DEFAULT_CLIENT_FHIR_CONCURRENCY;
  const clientLimits = new Map<string, Semaphore>();
  const clientLimit = (id: string): Semaphore => {
    let s = clientLimits.get(id);
    if (!s) clientLimits.set(id, (s = new Semaphore(perClient)));
    return s;
  };

  // Start of the budget: before auth and body parsing, which count against it.
  r.use((_req, res, next) => {
    res.locals['cdsT0'] = performance.now();
    next();
  });
  r.use(cors);

  // The JSON body parser also hashes the body as read (sha256), for the jti claim: a byte-identical resend of a call
  // not yet answered (a load balancer retrying it on another replica) is accepted, anything else is a replay.
  const bodyHashes = new WeakMap<IncomingMessage, string>();
  const json = express.json({
    limit: '8mb', type: ['application/json', 'application/fhir+json', 'application/*+json'],
    verify: (req, _res, buf) => void bodyHashes.set(req, sha256(buf)),
  });
  /** Reads (and parses) the body for the claim, once the token's signature is good; the route's `json` then finds it parsed. */
  const hashBody = (req: Request, res: Response) => async (): Promise<string | undefined> => {
    await new Promise<void>((resolve, reject) => void json(req, res, (err?: unknown) => (err ? reject(new BodyReadError('body', { cause: err })) : resolve())));
    const hash = bodyHashes.get(req);
    if (hash !== undefined) return hash;
    // Nothing read: a call without a body (discovery) hashes as empty; a body of another media type has no hash,
    // so its resend is a replay.
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    return hasBody ? undefined : EMPTY_BODY_HASH;
  };

  /** Verifies the JWT against the URL the client called; any failure → bare 401 (no body, no detail), or 503 when the shared jti cache is down. */
  const auth = (audience: (req: Request) => string) => async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const verified = await verifier.verify(req.get('authorization'), audience(req), hashBody(req, res));
      res.locals['cdsClient'] = verified;
      // Answered (or the caller gone): from now on the jti is refused even with the same body. A failed mark leaves
      // the claim resendable with this body only until the cache's resend window ends.
      res.once('close', () => void verifier.answered(verified).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'cds: could not mark the jti answered')));
      next();
    } catch (err) {
      if (err instanceof BodyReadError) return next(err.cause);
      // The shared jti cache (server/state/) is down: the token cannot be checked for replay. Refused, but as the
      // service's fault (503, retry later), not as bad credentials.
      if (err instanceof StateUnavailableError) {
        log.error({ err: err.message }, 'cds: the jti replay cache is not reachable; call refused');
        res.status(503).set('Retry-After', '5').end();
        return;
      }
      if (!(err instanceof CdsAuthError)) log.error({ err: (err as Error).message }, 'cds: JWT verification crashed');
      else log.info({ reason: err.reason, path: req.path }, 'cds: client JWT refused');
      res.status(401).set('WWW-Authenticate', 'Bearer').end();
    }
  };
  r.get('/', auth(() => `${base}/cds-services`), (_req, res) => {
    res.json({ services: SERVICES });
  });

  r.post('/:id/feedback', auth((req) => `${base}/cds-services/${String(req.params['id'])}/feedback`), json, async (req, res) => {
    const service = serviceById(String(req.params['id']));
    if (!service) return bad(res, 404, 'not-found', [`No CDS service ${String(req.params['id'])}`]);
    const v = validateFeedback(req.body);
    if (!v.ok) return bad(res, 400, 'invalid', v.problems);
    const client = res.locals['cdsClient'] as VerifiedClient;
    let added: number;
    try {
      added = await store.recordFeedback(service.id, client.client.id, v.value);
    } catch (err) {
      // Not stored: 503 so the EHR may send it again (a repeated entry is stored once).
      log.error({ service: service.id, client: client.client.id, err: (err as Error).message }, 'cds: feedback NOT stored: the card log is unavailable');
      return bad(res, 503, 'transient', ['The feedback could not be stored; send it again later']);
    }
    log.info({ service: service.id, client: client.client.id, entries: v.value.length, added }, 'cds: feedback stored');
    res.status(200).json({});
  });

  r.post('/:id', auth((req) => `${base}/cds-services/${String(req.params['id'])}`), json, async (req, res) => {
    const t0 = res.locals['cdsT0'] as number;
    const service = serviceById(String(req.params['id']));
    if (!service) return bad(res, 404, 'not-found', [`No CDS service ${String(req.params['id'])}`]);
    const v = validateHookRequest(req.body, service);
    if (!v.ok) return bad(res, 400, 'invalid', v.problems);
    const hook = v.value;
    const patientId = hook.context.patientId;
    const client = res.locals['cdsClient'] as VerifiedClient;
    const hlog = log.child({ service: service.id, client: client.client.id, jti: client.jti, hookInstance: hook.hookInstance, patient: hashPatientId(patientId) });
    const answer = (body: HookResponse, outcome: string, extra: Record<string, unknown> = {}): void => {
      // Written directly rather than by res.json: Express would hash every answer for an ETag no EHR revalidates.
      res.status(200).set('Content-Type', 'application/json; charset=utf-8').end(JSON.stringify(body));
      hlog.info({ outcome, cards: body.cards.length, ms: Math.round(performance.now() - t0), ...extra }, 'cds: hook answered');
    };

    const facts = service.hook === 'patient-view' ? undefined : orderFacts(hook, orderCodes);
    // An order named only in free text cannot be matched to a category: say so (counts only, no order text).
    if (facts && facts.uncoded > 0) hlog.warn({ hook: service.hook, uncoded: facts.uncoded }, 'cds: imaging-looking order without a coding gets no card (add a coding or map its code in a ConceptMap)');
    if (facts && facts.imaging.length === 0) return answer({ cards: [] }, facts.uncoded > 0 ? 'uncoded-imaging-order' : 'no-imaging-order');

    const fhir = new HookFhirSource({
      patientId,
      ...(hook.prefetch ? { prefetch: hook.prefetch } : {}),
      ...(hook.fhirServer ? { fhirServer: hook.fhirServer } : {}),
      ...(hook.fhirAuthorization ? { fhirAuthorization: hook.fhirAuthorization } : {}),
      fhirServerAllowlist: client.client.fhirServerAllowlist,
      timeoutMs: settings.fhirTimeoutMs,
      maxConcurrent: perHook,
      clientLimit: clientLimit(client.client.id),
      ...(deps.lookup ? { lookup: deps.lookup } : {}),
      // Which client named which server, and why it was not contacted: for the operator (no patient data).
      onRefused: (refusal) => hlog.warn({ ...refusal, fhirServer: fhirServerForLog(hook.fhirServer ?? '') }, 'cds: fhirServer not contacted'),
    });
    const deadlineAt = t0 + settings.deadlineMs - SEND_MARGIN_MS;
    // Existing care is read next to the assessment (sharing the chart reads) and waited for only until the deadline.
    const careAbort = new AbortController();
    const carePending = loadCareStatus(fhir, patientId, { signal: careAbort.signal });
    carePending.catch(() => undefined); // settled by careWithin, or abandoned when no card is made
    try {
      const outcome = await assessWithin(risk, patientId, fhir, deadlineAt, hlog);
      if (outcome.kind === 'none') {
        careAbort.abort();
        return answer({ cards: [] }, 'deadline-no-data');
      }
      const care = await careWithin(carePending, deadlineAt, careAbort);
      // Error name and code only: a FHIR error's message may carry a query with the patient's id.
      const careError = care.outcome === 'failed' ? { careError: (care.error as Error).name, careErrorCode: (care.error as { code?: string }).code } : {};
      const cards = await cardsFor({ service, outcome, settings, store, sourceId: fhir.baseUrl, patientId, userId: hook.context.userId, req: hook, ...(facts ? { facts } : {}), unavailable: fhir.unavailable, care: care.care });
      answer({ cards }, outcome.kind === 'assessment' ? `assessment-${outcome.source}` : outcome.kind, { care: care.outcome, ...careError });
    } catch (err) {
      if (err instanceof PrefetchUnavailableError) {
        hlog.info({ err: err.message }, 'cds: required data unavailable');
        return bad(res, 412, 'incomplete', [err.message]);
      }
      if (err instanceof FhirNotFoundError) return bad(res, 412, 'not-found', [`Patient/${patientId} could not be read from the client's FHIR server`]);
      if (err instanceof FactorError) return answer({ cards: [] }, 'chart-not-assessable');
      if (err instanceof FhirAccessError) {
        hlog.warn({ code: err.code }, 'cds: client FHIR server failed');
        return bad(res, 502, 'transient', ['The FHIR server failed while reading the chart']);
      }
      if (err instanceof ModelNotFoundError) return bad(res, 503, 'transient', [err.message]);
      if (err instanceof StateUnavailableError) {
        // The card log decides whether to speak (one card per order screen, patient-view news): without it, no card.
        hlog.error({ backend: err.backend, err: err.message }, 'cds: card log unavailable');
        return bad(res, 503, 'transient', ['The card log is unavailable']);
      }
      hlog.error({ err }, 'cds: hook failed');
      return bad(res, 500, 'exception', ['Internal error']);
    }
  });

  // Body-parser errors inside this router → 400 OperationOutcome (the app's handler would answer a non-FHIR body).
  r.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const e = err as { status?: number; type?: string };
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      return bad(res, e.status, e.status === 413 ? 'too-costly' : 'invalid', [e.type === 'entity.parse.failed' ? 'The body is not valid JSON' : 'Bad request']);
    }
    next(err);
  });
  return r;
}

/**
 * `GET /api/feedback/summary`: acceptance and override rates by tier and by override reason. An operations endpoint:
 * the app puts the operator credential in front of `/api/feedback` (server/auth/operator.ts).
 */
export function createFeedbackSummaryRouter(store: CardLogStore): Router {
  const r = Router();
  r.get('/summary', async (_req, res, next) => {
    try {
      res.json(await store.summary());
    } catch (err) {
      next(err);
    }
  });
  return r;
}
