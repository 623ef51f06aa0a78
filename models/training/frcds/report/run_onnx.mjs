// Runs an ONNX model with onnxruntime-node (the runtime the service uses; Python has no onnxruntime on this
// platform) over raw float32 input files, in batches, and writes each output as a raw float32 file.
//
// Usage: node run_onnx.mjs <model.onnx> <dir> [batch]
//   <dir>/inputs.json  {"n": N, "inputs": {"<name>": {"file": "<name>.f32", "shape": [N, ...]}}}
//                      every input is row-major float32 with the batch axis first.
//   writes <dir>/<output>.f32 (row-major float32, batch axis first) and <dir>/outputs.json
//                      {"<output>": {"file": "<output>.f32", "shape": [N, ...]}}.
// Inputs are read batch by batch so a cohort larger than memory allows still runs.
import { closeSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

// Resolved from this file's location: the repository's node_modules holds onnxruntime-node.
const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');

const [modelPath, dir, batchArg] = process.argv.slice(2);
if (!modelPath || !dir) {
  console.error('usage: node run_onnx.mjs <model.onnx> <dir> [batch]');
  process.exit(2);
}
const batch = Number(batchArg ?? 64);
if (!Number.isInteger(batch) || batch < 1) {
  console.error(`batch must be a positive integer, got ${batchArg}`);
  process.exit(2);
}
const spec = JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8'));
const n = spec.n;
const inputs = Object.entries(spec.inputs).map(([name, meta]) => {
  if (meta.shape[0] !== n) throw new Error(`input ${name}: batch axis ${meta.shape[0]} != n ${n}`);
  const rowElems = meta.shape.slice(1).reduce((a, b) => a * b, 1);
  return { name, rowElems, rest: meta.shape.slice(1), fd: openSync(join(dir, meta.file), 'r') };
});

const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 2, executionProviders: ['cpu'] });
const outs = new Map();
for (let start = 0; start < n; start += batch) {
  const b = Math.min(batch, n - start);
  const feeds = {};
  for (const x of inputs) {
    const buf = Buffer.alloc(b * x.rowElems * 4);
    const got = readSync(x.fd, buf, 0, buf.length, start * x.rowElems * 4);
    if (got !== buf.length) throw new Error(`input ${x.name}: short read at row ${start}`);
    feeds[x.name] = new ort.Tensor('float32', new Float32Array(buf.buffer, buf.byteOffset, b * x.rowElems), [b, ...x.rest]);
  }
  const res = await session.run(feeds);
  for (const [name, t] of Object.entries(res)) {
    if (!outs.has(name)) outs.set(name, { fd: openSync(join(dir, `${name}.f32`), 'w'), rest: t.dims.slice(1) });
    const data = t.data;
    writeSync(outs.get(name).fd, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
}
for (const x of inputs) closeSync(x.fd);
const meta = {};
for (const [name, o] of outs) {
  closeSync(o.fd);
  meta[name] = { file: `${name}.f32`, shape: [n, ...o.rest] };
}
writeFileSync(join(dir, 'outputs.json'), JSON.stringify(meta));
