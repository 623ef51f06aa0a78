/**
 * The durable job system's vocabulary (issue 8, item 2): what an event is, what a job answers, and the queue
 * interface both implementations (SQLite in-process, BullMQ on Redis) provide. The job code itself
 * (`process.ts`) knows nothing of either queue.
 */
import type { DiagnosticReport } from '@medplum/fhirtypes';

/** Where a report event came from (for metrics and the dead-letter list; never PHI). */
export type EventSource = 'backport-full-resource' | 'backport-id-only' | 'r4-rest-hook' | 'backfill' | 'manual';

/** One "imaging DiagnosticReport became final" event: the unit of work of a job. */
export interface ReportEvent {
  readonly reportId: string;
  /** `meta.versionId` when the notification carried it (versioned focus reference or full resource). */
  readonly versionId?: string;
  /** The report as notified (full-resource payloads); id-only events are read from the FHIR server by the job. */
  readonly resource?: DiagnosticReport;
  readonly source: EventSource;
  /** ISO time the receiver accepted the event. */
  readonly receivedAt: string;
  /** Subscription reference and event number (Backport `notification-event`), for tracing. */
  readonly subscription?: string;
  readonly eventNumber?: string;
}

/** What one run of the job code decided. `dead` outcomes are not retried: they go to the dead-letter list. */
export type JobOutcome =
  | { readonly status: 'done'; readonly reason: string; readonly key: string; readonly riskAssessmentId: string; readonly tier: string; readonly triage: { readonly created: boolean; readonly reason: string; readonly taskId?: string } | null; readonly assessmentSource: 'memo' | 'cache' | 'new' }
  | { readonly status: 'skipped'; readonly reason: string; readonly key: string }
  | { readonly status: 'dead'; readonly reason: string; readonly key: string };

/** A job that will not be processed again, with the reason an operator needs (no PHI: ids of resources only). */
export interface DeadLetter {
  readonly key: string;
  readonly reportId: string | null;
  readonly reason: string;
  readonly attempts: number;
  readonly at: string;
  readonly source: string;
}

export interface JobStats {
  readonly backend: 'sqlite' | 'redis';
  readonly queued: number;
  readonly running: number;
  readonly delayed: number;
  /** Outcomes of finished jobs, by status and reason class (`done`, `skipped:duplicate`, …). */
  readonly outcomes: Record<string, number>;
  readonly done: number;
  readonly deadLetters: number;
  /** Processing keys (report id + version) completed: each counted once however often it was delivered. */
  readonly completedKeys: number;
}

/** Result of offering an event to the queue. */
export interface EnqueueResult {
  readonly key: string;
  /** False when a job with the same idempotency key is already queued, running or done. */
  readonly accepted: boolean;
}

/**
 * Coordination the job code needs across processes: completed keys, the latest processed version of each report,
 * and a per-report lock so an older version can never overwrite a newer one written concurrently.
 */
export interface JobCoordination {
  isDone(key: string): Promise<boolean>;
  markDone(key: string, outcome: JobOutcome): Promise<void>;
  /** Order stamp of the newest version of the report whose result was written, or null. */
  latestVersion(reportId: string): Promise<string | null>;
  setLatestVersion(reportId: string, order: string): Promise<void>;
  withReportLock<T>(reportId: string, fn: () => Promise<T>): Promise<T>;
}

/** The queue both implementations provide. */
export interface JobQueue {
  readonly backend: 'sqlite' | 'redis';
  enqueue(event: ReportEvent): Promise<EnqueueResult>;
  /** Records a notification that never became a job (e.g. unknown topic) in the dead-letter list. */
  deadLetter(entry: Omit<DeadLetter, 'at'>): Promise<void>;
  deadLetters(limit?: number): Promise<DeadLetter[]>;
  stats(): Promise<JobStats>;
  close(): Promise<void>;
}

/** A failure worth retrying (FHIR or PACS unavailable, time-out, 5xx). */
export class RetryableJobError extends Error {
  override readonly name = 'RetryableJobError';
}

/** The idempotency key of a report version. */
export function idempotencyKey(reportId: string, versionId: string | undefined): string {
  return `DiagnosticReport/${reportId}/_history/${versionId ?? 'unversioned'}`;
}
