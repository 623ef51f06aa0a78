import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../logging.ts';
import { createJobMetrics } from './metrics.ts';
import { versionOrder } from './process.ts';
import { backoffDelay, SqliteJobQueue } from './sqlite-queue.ts';
import type { JobOutcome, ReportEvent } from './types.ts';

const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const dir = mkdtempSync(join(tmpdir(), 'frcds-sqlite-queue-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ev = (reportId: string, versionId?: string): ReportEvent => ({ reportId, ...(versionId ? { versionId } : {}), source: 'manual', receivedAt: new Date().toISOString() });
const done = (key: string): JobOutcome => ({ status: 'skipped', key, reason: 'not-final: test' });
const until = async (cond: () => Promise<boolean>): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('SQLite job queue', () => {
  it('back-off doubles per attempt within ±20 % jitter, capped', () => {
    assert.equal(backoffDelay(1000, 1, () => 0.5), 1000);
    assert.equal(backoffDelay(1000, 3, () => 0.5), 4000);
    assert.equal(backoffDelay(1000, 3, () => 0), 3200);
    assert.equal(backoffDelay(1000, 30, () => 0.5), 600_000);
  });

  it('deduplicates a known report version at enqueue', async () => {
    const q = new SqliteJobQueue({ path: join(dir, 'dedupe.sqlite'), maxAttempts: 3, backoffMs: 10, leaseMs: 5000, logger });
    assert.equal((await q.enqueue(ev('r1', '1'))).accepted, true);
    assert.equal((await q.enqueue(ev('r1', '1'))).accepted, false);
    assert.equal((await q.enqueue(ev('r1', '2'))).accepted, true);
    assert.equal((await q.enqueue(ev('r1'))).accepted, true, 'unversioned events always queue (the job dedupes)');
    assert.equal((await q.stats()).queued, 3);
    await q.close();
  });

  it('retries with back-off, then succeeds; gives up after the maximum attempts with the reason', async () => {
    const registry = new Registry();
    const metrics = createJobMetrics(registry);
    const q = new SqliteJobQueue({ path: join(dir, 'retry.sqlite'), maxAttempts: 3, backoffMs: 10, leaseMs: 5000, logger, metrics, pollMs: 10 });
    const calls = new Map<string, number>();
    q.start(async (e) => {
      const n = (calls.get(e.reportId) ?? 0) + 1;
      calls.set(e.reportId, n);
      if (e.reportId === 'flaky' && n < 3) throw new Error('FHIR server unavailable');
      if (e.reportId === 'broken') throw new Error('PACS time-out');
      return done(e.reportId);
    }, 2);
    await q.enqueue(ev('flaky', '1'));
    await q.enqueue(ev('broken', '1'));
    await until(async () => {
      const s = await q.stats();
      return s.done === 1 && s.deadLetters === 1;
    });
    assert.equal(calls.get('flaky'), 3);
    assert.equal(calls.get('broken'), 3);
    const [dead] = await q.deadLetters();
    assert.equal(dead!.reportId, 'broken');
    assert.match(dead!.reason, /gave up after 3 attempts: PACS time-out/);
    assert.match(await registry.metrics(), /frcds_jobs_retries_total 4/);
    await q.close();
  });

  it('keeps queued jobs across a restart and re-runs jobs a dead process left running', async () => {
    const path = join(dir, 'restart.sqlite');
    const q1 = new SqliteJobQueue({ path, maxAttempts: 3, backoffMs: 10, leaseMs: 60_000, logger, pollMs: 10 });
    await q1.enqueue(ev('a', '1'));
    await q1.enqueue(ev('b', '1'));
    let release: () => void = () => undefined;
    const hang = new Promise<JobOutcome>((resolve) => (release = () => resolve(done('never'))));
    q1.start(() => hang, 1); // claims one job and never finishes it: as if the process were killed
    await until(async () => (await q1.stats()).running === 1);
    // Simulate the crash: reopen the file in a new queue while the old one still "holds" the job.
    const q2 = new SqliteJobQueue({ path, maxAttempts: 3, backoffMs: 10, leaseMs: 60_000, logger, pollMs: 10 });
    const seen: string[] = [];
    q2.start(async (e) => {
      seen.push(e.reportId);
      return done(e.reportId);
    }, 1);
    await until(async () => (await q2.stats()).done === 2);
    assert.deepEqual(seen.sort(), ['a', 'b']);
    release();
    await q1.close();
    await q2.close();
  });

  it('the newest report version recorded only moves forward', async () => {
    const q = new SqliteJobQueue({ path: join(dir, 'versions.sqlite'), maxAttempts: 3, backoffMs: 10, leaseMs: 5000, logger });
    const newer = versionOrder({ meta: { versionId: '2', lastUpdated: '2026-01-02T00:00:00Z' } });
    const older = versionOrder({ meta: { versionId: '1', lastUpdated: '2026-01-01T00:00:00Z' } });
    assert.ok(newer > older);
    await q.coordination.setLatestVersion('r', newer);
    await q.coordination.setLatestVersion('r', older);
    assert.equal(await q.coordination.latestVersion('r'), newer);
    await q.close();
  });
});
