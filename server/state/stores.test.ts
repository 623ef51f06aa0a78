/**
 * The state stores on every backend, with two "replicas" (two independent store objects, each with its own
 * connection) sharing one backend: a claimed key is refused by the other; a result stored by one is read by the
 * other; two replicas asked for the same key compute once. Real Redis and PostgreSQL (test/support).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { postgresInstalled, startPostgres, type PostgresHandle } from '../../test/support/postgres.ts';
import { redisServerInstalled, startRedis, type RedisHandle } from '../../test/support/redis.ts';
import { MemoryReplayCache, SqliteReplayCache } from './replay.ts';
import { openStateStores, type StateSettings, type StateStores } from './stores.ts';
import { StateUnavailableError, type ResultRecord } from './types.ts';

const inCi = process.env['CI'] === 'true';
let redis: RedisHandle | undefined;
let pg: PostgresHandle | undefined;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'frcds-state-'));
  if (redisServerInstalled()) redis = await startRedis();
  else if (inCi) throw new Error('CI=true but redis-server is not installed');
  else console.warn('warning: redis-server is not installed; the Redis state tests are skipped');
  if (postgresInstalled()) pg = await startPostgres();
  else if (inCi) throw new Error('CI=true but PostgreSQL is not installed');
  else console.warn('warning: PostgreSQL is not installed; the PostgreSQL state tests are skipped');
});
after(async () => {
  await redis?.stop();
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const record = (id: string, key: string, images = false): ResultRecord => ({
  id, cacheKey: key, body: JSON.stringify({ assessment: { id, cacheKey: key } }),
  images: images ? { display: Buffer.from([1, 2, 3]), overlay: Buffer.from([4, 5]) } : null,
});

let dbCount = 0;
const variants: { name: string; settings: () => Promise<StateSettings | undefined>; expect: StateStores['backends'] }[] = [
  { name: 'embedded SQLite (two processes of one host share the file)', settings: async () => ({ databaseUrl: undefined, redisUrl: undefined, dbPath: join(dir, `state-${++dbCount}.sqlite`) }), expect: { replay: 'sqlite', results: 'sqlite', flight: 'sqlite' } },
  { name: 'Redis only', settings: async () => (redis ? { databaseUrl: undefined, redisUrl: `${redis.url}/${++dbCount % 16}`, dbPath: ':memory:' } : undefined), expect: { replay: 'redis', results: 'redis', flight: 'redis' } },
  { name: 'PostgreSQL only', settings: async () => (pg ? { databaseUrl: await pg.createDatabase(`only_${++dbCount}`), redisUrl: undefined, dbPath: ':memory:' } : undefined), expect: { replay: 'postgres', results: 'postgres', flight: 'postgres' } },
  { name: 'Redis and PostgreSQL', settings: async () => (pg && redis ? { databaseUrl: await pg.createDatabase(`both_${++dbCount}`), redisUrl: `${redis.url}/${++dbCount % 16}`, dbPath: ':memory:' } : undefined), expect: { replay: 'redis', results: 'postgres', flight: 'redis' } },
];

for (const v of variants) {
  describe(`state stores: ${v.name}`, () => {
    let a: StateStores | undefined;
    let b: StateStores | undefined;
    before(async () => {
      const s = await v.settings();
      if (!s) return;
      a = await openStateStores(s, { flight: { pollMs: 10 } });
      b = await openStateStores(s, { flight: { pollMs: 10 } });
    });
    after(async () => {
      await a?.close();
      await b?.close();
    });

    it('uses the documented backends and answers the health check', async (t) => {
      if (!a || !b) return t.skip('backend not installed');
      assert.deepEqual(a.backends, v.expect);
      await a.check();
    });

    it('a key claimed on one replica is refused on the other until it expires', async (t) => {
      if (!a || !b) return t.skip('backend not installed');
      const exp = Date.now() + 60_000;
      assert.equal(await a.replay.claim('iss|jti-1', exp), true);
      assert.equal(await b.replay.claim('iss|jti-1', exp), false, 'replayed on the other replica');
      assert.equal(await a.replay.claim('iss|jti-1', exp), false, 'replayed on the same replica');
      assert.equal(await b.replay.claim('iss|jti-2', exp), true);
      // A claim that has expired may be claimed again (the token is refused as expired anyway).
      assert.equal(await a.replay.claim('iss|short', Date.now() + 150), true);
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(await b.replay.claim('iss|short', Date.now() + 60_000), true);
      // Only one of many simultaneous claims of one key wins.
      const wins = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a! : b!).replay.claim('iss|race', Date.now() + 60_000)));
      assert.equal(wins.filter(Boolean).length, 1);
    });

    it('a byte-identical resend is accepted on the other replica only while the first use is unanswered', async (t) => {
      if (!a || !b) return t.skip('backend not installed');
      const exp = Date.now() + 60_000;
      assert.equal(await a.replay.claim('iss|resend', exp, 'hash-1'), true);
      assert.equal(await b.replay.claim('iss|resend', exp, 'hash-2'), false, 'another body is a replay');
      assert.equal(await b.replay.claim('iss|resend', exp), false, 'a claim without a body hash is a replay');
      assert.equal(await b.replay.claim('iss|resend', exp, 'hash-1'), true, 'the same body while in flight: an idempotent retry');
      assert.equal(await a.replay.claim('iss|resend', exp, 'hash-1'), true, 'and again on the first replica');
      await a.replay.answered('iss|resend');
      assert.equal(await b.replay.claim('iss|resend', exp, 'hash-1'), false, 'after the answer even the same body is a replay');
      assert.equal(await a.replay.claim('iss|resend', exp, 'hash-1'), false);
      // A claim made without a hash is never resendable, and marking an unknown key is harmless.
      assert.equal(await a.replay.claim('iss|nohash', exp), true);
      assert.equal(await b.replay.claim('iss|nohash', exp), false);
      await b.replay.answered('iss|never-claimed');
      assert.equal(await b.replay.claim('iss|never-claimed', exp, 'h'), true);
    });

    it('a result stored by one replica is found by id and by cache key on the other; images attach later; TTL', async (t) => {
      if (!a || !b) return t.skip('backend not installed');
      await a.results.put(record('A1', 'K1'), 60_000);
      const byId = await b.results.byId('A1');
      assert.equal(byId?.cacheKey, 'K1');
      assert.equal(byId?.images, null);
      assert.deepEqual(JSON.parse(byId!.body), { assessment: { id: 'A1', cacheKey: 'K1' } });
      assert.equal((await b.results.byKey('K1'))?.id, 'A1');
      await a.results.attachImages('A1', { display: Buffer.from([9, 8]), overlay: Buffer.from([7]) });
      const withImages = await b.results.byId('A1');
      assert.deepEqual([...withImages!.images!.display], [9, 8]);
      assert.deepEqual([...withImages!.images!.overlay], [7]);
      await a.results.put(record('A2', 'K2', true), 300);
      assert.ok(await b.results.byId('A2'));
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await b.results.byId('A2'), undefined, 'expired');
      assert.equal(await b.results.byKey('K2'), undefined, 'expired');
      assert.equal(await b.results.byId('nope'), undefined);
    });

    it('two replicas asked for the same key at once compute it once; the waiter reads the leader\'s result', async (t) => {
      if (!a || !b) return t.skip('backend not installed');
      let calls = 0;
      const key = `flight-${v.name}`;
      const compute = (store: StateStores) => async (): Promise<string> => {
        calls++;
        await new Promise((r) => setTimeout(r, 150));
        await store.results.put(record(`R-${key}`, key), 60_000);
        return `R-${key}`;
      };
      const read = (store: StateStores) => async (): Promise<string | undefined> => (await store.results.byKey(key))?.id;
      const outs = await Promise.all([
        a.flight.run(key, compute(a), read(a)),
        b.flight.run(key, compute(b), read(b)),
        a.flight.run(key, compute(a), read(a)),
        b.flight.run(key, compute(b), read(b)),
      ]);
      assert.equal(calls, 1, 'computed once');
      assert.deepEqual(outs.map((o) => o.value), Array(4).fill(`R-${key}`));
      assert.equal(outs.filter((o) => o.led).length, 1);
    });

    it('when the leader fails, a waiting replica computes it', async (t) => {
      if (!a || !b) return t.skip('backend not installed');
      const key = `fail-${v.name}`;
      let calls = 0;
      const failing = a.flight.run(key, async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 100));
        throw new Error('PACS down');
      }, async () => undefined);
      await new Promise((r) => setTimeout(r, 20));
      const waiter = b.flight.run(key, async () => {
        calls++;
        return 'second';
      }, async () => undefined);
      await assert.rejects(failing, /PACS down/);
      assert.deepEqual(await waiter, { value: 'second', led: true });
      assert.equal(calls, 2);
    });
  });
}

describe('state stores: a backend that is down', () => {
  it('opening fails with StateUnavailableError (no silent per-process fallback)', async () => {
    await assert.rejects(openStateStores({ databaseUrl: 'postgres://x@127.0.0.1:1/none', redisUrl: undefined, dbPath: ':memory:' }), (e: unknown) => e instanceof StateUnavailableError && e.backend === 'postgres');
    await assert.rejects(openStateStores({ databaseUrl: undefined, redisUrl: 'redis://127.0.0.1:1', dbPath: ':memory:' }), (e: unknown) => e instanceof StateUnavailableError && e.backend === 'redis');
  });

  it('Redis stopping after start: claims and the health check fail with StateUnavailableError', async (t) => {
    if (!redisServerInstalled()) return t.skip('redis-server not installed');
    const own = await startRedis();
    const s = await openStateStores({ databaseUrl: undefined, redisUrl: own.url, dbPath: ':memory:' });
    try {
      assert.equal(await s.replay.claim('k', Date.now() + 60_000), true);
      await own.stop();
      await assert.rejects(s.replay.claim('k2', Date.now() + 60_000), StateUnavailableError);
      await assert.rejects(s.check(), StateUnavailableError);
      await assert.rejects(s.results.byId('x'), StateUnavailableError);
    } finally {
      await s.close();
    }
  });
});

describe('replay cache: the resend window', () => {
  for (const [name, make] of [
    ['memory', (now: () => number) => new MemoryReplayCache({ now, resendWindowMs: 1000 })],
    ['SQLite', (now: () => number) => new SqliteReplayCache(':memory:', { now, resendWindowMs: 1000 })],
  ] as const) {
    it(`${name}: a same-body resend of an unanswered claim is accepted only within the window after the claim`, async () => {
      let t = 1_000_000;
      const cache = make(() => t);
      try {
        assert.equal(await cache.claim('k', t + 60_000, 'h'), true);
        t += 900;
        assert.equal(await cache.claim('k', t + 60_000, 'h'), true, 'within the window');
        t += 200;
        assert.equal(await cache.claim('k', t + 60_000, 'h'), false, 'the window counts from the first claim, not from the resend');
        // An expired claim is a new one, with a window of its own.
        t += 60_000;
        assert.equal(await cache.claim('k', t + 60_000, 'h2'), true);
        assert.equal(await cache.claim('k', t + 60_000, 'h2'), true);
      } finally {
        await cache.close();
      }
    });
  }
});
