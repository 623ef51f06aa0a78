/**
 * Durability of the default (SQLite, in-process) queue: 50 report events are accepted, the service is SIGKILLed
 * in the middle of the batch and started again on the same SQLite file; all 50 are then processed exactly once in
 * effect (issue 8, "Must show").
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDemoStack, type DemoStack } from '../support/demo-stack.ts';
import { freePort } from '../support/net.ts';
import { spawnTs, waitFor, type ChildHandle } from '../support/service-process.ts';
import { checkExactlyOnceInEffect, childEnv, demoReports, OPS_HEADERS, sendBatch, stats } from './crash-scenario.ts';

describe('SQLite job queue survives SIGKILL mid-batch', () => {
  let stack: DemoStack;
  let dir: string;
  const children: ChildHandle[] = [];
  const raWrites = new Map<string, number>();

  before(async () => {
    stack = await startDemoStack();
    stack.fhir.repo.onWrite((r) => {
      if (r.resourceType === 'RiskAssessment') raWrites.set(r.id!, (raWrites.get(r.id!) ?? 0) + 1);
    });
    dir = mkdtempSync(join(tmpdir(), 'frcds-crash-sqlite-'));
  });
  after(async () => {
    for (const c of children) await c.kill('SIGKILL');
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('processes all 50 events exactly once in effect after a SIGKILL and restart', { timeout: 300_000 }, async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = childEnv(stack, {
      PORT: String(port),
      JOBS_DB_PATH: join(dir, 'jobs.sqlite'),
      CDS_FEEDBACK_DB: join(dir, 'cds.sqlite'),
      FLS_AUDIT_DB: join(dir, 'fls.sqlite'),
      STATE_DB: join(dir, 'state.sqlite'),
    });
    const log = join(dir, 'service.log');
    const first = spawnTs('server/index.ts', env, log);
    children.push(first);
    await waitFor('the service to accept notifications', async () => (await fetch(`${base}/api/jobs/stats`, { headers: OPS_HEADERS })).ok);

    const reports = await demoReports(stack);
    assert.equal(reports.length, 50);
    await sendBatch(base, stack, reports);

    const atKill = await waitFor('a few jobs to finish', async () => {
      const s = await stats(base);
      return s.completedKeys >= 5 ? s : undefined;
    }, 180_000, 50);
    await first.kill('SIGKILL');
    assert.ok(atKill.completedKeys < 50, `killed mid-batch (${atKill.completedKeys} of 50 done)`);

    const second = spawnTs('server/index.ts', env, log);
    children.push(second);
    const final = await waitFor('all 50 jobs to finish after the restart', async () => {
      const s = await stats(base);
      return s.completedKeys === 50 && s.queued === 0 && s.running === 0 && s.delayed === 0 ? s : undefined;
    }, 240_000, 250);
    await checkExactlyOnceInEffect(stack, reports, raWrites, final);
    await second.kill('SIGTERM');
  });
});
