/**
 * Model registry and inference against real model artefacts: the smoke-config model committed under
 * `test/fixtures/models/` always, and `models/hip-xray-v1` when it is present (the parity fixture of each model is
 * reproduced through the TypeScript preprocessing of the named demo DICOM files + the registry's session to 1e-4).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../config.ts';
import { decodeFrame } from '../imaging/decode/index.ts';
import { parseDicomFile } from '../imaging/dicom.ts';
import { preprocessPixels } from '../imaging/preprocess.ts';
import { silentLogger } from '../../test/support/demo-stack.ts';
import { MicroBatcher } from './batcher.ts';
import { ModelRegistry, type InferenceSettings, type LoadedModel } from './registry.ts';

const FIXTURE_MODELS = join(REPO_ROOT, 'test/fixtures/models');
/** The closed-form hip-xray-v2-shaped model (test/fixtures/hip-xray-v2-tiny/make.py). */
const V2_TINY = join(REPO_ROOT, 'test/fixtures/hip-xray-v2-tiny');
const REAL_MODEL = join(REPO_ROOT, 'models/hip-xray-v1');
const settings = (modelsDir: string, extra: Partial<InferenceSettings> = {}): InferenceSettings => ({ modelsDir, device: 'auto', threads: 2, maxBatch: 8, maxWaitMs: 2, ...extra });

interface TensorFile { file: string; shape: number[] }
interface Fixtures {
  preprocess: { cases: (TensorFile & { dicom: string; dicom_sha256: string })[] };
  model: { inputs: Record<string, TensorFile>; expected: Record<string, TensorFile>; tolerance_abs: number };
}
const f32 = (dir: string, t: { file: string }): Float32Array => {
  const b = readFileSync(join(dir, 'parity', t.file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

interface ParityResult { viaDicom: number; viaStoredTensor: number }

/**
 * Rows 0..n-1 of the model fixture are the preprocess cases (demo DICOM files), in order. Each row is run through the
 * registry's session from the stored preprocessed tensor AND — when the DICOM file is still the one the fixture was
 * made from (sha256) — from the DICOM through the TypeScript preprocessing (which must reproduce the stored tensor).
 */
async function checkParity(model: LoadedModel, logHazardTol?: number): Promise<ParityResult> {
  const fx = JSON.parse(readFileSync(join(model.dir, 'parity', 'fixtures.json'), 'utf8')) as Fixtures;
  const clinical = f32(model.dir, fx.model.inputs['clinical']!);
  // A T-score-mediated model: its base log-hazards stand where a log-hazard ensemble's log-hazards do, plus the raw
  // T-score head ([member][mean, sd]).
  const mediated = model.tscoreCalibration !== null;
  const expLh = f32(model.dir, fx.model.expected[mediated ? 'base_log_hazard' : 'log_hazard']!);
  const expT = mediated ? f32(model.dir, fx.model.expected['tscore']!) : null;
  const expCam = f32(model.dir, fx.model.expected['cam']!);
  const expOod = f32(model.dir, fx.model.expected['ood_distance']!);
  const M = model.manifest.ensemble.members;
  const [h, w] = model.manifest.explanation.grid;
  assert.ok(fx.preprocess.cases.length >= 1);
  const tol = fx.model.tolerance_abs;
  const lhTol = logHazardTol ?? tol;
  // As in test/model-parity.test.ts: log-hazards absolute; CAM and OOD (sums of many products, O(10–1000))
  // relative to the largest expected value of that output.
  const camScale = Math.max(1, ...Array.from(expCam, Math.abs));
  const oodScale = Math.max(1, ...Array.from(expOod, Math.abs));
  const result: ParityResult = { viaDicom: 0, viaStoredTensor: 0 };
  for (const [row, c] of fx.preprocess.cases.entries()) {
    const images: Float32Array[] = [f32(model.dir, c)];
    result.viaStoredTensor++;
    const bytes = readFileSync(join(REPO_ROOT, c.dicom));
    if (createHash('sha256').update(bytes).digest('hex') === c.dicom_sha256) {
      const file = parseDicomFile(bytes);
      const stored = await decodeFrame(file.transferSyntaxUid, file.frame(0), file.pixelModule);
      const ts = preprocessPixels({ stored, pixelModule: file.pixelModule, laterality: file.string('00200062') ?? file.string('00200060') }, model.manifest.preprocessing);
      let mad = 0;
      ts.forEach((v, i) => (mad += Math.abs(v - images[0]![i]!)));
      assert.ok(mad / ts.length <= 1e-3, `row ${row}: TypeScript preprocessing differs from the fixture tensor (mean |Δ| ${mad / ts.length})`);
      images.push(ts);
      result.viaDicom++;
    }
    for (const image of images) {
      const out = await model.infer({ image, clinical: [clinical[row * 2]!, clinical[row * 2 + 1]!] });
      const lh = mediated ? out.baseLogHazard! : out.logHazard;
      for (let m = 0; m < M; m++) for (let k = 0; k < 2; k++) {
        const want = expLh[(row * M + m) * 2 + k]!;
        assert.ok(Math.abs(lh[m]![k]! - want) <= lhTol, `row ${row} log_hazard[${m}][${k}]: ${lh[m]![k]} vs ${want}`);
        if (expT) {
          const t = out.tscore![m]!;
          assert.ok(Math.abs((k === 0 ? t.mean : t.sd) - expT[(row * M + m) * 2 + k]!) <= lhTol, `row ${row} tscore[${m}][${k}]`);
        }
      }
      for (let k = 0; k < 2; k++) for (let i = 0; i < h * w; i++) {
        assert.ok(Math.abs(out.cam[k]![i]! - expCam[(row * 2 + k) * h * w + i]!) <= tol * camScale, `row ${row} cam`);
      }
      assert.ok(Math.abs(out.oodDistance - expOod[row]!) <= tol * oodScale, `row ${row} ood ${out.oodDistance} vs ${expOod[row]}`);
    }
  }
  return result;
}

let registry: ModelRegistry;
const logger = silentLogger();
before(async () => {
  registry = await ModelRegistry.load(settings(FIXTURE_MODELS), logger);
});
after(async () => registry?.close());

describe('model registry', () => {
  test('loads the fixture model: schema-valid manifest, sha256 verified, one session, provider reported', () => {
    const st = registry.status();
    assert.equal(st.ready, true, st.detail);
    assert.deepEqual(st.models.map((m) => m.id), ['hip-xray-smoke']);
    // auto: CUDA when it can start, else CPU with the reason (the CI and development machines have no CUDA).
    const m = st.models[0]!;
    if (m.provider === 'cpu') assert.match(m.providerNote ?? '', /CUDA unavailable/);
    else assert.equal(m.providerNote, undefined);
    assert.match(st.detail, new RegExp(`hip-xray-smoke@0\\.0\\.1 on ${m.provider}`));
  });

  test('reproduces the smoke model\'s parity fixture through TypeScript preprocessing + session', async () => {
    // The one-epoch smoke model has large, unconditioned head weights: onnxruntime and PyTorch (different float32
    // accumulation order) differ by up to 1.8e-4 on its log-hazards (measured). The 1e-4 applies to the
    // real artefact, checked in the next test with the fixture's own tolerance.
    // The demo cohort was regenerated after this fixture was made, so its DICOM rows run from the stored tensors.
    const r = await checkParity(registry.get('hip-xray-smoke'), 5e-4);
    assert.equal(r.viaStoredTensor, 2);
  });

  test('models/hip-xray-v1 (the real artefact) reproduces its parity fixture', async () => {
    assert.ok(existsSync(join(REAL_MODEL, 'manifest.json')), 'the committed model models/hip-xray-v1 is missing');
    const real = await ModelRegistry.load(settings(join(REPO_ROOT, 'models'), { device: 'cpu' }), logger);
    try {
      assert.equal(real.status().ready, true, real.status().detail);
      const r = await checkParity(real.get('hip-xray-v1'));
      assert.equal(r.viaDicom, r.viaStoredTensor, 'the real model\'s fixture must name the committed demo DICOM files');
    } finally {
      await real.close();
    }
  });

  test('every T-score-mediated model committed under models/ reproduces its parity fixture (base log-hazard, raw T-score head, CAM, OOD)', async () => {
    const all = await ModelRegistry.load(settings(join(REPO_ROOT, 'models'), { device: 'cpu' }), logger);
    try {
      assert.equal(all.status().ready, true, all.status().detail);
      for (const m of all.list().filter((x) => x.tscoreCalibration !== null)) await checkParity(m);
    } finally {
      await all.close();
    }
  });

  test('concurrent requests are micro-batched and give the same numbers as single runs', async () => {
    const model = registry.get();
    const size = 128 * 128;
    const inputs = Array.from({ length: 12 }, (_, i) => ({ image: Float32Array.from({ length: size }, (_v, j) => ((i * 7919 + j * 104729) % 1000) / 1000), clinical: [0.1 * i, -0.05 * i] }));
    const before = model.stats.batches;
    const together = await Promise.all(inputs.map((x) => model.infer(x)));
    assert.ok(model.stats.batches - before <= 3, `12 concurrent items took ${model.stats.batches - before} batches`);
    assert.ok(together.some((o) => o.batchSize > 1));
    for (let i = 0; i < inputs.length; i += 5) {
      const alone = await model.infer(inputs[i]!);
      assert.equal(alone.batchSize, 1);
      for (let m = 0; m < alone.logHazard.length; m++) for (let k = 0; k < 2; k++) assert.ok(Math.abs(alone.logHazard[m]![k]! - together[i]!.logHazard[m]![k]!) < 1e-5);
      assert.ok(Math.abs(alone.oodDistance - together[i]!.oodDistance) < 1e-3 * Math.max(1, alone.oodDistance));
    }
  });

  test('a wrong input size is a typed rejection of that batch, not a crash', async () => {
    await assert.rejects(registry.get().infer({ image: new Float32Array(10), clinical: [0, 0] }), RangeError);
  });

  test('a tampered ONNX file or an invalid manifest is refused (reported in status); INFERENCE_DEVICE=cuda fails without CUDA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'frcds-models-'));
    try {
      cpSync(join(FIXTURE_MODELS, 'hip-xray-smoke'), join(dir, 'tampered'), { recursive: true });
      const onnx = readFileSync(join(dir, 'tampered', 'model.onnx'));
      onnx[onnx.length - 1] = onnx[onnx.length - 1]! ^ 0xff;
      writeFileSync(join(dir, 'tampered', 'model.onnx'), onnx);
      cpSync(join(FIXTURE_MODELS, 'hip-xray-smoke'), join(dir, 'invalid'), { recursive: true });
      const man = JSON.parse(readFileSync(join(dir, 'invalid', 'manifest.json'), 'utf8')) as Record<string, unknown>;
      delete man['ood'];
      writeFileSync(join(dir, 'invalid', 'manifest.json'), JSON.stringify(man));
      const reg = await ModelRegistry.load(settings(dir), logger);
      const st = reg.status();
      assert.equal(st.ready, false);
      assert.equal(st.models.length, 0);
      assert.match(st.failed.find((f) => f.dir === 'tampered')!.error, /sha256/);
      assert.match(st.failed.find((f) => f.dir === 'invalid')!.error, /manifest\.schema\.json/);
      assert.throws(() => reg.get(), /no model is loaded/);

      const cuda = await ModelRegistry.load(settings(FIXTURE_MODELS, { device: 'cuda' }), logger);
      assert.equal(cuda.status().ready, false);
      assert.match(cuda.status().failed[0]!.error, /INFERENCE_DEVICE=cuda/);
      const cpu = await ModelRegistry.load(settings(FIXTURE_MODELS, { device: 'cpu' }), logger);
      assert.equal(cpu.status().models[0]!.providerNote, undefined);
      await cpu.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('T-score-mediated (schema 2.0.0) models', () => {
  /** A models folder with the smoke v1 model and the tiny v2 model side by side (the v2 fixture patched by `edit`). */
  const modelsDir = (edit?: (man: Record<string, unknown>) => void): string => {
    const dir = mkdtempSync(join(tmpdir(), 'frcds-models-v2-'));
    cpSync(join(FIXTURE_MODELS, 'hip-xray-smoke'), join(dir, 'hip-xray-smoke'), { recursive: true });
    cpSync(V2_TINY, join(dir, 'hip-xray-v2-tiny'), { recursive: true });
    if (edit) {
      const path = join(dir, 'hip-xray-v2-tiny', 'manifest.json');
      const man = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      edit(man);
      writeFileSync(path, JSON.stringify(man));
    }
    return dir;
  };

  test('a v2 model loads beside v1, runs base_log_hazard and the raw T-score head as numpy computed them; v1 stays the default', async () => {
    const dir = modelsDir();
    const reg = await ModelRegistry.load(settings(dir, { device: 'cpu' }), logger);
    try {
      assert.equal(reg.status().ready, true, reg.status().detail);
      assert.equal(reg.get().id, 'hip-xray-smoke', 'without MODEL_DEFAULT the first id in sort order answers');
      const v1 = await reg.get().infer({ image: new Float32Array(128 * 128).fill(0.4), clinical: [0, 0] });
      assert.equal(v1.baseLogHazard, null);
      assert.equal(v1.tscore, null);
      assert.equal(reg.get().tscoreCalibration, null);
      const v2 = reg.get('hip-xray-v2-tiny');
      assert.deepEqual(v2.tscoreCalibration, { intercept: 0.1, slope: 1, sdScale: 1.1, version: 'hip-xray-v2-tiny-fixture-1', source: 'manifest' });
      const parity = JSON.parse(readFileSync(join(V2_TINY, 'parity.json'), 'utf8')) as { cases: { case: number; clinical: number[]; expected: { base_log_hazard: number[]; tscore: number[]; ood_distance: number } }[]; tolerance_abs: number };
      for (const c of parity.cases) {
        // The rule parity.json names for its images.
        const image = Float32Array.from({ length: 128 * 128 }, (_v, j) => (((j * 104729 + c.case * 7919) % 1000) / 1000) * (0.8 + 0.3 * c.case));
        const out = await v2.infer({ image, clinical: c.clinical });
        assert.deepEqual(out.logHazard, []);
        const M = v2.manifest.ensemble.members;
        for (let m = 0; m < M; m++) {
          for (let k = 0; k < 2; k++) assert.ok(Math.abs(out.baseLogHazard![m]![k]! - c.expected.base_log_hazard[m * 2 + k]!) <= parity.tolerance_abs, `case ${c.case} base[${m}][${k}]`);
          assert.ok(Math.abs(out.tscore![m]!.mean - c.expected.tscore[m * 2]!) <= parity.tolerance_abs, `case ${c.case} tscore mean ${m}`);
          assert.ok(Math.abs(out.tscore![m]!.sd - c.expected.tscore[m * 2 + 1]!) <= parity.tolerance_abs, `case ${c.case} tscore sd ${m}`);
        }
        assert.ok(Math.abs(out.oodDistance - c.expected.ood_distance) <= parity.tolerance_abs * 10);
      }
    } finally {
      await reg.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('MODEL_DEFAULT picks the model a request without an id gets; an unknown default is a clear error', async () => {
    const dir = modelsDir();
    try {
      const reg = await ModelRegistry.load(settings(dir, { device: 'cpu', defaultModel: 'hip-xray-v2-tiny' }), logger);
      assert.equal(reg.get().id, 'hip-xray-v2-tiny');
      assert.equal(reg.get('hip-xray-smoke').id, 'hip-xray-smoke');
      await reg.close();
      const wrong = await ModelRegistry.load(settings(dir, { device: 'cpu', defaultModel: 'hip-xray-v9' }), logger);
      assert.throws(() => wrong.get(), /default model 'hip-xray-v9' \(MODEL_DEFAULT\) is not loaded/);
      await wrong.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a recalibration file replaces the manifest calibration; one for another model fails that model only', async () => {
    const dir = modelsDir();
    const file = (model: string): string => {
      const p = join(dir, `${model}.recalibration.json`);
      writeFileSync(p, JSON.stringify({ kind: 'frcds-tscore-recalibration', model, modelVersion: '0.0.1', version: 'site-c-20261203-1', created: '2026-12-03T14:00:00Z', site: 'site-c', intercept: -0.2, slope: 0.9, sd_scale: 1.3, basis: { pairs: 80, from: '2025-01-01', to: '2026-11-30' }, before: { n: 40, r: 0.7, bias: 0.3, coverage: 0.85 }, after: { n: 40, r: 0.7, bias: 0.0, coverage: 0.95 } }));
      return p;
    };
    try {
      const local = await ModelRegistry.load(settings(dir, { device: 'cpu', tscoreCalibration: file('hip-xray-v2-tiny') }), logger);
      assert.deepEqual(local.get('hip-xray-v2-tiny').tscoreCalibration, { intercept: -0.2, slope: 0.9, sdScale: 1.3, version: 'site-c-20261203-1', source: 'local' });
      await local.close();
      const other = await ModelRegistry.load(settings(dir, { device: 'cpu', tscoreCalibration: file('hip-xray-v3') }), logger);
      assert.equal(other.status().ready, false);
      assert.match(other.status().failed.find((f) => f.dir === 'hip-xray-v2-tiny')!.error, /fitted for hip-xray-v3@0\.0\.1, not hip-xray-v2-tiny@0\.0\.1/);
      assert.equal(other.get().id, 'hip-xray-smoke', 'the v1 model is not affected');
      await other.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a v2 manifest without its T-score head, with a gamma per member missing, or without the tscore output is refused', async () => {
    const cases: [string, (m: Record<string, unknown>) => void, RegExp][] = [
      ['no tscore_head', (m) => delete m['tscore_head'], /manifest\.schema\.json.*tscore_head/],
      ['gamma count', (m) => ((m['risk_model'] as { tscore_coefficient_per_member: { hip: number[] } }).tscore_coefficient_per_member.hip = [-1]), /tscore_coefficient_per_member\.hip needs one number per member \(3\)/],
      ['no tscore output', (m) => (m['outputs'] = (m['outputs'] as { name: string }[]).filter((o) => o.name !== 'tscore')), /no output 'tscore'/],
      ['v1 kind in a 2.x manifest', (m) => ((m['risk_model'] as { kind: string }).kind = 'log-hazard-ensemble'), /manifest\.schema\.json/],
      ['no quadrature nodes', (m) => delete (m['uncertainty'] as Record<string, unknown>)['gauss_hermite_nodes'], /gauss_hermite_nodes/],
    ];
    for (const [what, edit, error] of cases) {
      const dir = modelsDir(edit);
      try {
        const reg = await ModelRegistry.load(settings(dir, { device: 'cpu' }), logger);
        const failed = reg.status().failed.find((f) => f.dir === 'hip-xray-v2-tiny');
        assert.ok(failed, `${what}: refused`);
        assert.match(failed.error, error, what);
        assert.equal(reg.status().models.length, 1, `${what}: v1 still loads`);
        await reg.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

describe('micro-batcher', () => {
  test('flushes at maxBatch, then after maxWaitMs; errors reach every caller of the batch', async () => {
    const sizes: number[] = [];
    const b = new MicroBatcher<number, number>(async (xs) => {
      sizes.push(xs.length);
      if (xs.includes(-1)) throw new Error('bad item');
      return xs.map((x) => x * 2);
    }, { maxBatch: 4, maxWaitMs: 20 });
    const r = await Promise.all([1, 2, 3, 4, 5, 6].map((x) => b.submit(x)));
    assert.deepEqual(r, [2, 4, 6, 8, 10, 12]);
    assert.deepEqual(sizes, [4, 2]);
    const results = await Promise.allSettled([b.submit(1), b.submit(-1)]);
    assert.ok(results.every((x) => x.status === 'rejected'));
  });
});
