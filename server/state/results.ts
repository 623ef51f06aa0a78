/**
 * {@link ResultStore} implementations: SQLite (the embedded default, a file, so an assessment id survives a restart
 * of `npm start`), PostgreSQL (table `assessment_result`, migration 001) and Redis (a hash per id plus a key → id
 * pointer, both with the TTL; as durable as the Redis server is configured to be).
 *
 * Results past their TTL are never returned; the SQL stores delete them in a sweep every few hundred writes.
 */
import type { Redis } from 'ioredis';
import { openSqlite, type SqliteDb } from './sqlite.ts';
import { pgError, pingPostgres, type PgPool } from './postgres.ts';
import { pingRedis, redisError } from './redis.ts';
import type { ResultImages, ResultRecord, ResultStore } from './types.ts';

const SWEEP_EVERY = 500;

interface Row {
  id: string;
  cache_key: string;
  body: string;
  display_png: Buffer | null;
  overlay_png: Buffer | null;
}

const fromRow = (r: Row | undefined): ResultRecord | undefined =>
  r && { id: r.id, cacheKey: r.cache_key, body: r.body, images: r.display_png && r.overlay_png ? { display: r.display_png, overlay: r.overlay_png } : null };

export class SqliteResultStore implements ResultStore {
  readonly backend = 'sqlite' as const;
  readonly #db: SqliteDb;
  readonly #owned: boolean;
  readonly #now: () => number;
  #writes = 0;

  constructor(db: SqliteDb | string, opts: { now?: () => number } = {}) {
    this.#owned = typeof db === 'string';
    this.#db = typeof db === 'string' ? openSqlite(db) : db;
    this.#now = opts.now ?? Date.now;
    this.#db.exec(`CREATE TABLE IF NOT EXISTS assessment_result (
      id TEXT PRIMARY KEY, cache_key TEXT NOT NULL, body TEXT NOT NULL, display_png BLOB, overlay_png BLOB,
      created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS assessment_result_key ON assessment_result (cache_key, created_at DESC);
      CREATE INDEX IF NOT EXISTS assessment_result_expires ON assessment_result (expires_at);`);
  }

  async put(r: ResultRecord, ttlMs: number): Promise<void> {
    const now = this.#now();
    if (++this.#writes % SWEEP_EVERY === 0) this.#db.prepare('DELETE FROM assessment_result WHERE expires_at <= ?').run(now);
    this.#db.prepare(`INSERT OR REPLACE INTO assessment_result VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .run(r.id, r.cacheKey, r.body, r.images?.display ?? null, r.images?.overlay ?? null, now, now + ttlMs);
  }

  async attachImages(id: string, images: ResultImages): Promise<void> {
    this.#db.prepare('UPDATE assessment_result SET display_png = ?, overlay_png = ? WHERE id = ?').run(images.display, images.overlay, id);
  }

  async byId(id: string): Promise<ResultRecord | undefined> {
    return fromRow(this.#db.prepare('SELECT id, cache_key, body, display_png, overlay_png FROM assessment_result WHERE id = ? AND expires_at > ?').get(id, this.#now()) as Row | undefined);
  }

  async byKey(cacheKey: string): Promise<ResultRecord | undefined> {
    return fromRow(this.#db.prepare(`SELECT id, cache_key, body, display_png, overlay_png FROM assessment_result
      WHERE cache_key = ? AND expires_at > ? ORDER BY created_at DESC LIMIT 1`).get(cacheKey, this.#now()) as Row | undefined);
  }

  async check(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#owned) this.#db.close();
  }
}

export class PostgresResultStore implements ResultStore {
  readonly backend = 'postgres' as const;
  readonly #pool: PgPool;
  #writes = 0;

  constructor(pool: PgPool) {
    this.#pool = pool;
  }

  async put(r: ResultRecord, ttlMs: number): Promise<void> {
    try {
      if (++this.#writes % SWEEP_EVERY === 0) void this.#pool.query('DELETE FROM assessment_result WHERE expires_at <= now()').catch(() => undefined);
      await this.#pool.query(`INSERT INTO assessment_result (id, cache_key, body, display_png, overlay_png, expires_at)
        VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 millisecond')
        ON CONFLICT (id) DO UPDATE SET cache_key = excluded.cache_key, body = excluded.body, display_png = excluded.display_png,
          overlay_png = excluded.overlay_png, expires_at = excluded.expires_at`,
      [r.id, r.cacheKey, r.body, r.images?.display ?? null, r.images?.overlay ?? null, ttlMs]);
    } catch (err) {
      throw pgError(err, 'storing an assessment result failed');
    }
  }

  async attachImages(id: string, images: ResultImages): Promise<void> {
    try {
      await this.#pool.query('UPDATE assessment_result SET display_png = $2, overlay_png = $3 WHERE id = $1', [id, images.display, images.overlay]);
    } catch (err) {
      throw pgError(err, 'storing assessment images failed');
    }
  }

  async byId(id: string): Promise<ResultRecord | undefined> {
    try {
      const r = await this.#pool.query<Row>('SELECT id, cache_key, body, display_png, overlay_png FROM assessment_result WHERE id = $1 AND expires_at > now()', [id]);
      return fromRow(r.rows[0]);
    } catch (err) {
      throw pgError(err, 'reading an assessment result failed');
    }
  }

  async byKey(cacheKey: string): Promise<ResultRecord | undefined> {
    try {
      const r = await this.#pool.query<Row>(`SELECT id, cache_key, body, display_png, overlay_png FROM assessment_result
        WHERE cache_key = $1 AND expires_at > now() ORDER BY created_at DESC LIMIT 1`, [cacheKey]);
      return fromRow(r.rows[0]);
    } catch (err) {
      throw pgError(err, 'reading an assessment result failed');
    }
  }

  check(): Promise<void> {
    return pingPostgres(this.#pool);
  }

  async close(): Promise<void> {}
}

export class RedisResultStore implements ResultStore {
  readonly backend = 'redis' as const;
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, opts: { prefix?: string } = {}) {
    this.#redis = redis;
    this.#prefix = opts.prefix ?? 'frcds:result:';
  }

  async put(r: ResultRecord, ttlMs: number): Promise<void> {
    const idKey = `${this.#prefix}id:${r.id}`;
    const fields: Record<string, string | Buffer> = { key: r.cacheKey, body: r.body };
    if (r.images) Object.assign(fields, { display: r.images.display, overlay: r.images.overlay });
    try {
      await this.#redis.multi().del(idKey).hset(idKey, fields).pexpire(idKey, ttlMs).set(`${this.#prefix}key:${r.cacheKey}`, r.id, 'PX', ttlMs).exec();
    } catch (err) {
      throw redisError(err, 'storing an assessment result failed');
    }
  }

  async attachImages(id: string, images: ResultImages): Promise<void> {
    const idKey = `${this.#prefix}id:${id}`;
    try {
      // Only onto an existing (unexpired) result: a plain HSET would create a hash without a TTL.
      await this.#redis.eval(`if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'display', ARGV[1], 'overlay', ARGV[2]) end return 0`, 1, idKey, images.display, images.overlay);
    } catch (err) {
      throw redisError(err, 'storing assessment images failed');
    }
  }

  async byId(id: string): Promise<ResultRecord | undefined> {
    try {
      const h = await this.#redis.hgetallBuffer(`${this.#prefix}id:${id}`);
      if (!h['body'] || !h['key']) return undefined;
      return { id, cacheKey: h['key'].toString('utf8'), body: h['body'].toString('utf8'), images: h['display'] && h['overlay'] ? { display: h['display'], overlay: h['overlay'] } : null };
    } catch (err) {
      throw redisError(err, 'reading an assessment result failed');
    }
  }

  async byKey(cacheKey: string): Promise<ResultRecord | undefined> {
    let id: string | null;
    try {
      id = await this.#redis.get(`${this.#prefix}key:${cacheKey}`);
    } catch (err) {
      throw redisError(err, 'reading an assessment result failed');
    }
    return id ? this.byId(id) : undefined;
  }

  check(): Promise<void> {
    return pingRedis(this.#redis);
  }

  async close(): Promise<void> {}
}
