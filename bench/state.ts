/**
 * Per-operation cost of the shared-state stores (server/state/), one client at a time and 20 at once: a `jti` claim
 * (alone, and with a body hash followed by the answered mark, as a CDS call makes them),
 * storing a result (a 20 KB body, as an assessment without PNGs), reading it by cache key, and an uncontended
 * single-flight run. Starts its own redis-server and PostgreSQL (test/support), so needs both installed.
 *
 *   npm run bench:state            (or: npx tsx bench/state.ts [--n 2000])
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openStateStores, type StateSettings, type StateStores } from '../server/state/stores.ts';
import { startPostgres } from '../test/support/postgres.ts';
import { startRedis } from '../test/support/redis.ts';

const { values: args } = parseArgs({ options: { n: { type: 'string', default: '2000' } } });
const N = Number(args.n);
const BODY = JSON.stringify({ pad: 'x'.repeat(20_000) });
const HASH = 'a'.repeat(64); // a sha256 in hex

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

async function measure(label: string, op: (i: number) => Promise<unknown>, concurrency: number): Promise<string> {
  const times: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < N; i = next++) {
      const s = performance.now();
      await op(i);
      times.push(performance.now() - s);
    }
  }));
  const total = performance.now() - t0;
  return `${label.padEnd(34)} c=${String(concurrency).padEnd(3)} p50 ${pct(times, 0.5).toFixed(2).padStart(6)} ms  p95 ${pct(times, 0.95).toFixed(2).padStart(6)} ms  ${Math.round((N / total) * 1000)} ops/s`;
}

async function run(name: string, stores: StateStores): Promise<void> {
  console.log(`\n${name} — replay: ${stores.backends.replay}, results: ${stores.backends.results}, flight: ${stores.backends.flight}`);
  const tag = Math.random().toString(36).slice(2);
  for (const c of [1, 20]) {
    console.log(await measure('jti claim', (i) => stores.replay.claim(`${tag}|${c}|${i}`, Date.now() + 3_600_000), c));
    // What a CDS call costs the cache: the claim with the body's hash, and the mark once it is answered.
    console.log(await measure('jti claim with body hash + answered', async (i) => {
      await stores.replay.claim(`${tag}|h|${c}|${i}`, Date.now() + 3_600_000, HASH);
      await stores.replay.answered(`${tag}|h|${c}|${i}`);
    }, c));
    console.log(await measure('result put (20 KB)', (i) => stores.results.put({ id: `${tag}-${c}-${i}`, cacheKey: `k-${tag}-${c}-${i}`, body: BODY, images: null }, 3_600_000), c));
    console.log(await measure('result by cache key', (i) => stores.results.byKey(`k-${tag}-${c}-${i}`), c));
    console.log(await measure('single-flight run (uncontended)', (i) => stores.flight.run(`f-${tag}-${c}-${i}`, async () => 1, async () => undefined), c));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'frcds-bench-state-'));
const redis = await startRedis();
const pg = await startPostgres();
try {
  const variants: [string, StateSettings][] = [
    ['embedded SQLite', { databaseUrl: undefined, redisUrl: undefined, dbPath: join(dir, 'state.sqlite') }],
    ['Redis + PostgreSQL', { databaseUrl: await pg.createDatabase('bench'), redisUrl: redis.url, dbPath: ':memory:' }],
    ['PostgreSQL only', { databaseUrl: await pg.createDatabase('bench_pg'), redisUrl: undefined, dbPath: ':memory:' }],
  ];
  console.log(`state stores: ${N} operations per line (research use — trained on synthetic data; no model numbers here)`);
  for (const [name, settings] of variants) {
    const stores = await openStateStores(settings);
    try {
      await run(name, stores);
    } finally {
      await stores.close();
    }
  }
} finally {
  await redis.stop();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
