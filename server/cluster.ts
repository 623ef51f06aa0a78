/**
 * Several service processes on one port (`SERVICE_PROCESSES` > 1): a supervising primary forks the workers with
 * Node's `cluster`; each worker runs the whole service (`startService` in server/index.ts) and the primary hands
 * incoming connections to them in turn (round-robin, Node's default on Linux).
 *
 * Why processes and not worker threads: what costs time on the CDS hot path is spread over the whole request (JWT
 * verification, JSON parsing, schema validation, card building, Express itself), so threads would have to take the
 * whole request, not one function: that is a process per core. Processes also keep a crash (a native codec, an
 * out-of-memory) to one worker, which the primary replaces while the other keeps answering. The costs: each worker
 * loads its own models and FHIR definitions (memory × N), and state shared between requests must live outside the
 * process (server/state: SQLite on one host, Redis or PostgreSQL across hosts).
 *
 * What the primary does:
 * - forks N workers, each told its slot (1…N) in `FRCDS_WORKER_SLOT`; the replacement of a worker gets its slot;
 * - background work runs once: only slot 1 runs the in-process report-event job worker (`JOBS_IN_PROCESS_WORKER`
 *   stays `false` in the others; they still receive events and enqueue them in the shared queue). The sandboxes'
 *   Subscription set-up never runs here, as several processes need external FHIR and DICOMweb servers;
 * - one `LOG_HASH_SALT` for all workers when none is configured, so one patient has one hash in every worker's log;
 * - unless `INFERENCE_THREADS` is set, each worker's onnxruntime gets its share of the cores (see {@link workerEnv});
 * - a worker that exits unasked is replaced after a delay that doubles while replacements keep dying young (crash
 *   loop: a broken model file would otherwise fork hundreds of processes a minute), up to {@link MAX_RESTART_DELAY_MS};
 *   the replacement listens only once its models are loaded, so no call meets a worker that is still starting;
 * - SIGTERM/SIGINT: passed on to every worker, which drains as a single process does (server/index.ts); the primary
 *   exits when all have exited (status 0 when they all stopped cleanly). A second, different signal ends the workers
 *   at once.
 *
 * Readiness is per worker: `/readyz` answers for the worker that took the connection (while the first workers start,
 * a probe may see `starting` on one connection and `ready` on the next).
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Logger } from './logging.ts';

/** Environment variable that tells a worker its slot (1…N); unset in a single-process service. */
export const WORKER_SLOT_ENV = 'FRCDS_WORKER_SLOT';
/**
 * Set (`1`) for a replacement worker: it takes connections only once it is started (models loaded), since the
 * primary hands connections to every listening worker in turn and the others are serving meanwhile. The first
 * workers listen at once, as a single process does, so `/healthz` and `/readyz` answer during start-up.
 */
export const LISTEN_WHEN_READY_ENV = 'FRCDS_LISTEN_WHEN_READY';

/** True when this process is a cluster worker that should listen only once started (see {@link LISTEN_WHEN_READY_ENV}). */
export function listenWhenReady(env: NodeJS.ProcessEnv = process.env): boolean {
  return workerSlot(env) !== undefined && env[LISTEN_WHEN_READY_ENV] === '1';
}

/** The first replacement of a dead worker is forked after this delay, in ms. */
export const RESTART_DELAY_MS = 500;
/** Longest delay between replacements of a worker that keeps dying, in ms. */
export const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that ran at least this long before dying was healthy: its replacement starts after the first delay again. */
export const HEALTHY_RUN_MS = 30_000;

/** The slot of this process when it is a cluster worker, else undefined. */
export function workerSlot(env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (!cluster.isWorker) return undefined;
  const slot = Number(env[WORKER_SLOT_ENV]);
  return Number.isInteger(slot) && slot > 0 ? slot : undefined;
}

export interface ClusterOptions {
  /** Workers to keep running (≥ 2). */
  readonly processes: number;
  readonly logger: Logger;
  /** The primary's environment (read for `JOBS_IN_PROCESS_WORKER` and `LOG_HASH_SALT`). */
  readonly env?: NodeJS.ProcessEnv;
  /** Overrides of the restart delays (tests). */
  readonly restartDelayMs?: number;
  readonly maxRestartDelayMs?: number;
  /**
   * How long the primary waits for the workers after passing on SIGTERM/SIGINT before killing them, in ms. Longer
   * than a worker's own drain and close (server/index.ts gives up after 15 s), so a worker normally stops itself.
   */
  readonly stopGraceMs?: number;
  /**
   * Called when a worker dies before any worker of this cluster has listened (a busy port, a missing model folder):
   * the service cannot start, and forking replacements would only repeat the failure. The workers are stopped first.
   */
  readonly onStartFailure?: (code: number | null) => void;
}

export interface ClusterPrimary {
  /** Workers alive now, by slot. */
  workers(): ReadonlyMap<number, Worker>;
  /** Passes `signal` on to every worker and resolves when all have exited (true = all stopped with status 0). */
  stop(signal?: NodeJS.Signals): Promise<boolean>;
}

/**
 * The environment a worker of `slot` is forked with (on top of the primary's). `cores`/`processes`: when
 * `INFERENCE_THREADS` is not configured, each worker gets its share of the cores for onnxruntime (at least 1), so N
 * workers do not start N × 2 intra-op threads that wait for work spinning on the cores the hooks need.
 */
export function workerEnv(slot: number, env: NodeJS.ProcessEnv, hashSalt: string, share?: { cores: number; processes: number }): Record<string, string> {
  const out: Record<string, string> = { [WORKER_SLOT_ENV]: String(slot), LOG_HASH_SALT: env['LOG_HASH_SALT'] ?? hashSalt };
  if (share && env['INFERENCE_THREADS'] === undefined) out['INFERENCE_THREADS'] = String(Math.max(1, Math.floor(share.cores / share.processes)));
  // Background jobs run once: in slot 1 (and its replacements) unless they are switched off altogether.
  if (slot !== 1) out['JOBS_IN_PROCESS_WORKER'] = 'false';
  return out;
}

/**
 * Runs this process as the cluster primary: forks `processes` workers of the current entry point and keeps them
 * running until {@link ClusterPrimary.stop} (or SIGTERM/SIGINT, see {@link handlePrimarySignals}).
 */
export function startPrimary(opts: ClusterOptions): ClusterPrimary {
  if (!cluster.isPrimary) throw new Error('startPrimary must run in the cluster primary');
  const { processes, logger } = opts;
  const env = opts.env ?? process.env;
  const baseDelay = opts.restartDelayMs ?? RESTART_DELAY_MS;
  const maxDelay = opts.maxRestartDelayMs ?? MAX_RESTART_DELAY_MS;
  const stopGraceMs = opts.stopGraceMs ?? 20_000;
  const hashSalt = randomBytes(16).toString('base64url');
  const log = logger.child({ component: 'cluster' });
  const bySlot = new Map<number, Worker>();
  const delays = new Map<number, number>();
  const pendingRestarts = new Set<NodeJS.Timeout>();
  let stopping: Promise<boolean> | undefined;
  let allClean = true;
  const exited = new Set<() => void>();
  let anyListening = false;

  const fork = (slot: number, replacement: boolean): void => {
    const worker = cluster.fork({ ...workerEnv(slot, env, hashSalt, { cores: availableParallelism(), processes }), ...(replacement ? { [LISTEN_WHEN_READY_ENV]: '1' } : {}) });
    const startedAt = Date.now();
    bySlot.set(slot, worker);
    worker.once('listening', () => void (anyListening = true));
    log.info({ slot, pid: worker.process.pid, jobs: slot === 1 && env['JOBS_IN_PROCESS_WORKER'] !== 'false' }, 'service worker started');
    worker.on('exit', (code, signal) => {
      if (bySlot.get(slot) === worker) bySlot.delete(slot);
      if (stopping) {
        if (code !== 0) allClean = false;
        log.info({ slot, pid: worker.process.pid, code, signal }, 'service worker stopped');
        for (const f of exited) f();
        return;
      }
      if (!anyListening) {
        log.fatal({ slot, pid: worker.process.pid, code, signal }, 'a service worker failed to start: stopping the others');
        void primary.stop('SIGTERM').then(() => opts.onStartFailure?.(code));
        return;
      }
      const ranMs = Date.now() - startedAt;
      const delay = ranMs >= HEALTHY_RUN_MS ? baseDelay : Math.min(maxDelay, (delays.get(slot) ?? baseDelay / 2) * 2);
      delays.set(slot, delay);
      log.error({ slot, pid: worker.process.pid, code, signal, ranMs, restartInMs: delay }, 'service worker died: starting a replacement');
      const t = setTimeout(() => {
        pendingRestarts.delete(t);
        if (!stopping) fork(slot, true);
      }, delay);
      pendingRestarts.add(t);
    });
  };
  const primary: ClusterPrimary = {
    workers: () => bySlot,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      stopping ??= new Promise<boolean>((resolve) => {
        for (const t of pendingRestarts) clearTimeout(t);
        pendingRestarts.clear();
        const done = (): void => {
          if (bySlot.size > 0) return;
          clearTimeout(killTimer);
          resolve(allClean);
        };
        const killTimer = setTimeout(() => {
          log.error({ workers: bySlot.size, graceMs: stopGraceMs }, 'service workers did not stop in time: killing them');
          allClean = false;
          for (const w of bySlot.values()) w.process.kill('SIGKILL');
        }, stopGraceMs);
        killTimer.unref();
        exited.add(done);
        for (const w of bySlot.values()) w.process.kill(signal);
        done();
      });
      return stopping;
    },
  };
  for (let slot = 1; slot <= processes; slot++) fork(slot, false);
  log.info({ processes }, `supervising ${processes} service workers on one port`);
  return primary;
}

/**
 * SIGTERM/SIGINT in the primary: pass the signal on and exit when the workers have (0 when all stopped cleanly,
 * else 1). Ctrl-C in a terminal reaches every process of the group, so a worker may get the same signal twice within
 * a moment; server/index.ts treats that as one request. A different second signal ends the workers at once.
 */
export function handlePrimarySignals(primary: ClusterPrimary, logger: Logger): void {
  let first: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first) {
      if (signal === first) return;
      logger.warn({ signal }, `${signal} again: ending the service workers at once`);
      for (const w of primary.workers().values()) w.process.kill('SIGKILL');
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    first = signal;
    logger.info({ signal, workers: primary.workers().size }, `${signal}: stopping the service workers (each drains its requests in flight)`);
    void primary.stop(signal).then((clean) => {
      logger.info({ clean }, 'stopped');
      process.exit(clean ? 0 : 1);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
