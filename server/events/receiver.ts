/**
 * The notification receiver at `/api/events` (issue 8, item 1):
 * - `POST /api/events/notifications` — Subscriptions Backport (R4, IG 1.1.0) rest-hook notifications:
 *   `handshake` and `heartbeat` are acknowledged; each `event-notification` event becomes a durable job
 *   (`id-only`: the job reads the report; `full-resource`: the report as notified). An empty body is a plain R4
 *   no-payload ping and is acknowledged.
 * - `PUT /api/events/notifications/DiagnosticReport/{id}` — plain R4 criteria Subscriptions with a payload (the
 *   server PUTs the resource to `{endpoint}/{type}/{id}`).
 * - `GET /api/events/topic` — the topic document; `GET /api/events/subscriptions` — handshakes and heartbeats seen
 *   (an operations endpoint: the app puts the operator credential in front of it, server/auth/operator.ts).
 *
 * Answers: 401 wrong or missing credentials (no detail), 400 malformed Bundle or resource (OperationOutcome saying
 * what), 422 unknown topic (also dead-lettered with the reason), 503 when the queue cannot take the event or a
 * notification JWT cannot be checked for replay because the shared replay cache is down (the sender retries), 200 otherwise with what happened to each event. Nothing in a notification can crash the process:
 * every failure ends as one of these answers.
 * @see https://hl7.org/fhir/uv/subscriptions-backport/STU1.1/channels.html#rest-hook
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { DiagnosticReport, OperationOutcome } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../config.ts';
import { hashPatientId, type Logger } from '../logging.ts';
import type { JobMetrics } from '../jobs/metrics.ts';
import type { EventSource, JobQueue, ReportEvent } from '../jobs/types.ts';
import type { NotificationAuthenticator } from './auth.ts';
import { describeAjv, MalformedNotificationError, parseNotification, referenceParts, validateDiagnosticReport, type NotificationEvent } from './notification.ts';
import { TOPIC_URL } from './topic.ts';
import { FHIR_JSON_BODY_TYPES } from '../fhir/media-type.ts';

export interface ReceiverDeps {
  readonly queue: () => JobQueue | undefined;
  readonly auth: NotificationAuthenticator;
  readonly logger: Logger;
  readonly metrics?: JobMetrics;
  /** Largest accepted notification body (bytes). */
  readonly maxBodyBytes?: number;
}

export interface SubscriptionSeen {
  subscription: string;
  lastType: string;
  lastAt: string;
  status: string | undefined;
  eventsSinceStart: string | undefined;
}

const FHIR_TYPES = [...FHIR_JSON_BODY_TYPES];

function outcome(res: Response, status: number, code: string, text: string): void {
  const body: OperationOutcome = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: code as 'invalid', details: { text } }] };
  res.status(status).type('application/fhir+json').send(JSON.stringify(body));
}

let topicDocument: unknown;
function topicDoc(): unknown {
  topicDocument ??= JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/subscriptiontopics/imaging-report-final.json'), 'utf8'));
  return topicDocument;
}

export function createEventsRouter(deps: ReceiverDeps): Router {
  const log = deps.logger.child({ component: 'events' });
  const seen = new Map<string, SubscriptionSeen>();
  const router = Router();
  const count = (kind: string, result: string, n = 1): void => deps.metrics?.eventsReceived.inc({ kind, result }, n);

  const authenticate = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const r = await deps.auth.check(req);
    if (r.ok) return next();
    if (r.reason === 'unavailable') {
      // Not the sender's fault: 503 so that it sends the notification again later.
      log.error({ err: r.detail }, 'notification refused: the jti replay cache is not reachable');
      res.set('Retry-After', '5');
      return outcome(res, 503, 'transient', 'The notification could not be checked; retry');
    }
    count('any', 'rejected');
    if (r.reason === 'not-configured') log.warn(`notification rejected: ${deps.auth.needs} not configured`);
    else log.warn({ reason: r.reason, ...(r.detail ? { detail: r.detail } : {}) }, 'notification rejected: bad credentials');
    res.status(401).set('WWW-Authenticate', 'Bearer').end();
  };
  const body = express.json({ limit: deps.maxBodyBytes ?? 5 * 1024 * 1024, type: FHIR_TYPES });

  router.get('/topic', (_req, res) => void res.type('application/fhir+json').send(JSON.stringify(topicDoc())));
  router.get('/subscriptions', (_req, res) => void res.json({ subscriptions: [...seen.values()] }));

  const enqueueAll = async (events: ReportEvent[]): Promise<{ accepted: number; duplicates: number }> => {
    const queue = deps.queue();
    if (!queue) throw new Error('queue not ready');
    let accepted = 0;
    let duplicates = 0;
    for (const e of events) {
      const r = await queue.enqueue(e);
      if (r.accepted) accepted++;
      else duplicates++;
    }
    return { accepted, duplicates };
  };

  router.post('/notifications', authenticate, body, async (req, res) => {
    const queue = deps.queue();
    if (!queue) {
      res.set('Retry-After', '2');
      outcome(res, 503, 'transient', 'The job queue is starting; retry');
      return;
    }
    // Plain R4 rest-hook without payload: an empty POST that says only "something matched".
    if (req.body === undefined || (typeof req.body === 'object' && req.body !== null && Object.keys(req.body as object).length === 0)) {
      count('r4-ping', 'accepted');
      res.status(200).json({ received: 'ping' });
      return;
    }
    let n;
    try {
      n = parseNotification(req.body);
    } catch (err) {
      if (!(err instanceof MalformedNotificationError)) throw err;
      count('unknown', 'rejected');
      log.warn({ problem: err.message }, 'malformed notification');
      outcome(res, 400, 'structure', err.message);
      return;
    }
    if (n.topic !== TOPIC_URL) {
      count(n.type, 'dead-lettered');
      const reason = n.topic ? `unknown topic ${n.topic} (this endpoint serves ${TOPIC_URL})` : `the notification names no topic (this endpoint serves ${TOPIC_URL})`;
      await queue.deadLetter({ key: `notification:${n.subscription ?? 'unknown-subscription'}:${n.events[0]?.eventNumber ?? n.type}`, reportId: null, reason, attempts: 0, source: 'receiver' });
      log.warn({ type: n.type }, 'notification for an unknown topic dead-lettered');
      outcome(res, 422, 'not-supported', reason);
      return;
    }
    const subscription = n.subscription ?? 'unknown';
    seen.set(subscription, { subscription, lastType: n.type, lastAt: new Date().toISOString(), status: n.status, eventsSinceStart: n.eventsSinceStart });
    if (n.type !== 'event-notification') {
      count(n.type, 'accepted');
      log.info({ type: n.type }, 'subscription notification acknowledged');
      res.status(200).json({ received: n.type });
      return;
    }
    const events: ReportEvent[] = [];
    const rejected: { eventNumber?: string; reason: string }[] = [];
    for (const ev of n.events) {
      const r = toReportEvent(ev, subscription);
      if ('reason' in r) rejected.push({ ...(ev.eventNumber ? { eventNumber: ev.eventNumber } : {}), reason: r.reason });
      else events.push(r.event);
    }
    for (const r of rejected) {
      await queue.deadLetter({ key: `notification:${subscription}:${r.eventNumber ?? '?'}`, reportId: null, reason: r.reason, attempts: 0, source: 'receiver' });
    }
    if (events.length === 0 && rejected.length > 0) {
      count('event-notification', 'dead-lettered', rejected.length);
      outcome(res, 422, 'invalid', rejected.map((r) => r.reason).join('; '));
      return;
    }
    const { accepted, duplicates } = await enqueueAll(events);
    count('event-notification', 'accepted', accepted);
    count('event-notification', 'duplicate', duplicates);
    count('event-notification', 'dead-lettered', rejected.length);
    log.info({ events: n.events.length, accepted, duplicates, deadLettered: rejected.length }, 'event notification received');
    res.status(200).json({ received: 'event-notification', accepted, duplicates, deadLettered: rejected.length, ...(rejected.length ? { problems: rejected } : {}) });
  });

  router.put('/notifications/:type/:id', authenticate, body, async (req, res) => {
    const queue = deps.queue();
    if (!queue) {
      res.set('Retry-After', '2');
      outcome(res, 503, 'transient', 'The job queue is starting; retry');
      return;
    }
    if (req.params['type'] !== 'DiagnosticReport') {
      count('r4-rest-hook', 'rejected');
      outcome(res, 422, 'not-supported', `this endpoint takes DiagnosticReport notifications, not ${String(req.params['type']).slice(0, 40)}`);
      return;
    }
    if (!validateDiagnosticReport(req.body)) {
      count('r4-rest-hook', 'rejected');
      outcome(res, 400, 'structure', describeAjv(validateDiagnosticReport.errors, 'DiagnosticReport'));
      return;
    }
    const report = req.body as DiagnosticReport & { id: string };
    if (report.id !== req.params['id']) {
      count('r4-rest-hook', 'rejected');
      outcome(res, 400, 'invalid', 'the DiagnosticReport id does not match the URL');
      return;
    }
    const { accepted } = await enqueueAll([{ reportId: report.id, ...(report.meta?.versionId ? { versionId: report.meta.versionId } : {}), resource: report, source: 'r4-rest-hook', receivedAt: new Date().toISOString() }]);
    count('r4-rest-hook', accepted ? 'accepted' : 'duplicate');
    log.info({ reportHash: hashPatientId(report.id), accepted }, 'R4 rest-hook notification received');
    res.status(200).json({ received: 'r4-rest-hook', accepted: accepted ? 1 : 0, duplicates: accepted ? 0 : 1 });
  });

  // Body-parser errors and anything unexpected: a clear answer, never a crash.
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'entity.parse.failed') return outcome(res, 400, 'structure', 'The body is not valid JSON');
    if (e.type === 'entity.too.large') return outcome(res, 413, 'too-costly', 'The notification is too large');
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return outcome(res, e.status, 'invalid', 'Bad request');
    log.error({ error: e.message }, 'notification could not be queued');
    res.set('Retry-After', '5');
    outcome(res, 503, 'transient', 'The notification could not be queued; retry');
  });
  return router;
}

/** One Backport notification event → a job event, or the reason it cannot be one. */
export function toReportEvent(ev: NotificationEvent, subscription: string): { event: ReportEvent } | { reason: string } {
  const base = { receivedAt: new Date().toISOString(), subscription, ...(ev.eventNumber ? { eventNumber: ev.eventNumber } : {}) };
  if (ev.resource) {
    if (!validateDiagnosticReport(ev.resource)) {
      return { reason: ev.resource.resourceType !== 'DiagnosticReport' ? `the event's focus is a ${String(ev.resource.resourceType).slice(0, 40)}, not a DiagnosticReport` : describeAjv(validateDiagnosticReport.errors, 'focus DiagnosticReport') };
    }
    const r = ev.resource as DiagnosticReport;
    const source: EventSource = 'backport-full-resource';
    return { event: { ...base, reportId: r.id!, ...(r.meta?.versionId ? { versionId: r.meta.versionId } : {}), resource: r, source } };
  }
  const ref = referenceParts(ev.focus);
  if (!ref) return { reason: 'the event has no focus reference' };
  if (ref.type !== 'DiagnosticReport') return { reason: `the event's focus is a ${ref.type}, not a DiagnosticReport` };
  return { event: { ...base, reportId: ref.id, ...(ref.versionId ? { versionId: ref.versionId } : {}), source: 'backport-id-only' } };
}
