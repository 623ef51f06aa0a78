/**
 * The embedded state file (`STATE_DB`): one SQLite database in WAL mode that every process of one host may open —
 * the replay cache, assessment results and single-flight leases of `npm start` (and of cluster workers) live here.
 * `busy_timeout` lets a writer wait briefly for another process's write instead of failing at once.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDb = Database.Database;

/** Opens (creating with its folder when needed) the database at `path`; `:memory:` for a throw-away one. */
export function openSqlite(path: string): SqliteDb {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 2000');
  return db;
}
