/**
 * Opening the state while a backend is down: the service stays up but not ready (the probe names the error), keeps
 * retrying, and is ready once the backend answers; a verifier built before then waits briefly, then fails clearly.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { it } from 'node:test';
import { freePort } from '../../test/support/net.ts';
import { REDIS_SERVER, redisServerInstalled } from '../../test/support/redis.ts';
import { deferredReplayCache, openStateInBackground } from './stores.ts';
import { StateUnavailableError } from './types.ts';

it('a Redis that is down at start: not ready with the error, retried, ready once it answers; deferred claims then work', async (t) => {
  if (!redisServerInstalled()) {
    if (process.env['CI'] === 'true') throw new Error('CI=true but redis-server is not installed');
    return t.skip('redis-server is not installed');
  }
  const port = await freePort();
  const handle = openStateInBackground({ databaseUrl: undefined, redisUrl: `redis://127.0.0.1:${port}`, dbPath: ':memory:' }, { retryMs: 200 });
  const replay = deferredReplayCache(handle.stores, 300);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const before = await handle.probe();
    assert.equal(before.ok, false);
    assert.match(before.detail, /redis/);
    await assert.rejects(replay.claim('k', Date.now() + 60_000), (e: unknown) => e instanceof StateUnavailableError && /not open yet/.test(e.message));
    // The backend comes up on that port: the next attempt opens the stores.
    const redis = await startRedisOn(port);
    try {
      await handle.stores;
      assert.deepEqual(await handle.probe(), { ok: true, detail: 'replay: redis, results: redis, flight: redis' });
      assert.equal(await replay.claim('k', Date.now() + 60_000), true);
      assert.equal(await replay.claim('k', Date.now() + 60_000), false);
      assert.equal(replay.backend, 'redis');
    } finally {
      await handle.close();
      await redis.stop();
    }
  } finally {
    await handle.close();
  }
});

/** redis-server on a chosen port (test/support/redis.ts picks its own; this test must name the port in advance). */
async function startRedisOn(port: number): Promise<{ stop(): Promise<void> }> {
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  return {
    stop: () => new Promise<void>((r) => {
      if (child.exitCode !== null) return r();
      child.once('exit', () => r());
      child.kill('SIGTERM');
    }),
  };
}
