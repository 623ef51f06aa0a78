/**
 * `/api/jobs`: `GET /api/jobs/stats` (queue depth, outcomes, dead letters) and `GET /api/jobs/dead-letters?limit=`
 * (newest first, each with the reason). Operations endpoints: the app puts the operator credential in front
 * (server/auth/operator.ts).
 *
 * A dead letter is shown without the report id: `reportHash` is the salted hash the job's log lines carry (the same
 * `hashPatientId`), and the key and reason have the id of every FHIR reference hashed the same way
 * (`DiagnosticReport/#<hash>/_history/2`), so an operator matches a dead letter to its log lines, and with
 * `LOG_HASH_SALT` set, across restarts. Hashing happens here, on the way out, so entries stored before this (and
 * reasons quoting an error text) are covered too.
 */
import { Router, type Response } from 'express';
import { hashPatientId, redactIds } from '../logging.ts';
import type { DeadLetter, JobQueue } from './types.ts';

/** A dead letter as the API shows it: no raw resource ids. */
export interface DeadLetterView {
  /** The job's idempotency key with its ids hashed. */
  readonly key: string;
  /** Salted hash of the report id (the `reportHash` of the job's log lines), or null for a notification that never became a job. */
  readonly reportHash: string | null;
  readonly reason: string;
  readonly attempts: number;
  readonly at: string;
  readonly source: string;
}

export function deadLetterView(d: DeadLetter): DeadLetterView {
  return { key: redactIds(d.key), reportHash: d.reportId ? hashPatientId(d.reportId) : null, reason: redactIds(d.reason), attempts: d.attempts, at: d.at, source: d.source };
}

export function createJobsRouter(queue: () => JobQueue | undefined): Router {
  const router = Router();
  const unavailable = (res: Response): void => void res.status(503).set('Retry-After', '2').json({ error: 'The job queue is starting', status: 503 });
  router.get('/stats', async (_req, res) => {
    const q = queue();
    if (!q) return unavailable(res);
    res.json(await q.stats());
  });
  router.get('/dead-letters', async (req, res) => {
    const q = queue();
    if (!q) return unavailable(res);
    const raw = Number(req.query['limit'] ?? 100);
    const limit = Number.isInteger(raw) && raw >= 1 && raw <= 1000 ? raw : 100;
    res.json({ deadLetters: (await q.deadLetters(limit)).map(deadLetterView) });
  });
  return router;
}
