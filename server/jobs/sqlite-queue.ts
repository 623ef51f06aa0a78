/**
 * The default job queue: in-process workers over a SQLite file (better-sqlite3), so accepted events survive a
 * crash or restart (issue 8, item 2).
 *
 * - A job is a row; claiming it is one `UPDATE … RETURNING` (atomic), which sets a lease. A job whose process died
 *   keeps state `running` with an expired lease and is claimed again (at-least-once). One process owns a file:
 *   at open, jobs a previous process left `running` are re-queued at once instead of waiting for their lease.
 * - Failures are retried with exponential back-off (base × 2^(attempt−1), ±20 % jitter, capped at 10 min) up to
 *   the maximum attempts, then dead-lettered with the last error as the reason.
 * - The file uses WAL with `synchronous=NORMAL`: a committed transaction survives the process being killed.
 * @see https://www.sqlite.org/wal.html
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Logger } from '../logging.ts';
import { outcomeClass, type JobMetrics } from './metrics.ts';
import { idempotencyKey, type DeadLetter, type EnqueueResult, type JobCoordination, type JobOutcome, type JobQueue, type JobStats, type ReportEvent } from './types.ts';

export interface SqliteQueueOptions {
  /** SQLite file (created with its folder), or `:memory:`. */
  readonly path: string;
  readonly maxAttempts: number;
  /** First retry delay in ms (doubles each attempt). */
  readonly backoffMs: number;
  /** How long a claimed job is reserved for its worker before another may take it, ms. */
  readonly leaseMs: number;
  readonly logger: Logger;
  readonly metrics?: JobMetrics;
  /** Idle poll interval of the workers, ms (enqueue wakes them at once anyway). */
  readonly pollMs?: number;
}

const MAX_BACKOFF_MS = 600_000;

interface JobRow {
  id: number;
  key: string;
  report_id: string;
  payload: string;
  source: string;
  state: string;
  attempts: number;
}

export type JobRunner = (event: ReportEvent) => Promise<JobOutcome>;

/** Exponential back-off with jitter for the given (1-based) attempt. */
export function backoffDelay(baseMs: number, attempt: number, random: () => number = Math.random): number {
  const raw = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(raw * (0.8 + 0.4 * random()));
}

class SqliteCoordination implements JobCoordination {
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #isDone: Database.Statement<[string]>;
  readonly #markDone: Database.Statement<[string, string, string, number]>;
  readonly #latest: Database.Statement<[string]>;
  readonly #setLatest: Database.Statement<[string, string, number]>;

  constructor(db: Database.Database) {
    this.#isDone = db.prepare('SELECT 1 FROM done_keys WHERE key = ?');
    this.#markDone = db.prepare('INSERT OR IGNORE INTO done_keys (key, status, reason, at) VALUES (?, ?, ?, ?)');
    this.#latest = db.prepare('SELECT ord FROM report_versions WHERE report_id = ?');
    this.#setLatest = db.prepare('INSERT INTO report_versions (report_id, ord, at) VALUES (?, ?, ?) ON CONFLICT(report_id) DO UPDATE SET ord = excluded.ord, at = excluded.at WHERE excluded.ord > report_versions.ord');
  }
  async isDone(key: string): Promise<boolean> {
    return this.#isDone.get(key) !== undefined;
  }
  async markDone(key: string, outcome: JobOutcome): Promise<void> {
    this.#markDone.run(key, outcome.status, outcome.reason, Date.now());
  }
  async latestVersion(reportId: string): Promise<string | null> {
    return (this.#latest.get(reportId) as { ord: string } | undefined)?.ord ?? null;
  }
  async setLatestVersion(reportId: string, order: string): Promise<void> {
    this.#setLatest.run(reportId, order, Date.now());
  }
  /** One process owns the file, so an in-process lock per report is enough. */
  async withReportLock<T>(reportId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(reportId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(() => undefined, () => undefined);
    this.#locks.set(reportId, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(reportId) === tail) this.#locks.delete(reportId);
    }
  }
}

export class SqliteJobQueue implements JobQueue {
  readonly backend = 'sqlite' as const;
  readonly coordination: JobCoordination;
  readonly #db: Database.Database;
  readonly #opts: SqliteQueueOptions;
  readonly #log: Logger;
  #workers: Promise<void>[] = [];
  #stopping = false;
  #wake: (() => void)[] = [];
  #inflight = 0;

  constructor(opts: SqliteQueueOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'jobs', backend: 'sqlite' });
    if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
    this.#db = new Database(opts.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        report_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        source TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        run_at INTEGER NOT NULL,
        lease_until INTEGER,
        last_error TEXT,
        outcome_class TEXT,
        outcome TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, run_at);
      CREATE TABLE IF NOT EXISTS done_keys (key TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS report_versions (report_id TEXT PRIMARY KEY, ord TEXT NOT NULL, at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, report_id TEXT, reason TEXT NOT NULL,
        attempts INTEGER NOT NULL, source TEXT NOT NULL, at INTEGER NOT NULL
      );
    `);
    const requeued = this.#db.prepare("UPDATE jobs SET state = 'queued', lease_until = NULL, run_at = ? WHERE state = 'running'").run(Date.now()).changes;
    if (requeued > 0) this.#log.warn({ requeued }, 'jobs left running by a previous process were re-queued');
    this.coordination = new SqliteCoordination(this.#db);
  }

  async enqueue(event: ReportEvent): Promise<EnqueueResult> {
    // Without a version the key is not known until the job reads the report: queue it under a unique key; the job
    // itself then skips a version that is already done.
    const key = event.versionId ? idempotencyKey(event.reportId, event.versionId) : `${idempotencyKey(event.reportId, undefined)}/${randomUUID()}`;
    const now = Date.now();
    const r = this.#db
      .prepare("INSERT OR IGNORE INTO jobs (key, report_id, payload, source, state, attempts, run_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?)")
      .run(key, event.reportId, JSON.stringify(event), event.source, now, now, now);
    if (r.changes > 0) this.#notify();
    return { key, accepted: r.changes > 0 };
  }

  async deadLetter(entry: Omit<DeadLetter, 'at'>): Promise<void> {
    this.#db.prepare('INSERT INTO dead_letters (key, report_id, reason, attempts, source, at) VALUES (?, ?, ?, ?, ?, ?)').run(entry.key, entry.reportId, entry.reason, entry.attempts, entry.source, Date.now());
  }

  async deadLetters(limit = 100): Promise<DeadLetter[]> {
    const rows = this.#db.prepare('SELECT key, report_id, reason, attempts, source, at FROM dead_letters ORDER BY id DESC LIMIT ?').all(limit) as { key: string; report_id: string | null; reason: string; attempts: number; source: string; at: number }[];
    return rows.map((r) => ({ key: r.key, reportId: r.report_id, reason: r.reason, attempts: r.attempts, source: r.source, at: new Date(r.at).toISOString() }));
  }

  async stats(): Promise<JobStats> {
    const now = Date.now();
    const byState = this.#db.prepare("SELECT state, SUM(CASE WHEN state = 'queued' AND run_at > ? THEN 1 ELSE 0 END) AS delayed, COUNT(*) AS n FROM jobs GROUP BY state").all(now) as { state: string; delayed: number; n: number }[];
    const outcomes: Record<string, number> = {};
    for (const r of this.#db.prepare('SELECT outcome_class AS c, COUNT(*) AS n FROM jobs WHERE outcome_class IS NOT NULL GROUP BY outcome_class').all() as { c: string; n: number }[]) outcomes[r.c] = r.n;
    const get = (s: string): number => byState.find((r) => r.state === s)?.n ?? 0;
    const delayed = byState.find((r) => r.state === 'queued')?.delayed ?? 0;
    return {
      backend: 'sqlite',
      queued: get('queued') - delayed,
      running: get('running'),
      delayed,
      outcomes,
      done: get('done'),
      deadLetters: (this.#db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get() as { n: number }).n,
      completedKeys: (this.#db.prepare("SELECT COUNT(*) AS n FROM done_keys WHERE status = 'done'").get() as { n: number }).n,
    };
  }

  /** Starts `concurrency` worker loops running `run` on claimed jobs. */
  start(run: JobRunner, concurrency: number): void {
    this.#stopping = false;
    for (let i = 0; i < concurrency; i++) this.#workers.push(this.#loop(run));
  }

  /** Jobs being run right now by this process's workers. */
  get inflight(): number {
    return this.#inflight;
  }

  async close(): Promise<void> {
    this.#stopping = true;
    this.#notify();
    await Promise.all(this.#workers);
    this.#workers = [];
    if (this.#db.open) this.#db.close();
  }

  #notify(): void {
    const waiting = this.#wake;
    this.#wake = [];
    for (const w of waiting) w();
  }

  #claim(): JobRow | undefined {
    const now = Date.now();
    return this.#db
      .prepare(
        `UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = @lease, updated_at = @now
         WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' AND run_at <= @now) OR (state = 'running' AND lease_until < @now) ORDER BY run_at, id LIMIT 1)
         RETURNING id, key, report_id, payload, source, state, attempts`,
      )
      .get({ now, lease: now + this.#opts.leaseMs }) as JobRow | undefined;
  }

  async #idle(): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, this.#opts.pollMs ?? 500);
      this.#wake.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async #loop(run: JobRunner): Promise<void> {
    while (!this.#stopping) {
      let job: JobRow | undefined;
      try {
        job = this.#claim();
      } catch (err) {
        this.#log.error({ err: (err as Error).message }, 'claiming a job failed');
      }
      if (!job) {
        await this.#idle();
        continue;
      }
      this.#inflight++;
      try {
        await this.#runOne(run, job);
      } finally {
        this.#inflight--;
      }
    }
  }

  async #runOne(run: JobRunner, job: JobRow): Promise<void> {
    const started = performance.now();
    const m = this.#opts.metrics;
    let event: ReportEvent;
    try {
      event = JSON.parse(job.payload) as ReportEvent;
    } catch {
      this.#finishDead(job, 'the stored job payload is not JSON');
      return;
    }
    try {
      const outcome = await run(event);
      const cls = outcomeClass(outcome.status, outcome.reason);
      if (this.#stopping && !this.#db.open) return;
      if (outcome.status === 'dead') {
        this.#finishDead(job, outcome.reason, cls);
      } else {
        this.#db.prepare("UPDATE jobs SET state = 'done', lease_until = NULL, outcome_class = ?, outcome = ?, updated_at = ? WHERE id = ?").run(cls, JSON.stringify(outcome), Date.now(), job.id);
      }
      m?.jobsFinished.inc({ outcome: cls });
      m?.jobDuration.observe({ outcome: cls }, (performance.now() - started) / 1000);
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      if (!this.#db.open) return;
      if (job.attempts >= this.#opts.maxAttempts) {
        this.#finishDead(job, `gave up after ${job.attempts} attempts: ${message}`);
        m?.jobsFinished.inc({ outcome: 'dead' });
        m?.jobDuration.observe({ outcome: 'dead' }, (performance.now() - started) / 1000);
        return;
      }
      const delay = backoffDelay(this.#opts.backoffMs, job.attempts);
      this.#db.prepare("UPDATE jobs SET state = 'queued', lease_until = NULL, run_at = ?, last_error = ?, updated_at = ? WHERE id = ?").run(Date.now() + delay, message.slice(0, 500), Date.now(), job.id);
      m?.retries.inc();
      m?.jobDuration.observe({ outcome: 'retry' }, (performance.now() - started) / 1000);
      this.#log.warn({ attempt: job.attempts, delayMs: delay, error: message.slice(0, 200) }, 'job failed; retrying with back-off');
    }
  }

  #finishDead(job: JobRow, reason: string, cls = 'dead'): void {
    const now = Date.now();
    this.#db.transaction(() => {
      this.#db.prepare("UPDATE jobs SET state = 'dead', lease_until = NULL, outcome_class = ?, last_error = ?, updated_at = ? WHERE id = ?").run(cls, reason.slice(0, 500), now, job.id);
      this.#db.prepare('INSERT INTO dead_letters (key, report_id, reason, attempts, source, at) VALUES (?, ?, ?, ?, ?, ?)').run(job.key, job.report_id, reason, job.attempts, job.source, now);
    })();
    this.#log.warn({ attempts: job.attempts, reason: reason.slice(0, 200) }, 'job dead-lettered');
  }
}
