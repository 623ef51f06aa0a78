/**
 * `/api/jobs`: `GET /api/jobs/stats` (queue depth, outcomes, dead letters) and `GET /api/jobs/dead-letters?limit=`
 * (newest first, each with the reason). Operational data: report ids and reasons, no patient data.
 */
import { Router } from 'express';
import type { JobQueue } from './types.ts';

export function createJobsRouter(queue: () => JobQueue | undefined): Router {
  const router = Router();
  const unavailable = (res: import('express').Response): void => void res.status(503).set('Retry-After', '2').json({ error: 'The job queue is starting', status: 503 });
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
    res.json({ deadLetters: await q.deadLetters(limit) });
  });
  return router;
}
