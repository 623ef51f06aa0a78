/**
 * PostgreSQL for shared state (`DATABASE_URL`): one `pg` Pool per process and the schema migrations.
 *
 * Migrations are plain SQL files `server/state/migrations/NNN-name.sql`, applied in file-name order at start. Each
 * file runs in its own transaction together with the row that records it in `schema_migrations(version)`, so a file
 * is either applied and recorded or not at all. A session-level advisory lock is held for the whole run, so two
 * replicas starting together do not race: the second waits, then finds everything applied. Applied files must not
 * be edited; a change is a new file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from '../logging.ts';
import { StateUnavailableError } from './types.ts';

export type PgPool = pg.Pool;

/** Folder of the migration files shipped with the service. */
export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');

/** Advisory-lock key of the migration run (an arbitrary constant: "frcds" + "mig" as digits). */
export const MIGRATION_LOCK_KEY = 7_263_711_645;

const MIGRATION_FILE = /^(\d{3,})-[a-z0-9-]+\.sql$/;

export interface PgPoolOptions {
  /** Most connections this process opens (default 10). */
  max?: number;
  /** How long a query waits for a connection before failing, ms (default 3000). */
  connectionTimeoutMs?: number;
  /** Server-side statement time-out, ms (default 10 000): a stuck query fails rather than holding a request. */
  statementTimeoutMs?: number;
  logger?: Logger;
}

/**
 * A pool on `url`. A connection that breaks while idle is logged and replaced (pg emits `error` on the pool, which
 * would otherwise crash the process); queries on a pool whose server is down reject.
 */
export function createPgPool(url: string, opts: PgPoolOptions = {}): PgPool {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMs ?? 3000,
    idleTimeoutMillis: 30_000,
    statement_timeout: opts.statementTimeoutMs ?? 10_000,
    application_name: 'fracture-risk-cds',
  });
  pool.on('error', (err) => opts.logger?.warn({ err: err.message }, 'postgres: an idle connection failed; it is replaced on next use'));
  return pool;
}

/** Wraps a pg/network failure into {@link StateUnavailableError} (typed errors pass through). */
export function pgError(err: unknown, what: string): StateUnavailableError {
  if (err instanceof StateUnavailableError) return err;
  return new StateUnavailableError('postgres', `${what}: ${(err as Error).message}`, { cause: err });
}

/** Resolves when the server answers `SELECT 1`. */
export async function pingPostgres(pool: PgPool): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    throw pgError(err, 'not reachable');
  }
}

export interface MigrationFile {
  version: string;
  file: string;
  sql: string;
}

/** The migration files of `dir`, in order (`NNN-name.sql`; anything else in the folder is ignored). */
export function migrationFiles(dir: string = MIGRATIONS_DIR): MigrationFile[] {
  return readdirSync(dir)
    .filter((f) => MIGRATION_FILE.test(f))
    .sort()
    .map((file) => ({ version: file.replace(/\.sql$/, ''), file, sql: readFileSync(join(dir, file), 'utf8') }));
}

/**
 * Applies the migrations of `dir` that are not applied yet, in order; resolves to the versions applied now.
 * Safe to call from several replicas at once (advisory lock).
 */
export async function migrate(pool: PgPool, opts: { dir?: string; logger?: Logger } = {}): Promise<string[]> {
  const files = migrationFiles(opts.dir);
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw pgError(err, 'migrations could not connect');
  }
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      const done = new Set((await client.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      for (const m of files) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [m.version]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new StateUnavailableError('postgres', `migration ${m.file} failed: ${(err as Error).message}`, { cause: err });
        }
        applied.push(m.version);
        opts.logger?.info({ migration: m.version }, 'postgres: migration applied');
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    }
  } catch (err) {
    throw pgError(err, 'migrations failed');
  } finally {
    client.release();
  }
  return applied;
}
