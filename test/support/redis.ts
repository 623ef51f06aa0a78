/**
 * Starts Debian's redis-server (`/usr/bin/redis-server`, package `redis-server`) on a free loopback port with a
 * temporary folder and no persistence, for tests and benchmarks of the BullMQ queue; stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './net.ts';

export const REDIS_SERVER = '/usr/bin/redis-server';

export function redisServerInstalled(): boolean {
  return existsSync(REDIS_SERVER);
}

export interface RedisHandle {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const exited = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

export async function startRedis(): Promise<RedisHandle> {
  if (!redisServerInstalled()) throw new Error(`${REDIS_SERVER} is not installed (Debian package "redis-server"; run \`npm run setup\`)`);
  const dir = mkdtempSync(join(tmpdir(), 'frcds-redis-'));
  const port = await freePort();
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'], { stdio: 'ignore' });
  const onExit = (): void => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  };
  process.once('exit', onExit);
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined); // refused while the server starts: expected, polled again
    try {
      await r.connect();
      if ((await r.ping()) === 'PONG') {
        r.disconnect();
        break;
      }
    } catch {
      r.disconnect();
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('redis-server did not start');
    await new Promise((res) => setTimeout(res, 50));
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      process.removeListener('exit', onExit);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
