/**
 * Model artefact parity (issue 3, item 7b): the committed `models/hip-xray-v1/model.onnx`, run by onnxruntime-node
 * on CPU exactly as the service runs it, reproduces the outputs the PyTorch training code computed for the committed
 * parity inputs, and the manifest describes the file that is actually there (sha256, opset, tensor shapes).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL_DIR = join(ROOT, 'models', 'hip-xray-v1');
const PARITY_DIR = join(MODEL_DIR, 'parity');

interface TensorFile { file: string; shape: number[]; dtype: 'float32'; sha256: string }
interface PreprocessCase extends TensorFile { dicom: string; dicom_sha256: string }
interface Fixtures {
  preprocess: { cases: PreprocessCase[]; tolerance_mean_abs: number };
  model: { inputs: Record<string, TensorFile>; expected: Record<string, TensorFile>; rows: string[]; tolerance_abs: number };
}
interface TensorSpec { name: string; dtype: string; shape: (number | string)[] }
interface Manifest {
  id: string;
  onnx: { file: string; sha256: string; opset: number; bytes: number };
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  ensemble: { members: number };
  synthetic_training_data: boolean;
  not_for_clinical_use: boolean;
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
function f32(meta: TensorFile): Float32Array {
  const b = readFileSync(join(PARITY_DIR, meta.file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

let manifest: Manifest;
let fixtures: Fixtures;
let session: ort.InferenceSession;

before(async () => {
  manifest = JSON.parse(readFileSync(join(MODEL_DIR, 'manifest.json'), 'utf8')) as Manifest;
  fixtures = JSON.parse(readFileSync(join(PARITY_DIR, 'fixtures.json'), 'utf8')) as Fixtures;
  session = await ort.InferenceSession.create(join(MODEL_DIR, manifest.onnx.file), {
    executionProviders: ['cpu'],
    intraOpNumThreads: 2,
  });
});

describe('models/hip-xray-v1', () => {
  test('manifest matches the ONNX file (sha256, size, opset) and flags synthetic, non-clinical use', () => {
    const path = join(MODEL_DIR, manifest.onnx.file);
    assert.equal(sha256(path), manifest.onnx.sha256);
    assert.equal(statSync(path).size, manifest.onnx.bytes);
    assert.ok(manifest.onnx.bytes <= 20 * 1024 * 1024, 'artefact must stay within 20 MB');
    assert.ok(manifest.onnx.opset <= 17);
    assert.equal(manifest.synthetic_training_data, true);
    assert.equal(manifest.not_for_clinical_use, true);
  });

  test('session inputs and outputs are the ones the manifest names', () => {
    assert.deepEqual([...session.inputNames].sort(), manifest.inputs.map((t) => t.name).sort());
    assert.deepEqual([...session.outputNames].sort(), manifest.outputs.map((t) => t.name).sort());
  });

  test('parity fixture files are intact', () => {
    for (const meta of [...Object.values(fixtures.model.inputs), ...Object.values(fixtures.model.expected)]) {
      assert.equal(sha256(join(PARITY_DIR, meta.file)), meta.sha256, meta.file);
      assert.equal(f32(meta).length, size(meta.shape), meta.file);
    }
  });

  test('onnxruntime-node reproduces the PyTorch outputs to 1e-4', async () => {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, meta] of Object.entries(fixtures.model.inputs)) feeds[name] = new ort.Tensor('float32', f32(meta), meta.shape);
    const out = await session.run(feeds);
    const tol = fixtures.model.tolerance_abs;
    assert.ok(tol <= 1e-4);
    for (const [name, meta] of Object.entries(fixtures.model.expected)) {
      const got = out[name];
      assert.ok(got, `missing output ${name}`);
      assert.deepEqual([...got.dims], meta.shape, name);
      const want = f32(meta);
      const data = got.data as Float32Array;
      // log-hazards: 1e-4 absolute. CAM values and OOD distances are sums of many float32 products and reach
      // O(10-1000): 1e-4 relative to the largest expected value of that output.
      let scale = 1;
      if (name !== 'log_hazard') for (const v of want) scale = Math.max(scale, Math.abs(v));
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(data[i]! - want[i]!) / scale);
      }
      assert.ok(worst <= tol, `${name}: max difference ${worst} > ${tol}`);
    }
    const members = (out['log_hazard']!.dims as number[])[1];
    assert.equal(members, manifest.ensemble.members);
  });

  test('batch dimension is dynamic: one row alone gives the same outputs as inside the batch', async () => {
    const img = fixtures.model.inputs['image']!;
    const clin = fixtures.model.inputs['clinical']!;
    const rowPixels = size(img.shape.slice(1));
    const last = img.shape[0]! - 1;
    const single = await session.run({
      image: new ort.Tensor('float32', f32(img).slice(last * rowPixels, (last + 1) * rowPixels), [1, ...img.shape.slice(1)]),
      clinical: new ort.Tensor('float32', f32(clin).slice(last * 2, last * 2 + 2), [1, 2]),
    });
    const lh = fixtures.model.expected['log_hazard']!;
    const rowLen = size(lh.shape.slice(1));
    const want = f32(lh).slice(last * rowLen, (last + 1) * rowLen);
    const got = single['log_hazard']!.data as Float32Array;
    for (let i = 0; i < rowLen; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-4);
  });

  test('preprocessing fixtures point at demo DICOM files that are still the ones they were made from', (t) => {
    if (fixtures.preprocess.cases.length === 0) {
      t.diagnostic('no preprocessing fixtures in this artefact (demo cohort was absent when it was trained)');
    }
    for (const c of fixtures.preprocess.cases) {
      const p = join(ROOT, c.dicom);
      assert.ok(existsSync(p), `${c.dicom} missing`);
      assert.equal(sha256(p), c.dicom_sha256, `${c.dicom} changed since the fixture was made`);
      assert.equal(sha256(join(PARITY_DIR, c.file)), c.sha256);
    }
  });
});
