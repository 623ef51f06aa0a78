/**
 * Backfill against the demo stack (SMART-guarded FHIR sandbox + DICOMweb, real model): interrupted part-way, then
 * run again: the second run resumes from the SQLite checkpoint, every study ends with exactly one RiskAssessment,
 * and throughput counts only studies computed in that run. The progress display (non-TTY mode) prints lines.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ImagingStudy, RiskAssessment } from '@medplum/fhirtypes';
import { loadConfig } from '../../server/config.ts';
import { BACKFILL_SYSTEM, Progress, runBackfill } from '../../server/jobs/backfill.ts';
import { createStandaloneRisk } from '../../server/jobs/runtime.ts';
import { startDemoStack, silentLogger, type DemoStack } from '../support/demo-stack.ts';

describe('npm run backfill (runBackfill)', () => {
  let stack: DemoStack;
  let dir: string;
  before(async () => {
    stack = await startDemoStack();
    dir = mkdtempSync(join(tmpdir(), 'frcds-backfill-'));
  });
  after(async () => {
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is resumable after an interruption and writes one RiskAssessment per study', { timeout: 240_000 }, async () => {
    const config = loadConfig({
      FHIR_BASE_URL: stack.fhirBaseUrl, DICOMWEB_BASE_URL: stack.dicomWebBaseUrl, FHIR_AUTH: 'client-credentials', FHIR_TOKEN_URL: `${stack.authBaseUrl}/token`,
      FHIR_CLIENT_ID: 'demo-backend', FHIR_CLIENT_SECRET: 'sandbox-only-demo-backend-secret', INFERENCE_DEVICE: 'cpu',
    });
    const logger = silentLogger();
    const { risk, registry, bulkFhir } = await createStandaloneRisk(config, logger);
    const lines: string[] = [];
    const common = { fhir: bulkFhir, risk, triage: null, dbPath: join(dir, 'checkpoint.sqlite'), runId: 'test', since: '2000-01-01', concurrency: 2, logger };
    try {
      // The demo cohort's studies: 50 hip radiographs and the demo CT studies, all backfilled alike.
      const studies = await stack.fhirClient().search<ImagingStudy>('ImagingStudy', { _count: '500' });
      const n = studies.length;
      assert.ok(studies.some((s) => s.modality?.some((m) => m.code === 'CT')), 'the demo has CT studies');
      const controller = new AbortController();
      let ticks = 0;
      const progress = new Progress({ write: (t: string) => lines.push(t) }, false);
      const origTick = progress.tick.bind(progress);
      progress.tick = () => {
        origTick();
        if (++ticks === 12) controller.abort(); // Ctrl-C part-way through
      };
      const first = await runBackfill({ ...common, progress, signal: controller.signal });
      assert.equal(first.interrupted, true);
      assert.equal(first.total, n);
      assert.ok(first.computed >= 12 && first.computed < n, `first run stopped part-way (${first.computed})`);

      const second = await runBackfill({ ...common, progress: new Progress({ write: (t: string) => lines.push(t) }, false) });
      assert.equal(second.interrupted, false);
      assert.equal(second.resumed, first.computed, 'the second run skips what the first finished');
      assert.equal(second.computed + second.reused, n - first.computed);
      assert.deepEqual(second.failed, []);
      assert.ok(second.studiesPerHour > 0);

      const ras = (await stack.fhirClient().search<RiskAssessment>('RiskAssessment', { _count: '500' })).filter((r) => r.identifier?.some((i) => i.system === BACKFILL_SYSTEM));
      assert.equal(ras.length, n, 'one RiskAssessment per study');
      const answered = new Set(ras.map((r) => r.identifier!.find((i) => i.system === BACKFILL_SYSTEM)!.value));
      assert.deepEqual([...answered].sort(), studies.map((s) => `ImagingStudy/${s.id}`).sort(), 'CT studies included');
      assert.ok(lines.some((l) => l.startsWith(`backfill: ${n}/${n} studies (100 %)`)), 'progress lines on a non-terminal');
    } finally {
      await registry.close();
    }
  });
});
