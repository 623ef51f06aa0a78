/**
 * {@link ReplayCache} implementations: in-process memory (one process, tests), SQLite (several processes of one host
 * sharing a file, e.g. cluster workers), Redis (one small script per claim: atomic) and PostgreSQL (an
 * `INSERT … ON CONFLICT` that takes over only an expired row, or accepts a same-body resend of an in-flight claim).
 *
 * Each claim records the hash of the request body and a state, `in-flight` until {@link ReplayCache.answered} marks
 * it `answered`. A resend with the same hash is accepted only while the claim is in flight and at most
 * `resendWindowMs` (default {@link RESEND_WINDOW_MS}) after it: a replica that died before answering leaves its claim
 * in flight, and the window bounds how long a captured token and body could be presented again.
 */
import type { Redis } from 'ioredis';
import { openSqlite, type SqliteDb } from './sqlite.ts';
import { pgError, pingPostgres, type PgPool } from './postgres.ts';
import { redisError, pingRedis } from './redis.ts';
import type { ReplayCache } from './types.ts';

/** How long after a claim a same-body resend of it is accepted while it is unanswered, ms (a retry comes within seconds). */
export const RESEND_WINDOW_MS = 60_000;

export interface ReplayCacheOptions {
  /** See {@link RESEND_WINDOW_MS}. */
  resendWindowMs?: number;
  /** For tests: the current time in ms (memory and SQLite; Redis and PostgreSQL use the server's clock for the window). */
  now?: () => number;
}

/** One remembered claim of the memory cache. */
interface Claim {
  expiresAt: number;
  bodyHash: string | undefined;
  claimedAt: number;
  answered: boolean;
}

/**
 * One process only. Bounded: beyond `maxKeys` the oldest claims are dropped (memory guard), which could let a
 * token older than every remembered one be replayed until it expires.
 */
export class MemoryReplayCache implements ReplayCache {
  readonly backend = 'memory' as const;
  /** key → claim. Insertion-ordered, so the oldest are first. */
  readonly #seen = new Map<string, Claim>();
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #windowMs: number;

  constructor(opts: ReplayCacheOptions & { maxKeys?: number } = {}) {
    this.#maxKeys = opts.maxKeys ?? 100_000;
    this.#now = opts.now ?? Date.now;
    this.#windowMs = opts.resendWindowMs ?? RESEND_WINDOW_MS;
  }

  /** How many keys are remembered (tests, metrics). */
  get size(): number {
    return this.#seen.size;
  }

  async claim(key: string, expiresAtMs: number, bodyHash?: string): Promise<boolean> {
    const now = this.#now();
    for (const [k, c] of this.#seen) {
      if (c.expiresAt > now && this.#seen.size < this.#maxKeys) break;
      this.#seen.delete(k);
    }
    const c = this.#seen.get(key);
    if (c !== undefined && c.expiresAt > now) {
      return !c.answered && bodyHash !== undefined && c.bodyHash === bodyHash && c.claimedAt > now - this.#windowMs;
    }
    this.#seen.set(key, { expiresAt: expiresAtMs, bodyHash, claimedAt: now, answered: false });
    return true;
  }

  async answered(key: string): Promise<void> {
    const c = this.#seen.get(key);
    if (c) c.answered = true;
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
  readonly #windowMs: number;
  #claims = 0;

  constructor(db: SqliteDb | string, opts: ReplayCacheOptions = {}) {
    this.#owned = typeof db === 'string';
    this.#db = typeof db === 'string' ? openSqlite(db) : db;
    this.#now = opts.now ?? Date.now;
    this.#windowMs = opts.resendWindowMs ?? RESEND_WINDOW_MS;
    // Rows of a file written before claims had a body hash and a state count as answered (never resendable).
    this.#db.exec(`CREATE TABLE IF NOT EXISTS replay_claim (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL,
      body_hash TEXT, state TEXT NOT NULL DEFAULT 'answered', claimed_at INTEGER NOT NULL DEFAULT 0)`);
    const cols = new Set((this.#db.prepare('PRAGMA table_info(replay_claim)').all() as { name: string }[]).map((c) => c.name));
    for (const [col, def] of [['body_hash', 'TEXT'], ['state', "TEXT NOT NULL DEFAULT 'answered'"], ['claimed_at', 'INTEGER NOT NULL DEFAULT 0']] as const) {
      if (cols.has(col)) continue;
      try {
        this.#db.exec(`ALTER TABLE replay_claim ADD COLUMN ${col} ${def}`);
      } catch (err) {
        // Another process of this host sharing the file added it first.
        if (!/duplicate column/i.test((err as Error).message)) throw err;
      }
    }
  }

  async claim(key: string, expiresAtMs: number, bodyHash?: string): Promise<boolean> {
    const now = this.#now();
    if (++this.#claims % 1000 === 0) this.#db.prepare('DELETE FROM replay_claim WHERE expires_at <= ?').run(now);
    // Insert, or take over a row that has expired (every column replaced), or accept a same-body resend of an
    // in-flight claim (the row left as it is); otherwise the live row is left alone (changes = 0 → replay).
    const info = this.#db.prepare(`INSERT INTO replay_claim (key, expires_at, body_hash, state, claimed_at) VALUES (@key, @exp, @hash, 'in-flight', @now)
      ON CONFLICT (key) DO UPDATE SET
        body_hash = iif(replay_claim.expires_at <= @now, excluded.body_hash, replay_claim.body_hash),
        state = iif(replay_claim.expires_at <= @now, 'in-flight', replay_claim.state),
        claimed_at = iif(replay_claim.expires_at <= @now, excluded.claimed_at, replay_claim.claimed_at),
        expires_at = iif(replay_claim.expires_at <= @now, excluded.expires_at, replay_claim.expires_at)
      WHERE replay_claim.expires_at <= @now
        OR (replay_claim.state = 'in-flight' AND replay_claim.body_hash = excluded.body_hash AND replay_claim.claimed_at > @since)`)
      .run({ key, exp: expiresAtMs, hash: bodyHash ?? null, now, since: now - this.#windowMs });
    return info.changes === 1;
  }

  async answered(key: string): Promise<void> {
    this.#db.prepare("UPDATE replay_claim SET state = 'answered' WHERE key = ?").run(key);
  }

  async check(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#owned) this.#db.close();
  }
}

/**
 * A claim in Redis, atomic as one script: a new key is set to `f|<claimed at ms>|<body hash>` (in flight) with
 * `PXAT <expiry>`; an existing one is accepted only as a same-hash resend of an in-flight claim within the window.
 * `answered` replaces the value by `a`, keeping the expiry. Keys written before claims had a state (`1`) never match.
 */
const REDIS_CLAIM = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'f|' .. ARGV[3] .. '|' .. ARGV[1], 'PXAT', ARGV[2])
  return 1
end
if ARGV[1] == '' then return 0 end
local at, h = string.match(v, '^f|(%d+)|(.+)$')
if h == ARGV[1] and tonumber(at) > tonumber(ARGV[3]) - tonumber(ARGV[4]) then return 1 end
return 0`;

/** Redis: one script per claim (see {@link REDIS_CLAIM}); Redis forgets the key when it expires. */
export class RedisReplayCache implements ReplayCache {
  readonly backend = 'redis' as const;
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #windowMs: number;

  constructor(redis: Redis, opts: ReplayCacheOptions & { prefix?: string } = {}) {
    this.#redis = redis;
    this.#prefix = opts.prefix ?? 'frcds:jti:';
    this.#windowMs = opts.resendWindowMs ?? RESEND_WINDOW_MS;
  }

  async claim(key: string, expiresAtMs: number, bodyHash?: string): Promise<boolean> {
    const now = Date.now();
    if (expiresAtMs <= now) return true; // nothing to remember: the token is refused as expired anyway
    try {
      const r = await this.#redis.eval(REDIS_CLAIM, 1, this.#prefix + key, bodyHash ?? '', Math.ceil(expiresAtMs), now, this.#windowMs);
      return r === 1;
    } catch (err) {
      throw redisError(err, 'replay cache claim failed');
    }
  }

  async answered(key: string): Promise<void> {
    try {
      await this.#redis.set(this.#prefix + key, 'a', 'KEEPTTL', 'XX');
    } catch (err) {
      throw redisError(err, 'replay cache answer mark failed');
    }
  }

  check(): Promise<void> {
    return pingRedis(this.#redis);
  }

  async close(): Promise<void> {}
}

/**
 * PostgreSQL (table `replay_claim`, migrations 001 and 012): insert, or take over an expired row, or accept a
 * same-body resend of an in-flight claim (the row left as it is).
 */
export class PostgresReplayCache implements ReplayCache {
  readonly backend = 'postgres' as const;
  readonly #pool: PgPool;
  readonly #windowMs: number;
  #claims = 0;

  constructor(pool: PgPool, opts: ReplayCacheOptions = {}) {
    this.#pool = pool;
    this.#windowMs = opts.resendWindowMs ?? RESEND_WINDOW_MS;
  }

  async claim(key: string, expiresAtMs: number, bodyHash?: string): Promise<boolean> {
    try {
      if (++this.#claims % 1000 === 0) void this.#pool.query('DELETE FROM replay_claim WHERE expires_at <= now()').catch(() => undefined);
      const r = await this.#pool.query(`INSERT INTO replay_claim (key, expires_at, body_hash, state, claimed_at)
          VALUES ($1, to_timestamp($2 / 1000.0), $3, 'in-flight', now())
        ON CONFLICT (key) DO UPDATE SET
          body_hash = CASE WHEN replay_claim.expires_at <= now() THEN excluded.body_hash ELSE replay_claim.body_hash END,
          state = CASE WHEN replay_claim.expires_at <= now() THEN 'in-flight' ELSE replay_claim.state END,
          claimed_at = CASE WHEN replay_claim.expires_at <= now() THEN excluded.claimed_at ELSE replay_claim.claimed_at END,
          expires_at = CASE WHEN replay_claim.expires_at <= now() THEN excluded.expires_at ELSE replay_claim.expires_at END
        WHERE replay_claim.expires_at <= now()
          OR (replay_claim.state = 'in-flight' AND replay_claim.body_hash = excluded.body_hash
            AND replay_claim.claimed_at > now() - $4 * interval '1 millisecond')`, [key, expiresAtMs, bodyHash ?? null, this.#windowMs]);
      return r.rowCount === 1;
    } catch (err) {
      throw pgError(err, 'replay cache claim failed');
    }
  }

  async answered(key: string): Promise<void> {
    try {
      await this.#pool.query("UPDATE replay_claim SET state = 'answered' WHERE key = $1", [key]);
    } catch (err) {
      throw pgError(err, 'replay cache answer mark failed');
    }
  }

  check(): Promise<void> {
    return pingPostgres(this.#pool);
  }

  async close(): Promise<void> {}
}
