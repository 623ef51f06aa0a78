/**
 * HTTP API of the FLS worklist and pathway, mounted at `/api/fls`:
 * - `GET /worklist?tier&status&step&owner&overdue&site&from&to&sort&dir` → {@link WorklistResponse};
 * - `GET /worklist.csv` (same filters) → RFC 4180 CSV;
 * - `GET /worklist/{taskId}` → {@link WorklistItemResponse} (the coordinator's patient view);
 * - `POST /worklist/{taskId}/accept` `{note?}` → {@link AcceptResponse} (FLS referral ServiceRequest created);
 * - `POST /worklist/{taskId}/step` `{step, date?, note?, treatment?}` → {@link WorklistItemResponse};
 * - `POST /worklist/{taskId}/owner` `{owner}` and `POST /worklist/{taskId}/notes` `{text}` → the same;
 * - `POST /worklist/{taskId}/dismiss` `{reason, note?}` → {@link DismissResponse};
 * - `POST /worklist/bulk` `{taskIds, action, …}` → {@link BulkResponse} (per-item results);
 * - `GET /kpis?from&to&site` → {@link KpiResponse}, `GET /kpis.csv`;
 * - `GET /owners` → {@link OwnersResponse}.
 *
 * Single-item actions honour `If-Match: W/"<pathway.version>"`: a stale version answers 409 `STALE_VERSION`.
 * Protected by SMART access tokens with user-level scopes (standalone launch by an FLS coordinator): reading needs
 * {@link FLS_READ_SCOPES}, acting {@link FLS_WRITE_SCOPES} (and `user/ServiceRequest.c` to accept). The guards are
 * parameters ({@link FlsGuards}); {@link smartGuards} builds them from server/auth's `requireSmartAccess`.
 * Every request that reaches a handler is audited (server/fls/audit.ts), refused ones included; a bulk action per
 * item. Answers carry `Cache-Control: no-store` (they hold PHI). Errors: `{ error, code, status }` as in
 * `/api/assessments`.
 */
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { requireSmartAccess, smartAccessOf } from '../auth/require.ts';
import { holdsScope } from '../auth/scopes.ts';
import type { AccessTokenVerifier } from '../auth/types.ts';
import { FhirAccessError, FhirTimeoutError } from '../fhir/client.ts';
import type { Logger } from '../logging.ts';
import type { AuditActor, AuditLog, AuditRecord } from './audit.ts';
import { worklistCsv } from './csv.ts';
import { isDismissalReason } from './fhir-model.ts';
import { computeKpis, kpisCsv } from './kpis.ts';
import { isPathwayStep, isTreatmentOutcome } from './pathway.ts';
import type {
  AcceptResponse, BulkItemResult, BulkResponse, DismissResponse, FlsErrorBody, KpiQuery, OwnersResponse, PathwayOwner, StepRequest, WorklistItem,
  WorklistItemResponse, WorklistResponse,
} from './types.ts';
import { RESEARCH_NOTICE } from './types.ts';
import { parseIfMatch, parseQuery, WorklistError, type Actor, type Worklist } from './worklist.ts';

/** A user-level token that may search and read Tasks (the worklist is a Task search). */
export const FLS_READ_SCOPES: readonly string[] = ['user/Task.rs'];
/** A user-level token that may update Tasks (accept, dismiss). */
export const FLS_WRITE_SCOPES: readonly string[] = ['user/Task.u'];
/** Accepting also creates the referral. */
export const FLS_ACCEPT_EXTRA_SCOPE = 'user/ServiceRequest.c';

export interface FlsGuards {
  read: RequestHandler;
  write: RequestHandler;
}

/** The guards from a token verifier (server/auth): 401 without a valid token, 403 without the user-level scopes. */
export function smartGuards(verifier: AccessTokenVerifier): FlsGuards {
  return {
    read: requireSmartAccess(verifier, { anyScope: FLS_READ_SCOPES }),
    write: requireSmartAccess(verifier, { anyScope: FLS_WRITE_SCOPES }),
  };
}

export interface FlsRouterOptions {
  worklist: Worklist;
  audit: AuditLog;
  guards: FlsGuards;
  logger: Logger;
}

const TASK_ID = /^[A-Za-z0-9\-.]{1,64}$/;

function actorOf(res: Response): AuditActor {
  const a = smartAccessOf(res);
  if (!a) return { subject: 'unauthenticated' };
  return { subject: a.subject, ...(a.fhirUser ? { fhirUser: a.fhirUser } : {}), ...(a.clientId ? { clientId: a.clientId } : {}) };
}

/** At most this many items per bulk request. */
export const MAX_BULK = 200;
const NOTE_MAX = 2000;

function send(res: Response, status: number, code: FlsErrorBody['code'], error: string): void {
  const body: FlsErrorBody = { error, code, status };
  res.status(status).json(body);
}

const statusOf = (err: WorklistError): number => (err.code === 'NOT_FOUND' ? 404 : err.code === 'CONFLICT' || err.code === 'STALE_VERSION' ? 409 : 400);

/** An error as one bulk result (the status and code the single-item route would answer). */
function bulkFailure(taskId: string, err: unknown, logger: Logger): BulkItemResult {
  if (err instanceof WorklistError) return { taskId, ok: false, status: statusOf(err), code: err.code, error: err.message };
  if (err instanceof FhirTimeoutError) return { taskId, ok: false, status: 504, code: 'FHIR_TIMEOUT', error: 'The FHIR server did not answer in time' };
  if (err instanceof FhirAccessError) return { taskId, ok: false, status: 502, code: 'FHIR_UNAVAILABLE', error: 'The FHIR server failed' };
  logger.error({ err }, 'FLS bulk item failed');
  return { taskId, ok: false, status: 500, code: 'INTERNAL', error: 'Internal error' };
}

function optionalNote(v: unknown, key = 'note'): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > NOTE_MAX) throw new WorklistError('BAD_REQUEST', `"${key}" must be a string of at most ${NOTE_MAX} characters`);
  return v.trim() || undefined;
}

function optionalDate(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new WorklistError('BAD_REQUEST', '"date" must be a date YYYY-MM-DD');
  return v;
}

/** `{reference, display?}` or null; throws BAD_REQUEST otherwise. */
function parseOwner(v: unknown): { reference: string; display?: string } | null {
  if (v === null) return null;
  const o = v as Partial<PathwayOwner> | undefined;
  if (!o || typeof o !== 'object' || typeof o.reference !== 'string') throw new WorklistError('BAD_REQUEST', '"owner" must be {reference, display?} or null');
  if (o.display !== undefined && (typeof o.display !== 'string' || o.display.length > 200)) throw new WorklistError('BAD_REQUEST', '"owner.display" must be a string of at most 200 characters');
  return { reference: o.reference, ...(o.display ? { display: o.display } : {}) };
}

function parseStep(b: Record<string, unknown>): StepRequest {
  if (!isPathwayStep(b['step'])) throw new WorklistError('BAD_REQUEST', '"step" must be a pathway step code (see PATHWAY_STEPS)');
  if (b['treatment'] !== undefined && !isTreatmentOutcome(b['treatment'])) throw new WorklistError('BAD_REQUEST', '"treatment" must be a treatment outcome code (see TREATMENT_OUTCOMES)');
  const date = optionalDate(b['date']);
  const note = optionalNote(b['note']);
  return { step: b['step'], ...(date ? { date } : {}), ...(note ? { note } : {}), ...(isTreatmentOutcome(b['treatment']) ? { treatment: b['treatment'] } : {}) };
}

/** Maps an error to an HTTP answer; returns the audit outcome. */
function fail(res: Response, err: unknown, logger: Logger): { outcome: '4' | '8'; desc: string } {
  if (err instanceof WorklistError) {
    const status = statusOf(err);
    send(res, status, err.code, err.message);
    return { outcome: '4', desc: err.message };
  }
  if (err instanceof FhirTimeoutError) {
    send(res, 504, 'FHIR_TIMEOUT', 'The FHIR server did not answer in time');
    return { outcome: '8', desc: err.message };
  }
  if (err instanceof FhirAccessError) {
    send(res, 502, 'FHIR_UNAVAILABLE', 'The FHIR server failed');
    return { outcome: '8', desc: err.message };
  }
  logger.error({ err }, 'FLS worklist request failed');
  send(res, 500, 'INTERNAL', 'Internal error');
  return { outcome: '8', desc: 'internal error' };
}

export function createFlsRouter(opts: FlsRouterOptions): Router {
  const { worklist, audit, guards } = opts;
  const logger = opts.logger.child({ component: 'fls' });
  const r = Router();
  r.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  const record = async (req: Request, res: Response, rec: Omit<AuditRecord, 'actor' | 'address'>): Promise<void> => {
    await audit.record({ ...rec, actor: actorOf(res), ...(req.socket.remoteAddress ? { address: req.socket.remoteAddress } : {}) });
  };
  const queryString = (req: Request): string => req.originalUrl.split('?')[1] ?? '';
  const actor = (res: Response): Actor => {
    const a = smartAccessOf(res);
    return { ...(a?.fhirUser ? { fhirUser: a.fhirUser } : {}), ...(a?.subject ? { subject: a.subject } : {}) };
  };
  const taskIdOf = (req: Request): string => {
    const id = String(req.params['taskId']);
    if (!TASK_ID.test(id)) throw new WorklistError('BAD_REQUEST', 'not a Task id');
    return id;
  };
  const ifMatchOf = (req: Request): string | undefined => parseIfMatch(req.get('If-Match'));
  const itemBody = (item: WorklistItem): WorklistItemResponse => ({ item, notice: RESEARCH_NOTICE });

  const list = (csv: boolean): RequestHandler => async (req, res) => {
    const action = csv ? 'worklist-export' : 'worklist-view';
    try {
      const q = parseQuery(req.query as Record<string, unknown>);
      const items = await worklist.list(q, undefined, smartAccessOf(res)?.fhirUser);
      await record(req, res, { action, outcome: '0', query: queryString(req), patientIds: [...new Set(items.map((i) => i.patientId))] });
      if (csv) {
        const day = worklist.now().toISOString().slice(0, 10);
        res.set('Content-Type', 'text/csv; charset=utf-8; header=present').set('Content-Disposition', `attachment; filename="fls-worklist-${day}.csv"`).send(worklistCsv(items));
        return;
      }
      const body: WorklistResponse = { items, total: items.length, asOf: worklist.now().toISOString(), notice: RESEARCH_NOTICE };
      res.json(body);
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action, outcome: f.outcome, outcomeDesc: f.desc, query: queryString(req) });
    }
  };
  r.get('/worklist', guards.read, list(false));
  r.get('/worklist.csv', guards.read, list(true));

  const kpis = (csv: boolean): RequestHandler => async (req, res) => {
    const action = csv ? 'kpi-export' : 'kpi-view';
    try {
      const parsed = parseQuery(req.query as Record<string, unknown>);
      for (const k of Object.keys(req.query)) if (!['from', 'to', 'site'].includes(k)) throw new WorklistError('BAD_REQUEST', `"${k}" is not a KPI filter (from, to, site)`);
      const q: KpiQuery = { ...(parsed.from ? { from: parsed.from } : {}), ...(parsed.to ? { to: parsed.to } : {}), ...(parsed.site ? { site: parsed.site } : {}) };
      const items = await worklist.list(q.from ? { from: q.from } : {});
      const body = computeKpis(items, q, worklist.now(), worklist.due);
      await record(req, res, { action, outcome: '0', query: queryString(req) });
      if (csv) {
        const day = worklist.now().toISOString().slice(0, 10);
        res.set('Content-Type', 'text/csv; charset=utf-8; header=present').set('Content-Disposition', `attachment; filename="fls-kpis-${day}.csv"`).send(kpisCsv(body));
        return;
      }
      res.json(body);
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action, outcome: f.outcome, outcomeDesc: f.desc, query: queryString(req) });
    }
  };
  r.get('/kpis', guards.read, kpis(false));
  r.get('/kpis.csv', guards.read, kpis(true));

  r.get('/owners', guards.read, async (req, res) => {
    try {
      const body: OwnersResponse = { owners: await worklist.owners() };
      await record(req, res, { action: 'owners-view', outcome: '0' });
      res.json(body);
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'owners-view', outcome: f.outcome, outcomeDesc: f.desc });
    }
  });

  r.get('/worklist/:taskId', guards.read, async (req, res) => {
    const taskId = String(req.params['taskId']);
    try {
      const item = await worklist.get(taskIdOf(req));
      await record(req, res, { action: 'item-view', outcome: '0', taskId, patientIds: [item.patientId] });
      res.set('ETag', `W/"${item.pathway.version}"`).json(itemBody(item));
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'item-view', outcome: f.outcome, outcomeDesc: f.desc, taskId });
    }
  });

  const body = express.json({ limit: '16kb' });
  const bodyOf = (req: Request): Record<string, unknown> => (req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? req.body as Record<string, unknown> : {});
  const hasAcceptScope = (res: Response): boolean => {
    const access = smartAccessOf(res);
    return !access || holdsScope(access.scopes, FLS_ACCEPT_EXTRA_SCOPE);
  };
  const ACCEPT_SCOPE_ERROR = `Accepting creates a referral: the access token needs ${FLS_ACCEPT_EXTRA_SCOPE}`;

  r.post('/worklist/:taskId/accept', guards.write, body, async (req, res) => {
    const taskId = String(req.params['taskId']);
    if (!hasAcceptScope(res)) {
      send(res, 403, 'FORBIDDEN', ACCEPT_SCOPE_ERROR);
      await record(req, res, { action: 'accept', outcome: '4', outcomeDesc: 'insufficient scope', taskId });
      return;
    }
    try {
      const note = optionalNote(bodyOf(req)['note']);
      const out = await worklist.accept(taskIdOf(req), { ...actor(res), ...(note ? { note } : {}) }, undefined, ifMatchOf(req));
      await record(req, res, { action: 'accept', outcome: '0', ...(out.changed ? (out.existingReferral ? { outcomeDesc: 'linked the open FLS referral' } : {}) : { outcomeDesc: 'already accepted' }), taskId, patientIds: [out.item.patientId], serviceRequestId: out.serviceRequestId });
      const resBody: AcceptResponse = { item: out.item, serviceRequestId: out.serviceRequestId, ...(out.existingReferral ? { existingReferral: true } : {}) };
      res.status(out.changed ? 201 : 200).json(resBody);
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'accept', outcome: f.outcome, outcomeDesc: f.desc, taskId });
    }
  });

  r.post('/worklist/:taskId/step', guards.write, body, async (req, res) => {
    const taskId = String(req.params['taskId']);
    const b = bodyOf(req);
    const step = isPathwayStep(b['step']) ? b['step'] : undefined;
    if (step === 'accepted' && !hasAcceptScope(res)) {
      send(res, 403, 'FORBIDDEN', ACCEPT_SCOPE_ERROR);
      await record(req, res, { action: 'step', outcome: '4', outcomeDesc: 'insufficient scope', taskId, detail: step });
      return;
    }
    try {
      const input = parseStep(b);
      const out = await worklist.step(taskIdOf(req), input, actor(res), undefined, ifMatchOf(req));
      await record(req, res, { action: 'step', outcome: '0', ...(out.changed ? {} : { outcomeDesc: 'unchanged' }), taskId, patientIds: [out.item.patientId], detail: input.step });
      res.json(itemBody(out.item));
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'step', outcome: f.outcome, outcomeDesc: f.desc, taskId, ...(step ? { detail: step } : {}) });
    }
  });

  r.post('/worklist/:taskId/owner', guards.write, body, async (req, res) => {
    const taskId = String(req.params['taskId']);
    try {
      const owner = parseOwner(bodyOf(req)['owner']);
      const out = await worklist.assign(taskIdOf(req), owner, actor(res), undefined, ifMatchOf(req));
      await record(req, res, { action: 'assign', outcome: '0', ...(out.changed ? {} : { outcomeDesc: 'unchanged' }), taskId, patientIds: [out.item.patientId], detail: owner?.reference ?? 'unassigned' });
      res.json(itemBody(out.item));
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'assign', outcome: f.outcome, outcomeDesc: f.desc, taskId });
    }
  });

  r.post('/worklist/:taskId/notes', guards.write, body, async (req, res) => {
    const taskId = String(req.params['taskId']);
    try {
      const text = optionalNote(bodyOf(req)['text'], 'text');
      if (!text) throw new WorklistError('BAD_REQUEST', '"text" must be a non-empty string');
      const out = await worklist.addNote(taskIdOf(req), text, actor(res), undefined, ifMatchOf(req));
      await record(req, res, { action: 'note', outcome: '0', taskId, patientIds: [out.item.patientId] });
      res.status(201).json(itemBody(out.item));
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'note', outcome: f.outcome, outcomeDesc: f.desc, taskId });
    }
  });

  r.post('/worklist/:taskId/dismiss', guards.write, body, async (req, res) => {
    const taskId = String(req.params['taskId']);
    const b = bodyOf(req);
    try {
      if (!isDismissalReason(b['reason'])) throw new WorklistError('BAD_REQUEST', '"reason" must be a dismissal reason code of the fls-triage CodeSystem (see DISMISSAL_REASONS)');
      const note = optionalNote(b['note']);
      const out = await worklist.dismiss(taskIdOf(req), b['reason'], { ...actor(res), ...(note ? { note } : {}) }, undefined, ifMatchOf(req));
      await record(req, res, { action: 'dismiss', outcome: '0', ...(out.changed ? {} : { outcomeDesc: 'already dismissed' }), taskId, patientIds: [out.item.patientId], reason: b['reason'] });
      const resBody: DismissResponse = { item: out.item };
      res.json(resBody);
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'dismiss', outcome: f.outcome, outcomeDesc: f.desc, taskId, ...(isDismissalReason(b['reason']) ? { reason: b['reason'] } : {}) });
    }
  });

  r.post('/worklist/bulk', guards.write, body, async (req, res) => {
    const b = bodyOf(req);
    const action = b['action'];
    try {
      const ids = b['taskIds'];
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_BULK || !ids.every((x): x is string => typeof x === 'string' && TASK_ID.test(x))) {
        throw new WorklistError('BAD_REQUEST', `"taskIds" must be 1 to ${MAX_BULK} Task ids`);
      }
      if (action !== 'assign' && action !== 'step' && action !== 'dismiss') throw new WorklistError('BAD_REQUEST', '"action" must be assign, step or dismiss');
      const note = optionalNote(b['note']);
      // Validate the whole request before touching any item: a bad parameter fails all, with nothing changed.
      const owner = action === 'assign' ? parseOwner(b['owner']) : undefined;
      const step = action === 'step' ? parseStep(b) : undefined;
      if (action === 'step' && step?.step === 'accepted' && !hasAcceptScope(res)) {
        send(res, 403, 'FORBIDDEN', ACCEPT_SCOPE_ERROR);
        await record(req, res, { action: 'step', outcome: '4', outcomeDesc: 'insufficient scope (bulk)', detail: 'accepted' });
        return;
      }
      if (action === 'dismiss' && !isDismissalReason(b['reason'])) throw new WorklistError('BAD_REQUEST', 'bulk dismiss needs an explicit "reason" (a dismissal reason code; none is assumed)');
      const reason = isDismissalReason(b['reason']) ? b['reason'] : undefined;
      const who = actor(res);
      const results: BulkItemResult[] = [];
      for (const taskId of [...new Set(ids)]) {
        const auditAction = action === 'assign' ? 'assign' : action;
        try {
          const out = action === 'assign' ? await worklist.assign(taskId, owner ?? null, who)
            : action === 'step' ? await worklist.step(taskId, step!, who)
              : await worklist.dismiss(taskId, reason!, { ...who, ...(note ? { note } : {}) });
          results.push({ taskId, ok: true, status: 200, item: out.item });
          await record(req, res, { action: auditAction, outcome: '0', outcomeDesc: out.changed ? 'bulk' : 'bulk, unchanged', taskId, patientIds: [out.item.patientId], ...(reason ? { reason } : {}), ...(step ? { detail: step.step } : owner !== undefined ? { detail: owner?.reference ?? 'unassigned' } : {}) });
        } catch (err) {
          const result = bulkFailure(taskId, err, logger);
          results.push(result);
          await record(req, res, { action: auditAction, outcome: result.status >= 500 ? '8' : '4', outcomeDesc: `bulk: ${result.error ?? ''}`, taskId });
        }
      }
      const resBody: BulkResponse = { results, succeeded: results.filter((x) => x.ok).length, failed: results.filter((x) => !x.ok).length };
      res.json(resBody);
    } catch (err) {
      const a = action === 'assign' || action === 'step' || action === 'dismiss' ? action : 'step';
      const f = fail(res, err, logger);
      await record(req, res, { action: a, outcome: f.outcome, outcomeDesc: `bulk: ${f.desc}` });
    }
  });

  return r;
}
