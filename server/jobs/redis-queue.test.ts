/**
 * The Redis coordination hashes (`frcds:jobs:done`, `frcds:jobs:latest`) are bounded: a field not written for the
 * retention period is dropped by later writes; a recent one stays; fields written before their times were kept are
 * given one at start. Real redis-server (test/support/redis.ts): skipped with a warning outside CI, fails with CI=true.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../test/support/demo-stack.ts';
import { redisServerInstalled, startRedis, type RedisHandle } from '../../test/support/redis.ts';
import { RedisJobQueue } from './redis-queue.ts';
import type { JobOutcome } from './types.ts';

const inCi = process.env['CI'] === 'true';
let redis: RedisHandle | undefined;

before(async () => {
  if (redisServerInstalled()) redis = await startRedis();
  else if (inCi) throw new Error('CI=true but redis-server is not installed');
  else console.warn('warning: redis-server is not installed; the Redis job-coordination test is skipped');
});
after(async () => {
  await redis?.stop();
});

const finished = (key: string): JobOutcome => ({ status: 'skipped', reason: 'duplicate', key });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it('completed keys and newest versions not written for the retention period are dropped; recent ones stay', async (t) => {
  if (!redis) return t.skip('redis-server is not installed');
  const url = `${redis.url}/3`;
  const direct = new Redis(url);
  // Written by an older version of the code: no times kept.
  await direct.hset('frcds:jobs:done', 'legacy:1', 'done');
  await direct.hset('frcds:jobs:latest', 'legacy', '0001');
  const queue = new RedisJobQueue({ url, maxAttempts: 1, backoffMs: 10, leaseMs: 1000, logger: silentLogger(), keysRetentionMs: 400 });
  try {
    const c = queue.coordination;
    await c.markDone('r1:1', finished('r1:1'));
    await c.setLatestVersion('r1', '0001');
    assert.equal(await c.isDone('r1:1'), true);
    assert.equal(await c.latestVersion('r1'), '0001');
    await sleep(250);
    assert.equal(await direct.zscore('frcds:jobs:done:at', 'legacy:1') !== null, true, 'the legacy field was given a time at start');
    await c.markDone('r2:1', finished('r2:1'));
    await c.setLatestVersion('r2', '0001');
    assert.equal(await c.isDone('r1:1'), true, 'within the retention period');
    await sleep(300);
    // r1 and the legacy fields are now older than 400 ms, r2 is not: the next writes drop the old ones.
    await c.markDone('r3:1', finished('r3:1'));
    await c.setLatestVersion('r3', '0001');
    assert.equal(await c.isDone('r1:1'), false, 'dropped after the retention period');
    assert.equal(await c.isDone('legacy:1'), false, 'a field written before times were kept is dropped too');
    assert.equal(await c.latestVersion('r1'), null);
    assert.equal(await c.latestVersion('legacy'), null);
    assert.equal(await c.isDone('r2:1'), true);
    assert.equal(await c.latestVersion('r2'), '0001');
    assert.deepEqual((await direct.hkeys('frcds:jobs:done')).sort(), ['r2:1', 'r3:1']);
    assert.equal(await direct.zcard('frcds:jobs:done:at'), 2, 'the time index shrinks with the hash');
    assert.equal(await direct.hlen('frcds:jobs:latest'), 2);
    // A newer version refreshes the report's time; an older one changes nothing.
    await c.setLatestVersion('r2', '0002');
    await c.setLatestVersion('r2', '0000');
    assert.equal(await c.latestVersion('r2'), '0002');
  } finally {
    await queue.reset();
    await queue.close();
    direct.disconnect();
  }
});
