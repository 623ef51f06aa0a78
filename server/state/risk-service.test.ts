/**
 * The risk service on shared state, end to end on the demo sandboxes and the shipped model:
 * - an assessment id stays valid after a restart (a new service on the same SQLite state file, and on PostgreSQL),
 *   with its PNGs, and the same request is answered from the stored result without running the model;
 * - two replicas (two services, each with its own Redis and PostgreSQL connections) asked for the same patient at
 *   the same time run the model once; the other replica serves the result from the store.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEMO_DIR, startDemoStack, type DemoStack } from '../../test/support/demo-stack.ts';
import { postgresInstalled, startPostgres, type PostgresHandle } from '../../test/support/postgres.ts';
import { redisServerInstalled, startRedis, type RedisHandle } from '../../test/support/redis.ts';
import { REPO_ROOT } from '../config.ts';
import { HttpFhirClient } from '../fhir/client.ts';
import { DicomWebClient } from '../imaging/dicomweb-client.ts';
import { ModelRegistry } from '../inference/registry.ts';
import { RiskService } from '../risk/service.ts';
import { openStateStores, type StateSettings, type StateStores } from './stores.ts';

const SETTINGS = { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 } };
const PATIENT = 'demo-a-022';
const inCi = process.env['CI'] === 'true';

let stack: DemoStack;
let registry: ModelRegistry;
let redis: RedisHandle | undefined;
let pg: PostgresHandle | undefined;
let dir: string;
/** Model runs (every `infer` of the shipped model, on any service). */
let inferCalls = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'frcds-risk-state-'));
  stack = await startDemoStack(DEMO_DIR, { smart: false });
  registry = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  const model = registry.get();
  const infer = model.infer.bind(model);
  model.infer = (input) => {
    inferCalls++;
    return infer(input);
  };
  if (redisServerInstalled()) redis = await startRedis();
  else if (inCi) throw new Error('CI=true but redis-server is not installed');
  if (postgresInstalled()) pg = await startPostgres();
  else if (inCi) throw new Error('CI=true but PostgreSQL is not installed');
});
after(async () => {
  await registry?.close();
  await stack?.close();
  await redis?.stop();
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function service(state: StateStores): RiskService {
  return new RiskService({
    deps: {
      fhir: new HttpFhirClient({ baseUrl: stack.fhirBaseUrl, timeoutMs: 10_000 }),
      dicomweb: new DicomWebClient({ baseUrl: stack.dicomWebBaseUrl, timeoutMs: 20_000, retries: 0 }),
      registry,
      settings: SETTINGS,
      logger: stack.logger,
    },
    cacheSize: 50,
    writeBack: false,
    logger: stack.logger,
    results: state.results,
    flight: state.flight,
  });
}

let db = 0;
const restartVariants: { name: string; settings: () => Promise<StateSettings | undefined> }[] = [
  { name: 'embedded SQLite state file', settings: async () => ({ databaseUrl: undefined, redisUrl: undefined, dbPath: join(dir, `state-${++db}.sqlite`) }) },
  { name: 'PostgreSQL', settings: async () => (pg ? { databaseUrl: await pg.createDatabase(`restart_${++db}`), redisUrl: undefined, dbPath: ':memory:' } : undefined) },
];

for (const v of restartVariants) {
  describe(`risk results on ${v.name}`, () => {
    it('an assessment id stays valid after a restart, PNGs included, and the same request is not computed again', async (t) => {
      const settings = await v.settings();
      if (!settings) return t.skip(`${v.name} is not installed`);
      // Before the restart.
      let state = await openStateStores(settings);
      const first = service(state);
      const out = await first.assess({ patientId: PATIENT });
      assert.equal(out.source, 'new');
      const a = out.stored.assessment;
      assert.equal(a.mode, 'image-and-clinical', 'the demo patient has a radiograph: the PNG path is exercised');
      const overlay = out.stored.pngs!.overlay();
      await first.flush();
      await state.close();
      // After the restart: a new service, new connections, empty memory.
      state = await openStateStores(settings);
      try {
        const again = service(state);
        const byId = await again.get(a.id);
        assert.ok(byId, 'the id is still valid');
        assert.deepEqual(byId.assessment, a);
        assert.ok(byId.pngs, 'the heatmap survived');
        assert.ok(byId.pngs.overlay().equals(overlay));
        assert.equal(await again.get('no-such-id'), undefined);
        const calls = inferCalls;
        const repeat = await again.assess({ patientId: PATIENT });
        assert.equal(repeat.source, 'cache');
        assert.equal(repeat.stored.assessment.id, a.id);
        assert.equal(inferCalls, calls, 'answered from the stored result: the model did not run');
      } finally {
        await state.close();
      }
    });
  });
}

describe('two replicas on Redis and PostgreSQL', () => {
  it('asked for the same patient at once, they run the model once; each answers with the same assessment', async (t) => {
    if (!redis || !pg) return t.skip('Redis or PostgreSQL is not installed');
    const settings = { databaseUrl: await pg.createDatabase(`flight_${++db}`), redisUrl: redis.url, dbPath: ':memory:' };
    const stateA = await openStateStores(settings, { flight: { pollMs: 10 } });
    const stateB = await openStateStores(settings, { flight: { pollMs: 10 } });
    try {
      const a = service(stateA);
      const b = service(stateB);
      const calls = inferCalls;
      const [ra, rb, ra2] = await Promise.all([a.assess({ patientId: PATIENT }), b.assess({ patientId: PATIENT }), a.assess({ patientId: PATIENT })]);
      assert.equal(inferCalls - calls, 1, 'one model run for three concurrent requests on two replicas');
      assert.equal(ra.stored.assessment.id, rb.stored.assessment.id);
      assert.equal(ra2.stored.assessment.id, ra.stored.assessment.id);
      assert.deepEqual([ra.source, rb.source].sort(), ['cache', 'new'], 'one replica computed, the other read the result');
      // The replica that did not compute serves the id, with its heatmap once the computing one stored it.
      const [computing, other] = ra.source === 'new' ? [a, b] : [b, a];
      await computing.flush();
      const png = await other.get(ra.stored.assessment.id);
      assert.ok(png?.pngs?.display().length);
    } finally {
      await stateA.close();
      await stateB.close();
    }
  });
});
