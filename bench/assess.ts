/**
 * Risk-engine benchmark (issue 5, "Must show"): `npx tsx bench/assess.ts [--rounds N]` (MODELS_DIR selects the
 * models; the embedded demo sandboxes are started in-process over loopback HTTP, exactly as `npm run assess` does).
 *
 * Prints:
 * - cold (uncached) assessments of every demo patient end to end — FHIR reads, study choice, DICOMweb metadata and
 *   frame, decode, preprocessing, inference, image checks, heatmap — median / p95 / mean over all rounds;
 * - the share of that time spent inside onnxruntime (session.run);
 * - cached answers: the request memo (identical request) and the (study, model, factors) cache after a fresh chart
 *   read; median / p95;
 * - micro-batching under 8 concurrent cold requests (batch sizes);
 * - process RSS with all models loaded, and after the run; the machine's load average (other jobs share the CPU).
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig } from '../server/config.ts';
import { HttpFhirClient } from '../server/fhir/client.ts';
import { DicomWebClient } from '../server/imaging/dicomweb-client.ts';
import { ModelRegistry } from '../server/inference/registry.ts';
import { createLogger } from '../server/logging.ts';
import type { AssessDeps } from '../server/risk/assess.ts';
import { startEmbeddedSandboxes } from '../server/risk/embedded.ts';
import { RiskService } from '../server/risk/service.ts';
import { createImagingExecutor } from '../server/imaging/worker-pool.ts';

const { rounds: roundsArg } = parseArgs({ options: { rounds: { type: 'string', default: '2' } } }).values;
const rounds = Math.max(1, Number(roundsArg));
const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))]!;
};
const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MB`;
const fmt = (xs: number[]): string => `median ${q(xs, 0.5).toFixed(1)} ms, p95 ${q(xs, 0.95).toFixed(1)} ms, mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(1)} ms (n=${xs.length})`;

const config = loadConfig();
const logger = createLogger({ level: 'error', destination: process.stderr });
const rss0 = process.memoryUsage().rss;
const registry = await ModelRegistry.load(config.inference, logger);
const st = registry.status();
if (st.models.length === 0) {
  process.stderr.write(`no model loaded from ${config.inference.modelsDir}: ${st.detail}\n`);
  process.exit(1);
}
const rssModels = process.memoryUsage().rss;
const sandboxes = await startEmbeddedSandboxes(config, logger);
const patients = (JSON.parse(readFileSync(join(config.sandboxDataDir, 'truth.json'), 'utf8')) as { patients: { patient_id: string }[] }).patients.map((p) => p.patient_id);
const deps: AssessDeps = {
  fhir: new HttpFhirClient({ baseUrl: sandboxes.fhirBaseUrl, timeoutMs: config.fhir.timeoutMs }),
  dicomweb: new DicomWebClient({ baseUrl: sandboxes.dicomWebBaseUrl, timeoutMs: config.dicomweb.timeoutMs }),
  registry,
  settings: config.risk,
  logger,
  imaging: createImagingExecutor(config.imaging.workers), // IMAGING_WORKERS (0 = inline)
};

// Warm-up: JIT, WASM codecs, the sandbox's search paths (not counted).
await new RiskService({ deps, cacheSize: 10, writeBack: false, logger }).assess({ patientId: patients[0]! });

// Main-thread event-loop delay while cold assessments run: what a CDS hook arriving meanwhile would wait.
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
const cold: number[] = [];
const onnx: number[] = [];
const parts: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  const service = new RiskService({ deps, cacheSize: 1000, writeBack: false, logger });
  for (const id of patients) {
    const t0 = performance.now();
    const out = await service.assess({ patientId: id });
    cold.push(performance.now() - t0);
    const t = out.stored.assessment.timings;
    onnx.push(t['onnxRunMs'] ?? 0);
    for (const [k, v] of Object.entries(t)) (parts[k] ??= []).push(v);
  }
}
loopDelay.disable();
// Cached: same service, same requests.
const service = new RiskService({ deps, cacheSize: 1000, writeBack: false, logger });
for (const id of patients) await service.assess({ patientId: id });
const memo: number[] = [];
const cache: number[] = [];
for (const id of patients) {
  let t0 = performance.now();
  const a = await service.assess({ patientId: id });
  memo.push(performance.now() - t0);
  if (a.source !== 'memo') throw new Error(`expected a memo hit for ${id}, got ${a.source}`);
  t0 = performance.now();
  const b = await service.assess({ patientId: id, at: new Date() }); // bypasses the memo: chart re-read, cache key
  cache.push(performance.now() - t0);
  if (b.source !== 'cache') throw new Error(`expected a cache hit for ${id}, got ${b.source}`);
}
// Heatmap PNGs, rendered on first request (not part of the assessment time above).
const pngMs: number[] = [];
for (const id of patients) {
  const out = await service.assess({ patientId: id });
  if (!out.stored.pngs) continue;
  const t1 = performance.now();
  out.stored.pngs.overlay();
  out.stored.pngs.display();
  pngMs.push(performance.now() - t1);
}
// Concurrency: 8 cold requests at once.
const model = registry.get();
const before = { ...model.stats };
const conc = new RiskService({ deps, cacheSize: 100, writeBack: false, logger });
const t0 = performance.now();
await Promise.all(patients.slice(0, 8).map((id) => conc.assess({ patientId: id })));
const concMs = performance.now() - t0;
const batches = model.stats.batches - before.batches;
const concLargest = model.stats.largestBatch;

// Inference alone: 16 images one after another vs 16 submitted at once (micro-batched).
const size = Number(model.manifest.inputs.find((t) => t.name === 'image')!.shape.at(-1));
const imgs = Array.from({ length: 16 }, (_, i) => ({ image: Float32Array.from({ length: size * size }, (_v, j) => ((i * 131 + j * 7) % 997) / 997), clinical: [0, 0] }));
let t2 = performance.now();
for (const x of imgs) await model.infer(x);
const seqMs = performance.now() - t2;
const b0 = model.stats.batches;
t2 = performance.now();
await Promise.all(imgs.map((x) => model.infer(x)));
const parMs = performance.now() - t2;
const parBatches = model.stats.batches - b0;

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const lines = [
  `bench/assess — ${patients.length} demo patients × ${rounds} rounds; model ${st.models.map((m) => `${m.id}@${m.version} (${m.provider})`).join(', ')}`,
  `machine: ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (shared with other jobs), IMAGING_WORKERS=${config.imaging.workers}`,
  `cold (uncached) end to end, fetch included: ${fmt(cold)}`,
  `  main event loop delay during the cold runs: p50 ${(loopDelay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms`,
  `  of which onnxruntime session.run: ${(100 * sum(onnx) / sum(cold)).toFixed(1)} % of the time (median run ${q(onnx, 0.5).toFixed(1)} ms)`,
  `  stage medians: ${['fhirMs', 'selectMs', 'fetchMs', 'decodeMs', 'preprocessMs', 'inferenceWaitMs', 'qualityAndHeatmapMs'].filter((k) => parts[k]).map((k) => `${k.replace(/Ms$/, '')} ${q(parts[k]!, 0.5).toFixed(1)}`).join(', ')} (ms)`,
  `heatmap + display PNGs, rendered when first requested: ${pngMs.length ? fmt(pngMs) : 'none (no in-distribution image)'}`,
  `cached, identical request (memo): ${fmt(memo)}`,
  `cached, chart re-read + (study, model, factors) key: ${fmt(cache)}`,
  `8 concurrent cold requests: ${concMs.toFixed(0)} ms wall, ${batches} session runs for 8 images (largest batch so far ${concLargest})`,
  `inference only, 16 images: ${seqMs.toFixed(1)} ms one by one, ${parMs.toFixed(1)} ms submitted together (${parBatches} session runs, INFERENCE_BATCH_MAX=${config.inference.maxBatch})`,
  `RSS: ${mb(rss0)} at start, ${mb(rssModels)} with all models loaded, ${mb(process.memoryUsage().rss)} after the run (embedded FHIR + DICOMweb sandboxes in the same process)`,
];
process.stdout.write(`${lines.join('\n')}\n`);
await sandboxes.close();
await registry.close();
await deps.imaging?.close();
