/**
 * Helpers for the process-lifecycle tests: the service started the way an operator starts it (`npm start`,
 * `node dist/server/index.js`) in its own process group, with a unique environment marker so a leftover process can
 * be found however it was re-parented, plus a small data folder and port checks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../server/config.ts';

/** Environment variable whose value marks every process of one test start (inherited by all descendants). */
export const MARKER = 'FRCDS_LIFECYCLE_TEST';

export interface Started {
  readonly child: ChildProcess;
  /** PID of the process spawned (npm, or node) = its process group id (spawned detached). */
  readonly pid: number;
  readonly marker: string;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the first output line matching `re`. */
  line(re: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves when the spawned process exited: its status, signal and the time of exit. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Last-resort clean-up: SIGKILL to the test's own process group. */
  kill(): void;
}

/** A small cohort (the fixture FHIR bundles and DICOM files) in a throw-away folder, with room for SQLite files. */
export function smallDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'frcds-lifecycle-'));
  cpSync(join(REPO_ROOT, 'test/fixtures/fhir-cohort/fhir'), join(dir, 'fhir'), { recursive: true });
  cpSync(join(REPO_ROOT, 'test/fixtures/dicom'), join(dir, 'dicom'), { recursive: true, filter: (src) => !src.endsWith('.json') });
  return dir;
}

/** The settings of a quick, self-contained start on `port` with data and databases in `dataDir`. */
export function serviceEnv(port: number, dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    SANDBOX_DATA_DIR: dataDir,
    MODELS_DIR: join(REPO_ROOT, 'test/fixtures/models'),
    INFERENCE_DEVICE: 'cpu',
    CDS_FEEDBACK_DB: join(dataDir, 'cds.sqlite'),
    FLS_AUDIT_DB: join(dataDir, 'fls-audit.sqlite'),
    JOBS_DB_PATH: join(dataDir, 'jobs.sqlite'),
    STATE_DB: join(dataDir, 'state.sqlite'),
    ...extra,
  };
}

/** Spawns `command args` in the repository, detached (own process group), with the marker in its environment. */
export function startProcess(command: string, args: readonly string[], env: Record<string, string>): Started {
  const marker = randomUUID();
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, [MARKER]: marker },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  const waiters: { re: RegExp; resolve(l: string): void }[] = [];
  const onData = (d: Buffer): void => {
    out += d.toString();
    for (const w of [...waiters]) {
      const hit = out.split('\n').find((l) => w.re.test(l));
      if (hit !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const pid = child.pid!;
  const kill = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  };
  process.once('exit', kill);
  return {
    child,
    pid,
    marker,
    output: () => out,
    line: (re, timeoutMs) =>
      new Promise<string>((resolve, reject) => {
        const hit = out.split('\n').find((l) => re.test(l));
        if (hit !== undefined) return resolve(hit);
        const timer = setTimeout(() => reject(new Error(`no output line matching ${re} within ${timeoutMs} ms; output:\n${out.slice(-4000)}`)), timeoutMs);
        waiters.push({ re, resolve: (l) => (clearTimeout(timer), resolve(l)) });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          const late = out.split('\n').find((l) => re.test(l));
          if (late !== undefined) resolve(late);
          else reject(new Error(`exited (${code ?? signal}) before printing a line matching ${re}; output:\n${out.slice(-4000)}`));
        });
      }),
    exited,
    kill,
  };
}

/** PIDs of the live processes whose environment carries `marker` (Linux /proc). */
export function markedProcesses(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, 'latin1');
      if (env.split('\0').includes(`${MARKER}=${marker}`)) {
        const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
        if (!/^\d+ \(.*\) Z /.test(stat)) found.push(Number(name)); // a zombie is already dead
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** True while some process of process group `pgid` exists. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when a TCP connection to 127.0.0.1:port is accepted. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(2000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Polls `fn` every 50 ms until it is true; false if `ms` passed first. */
export async function eventually(fn: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
