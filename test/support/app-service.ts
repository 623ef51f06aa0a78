/**
 * `npm start` as a child process for the SMART app's browser test, bench/app.ts and the end-to-end suite: the
 * composition root (server/index.ts) on a free loopback port with the committed demo cohort and models, stopped by
 * its PID. Resolves once the service is up (sandboxes seeded, models loaded, app bundle built): its start-up log
 * line, or `/readyz` answering 200.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../../server/config.ts';
import { freePort } from './net.ts';

export interface AppService {
  base: string;
  port: number;
  child: ChildProcess;
  /** Everything the process wrote (JSON log lines). */
  output(): string;
  stop(): Promise<void>;
}

export async function startAppService(env: Record<string, string> = {}, timeoutMs = 90_000): Promise<AppService> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'server/index.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', PUBLIC_BASE_URL: base, LOG_LEVEL: 'info', INFERENCE_DEVICE: 'cpu', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + timeoutMs;
  const ready = async (): Promise<boolean> => {
    if (out.includes('Fracture Risk CDS is up')) return true;
    try {
      return (await fetch(`${base}/readyz`)).status === 200;
    } catch {
      return false;
    }
  };
  // The "is up" line is logged at info (or warn when not ready); with a quieter LOG_LEVEL, /readyz answering 200 tells.
  while (!(await ready())) {
    if (child.exitCode !== null) throw new Error(`service exited early (${child.exitCode}): ${out.slice(-2000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`service did not start within ${timeoutMs} ms: ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    base,
    port,
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
