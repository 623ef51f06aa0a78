/**
 * {@link ReplayCache} implementations: in-process memory (one process, tests), SQLite (several processes of one host
 * sharing a file, e.g. cluster workers), Redis (`SET key 1 PXAT <expiry> NX`: one atomic command per claim) and
 * PostgreSQL (an `INSERT … ON CONFLICT` that takes over only an expired row).
 */
import type { Redis } from 'ioredis';
import { openSqlite, type SqliteDb } from './sqlite.ts';
import { pgError, pingPostgres, type PgPool } from './postgres.ts';
import { redisError, pingRedis } from './redis.ts';
import type { ReplayCache } from './types.ts';

/**
 * One process only. Bounded: beyond `maxKeys` the oldest claims are dropped (memory guard), which could let a
 * token older than every remembered one be replayed until it expires.
 */
export class MemoryReplayCache implements ReplayCache {
  readonly backend = 'memory' as const;
  /** key → expiry (ms). Insertion-ordered, so the oldest are first. */
  readonly #seen = new Map<string, number>();
  readonly #maxKeys: number;
  readonly #now: () => number;

  constructor(opts: { maxKeys?: number; now?: () => number } = {}) {
    this.#maxKeys = opts.maxKeys ?? 100_000;
    this.#now = opts.now ?? Date.now;
  }

  /** How many keys are remembered (tests, metrics). */
  get size(): number {
    return this.#seen.size;
  }

  async claim(key: string, expiresAtMs: number): Promise<boolean> {
    const now = this.#now();
    for (const [k, exp] of this.#seen) {
      if (exp > now && this.#seen.size < this.#maxKeys) break;
      this.#seen.delete(k);
    }
    const exp = this.#seen.get(key);
    if (exp !== undefined && exp > now) return false;
    this.#seen.set(key, expiresAtMs);
    return true;
  }

  async check(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Several processes of one host sharing a SQLite file (WAL). A claim is one INSERT; expired rows are swept. */
export class SqliteReplayCache implements ReplayCache {
  readonly backend = 'sqlite' as const;
  readonly #db: SqliteDb;
  readonly #owned: boolean;
  readonly #now: () => number;
  #claims = 0;

  constructor(db: SqliteDb | string, opts: { now?: () => number } = {}) {
    this.#owned = typeof db === 'string';
    this.#db = typeof db === 'string' ? openSqlite(db) : db;
    this.#now = opts.now ?? Date.now;
    this.#db.exec('CREATE TABLE IF NOT EXISTS replay_claim (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)');
  }

  async claim(key: string, expiresAtMs: number): Promise<boolean> {
    const now = this.#now();
    if (++this.#claims % 1000 === 0) this.#db.prepare('DELETE FROM replay_claim WHERE expires_at <= ?').run(now);
    // Insert, or take over a row that has expired; a live row is left alone (changes = 0 → replay).
    const info = this.#db.prepare(`INSERT INTO replay_claim (key, expires_at) VALUES (?, ?)
      ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_claim.expires_at <= ?`).run(key, expiresAtMs, now);
    return info.changes === 1;
  }

  async check(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#owned) this.#db.close();
  }
}

/** Redis: `SET <prefix><key> 1 PXAT <expiry> NX` — atomic, and Redis forgets the key when it expires. */
export class RedisReplayCache implements ReplayCache {
  readonly backend = 'redis' as const;
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, opts: { prefix?: string } = {}) {
    this.#redis = redis;
    this.#prefix = opts.prefix ?? 'frcds:jti:';
  }

  async claim(key: string, expiresAtMs: number): Promise<boolean> {
    if (expiresAtMs <= Date.now()) return true; // nothing to remember: the token is refused as expired anyway
    try {
      return (await this.#redis.set(this.#prefix + key, '1', 'PXAT', Math.ceil(expiresAtMs), 'NX')) === 'OK';
    } catch (err) {
      throw redisError(err, 'replay cache claim failed');
    }
  }

  check(): Promise<void> {
    return pingRedis(this.#redis);
  }

  async close(): Promise<void> {}
}

/** PostgreSQL (table `replay_claim`, migration 001): insert, or take over an expired row. */
export class PostgresReplayCache implements ReplayCache {
  readonly backend = 'postgres' as const;
  readonly #pool: PgPool;
  #claims = 0;

  constructor(pool: PgPool) {
    this.#pool = pool;
  }

  async claim(key: string, expiresAtMs: number): Promise<boolean> {
    try {
      if (++this.#claims % 1000 === 0) void this.#pool.query('DELETE FROM replay_claim WHERE expires_at <= now()').catch(() => undefined);
      const r = await this.#pool.query(`INSERT INTO replay_claim (key, expires_at) VALUES ($1, to_timestamp($2 / 1000.0))
        ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_claim.expires_at <= now()`, [key, expiresAtMs]);
      return r.rowCount === 1;
    } catch (err) {
      throw pgError(err, 'replay cache claim failed');
    }
  }

  check(): Promise<void> {
    return pingPostgres(this.#pool);
  }

  async close(): Promise<void> {}
}
