/**
 * Opens the state stores from the configuration — the one place that decides which backend holds what:
 *
 * | store          | `REDIS_URL` and `DATABASE_URL` | only `REDIS_URL` | only `DATABASE_URL` | neither            |
 * |----------------|--------------------------------|------------------|---------------------|--------------------|
 * | jti replay     | Redis                          | Redis            | PostgreSQL          | SQLite (`STATE_DB`) |
 * | single-flight  | Redis                          | Redis            | PostgreSQL          | SQLite             |
 * | results        | PostgreSQL                     | Redis            | PostgreSQL          | SQLite             |
 *
 * Redis suits the short-lived keys (a `jti` lives an hour at most, a lease seconds: native expiry, one round trip);
 * PostgreSQL suits the results (durable, up to ~1 MB of PNGs each, kept for weeks). With `DATABASE_URL` the schema
 * migrations run here, before anything is served.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../logging.ts';
import { createPgPool, migrate, type PgPool } from './postgres.ts';
import { connectRedis } from './redis.ts';
import { PostgresReplayCache, RedisReplayCache, SqliteReplayCache } from './replay.ts';
import { PostgresResultStore, RedisResultStore, SqliteResultStore } from './results.ts';
import { LeaseSingleFlight, PostgresLease, RedisLease, SqliteLease, type SingleFlightOptions } from './single-flight.ts';
import { openSqlite, type SqliteDb } from './sqlite.ts';
import { StateUnavailableError, type ReplayCache, type ResultStore, type SingleFlight, type StateBackend } from './types.ts';

export interface StateSettings {
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  /** Embedded SQLite file (or `:memory:`). */
  dbPath: string;
}

export interface StateStores {
  replay: ReplayCache;
  results: ResultStore;
  flight: SingleFlight;
  /** The PostgreSQL pool (with `DATABASE_URL`), for other stores to share; migrated. */
  pool: PgPool | undefined;
  /** The shared-state Redis connection (with `REDIS_URL`), for other stores to share. */
  redis: Redis | undefined;
  /** The embedded SQLite database, opened only when some store uses it. */
  sqlite: SqliteDb | undefined;
  /** Which backend holds each store (`/readyz` detail, start-up log). */
  readonly backends: Record<'replay' | 'results' | 'flight', StateBackend>;
  /** Resolves when every backend in use answers; rejects with the first StateUnavailableError. */
  check(): Promise<void>;
  /** Closes the stores and the connections opened here. */
  close(): Promise<void>;
}

/**
 * Connects to the configured backends (failing with StateUnavailableError when one does not answer) and runs the
 * PostgreSQL migrations.
 */
export async function openStateStores(settings: StateSettings, opts: { logger?: Logger; flight?: SingleFlightOptions } = {}): Promise<StateStores> {
  const logger = opts.logger?.child({ component: 'state' });
  let pool: PgPool | undefined;
  let redis: Redis | undefined;
  let sqlite: SqliteDb | undefined;
  const embedded = (): SqliteDb => (sqlite ??= openSqlite(settings.dbPath));
  try {
    if (settings.databaseUrl) {
      pool = createPgPool(settings.databaseUrl, logger ? { logger } : {});
      await migrate(pool, logger ? { logger } : {});
    }
    if (settings.redisUrl) redis = await connectRedis(settings.redisUrl, logger ? { logger } : {});
  } catch (err) {
    await pool?.end().catch(() => undefined);
    redis?.disconnect();
    throw err;
  }
  const replay: ReplayCache = redis ? new RedisReplayCache(redis) : pool ? new PostgresReplayCache(pool) : new SqliteReplayCache(embedded());
  const flight: SingleFlight = new LeaseSingleFlight(redis ? new RedisLease(redis) : pool ? new PostgresLease(pool) : new SqliteLease(embedded()), opts.flight);
  const results: ResultStore = pool ? new PostgresResultStore(pool) : redis ? new RedisResultStore(redis) : new SqliteResultStore(embedded());
  const backends = { replay: replay.backend, results: results.backend, flight: flight.backend };
  logger?.info({ backends }, 'shared state opened');
  return {
    replay, results, flight, pool, redis, sqlite, backends,
    async check() {
      await Promise.all([replay.check(), results.check(), flight.check()]);
    },
    async close() {
      await Promise.all([replay.close(), results.close(), flight.close()]);
      await pool?.end().catch(() => undefined);
      if (redis) await redis.quit().catch(() => redis?.disconnect());
      sqlite?.close();
    },
  };
}

/** The state of a running service: opened in the background, retried until the backends answer. */
export interface StateHandle {
  /** Resolves once the stores are open (never rejects; retries while the backends are down). */
  readonly stores: Promise<StateStores>;
  /** For `/readyz`: ok when open and every backend answers; the detail names the backends or the last error. */
  probe(): Promise<{ ok: boolean; detail: string }>;
  /** Stops retrying and closes the stores once open. */
  close(): Promise<void>;
}

/**
 * Opens the stores, retrying every `retryMs` (default 2 s, logged) while a backend is down at start: the service
 * stays up but not ready, and what needs the state waits for it instead of running on per-process state.
 */
export function openStateInBackground(settings: StateSettings, opts: { logger?: Logger; retryMs?: number } = {}): StateHandle {
  let opened: StateStores | undefined;
  let lastError = 'opening';
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const stores = new Promise<StateStores>((resolve) => {
    const attempt = (): void => {
      if (closed) return;
      openStateStores(settings, opts.logger ? { logger: opts.logger } : {}).then(
        (s) => {
          if (closed) return void s.close();
          opened = s;
          resolve(s);
        },
        (err: unknown) => {
          lastError = (err as Error).message;
          opts.logger?.error({ err: lastError }, 'shared state could not be opened; retrying (the service is not ready)');
          timer = setTimeout(attempt, opts.retryMs ?? 2000);
        },
      );
    };
    attempt();
  });
  return {
    stores,
    async probe() {
      if (!opened) return { ok: false, detail: lastError };
      try {
        await opened.check();
        return { ok: true, detail: Object.entries(opened.backends).map(([k, v]) => `${k}: ${v}`).join(', ') };
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await opened?.close();
    },
  };
}

/**
 * A {@link ReplayCache} for something built before the stores are open (the notification verifier): each claim waits
 * for the stores (at most `waitMs`, then StateUnavailableError), then claims in their replay cache.
 */
export function deferredReplayCache(stores: Promise<StateStores>, waitMs = 3000): ReplayCache {
  let open: StateStores | undefined;
  void stores.then((s) => (open = s));
  // A call while the stores are still opening waits a little, then fails clearly rather than hang.
  const opened = async (): Promise<StateStores> => {
    if (open) return open;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StateUnavailableError('memory', 'the shared state is not open yet (see /readyz)')), waitMs);
    });
    try {
      return await Promise.race([stores, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    /** The backend once the stores are open; `memory` before (nothing is claimed before then). */
    get backend() {
      return open?.replay.backend ?? 'memory';
    },
    claim: async (key, expiresAtMs, bodyHash) => (await opened()).replay.claim(key, expiresAtMs, bodyHash),
    answered: async (key) => (await opened()).replay.answered(key),
    check: async () => (await opened()).replay.check(),
    close: async () => undefined,
  };
}
