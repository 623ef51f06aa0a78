/**
 * Prometheus metrics of report events and jobs (prom-client), registered on the service's registry (`/metrics`) or,
 * in a worker process, on the worker's own. Labels are low-cardinality classes, never ids.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JobQueue } from './types.ts';

export interface JobMetrics {
  readonly eventsReceived: Counter<'kind' | 'result'>;
  readonly jobsFinished: Counter<'outcome'>;
  readonly jobDuration: Histogram<'outcome'>;
  readonly retries: Counter;
}

/** The outcome class of a reason: `skipped:duplicate` from "duplicate: …". */
export function outcomeClass(status: string, reason: string): string {
  if (status !== 'skipped') return status;
  const m = /^([a-z-]+):/.exec(reason);
  return `skipped:${m ? m[1] : 'other'}`;
}

/** Creates the metrics; `queue` (optional) feeds the queue-depth gauge at scrape time. */
export function createJobMetrics(registry: Registry, queue?: () => JobQueue | undefined): JobMetrics {
  const eventsReceived = new Counter({
    name: 'frcds_report_events_received_total',
    help: 'Subscription notifications received, by kind (handshake, heartbeat, event-notification, r4-rest-hook) and result (accepted, duplicate, rejected, dead-lettered).',
    labelNames: ['kind', 'result'] as const,
    registers: [registry],
  });
  const jobsFinished = new Counter({
    name: 'frcds_jobs_finished_total',
    help: 'Report-event jobs finished, by outcome class (done, skipped:duplicate, skipped:superseded, skipped:not-final, dead).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const jobDuration = new Histogram({
    name: 'frcds_job_duration_seconds',
    help: 'Duration of one run of a report-event job, by outcome class (retry = the run failed and was rescheduled).',
    labelNames: ['outcome'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const retries = new Counter({ name: 'frcds_jobs_retries_total', help: 'Job runs that failed and were rescheduled with back-off.', registers: [registry] });
  if (queue) {
    new Gauge({
      name: 'frcds_jobs_queue_depth',
      help: 'Report-event jobs waiting or running, by state (queued, running, delayed) and dead letters.',
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        const q = queue();
        if (!q) return;
        try {
          const s = await q.stats();
          this.set({ state: 'queued' }, s.queued);
          this.set({ state: 'running' }, s.running);
          this.set({ state: 'delayed' }, s.delayed);
          this.set({ state: 'dead' }, s.deadLetters);
        } catch {
          // a scrape must not fail because the queue backend is briefly unreachable
        }
      },
    });
  }
  return { eventsReceived, jobsFinished, jobDuration, retries };
}
