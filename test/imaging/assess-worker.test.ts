/**
 * Assessments with the imaging worker pool (IMAGING_WORKERS ≥ 1) against the embedded FHIR and DICOMweb sandboxes
 * and the real hip-xray-v1: the same numbers, images and warnings as inline decoding on the main thread, and a
 * pool that can no longer work (shut down mid-service) gives a clinical-only assessment that says why — it never
 * hangs and never fails the request.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../../server/config.ts';
import { ImagingPool } from '../../server/imaging/worker-pool.ts';
import { ModelRegistry } from '../../server/inference/registry.ts';
import { assess, type AssessDeps, type Assessment } from '../../server/risk/assess.ts';
import { startDemoStack, type DemoStack } from '../support/demo-stack.ts';

const AT = new Date('2026-11-27T12:00:00Z');
const SETTINGS = { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 }, maxIntervalWidth: 10 };
// One demo patient per stored transfer syntax (JPEG-LS, explicit VR LE, JPEG lossless, JPEG 2000, RLE with a
// hardware artefact), demo-a-022 (high risk) and a site-B (out-of-distribution) image.
const PATIENTS = ['demo-a-022', 'demo-a-001', 'demo-a-004', 'demo-a-005', 'demo-a-007', 'demo-a-006', 'demo-b-001'];

let stack: DemoStack;
let registry: ModelRegistry;
let pool: ImagingPool;
let inline: AssessDeps;

/** Everything but the per-run identity and timings. */
const comparable = (a: Assessment): Omit<Assessment, 'id' | 'createdAt' | 'timings'> => {
  const { id: _id, createdAt: _c, timings: _t, ...rest } = a;
  return rest;
};

before(async () => {
  stack = await startDemoStack();
  registry = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  pool = new ImagingPool({ size: 2, logger: stack.logger });
  inline = stack.assessDeps(registry, SETTINGS);
});

after(async () => {
  await pool?.close();
  await registry?.close();
  await stack?.close();
});

describe('assessments with IMAGING_WORKERS ≥ 1', () => {
  it('give the same assessment and the same PNGs as inline decoding', async () => {
    let withImage = 0;
    for (const patientId of PATIENTS) {
      // One at a time both ways: concurrent requests are micro-batched by the registry, and a batched ONNX run may
      // differ from a single one in the last float bits — that is not what this test is about.
      const got = await assess({ ...inline, imaging: pool }, { patientId, at: AT });
      const ref = await assess(inline, { patientId, at: AT });
      assert.deepEqual(comparable(got.assessment), comparable(ref.assessment), patientId);
      assert.equal(got.pngs === null, ref.pngs === null, patientId);
      if (got.pngs && ref.pngs) {
        withImage++;
        assert.ok(got.pngs.display().equals(ref.pngs.display()), `${patientId}: display PNG`);
        assert.ok(got.pngs.overlay().equals(ref.pngs.overlay()), `${patientId}: heatmap PNG`);
      }
    }
    assert.ok(withImage >= 3, `only ${withImage} of the patients had a usable image`);
  });

  it('serve concurrent patients through the pool (same modes and tiers; risks equal to float precision)', async () => {
    const pooled = await Promise.all(PATIENTS.map((patientId) => assess({ ...inline, imaging: pool }, { patientId, at: AT })));
    for (const [i, patientId] of PATIENTS.entries()) {
      const ref = await assess(inline, { patientId, at: AT });
      const a = pooled[i]!.assessment;
      assert.equal(a.mode, ref.assessment.mode, patientId);
      assert.deepEqual(a.tier, ref.assessment.tier, patientId);
      assert.deepEqual(a.warnings, ref.assessment.warnings, patientId);
      for (const o of ['hip', 'mof'] as const) {
        for (const [k, r] of a.outcomes[o].risks.entries()) assert.ok(Math.abs(r.risk - ref.assessment.outcomes[o].risks[k]!.risk) < 1e-6, `${patientId} ${o}`);
      }
    }
    assert.equal(pooled[0]!.assessment.mode, 'image-and-clinical');
  });

  it('a pool that has stopped working gives clinical-only with the reason, not an error or a hang', async () => {
    const dead = new ImagingPool({ size: 1 });
    await dead.close();
    const r = await assess({ ...inline, imaging: dead }, { patientId: 'demo-a-022', at: AT });
    assert.equal(r.assessment.mode, 'clinical-only');
    assert.equal(r.pngs, null);
    assert.ok(r.assessment.warnings.some((w) => /could not be used \(the imaging worker pool is closed\)/.test(w)), r.assessment.warnings.join(' | '));
  });
});
