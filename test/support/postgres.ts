/**
 * Starts Debian's PostgreSQL (package `postgresql`) for a test: `initdb` into a temporary data directory, the server
 * on a free loopback port with its socket in that directory, no fsync (test data only); stopped by its PID and
 * deleted by {@link PostgresHandle.stop}. The binaries come from `pg_config --bindir`, /usr/lib/postgresql/<n>/bin or
 * the PATH. PostgreSQL refuses to run as root, so under root the server runs as the `postgres` system user.
 *
 * {@link postgresOrSkip} lets a test skip with a warning when PostgreSQL is missing on a developer machine, and fail
 * under `CI=true` (where `.ci/setup` installs it).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './net.ts';

export interface PostgresHandle {
  /** `postgres://` URL of the `postgres` database (superuser `frcds`, trust auth on loopback). */
  url: string;
  pid: number;
  /** Creates an empty database and returns its URL (tests that want a clean schema each). */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

const exited = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

/** The folder holding `initdb` and `postgres`, or undefined when PostgreSQL is not installed. */
export function postgresBinDir(): string | undefined {
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // pg_config comes with libpq-dev, which may be missing: try the Debian layout and the PATH
  }
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const v of readdirSync(debian).sort((a, b) => Number(b) - Number(a))) candidates.push(join(debian, v, 'bin'));
  }
  for (const dir of (process.env['PATH'] ?? '').split(':')) if (dir) candidates.push(dir);
  return candidates.find((d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'postgres')));
}

export function postgresInstalled(): boolean {
  return postgresBinDir() !== undefined;
}

/** The uid/gid to run the server as: ourselves, or the `postgres` system user under root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error('running as root and there is no "postgres" user to run PostgreSQL as (install the Debian package "postgresql")');
  }
}

export async function startPostgres(): Promise<PostgresHandle> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed (Debian package "postgresql"; run `npm run setup`)');
  const user = serverUser();
  const dir = mkdtempSync(join(tmpdir(), 'frcds-pg-'));
  const data = join(dir, 'data');
  if (user) chownSync(dir, user.uid, user.gid);
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'frcds', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'], { stdio: 'ignore', ...as });
  const port = await freePort();
  const child = spawn(join(bin, 'postgres'), [
    '-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`,
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200',
  ], { stdio: 'ignore', ...as });
  const onExit = (): void => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  };
  process.once('exit', onExit);
  const url = `postgres://frcds@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      break;
    } catch {
      await c.end().catch(() => undefined);
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      onExit();
      rmSync(dir, { recursive: true, force: true });
      throw new Error('postgres did not start');
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  return {
    url,
    pid: child.pid!,
    async createDatabase(name: string) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url.replace(/\/postgres$/, `/${name}`);
    },
    async stop() {
      process.removeListener('exit', onExit);
      // SIGINT = "fast shutdown": open sessions are ended, nothing is kept (the folder goes next).
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await exited(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * PostgreSQL for a test, or undefined (with a warning) when it is not installed outside CI; under `CI=true` a
 * missing PostgreSQL is an error.
 */
export async function postgresOrSkip(t?: { skip(message?: string): void }): Promise<PostgresHandle | undefined> {
  if (!postgresInstalled()) {
    if (process.env['CI'] === 'true') throw new Error('PostgreSQL is required in CI (Debian package "postgresql", installed by .ci/setup)');
    console.warn('warning: PostgreSQL is not installed; skipping (install the Debian package "postgresql")');
    t?.skip('PostgreSQL is not installed');
    return undefined;
  }
  return startPostgres();
}
