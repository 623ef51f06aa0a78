/**
 * The scale-out job queue: BullMQ on Redis (`REDIS_URL`), with any number of worker processes (`npm run worker`)
 * on any number of machines running the same job code as the in-process queue (issue 8, item 2).
 *
 * - Enqueue uses the idempotency key as BullMQ job id, so a repeated notification of a known version adds nothing.
 * - Retries: BullMQ `attempts` with exponential back-off; a job still failing after the last attempt, and every
 *   `dead` outcome of the job code, goes to the dead-letter list (a Redis list) with its reason.
 * - A worker killed mid-job loses its lock after `leaseMs`; another worker's stalled-job check moves the job back
 *   to the wait list and runs it again (at-least-once; the job code is idempotent).
 * - Cross-process coordination (completed keys, newest version written per report, per-report lock) lives in Redis
 *   hashes and `SET NX PX` locks released by a compare-and-delete script. The two hashes are bounded: each field's
 *   last write is kept in a sorted set beside it, and every write drops (a few at a time) the fields not written for
 *   `keysRetentionMs` (default {@link JOB_KEYS_RETENTION_MS}, 30 days — beyond BullMQ's 7 days of completed jobs
 *   and any likely re-notification of a report version; ≈ 560 bytes per report in Redis, measured).
 * @see https://docs.bullmq.io/guide/retrying-failing-jobs
 * @see https://docs.bullmq.io/guide/workers/stalled-jobs
 */
import { randomUUID } from 'node:crypto';
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from '../logging.ts';
import { outcomeClass, type JobMetrics } from './metrics.ts';
import type { JobRunner } from './sqlite-queue.ts';
import { idempotencyKey, type DeadLetter, type EnqueueResult, type JobCoordination, type JobOutcome, type JobQueue, type JobStats, type ReportEvent } from './types.ts';

export const QUEUE_NAME = 'frcds-report-events';
const PREFIX = 'frcds:jobs';
const K = {
  done: `${PREFIX}:done`,
  /** Sorted set: field of `done` → when it was written (ms). */
  doneAt: `${PREFIX}:done:at`,
  latest: `${PREFIX}:latest`,
  /** Sorted set: field of `latest` → when it was last written (ms). */
  latestAt: `${PREFIX}:latest:at`,
  outcomes: `${PREFIX}:outcomes`,
  dead: `${PREFIX}:dead-letters`,
  lock: (reportId: string) => `${PREFIX}:lock:${reportId}`,
};
const DEAD_LETTERS_KEPT = 10_000;
/** How long a completed key and a report's newest version are remembered after their last write, ms (30 days). */
export const JOB_KEYS_RETENTION_MS = 30 * 24 * 3600 * 1000;
/** Fields dropped at most per write: the sweep is spread over the writes, never one long Redis command. */
const TRIM_PER_WRITE = 100;

export interface RedisQueueOptions {
  readonly url: string;
  readonly maxAttempts: number;
  readonly backoffMs: number;
  readonly leaseMs: number;
  readonly logger: Logger;
  readonly metrics?: JobMetrics;
  /** See {@link JOB_KEYS_RETENTION_MS}. */
  readonly keysRetentionMs?: number;
}

/** ioredis/BullMQ connection options from a `redis://[user:pass@]host:port/db` URL. */
export function redisConnection(url: string): { host: string; port: number; username?: string; password?: string; db?: number; maxRetriesPerRequest: null } {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error('REDIS_URL must start with redis:// or rediss://');
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    // BullMQ workers block on Redis; ioredis must not give up on a command while reconnecting.
    maxRetriesPerRequest: null,
  };
}

const UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
/** Drops up to ARGV[5] fields of hash KEYS[1] whose time in sorted set KEYS[2] is at or before ARGV[4]. */
const TRIM = `
local old = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
if #old > 0 then redis.call('hdel', KEYS[1], unpack(old)) redis.call('zrem', KEYS[2], unpack(old)) end`;
/** Completed key (first outcome kept) with its time; then the trim. ARGV: key, outcome, now, cutoff, limit. */
const MARK_DONE = `
if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 1 then redis.call('zadd', KEYS[2], ARGV[3], ARGV[1]) end${TRIM}`;
/** Newest version of a report (kept only if newer) with the time of the write; then the trim. ARGV: report, order, now, cutoff, limit. */
const SET_IF_NEWER = `
local cur = redis.call('hget', KEYS[1], ARGV[1])
local set = 0
if (not cur) or ARGV[2] > cur then redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) redis.call('zadd', KEYS[2], ARGV[3], ARGV[1]) set = 1 end
${TRIM}
return set`;

class RedisCoordination implements JobCoordination {
  constructor(
    private readonly redis: Redis,
    private readonly leaseMs: number,
    private readonly retentionMs: number,
  ) {}
  async isDone(key: string): Promise<boolean> {
    return (await this.redis.hexists(K.done, key)) === 1;
  }
  async markDone(key: string, outcome: JobOutcome): Promise<void> {
    const now = Date.now();
    await this.redis.eval(MARK_DONE, 2, K.done, K.doneAt, key, outcome.status, now, now - this.retentionMs, TRIM_PER_WRITE);
  }
  async latestVersion(reportId: string): Promise<string | null> {
    return this.redis.hget(K.latest, reportId);
  }
  async setLatestVersion(reportId: string, order: string): Promise<void> {
    const now = Date.now();
    await this.redis.eval(SET_IF_NEWER, 2, K.latest, K.latestAt, reportId, order, now, now - this.retentionMs, TRIM_PER_WRITE);
  }
  /**
   * Gives fields written before their times were kept (an older version of this code) the current time, so that
   * they are dropped one retention period from now instead of never. One pass over each hash, in pages.
   */
  async indexUntimed(): Promise<number> {
    let added = 0;
    const now = Date.now();
    for (const [hash, times] of [[K.done, K.doneAt], [K.latest, K.latestAt]] as const) {
      let cursor = '0';
      do {
        const [next, flat] = await this.redis.hscan(hash, cursor, 'COUNT', 500);
        cursor = next;
        const fields = flat.filter((_, i) => i % 2 === 0);
        if (fields.length > 0) added += await this.redis.zadd(times, 'NX', ...fields.flatMap((f) => [now, f]));
      } while (cursor !== '0');
    }
    return added;
  }
  async withReportLock<T>(reportId: string, fn: () => Promise<T>): Promise<T> {
    const token = randomUUID();
    const deadline = Date.now() + this.leaseMs * 2;
    for (;;) {
      if ((await this.redis.set(K.lock(reportId), token, 'PX', this.leaseMs, 'NX')) === 'OK') break;
      if (Date.now() > deadline) throw new Error('timed out waiting for the per-report lock');
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
    }
    try {
      return await fn();
    } finally {
      await this.redis.eval(UNLOCK, 1, K.lock(reportId), token).catch(() => undefined);
    }
  }
}

export class RedisJobQueue implements JobQueue {
  readonly backend = 'redis' as const;
  readonly coordination: JobCoordination;
  readonly #opts: RedisQueueOptions;
  readonly #redis: Redis;
  readonly #queue: Queue<ReportEvent>;
  readonly #connection: ConnectionOptions;
  readonly #log: Logger;
  #worker: Worker<ReportEvent, JobOutcome> | undefined;

  constructor(opts: RedisQueueOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'jobs', backend: 'redis' });
    this.#connection = redisConnection(opts.url);
    this.#redis = new Redis(redisConnection(opts.url));
    this.#redis.on('error', (err: Error) => this.#log.warn({ error: err.message }, 'redis connection problem'));
    this.#queue = new Queue<ReportEvent>(QUEUE_NAME, { connection: this.#connection });
    this.#queue.on('error', (err: Error) => this.#log.warn({ error: err.message }, 'bullmq queue problem'));
    const coordination = new RedisCoordination(this.#redis, opts.leaseMs, opts.keysRetentionMs ?? JOB_KEYS_RETENTION_MS);
    this.coordination = coordination;
    void coordination.indexUntimed().catch((err: unknown) => this.#log.warn({ error: (err as Error).message }, 'could not index the completed keys for their retention; retried at the next start'));
  }

  async enqueue(event: ReportEvent): Promise<EnqueueResult> {
    const key = event.versionId ? idempotencyKey(event.reportId, event.versionId) : `${idempotencyKey(event.reportId, undefined)}/${randomUUID()}`;
    // BullMQ forbids ':' in custom ids; the key holds none (FHIR ids and versions are [A-Za-z0-9-.]).
    const jobId = key.replace(/:/g, '_');
    const job = await this.#queue.add('report-final', event, {
      jobId,
      attempts: this.#opts.maxAttempts,
      backoff: { type: 'exponential', delay: this.#opts.backoffMs },
      removeOnComplete: { age: 7 * 24 * 3600, count: 100_000 },
      removeOnFail: { age: 30 * 24 * 3600 },
    });
    // An existing job with this id is returned unchanged: it was accepted only if it carries this very event.
    const accepted = job.data.receivedAt === event.receivedAt && job.data.source === event.source && job.timestamp >= Date.now() - 60_000;
    return { key, accepted };
  }

  async deadLetter(entry: Omit<DeadLetter, 'at'>): Promise<void> {
    const full: DeadLetter = { ...entry, at: new Date().toISOString() };
    await this.#redis.multi().lpush(K.dead, JSON.stringify(full)).ltrim(K.dead, 0, DEAD_LETTERS_KEPT - 1).exec();
  }

  async deadLetters(limit = 100): Promise<DeadLetter[]> {
    const rows = await this.#redis.lrange(K.dead, 0, limit - 1);
    return rows.map((r) => JSON.parse(r) as DeadLetter);
  }

  async stats(): Promise<JobStats> {
    const c = await this.#queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children');
    const outcomesRaw = await this.#redis.hgetall(K.outcomes);
    const outcomes: Record<string, number> = {};
    for (const [k, v] of Object.entries(outcomesRaw)) outcomes[k] = Number(v);
    const completedKeys = (await this.#redis.hvals(K.done)).filter((v) => v === 'done').length;
    return {
      backend: 'redis',
      queued: (c['waiting'] ?? 0) + (c['prioritized'] ?? 0),
      running: c['active'] ?? 0,
      delayed: c['delayed'] ?? 0,
      outcomes,
      done: Object.entries(outcomes).filter(([k]) => k !== 'dead').reduce((a, [, v]) => a + v, 0),
      deadLetters: await this.#redis.llen(K.dead),
      completedKeys,
    };
  }

  /** Runs a BullMQ worker in this process (the service, or `npm run worker`). */
  start(run: JobRunner, concurrency: number): void {
    const m = this.#opts.metrics;
    const processor = async (job: Job<ReportEvent, JobOutcome>): Promise<JobOutcome> => {
      const started = performance.now();
      try {
        const outcome = await run(job.data);
        const cls = outcomeClass(outcome.status, outcome.reason);
        if (outcome.status === 'dead') {
          await this.deadLetter({ key: job.id ?? outcome.key, reportId: job.data.reportId, reason: outcome.reason, attempts: job.attemptsMade + 1, source: job.data.source });
        }
        await this.#redis.hincrby(K.outcomes, cls, 1);
        m?.jobsFinished.inc({ outcome: cls });
        m?.jobDuration.observe({ outcome: cls }, (performance.now() - started) / 1000);
        return outcome;
      } catch (err) {
        m?.jobDuration.observe({ outcome: 'retry' }, (performance.now() - started) / 1000);
        throw err;
      }
    };
    this.#worker = new Worker<ReportEvent, JobOutcome>(QUEUE_NAME, processor, {
      connection: this.#connection,
      concurrency,
      lockDuration: this.#opts.leaseMs,
      stalledInterval: Math.max(1000, Math.round(this.#opts.leaseMs / 2)),
      // A job whose worker died is re-run, however many workers die under it (the job is idempotent).
      maxStalledCount: 100,
    });
    this.#worker.on('error', (err: Error) => this.#log.warn({ error: err.message }, 'bullmq worker problem'));
    this.#worker.on('failed', (job: Job<ReportEvent, JobOutcome> | undefined, err: Error) => {
      if (!job) return;
      const attempts = job.opts.attempts ?? 1;
      if (job.attemptsMade >= attempts) {
        m?.jobsFinished.inc({ outcome: 'dead' });
        void this.#redis.hincrby(K.outcomes, 'dead', 1);
        void this.deadLetter({ key: job.id ?? '?', reportId: job.data.reportId, reason: `gave up after ${job.attemptsMade} attempts: ${err.message}`, attempts: job.attemptsMade, source: job.data.source });
        this.#log.warn({ attempts: job.attemptsMade, reason: err.message.slice(0, 200) }, 'job dead-lettered');
      } else {
        m?.retries.inc();
        this.#log.warn({ attempt: job.attemptsMade, error: err.message.slice(0, 200) }, 'job failed; BullMQ retries it with back-off');
      }
    });
  }

  /** Empties the queue and every coordination key (tests and benchmarks only). */
  async reset(): Promise<void> {
    await this.#queue.obliterate({ force: true });
    const locks = await this.#redis.keys(`${PREFIX}:lock:*`);
    await this.#redis.del(K.done, K.doneAt, K.latest, K.latestAt, K.outcomes, K.dead, ...locks);
  }

  async close(): Promise<void> {
    await this.#worker?.close();
    await this.#queue.close();
    this.#redis.disconnect();
  }
}
