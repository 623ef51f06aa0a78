/**
 * HTTP API of the FLS worklist (issue 8, item 3), mounted at `/api/fls`:
 * - `GET /worklist?tier=&status=&from=&to=&site=` → {@link WorklistResponse} (highest 10-year hip risk first);
 * - `GET /worklist.csv` (same filters) → RFC 4180 CSV;
 * - `POST /worklist/{taskId}/accept` `{note?}` → {@link AcceptResponse} (FLS referral ServiceRequest created);
 * - `POST /worklist/{taskId}/dismiss` `{reason, note?}` → {@link DismissResponse}.
 *
 * Protected by SMART access tokens with user-level scopes (standalone launch by an FLS coordinator): reading needs
 * {@link FLS_READ_SCOPES}, acting {@link FLS_WRITE_SCOPES} (and `user/ServiceRequest.c` to accept). The guards are
 * parameters ({@link FlsGuards}); {@link smartGuards} builds them from server/auth's `requireSmartAccess`.
 * Every request that reaches a handler is audited (server/fls/audit.ts), refused ones included. Answers carry
 * `Cache-Control: no-store` (they hold PHI). Errors: `{ error, code, status }` as in `/api/assessments`.
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
import type { AcceptResponse, DismissResponse, FlsErrorBody, WorklistResponse } from './types.ts';
import { RESEARCH_NOTICE } from './types.ts';
import { parseQuery, WorklistError, type Worklist } from './worklist.ts';

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

function send(res: Response, status: number, code: FlsErrorBody['code'], error: string): void {
  const body: FlsErrorBody = { error, code, status };
  res.status(status).json(body);
}

/** Maps an error to an HTTP answer; returns the audit outcome. */
function fail(res: Response, err: unknown, logger: Logger): { outcome: '4' | '8'; desc: string } {
  if (err instanceof WorklistError) {
    const status = err.code === 'NOT_FOUND' ? 404 : err.code === 'CONFLICT' ? 409 : 400;
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

  const list = (csv: boolean): RequestHandler => async (req, res) => {
    const action = csv ? 'worklist-export' : 'worklist-view';
    try {
      const q = parseQuery(req.query as Record<string, unknown>);
      const items = await worklist.list(q);
      await record(req, res, { action, outcome: '0', query: queryString(req), patientIds: [...new Set(items.map((i) => i.patientId))] });
      if (csv) {
        const day = new Date().toISOString().slice(0, 10);
        res.set('Content-Type', 'text/csv; charset=utf-8; header=present').set('Content-Disposition', `attachment; filename="fls-worklist-${day}.csv"`).send(worklistCsv(items));
        return;
      }
      const body: WorklistResponse = { items, total: items.length, notice: RESEARCH_NOTICE };
      res.json(body);
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action, outcome: f.outcome, outcomeDesc: f.desc, query: queryString(req) });
    }
  };
  r.get('/worklist', guards.read, list(false));
  r.get('/worklist.csv', guards.read, list(true));

  const body = express.json({ limit: '16kb' });

  r.post('/worklist/:taskId/accept', guards.write, body, async (req, res) => {
    const taskId = String(req.params['taskId']);
    const access = smartAccessOf(res);
    if (access && !holdsScope(access.scopes, FLS_ACCEPT_EXTRA_SCOPE)) {
      send(res, 403, 'FORBIDDEN', `Accepting creates a referral: the access token needs ${FLS_ACCEPT_EXTRA_SCOPE}`);
      await record(req, res, { action: 'accept', outcome: '4', outcomeDesc: 'insufficient scope', taskId });
      return;
    }
    try {
      if (!TASK_ID.test(taskId)) throw new WorklistError('BAD_REQUEST', 'not a Task id');
      const b = (req.body ?? {}) as { note?: unknown };
      if (b.note !== undefined && (typeof b.note !== 'string' || b.note.length > 2000)) throw new WorklistError('BAD_REQUEST', '"note" must be a string of at most 2000 characters');
      const out = await worklist.accept(taskId, { ...(access?.fhirUser ? { fhirUser: access.fhirUser } : {}), ...(typeof b.note === 'string' && b.note.trim() ? { note: b.note.trim() } : {}) });
      await record(req, res, { action: 'accept', outcome: '0', ...(out.changed ? {} : { outcomeDesc: 'already accepted' }), taskId, patientIds: [out.item.patientId], serviceRequestId: out.serviceRequestId });
      const resBody: AcceptResponse = { item: out.item, serviceRequestId: out.serviceRequestId };
      res.status(out.changed ? 201 : 200).json(resBody);
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'accept', outcome: f.outcome, outcomeDesc: f.desc, taskId });
    }
  });

  r.post('/worklist/:taskId/dismiss', guards.write, body, async (req, res) => {
    const taskId = String(req.params['taskId']);
    const access = smartAccessOf(res);
    const b = (req.body ?? {}) as { reason?: unknown; note?: unknown };
    try {
      if (!TASK_ID.test(taskId)) throw new WorklistError('BAD_REQUEST', 'not a Task id');
      if (!isDismissalReason(b.reason)) throw new WorklistError('BAD_REQUEST', '"reason" must be a dismissal reason code of the fls-triage CodeSystem (see DISMISSAL_REASONS)');
      if (b.note !== undefined && (typeof b.note !== 'string' || b.note.length > 2000)) throw new WorklistError('BAD_REQUEST', '"note" must be a string of at most 2000 characters');
      const out = await worklist.dismiss(taskId, b.reason, { ...(access?.fhirUser ? { fhirUser: access.fhirUser } : {}), ...(typeof b.note === 'string' && b.note.trim() ? { note: b.note.trim() } : {}) });
      await record(req, res, { action: 'dismiss', outcome: '0', ...(out.changed ? {} : { outcomeDesc: 'already dismissed' }), taskId, patientIds: [out.item.patientId], reason: b.reason });
      const resBody: DismissResponse = { item: out.item };
      res.json(resBody);
    } catch (err) {
      const f = fail(res, err, logger);
      await record(req, res, { action: 'dismiss', outcome: f.outcome, outcomeDesc: f.desc, taskId, ...(isDismissalReason(b.reason) ? { reason: b.reason } : {}) });
    }
  });

  return r;
}
