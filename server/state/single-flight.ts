/**
 * {@link SingleFlight} on a lease: the caller that takes the lease for a key runs the computation; every other caller
 * (in this process, or on another replica sharing the backend) waits, polling the result store until the leader's
 * result appears, and takes the lease over when the leader failed or died (the lease expires; the leader renews it
 * while it computes).
 *
 * Leases, by backend: in-process memory; SQLite (one host); Redis (`SET key token PX ttl NX`, released and renewed
 * only by the token's owner through a small Lua script); PostgreSQL (a `flight_lease` row per key, taken over only
 * when expired). The PostgreSQL lease is a row rather than a session advisory lock on purpose: an advisory lock
 * holds a pooled connection for the whole computation, and 20 patients computed at once would then starve the pool
 * that the results themselves are written through.
 *
 * Callers in one process share one wait (no polling among themselves).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { openSqlite, type SqliteDb } from './sqlite.ts';
import { pgError, pingPostgres, type PgPool } from './postgres.ts';
import { pingRedis, redisError } from './redis.ts';
import { StateUnavailableError, type FlightOutcome, type SingleFlight, type StateBackend, type StateStore } from './types.ts';

/** A named, expiring lock owned by a token. */
export interface Lease extends StateStore {
  /** Takes the lease for `ttlMs` when it is free or expired; true when taken. */
  acquire(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Extends the lease when `token` still owns it. */
  renew(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Frees the lease when `token` owns it. */
  release(key: string, token: string): Promise<void>;
}

export interface SingleFlightOptions {
  /** Lease lifetime, ms (default 30 000); renewed every third of it while the leader computes. */
  ttlMs?: number;
  /** How often a waiter looks for the result and the lease, ms (default 20). */
  pollMs?: number;
  /** Longest a waiter waits before giving up with {@link StateUnavailableError}, ms (default 120 000). */
  maxWaitMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class LeaseSingleFlight implements SingleFlight {
  readonly #lease: Lease;
  readonly #opts: Required<SingleFlightOptions>;
  readonly #local = new Map<string, Promise<FlightOutcome<unknown>>>();

  constructor(lease: Lease, opts: SingleFlightOptions = {}) {
    this.#lease = lease;
    this.#opts = { ttlMs: 30_000, pollMs: 20, maxWaitMs: 120_000, ...opts };
  }

  get backend(): StateBackend {
    return this.#lease.backend;
  }

  run<T>(key: string, fn: () => Promise<T>, read: () => Promise<T | undefined>): Promise<FlightOutcome<T>> {
    const mine = this.#local.get(key) as Promise<FlightOutcome<T>> | undefined;
    if (mine) return mine.then((o) => ({ value: o.value, led: false }));
    const p = this.#run(key, fn, read).finally(() => this.#local.delete(key));
    this.#local.set(key, p);
    return p;
  }

  async #run<T>(key: string, fn: () => Promise<T>, read: () => Promise<T | undefined>): Promise<FlightOutcome<T>> {
    const token = randomUUID();
    const { ttlMs, pollMs, maxWaitMs } = this.#opts;
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      if (await this.#lease.acquire(key, token, ttlMs)) {
        const renew = setInterval(() => void this.#lease.renew(key, token, ttlMs).catch(() => undefined), Math.max(10, Math.floor(ttlMs / 3)));
        renew.unref();
        try {
          // The previous leader may have finished between our last look and taking the lease.
          const done = await read();
          if (done !== undefined) return { value: done, led: false };
          return { value: await fn(), led: true };
        } finally {
          clearInterval(renew);
          await this.#lease.release(key, token).catch(() => undefined);
        }
      }
      await sleep(pollMs);
      const done = await read();
      if (done !== undefined) return { value: done, led: false };
      if (Date.now() > deadline) throw new StateUnavailableError(this.#lease.backend, `waited ${maxWaitMs} ms for another replica computing the same key`);
    }
  }

  check(): Promise<void> {
    return this.#lease.check();
  }

  close(): Promise<void> {
    return this.#lease.close();
  }
}

/** One process. */
export class MemoryLease implements Lease {
  readonly backend = 'memory' as const;
  readonly #held = new Map<string, { token: string; until: number }>();

  async acquire(key: string, token: string, ttlMs: number): Promise<boolean> {
    const h = this.#held.get(key);
    if (h && h.until > Date.now()) return false;
    this.#held.set(key, { token, until: Date.now() + ttlMs });
    return true;
  }

  async renew(key: string, token: string, ttlMs: number): Promise<boolean> {
    const h = this.#held.get(key);
    if (!h || h.token !== token) return false;
    h.until = Date.now() + ttlMs;
    return true;
  }

  async release(key: string, token: string): Promise<void> {
    if (this.#held.get(key)?.token === token) this.#held.delete(key);
  }

  async check(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Processes of one host sharing the state file. */
export class SqliteLease implements Lease {
  readonly backend = 'sqlite' as const;
  readonly #db: SqliteDb;
  readonly #owned: boolean;

  constructor(db: SqliteDb | string) {
    this.#owned = typeof db === 'string';
    this.#db = typeof db === 'string' ? openSqlite(db) : db;
    this.#db.exec('CREATE TABLE IF NOT EXISTS flight_lease (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at INTEGER NOT NULL)');
  }

  async acquire(key: string, token: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    return this.#db.prepare(`INSERT INTO flight_lease VALUES (?, ?, ?)
      ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at WHERE flight_lease.expires_at <= ?`).run(key, token, now + ttlMs, now).changes === 1;
  }

  async renew(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#db.prepare('UPDATE flight_lease SET expires_at = ? WHERE key = ? AND token = ?').run(Date.now() + ttlMs, key, token).changes === 1;
  }

  async release(key: string, token: string): Promise<void> {
    this.#db.prepare('DELETE FROM flight_lease WHERE key = ? AND token = ?').run(key, token);
  }

  async check(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#owned) this.#db.close();
  }
}

const RENEW_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export class RedisLease implements Lease {
  readonly backend = 'redis' as const;
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, opts: { prefix?: string } = {}) {
    this.#redis = redis;
    this.#prefix = opts.prefix ?? 'frcds:flight:';
  }

  async acquire(key: string, token: string, ttlMs: number): Promise<boolean> {
    try {
      return (await this.#redis.set(this.#prefix + key, token, 'PX', ttlMs, 'NX')) === 'OK';
    } catch (err) {
      throw redisError(err, 'single-flight lease failed');
    }
  }

  async renew(key: string, token: string, ttlMs: number): Promise<boolean> {
    try {
      return (await this.#redis.eval(RENEW_LUA, 1, this.#prefix + key, token, String(ttlMs))) === 1;
    } catch (err) {
      throw redisError(err, 'single-flight lease renewal failed');
    }
  }

  async release(key: string, token: string): Promise<void> {
    try {
      await this.#redis.eval(RELEASE_LUA, 1, this.#prefix + key, token);
    } catch (err) {
      throw redisError(err, 'single-flight lease release failed');
    }
  }

  check(): Promise<void> {
    return pingRedis(this.#redis);
  }

  async close(): Promise<void> {}
}

/** PostgreSQL (table `flight_lease`, migration 001). */
export class PostgresLease implements Lease {
  readonly backend = 'postgres' as const;
  readonly #pool: PgPool;

  constructor(pool: PgPool) {
    this.#pool = pool;
  }

  async acquire(key: string, token: string, ttlMs: number): Promise<boolean> {
    try {
      const r = await this.#pool.query(`INSERT INTO flight_lease (key, token, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
        ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at WHERE flight_lease.expires_at <= now()`, [key, token, ttlMs]);
      return r.rowCount === 1;
    } catch (err) {
      throw pgError(err, 'single-flight lease failed');
    }
  }

  async renew(key: string, token: string, ttlMs: number): Promise<boolean> {
    try {
      return (await this.#pool.query(`UPDATE flight_lease SET expires_at = now() + $3 * interval '1 millisecond' WHERE key = $1 AND token = $2`, [key, token, ttlMs])).rowCount === 1;
    } catch (err) {
      throw pgError(err, 'single-flight lease renewal failed');
    }
  }

  async release(key: string, token: string): Promise<void> {
    try {
      await this.#pool.query('DELETE FROM flight_lease WHERE key = $1 AND token = $2', [key, token]);
    } catch (err) {
      throw pgError(err, 'single-flight lease release failed');
    }
  }

  check(): Promise<void> {
    return pingPostgres(this.#pool);
  }

  async close(): Promise<void> {}
}
