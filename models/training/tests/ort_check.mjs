// Runs an exported model with onnxruntime-node (the runtime the service uses) on a parity-fixture directory and
// prints, as JSON, the largest absolute difference of each output from the PyTorch-computed expectation.
// Used by the Python tests to check ONNX vs PyTorch agreement; Python has no onnxruntime on this platform.
// Usage: node ort_check.mjs <model.onnx> <parity-dir>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(join(process.cwd(), 'package.json'));
const ort = require('onnxruntime-node');

const [modelPath, dir] = process.argv.slice(2);
const fx = JSON.parse(readFileSync(join(dir, 'fixtures.json'), 'utf8'));
const f32 = (meta) => {
  const b = readFileSync(join(dir, meta.file));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 2, executionProviders: ['cpu'] });
const feeds = {};
for (const [name, meta] of Object.entries(fx.model.inputs)) feeds[name] = new ort.Tensor('float32', f32(meta), meta.shape);
const out = await session.run(feeds);
const diff = {};
for (const [name, meta] of Object.entries(fx.model.expected)) {
  const want = f32(meta);
  const got = out[name].data;
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  diff[name] = { maxAbs: m, shape: out[name].dims, expectedShape: meta.shape };
}
console.log(JSON.stringify(diff));
