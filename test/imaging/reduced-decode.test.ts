/**
 * Assessments whose JPEG 2000 radiograph is decoded at a reduced resolution (decode/resolution.ts) against the
 * embedded FHIR and DICOMweb sandboxes and the real hip-xray-v1: the reduced path is taken for the demo cohort's
 * large JPEG 2000 image, the result stays what the full decode gives (mode, tier, warnings; risks within the
 * documented effect), the quality checks still judge the acquisition (its 0.148 mm spacing, not the decoded
 * array's 0.592 mm), and the display and heatmap PNGs keep their size.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../../server/config.ts';
import { resolutionNeedOf, type DecodedFrame } from '../../server/imaging/decode/index.ts';
import { inlineImaging, withResolution, type ImagingExecutor } from '../../server/imaging/worker-pool.ts';
import { ModelRegistry } from '../../server/inference/registry.ts';
import { assess, type AssessDeps } from '../../server/risk/assess.ts';
import { startDemoStack, type DemoStack } from '../support/demo-stack.ts';

const AT = new Date('2026-11-27T12:00:00Z');
const SETTINGS = { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 }, maxIntervalWidth: 10 };
/** Demo patient whose radiograph is the cohort's 2110 × 2032, 0.148 mm JPEG 2000 (.90) image. */
const PATIENT = 'demo-a-036';

let stack: DemoStack;
let registry: ModelRegistry;
let deps: AssessDeps;

before(async () => {
  stack = await startDemoStack();
  registry = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  deps = stack.assessDeps(registry, SETTINGS, 20_000);
});

after(async () => {
  await registry?.close();
  await stack?.close();
});

/** The executor, recording the level of every decode. */
function recording(base: ImagingExecutor, levels: number[]): ImagingExecutor {
  return {
    ...base,
    decodeFrameAt: async (...a: Parameters<ImagingExecutor['decodeFrameAt']>): Promise<DecodedFrame> => {
      const r = await base.decodeFrameAt(...a);
      levels.push(r.level);
      return r;
    },
  };
}

describe('assessment with a reduced-resolution JPEG 2000 decode', () => {
  it('takes the reduced path and gives the full decode\'s result within the documented effect', async () => {
    const model = registry.list().find((m) => m.id === 'hip-xray-v1');
    assert.ok(model, 'hip-xray-v1 loaded');
    const need = resolutionNeedOf(model.manifest.preprocessing.constants);
    const fullLevels: number[] = [];
    const reducedLevels: number[] = [];
    const full = await assess({ ...deps, imaging: recording(inlineImaging, fullLevels) }, { patientId: PATIENT, at: AT });
    const reduced = await assess({ ...deps, imaging: recording(withResolution(inlineImaging, need), reducedLevels) }, { patientId: PATIENT, at: AT });
    assert.deepEqual(fullLevels, [0]);
    assert.deepEqual(reducedLevels, [2], 'decoded at level 2 (528 × 508)');

    const a = reduced.assessment;
    const b = full.assessment;
    assert.equal(a.mode, 'image-and-clinical');
    assert.equal(a.mode, b.mode);
    assert.deepEqual(a.tier, b.tier);
    assert.deepEqual(a.warnings, b.warnings);
    // The acquisition's spacing is judged, not the decoded array's (0.592 mm would fail the 0.4 mm check).
    const res = a.quality.find((q) => q.check === 'resolution');
    assert.equal(res?.value, 0.148);
    assert.equal(res?.passed, true);
    assert.deepEqual(a.quality.map((q) => [q.check, q.passed]), b.quality.map((q) => [q.check, q.passed]));
    // bench/imaging.ts --effect: ≤ 0.25 pp on the demo cohort; 0.5 pp leaves room for float noise.
    for (const o of ['hip', 'mof'] as const) {
      for (const [k, r] of a.outcomes[o].risks.entries()) {
        const d = Math.abs(r.risk - b.outcomes[o].risks[k]!.risk);
        assert.ok(d <= 0.5, `${o} ${r.years} y: |Δ| ${d.toFixed(3)} pp`);
      }
    }

    // Display and heatmap PNGs: same size as from the full decode (the decoded longest side stays ≥ 512).
    assert.ok(reduced.pngs && full.pngs && a.heatmap && b.heatmap);
    assert.deepEqual([a.heatmap.width, a.heatmap.height], [b.heatmap.width, b.heatmap.height]);
    const size = (png: Buffer) => [png.readUInt32BE(16), png.readUInt32BE(20)];
    assert.deepEqual(size(reduced.pngs.display()), size(full.pngs.display()));
    assert.deepEqual(size(reduced.pngs.overlay()), size(full.pngs.overlay()));
    assert.deepEqual(size(reduced.pngs.display()), [b.heatmap.width, b.heatmap.height]);
    // The heatmap stays where it was: the peak moves by less than one CAM cell (1/16 of the 200 mm field).
    const pa = a.heatmap.peak;
    const pb = b.heatmap.peak;
    assert.ok(pa && pb);
    assert.ok(Math.abs(pa.x - pb.x) < 0.05 && Math.abs(pa.y - pb.y) < 0.05, `peak ${JSON.stringify(pa)} vs ${JSON.stringify(pb)}`);
  });
});
