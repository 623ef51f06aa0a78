/**
 * Production monitoring of the T-score estimate: the stores (SQLite always, PostgreSQL when installed) keep a pair
 * once and a rolling window; the figures over the window; the drift alarm raised at ≥ 30 pairs with coverage < 0.90
 * or |bias| > 0.5, logged once across two replicas sharing the store, cleared when the window recovers; the gauges on
 * /metrics; the /readyz detail; the API's user-level access rule.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { Registry } from 'prom-client';
import request from 'supertest';
import { requireSmartAccess } from '../auth/require.ts';
import { AccessTokenError, type AccessTokenVerifier } from '../auth/types.ts';
import { createLogger, type Logger } from '../logging.ts';
import { createPgPool, migrate, type PgPool } from '../state/postgres.ts';
import { openSqlite } from '../state/sqlite.ts';
import { postgresOrSkip, type PostgresHandle } from '../../test/support/postgres.ts';
import { agreement } from './agreement.ts';
import { ALARM_DEFAULTS, alarmReason, evaluateSeries } from './figures.ts';
import type { TscorePoller } from './poller.ts';
import { createMonitoringRouter, MONITORING_READ_SCOPES } from './routes.ts';
import { MONITORING_DEFAULTS, TscoreMonitoring } from './service.ts';
import { PostgresMonitoringStore, SqliteMonitoringStore, seriesId, type MonitoringStore, type TscorePair } from './store.ts';

const work = mkdtempSync(join(tmpdir(), 'frcds-monitoring-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A logger that keeps its records (to count alarm lines). */
function recordingLogger(): { logger: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const logger = createLogger({
    level: 'info',
    destination: new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { level: number; msg: string });
        cb();
      },
    }),
  });
  return { logger, lines };
}
const alarmLines = (lines: { msg: string }[], what: 'raised' | 'cleared'): number => lines.filter((l) => l.msg.startsWith(`T-score drift alarm ${what}`)).length;

let seq = 0;
/** A pair whose estimate is `measured + bias` with a 95 % interval ±halfWidth around it. */
function pair(measured: number, bias: number, halfWidth: number, over: Partial<TscorePair> = {}): TscorePair {
  seq++;
  const mean = measured + bias;
  return {
    observationId: `obs-${seq}`, riskAssessmentId: `ra-${seq}`, site: 'site-a', model: 'hip-xray-v2@2.0.0', calibration: 'cal-1',
    mean, low: mean - halfWidth, high: mean + halfWidth, measured, dxaDate: `2026-${String(1 + (seq % 12)).padStart(2, '0')}-${String(1 + (seq % 28)).padStart(2, '0')}`, imageDate: '2026-01-01',
    ...over,
  };
}

/** The store contract, run against each backend. */
function storeContract(name: string, open: () => Promise<{ a: MonitoringStore; b: MonitoringStore } | undefined>): void {
  describe(`monitoring store (${name})`, () => {
    let stores: { a: MonitoringStore; b: MonitoringStore } | undefined;
    before(async () => {
      stores = await open();
    });

    test('a pair is kept once per DXA Observation; the window is the latest pairs by DXA date', async (t) => {
      if (!stores) return t.skip('backend not available');
      const { a, b } = stores;
      const p1 = pair(-2, 0, 1, { observationId: 'o-1', dxaDate: '2026-01-10' });
      assert.equal(await a.add(p1), true);
      assert.equal(await b.add(p1), false, 'the other replica adds nothing for the same Observation');
      await a.add(pair(-1, 0, 1, { observationId: 'o-2', dxaDate: '2026-03-10' }));
      await a.add(pair(-3, 0, 1, { observationId: 'o-3', dxaDate: '2026-02-10' }));
      await a.add(pair(-3, 0, 1, { observationId: 'o-4', dxaDate: '2026-02-10', site: 'site-b' }));
      const key = { site: 'site-a', model: 'hip-xray-v2@2.0.0', calibration: 'cal-1' };
      assert.deepEqual((await b.window(key, 2)).map((p) => p.observationId), ['o-2', 'o-3']);
      const w = await b.window(key, 10);
      assert.equal(w.length, 3);
      assert.deepEqual({ ...w[2] }, p1, 'stored and read back unchanged');
      assert.deepEqual((await b.series()).map((s) => s.site), ['site-a', 'site-b']);
    });

    test('alarm state: compare-and-set, true only for the call that changed it', async (t) => {
      if (!stores) return t.skip('backend not available');
      const { a, b } = stores;
      const at = new Date('2026-12-01T10:00:00Z');
      assert.equal(await a.setAlarm('s1', 'ok', null, at), false, 'a first "ok" is no change worth logging');
      assert.equal(await a.setAlarm('s1', 'alarm', 'coverage 0.80 < 0.9', at), true);
      assert.equal(await b.setAlarm('s1', 'alarm', 'coverage 0.79 < 0.9', at), false, 'already raised by the other replica');
      assert.equal((await a.alarm('s1'))!.reason, 'coverage 0.79 < 0.9', 'the reason follows the figures');
      const [x, y] = await Promise.all([a.setAlarm('s1', 'ok', null, at), b.setAlarm('s1', 'ok', null, at)]);
      assert.equal(Number(x) + Number(y), 1, 'cleared by exactly one of two concurrent calls');
      assert.equal(await a.setAlarm('s2', 'alarm', 'x', at), true, 'a new series raised at once');
      assert.equal((await b.alarm('s2'))!.state, 'alarm');
      assert.equal(await b.alarm('nope'), null);
    });

    test('cursor', async (t) => {
      if (!stores) return t.skip('backend not available');
      assert.equal(await stores.a.cursor('c'), null);
      await stores.a.setCursor('c', '2026-12-01T00:00:00Z');
      await stores.b.setCursor('c', '2026-12-02T00:00:00Z');
      assert.equal(await stores.a.cursor('c'), '2026-12-02T00:00:00Z');
    });
  });
}

storeContract('sqlite, two connections to one file', async () => {
  const path = join(work, 'state.sqlite');
  return { a: new SqliteMonitoringStore(openSqlite(path), { ownsDb: true }), b: new SqliteMonitoringStore(openSqlite(path), { ownsDb: true }) };
});

let pgh: PostgresHandle | undefined;
let pool: PgPool | undefined;
after(async () => {
  await pool?.end();
  await pgh?.stop();
});
storeContract('postgres, migration 020', async () => {
  pgh = await postgresOrSkip();
  if (!pgh) return undefined;
  pool = createPgPool(await pgh.createDatabase('monitoring'));
  await migrate(pool);
  return { a: new PostgresMonitoringStore(pool), b: new PostgresMonitoringStore(pool) };
});

describe('figures and the drift alarm', () => {
  test('alarm rule: ≥ 30 pairs and coverage < 0.90 or |bias| > 0.5', () => {
    const ok = Array.from({ length: 30 }, (_, i) => pair(-2 + i / 30, 0.1, 1));
    assert.equal(alarmReason(agreement(ok), ALARM_DEFAULTS), null);
    assert.equal(alarmReason(agreement(ok.slice(0, 29).map((p) => ({ ...p, mean: p.mean + 2, low: p.low + 2, high: p.high + 2 }))), ALARM_DEFAULTS), null, '29 pairs: too few');
    const biased = ok.map((p) => ({ ...p, mean: p.measured + 0.6, low: p.measured - 0.5, high: p.measured + 1.7 }));
    assert.match(alarmReason(agreement(biased), ALARM_DEFAULTS)!, /^\|bias\| 0\.60 > 0\.5 over the last 30 pairs$/);
    // 4 of 30 measured values outside the interval: coverage 0.867.
    const narrow = ok.map((p, i) => (i < 4 ? { ...p, low: p.measured + 0.05, high: p.measured + 0.2 } : p));
    assert.match(alarmReason(agreement(narrow), ALARM_DEFAULTS)!, /^coverage 0\.87 < 0\.9 over the last 30 pairs$/);
  });

  test('raised at the 30th poor pair, logged once by one of two replicas, shown on /metrics and /readyz, cleared when the window recovers', async () => {
    const path = join(work, 'alarm.sqlite');
    const replicaA = recordingLogger();
    const replicaB = recordingLogger();
    const storeA = new SqliteMonitoringStore(openSqlite(path), { ownsDb: true });
    const storeB = new SqliteMonitoringStore(openSqlite(path), { ownsDb: true });
    const settings = { ...MONITORING_DEFAULTS, windowPairs: 40 };
    const idle = { poll: async () => ({ seen: 0, paired: 0, known: 0, unpaired: 0, failed: 0 }) } as unknown as TscorePoller;
    const registryA = new Registry();
    let told = 0;
    const monA = new TscoreMonitoring({ store: storeA, poller: idle, settings, logger: replicaA.logger, registry: registryA, onAlarm: () => told++ });
    const monB = new TscoreMonitoring({ store: storeB, poller: idle, settings, logger: replicaB.logger, registry: new Registry() });
    try {
      // Well-calibrated pairs, then pairs whose interval misses the measured value (the site has drifted).
      for (let i = 0; i < 10; i++) await storeA.add(pair(-2 + i / 10, 0.05, 1, { dxaDate: `2026-01-${String(10 + i)}` }));
      for (let i = 0; i < 19; i++) await storeA.add(pair(-2 + i / 19, 0.9, 0.5, { dxaDate: `2026-02-${String(10 + i)}` }));
      let figs = await monA.figures();
      assert.equal(figs[0]!.agreement.n, 29);
      assert.equal(figs[0]!.alarm.state, 'too-few-pairs');
      assert.equal(alarmLines(replicaA.lines, 'raised'), 0);
      assert.equal(told, 0, 'the /readyz component is added only once an alarm is seen');

      await storeB.add(pair(-1.5, 0.9, 0.5, { dxaDate: '2026-03-01' }));
      const [fa, fb] = await Promise.all([monA.figures(), monB.figures()]);
      for (const f of [fa[0]!, fb[0]!]) {
        assert.equal(f.agreement.n, 30);
        assert.equal(f.alarm.state, 'alarm');
        assert.match(f.alarm.reason!, /coverage 0\.33 < 0\.9 and \|bias\| 0\.62 > 0\.5 over the last 30 pairs/);
      }
      assert.equal(alarmLines(replicaA.lines, 'raised') + alarmLines(replicaB.lines, 'raised'), 1, 'logged once across the replicas');
      assert.equal(told, 1);
      await monA.figures();
      await monB.figures();
      assert.equal(alarmLines(replicaA.lines, 'raised') + alarmLines(replicaB.lines, 'raised'), 1, 'not again while it stays raised');

      const metrics = await registryA.metrics();
      const labels = 'site="site-a",model="hip-xray-v2@2.0.0",calibration="cal-1"';
      assert.match(metrics, new RegExp(`frcds_tscore_monitor_alarm\\{${labels}\\} 1`));
      assert.match(metrics, new RegExp(`frcds_tscore_monitor_pairs\\{${labels}\\} 30`));
      assert.match(metrics, new RegExp(`frcds_tscore_monitor_coverage\\{${labels}\\} 0\\.333`));
      assert.match(monA.probe().detail, /^WARNING T-score drift alarm: site-a hip-xray-v2@2\.0\.0 \(calibration cal-1\): coverage 0\.33/);
      assert.equal(monA.probe().ok, true, 'a drift alarm does not make the service unready');

      // 40 good pairs, newer than the poor ones, fill the window of 40: the alarm clears, once.
      for (let i = 0; i < 40; i++) await storeA.add(pair(-2 + i / 40, 0, 1, { dxaDate: `2026-06-${String(10 + (i % 18))}` }));
      await Promise.all([monA.figures(), monB.figures()]);
      figs = await monA.figures();
      assert.equal(figs[0]!.alarm.state, 'ok');
      assert.equal(figs[0]!.agreement.coverage, 1);
      assert.equal(alarmLines(replicaA.lines, 'cleared') + alarmLines(replicaB.lines, 'cleared'), 1);
      assert.match(await registryA.metrics(), new RegExp(`frcds_tscore_monitor_alarm\\{${labels}\\} 0`));
      assert.match(monA.probe().detail, /^no drift alarm; 1 series/);
      assert.equal((await storeA.alarm(seriesId(figs[0]!)))!.state, 'ok');
    } finally {
      await monA.close();
      await monB.close();
      await storeA.close();
      await storeB.close();
    }
  });

  test('a recalibrated model is a new series, judged on its own pairs', async () => {
    const store = new SqliteMonitoringStore(openSqlite(':memory:'), { ownsDb: true });
    for (let i = 0; i < 30; i++) await store.add(pair(-2, 0.9, 0.5, { calibration: 'old' }));
    for (let i = 0; i < 5; i++) await store.add(pair(-2, 0, 1, { calibration: 'site-a-20261203-1' }));
    const figs = await evaluateSeries(store, ALARM_DEFAULTS, recordingLogger().logger);
    assert.deepEqual(figs.map((f) => [f.calibration, f.agreement.n, f.alarm.state]), [['old', 30, 'alarm'], ['site-a-20261203-1', 5, 'too-few-pairs']]);
    await store.close();
  });
});

describe('GET /api/monitoring/tscore', () => {
  const tokens: Record<string, { scopes: string[]; patient?: string }> = {
    lead: { scopes: ['openid', 'fhirUser', 'user/RiskAssessment.rs'] },
    coordinator: { scopes: ['user/Task.rs', 'user/*.rs'] },
    patient: { scopes: ['patient/*.rs', 'launch'], patient: 'p1' },
    other: { scopes: ['user/Task.rs'] },
  };
  const verifier: AccessTokenVerifier = {
    verify: async (t) => {
      const x = tokens[t];
      if (!x) throw new AccessTokenError('invalid', 'unknown token');
      return { subject: t, scopes: x.scopes, ...(x.patient ? { patient: x.patient } : {}) };
    },
  };

  test('user-level token with user/RiskAssessment.rs: 200 with aggregates only; none: 401; patient-level or other scopes: 403', async () => {
    const store = new SqliteMonitoringStore(openSqlite(':memory:'), { ownsDb: true });
    await store.add(pair(-2, 0.1, 1, { observationId: 'Observation-secret-1', riskAssessmentId: 'RA-secret-1' }));
    const idle = { poll: async () => ({ seen: 0, paired: 0, known: 0, unpaired: 0, failed: 0 }) } as unknown as TscorePoller;
    const monitoring = new TscoreMonitoring({ store, poller: idle, settings: MONITORING_DEFAULTS, logger: recordingLogger().logger, registry: new Registry() });
    const app = express().use('/api/monitoring', createMonitoringRouter({ monitoring, guard: requireSmartAccess(verifier, { anyScope: MONITORING_READ_SCOPES }), logger: recordingLogger().logger }));
    assert.equal((await request(app).get('/api/monitoring/tscore')).status, 401);
    assert.equal((await request(app).get('/api/monitoring/tscore').set('Authorization', 'Bearer patient')).status, 403);
    assert.equal((await request(app).get('/api/monitoring/tscore').set('Authorization', 'Bearer other')).status, 403);
    assert.equal((await request(app).get('/api/monitoring/tscore').set('Authorization', 'Bearer coordinator')).status, 200, 'user/*.rs covers it');
    const res = await request(app).get('/api/monitoring/tscore').set('Authorization', 'Bearer lead');
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.body.series.length, 1);
    assert.equal(res.body.series[0].agreement.n, 1);
    assert.equal(res.body.series[0].alarm.state, 'too-few-pairs');
    assert.equal(res.body.settings.minCoverage, 0.9);
    assert.doesNotMatch(res.text, /secret/, 'no resource ids in the answer');
    await store.close();
  });
});
