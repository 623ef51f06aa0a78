/**
 * Model registry (issue 5, item 1): every folder under `MODELS_DIR` that holds a `manifest.json` is a model. At
 * start-up each manifest is validated against `models/manifest.schema.json`, the ONNX file's sha256 is checked
 * against the manifest, and one onnxruntime session is created per model on the chosen execution provider.
 *
 * Provider choice: onnxruntime-node does NOT fall back from CUDA to CPU by itself (session creation throws when the
 * CUDA provider cannot load; platform-notes), so `auto` tries CUDA, catches, and falls back to CPU with the reason
 * logged; `cuda` fails the model instead of falling back; `cpu` never tries CUDA. The provider in use is reported
 * by {@link ModelRegistry.status} (→ `/readyz`) and in every result's provenance.
 *
 * Both kinds of manifest run here (manifest.ts): a log-hazard ensemble (schema 1.x, output `log_hazard`) and a
 * T-score-mediated model (schema 2.x, outputs `base_log_hazard` and the raw T-score head `tscore`). For the latter
 * the T-score calibration in force is loaded with the model (server/inference/calibration.ts: the manifest's, or the
 * site's recalibration file `MODEL_TSCORE_CALIBRATION`); a refused file fails that model, reported in the status.
 *
 * Which model answers a request without a model id: `defaultModel` (`MODEL_DEFAULT`) when set, else the first id in
 * sort order (hip-xray-v1 before hip-xray-v2).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../logging.ts';
import { MicroBatcher, type BatchStats } from './batcher.ts';
import { loadTscoreCalibration, type TscoreCalibration } from './calibration.ts';
import { isTscoreMediated, readManifest, type ModelManifest } from './manifest.ts';

export type InferenceDevice = 'auto' | 'cuda' | 'cpu';
export type Provider = 'cuda' | 'cpu';

export interface InferenceSettings {
  modelsDir: string;
  device: InferenceDevice;
  /** onnxruntime intra-op threads (CPU). */
  threads: number;
  maxBatch: number;
  maxWaitMs: number;
  /** A site's T-score recalibration file for the T-score-mediated model it was fitted for (`MODEL_TSCORE_CALIBRATION`). */
  tscoreCalibration?: string | undefined;
  /** The model id used when a request names none (`MODEL_DEFAULT`); unset: the first id in sort order. */
  defaultModel?: string | undefined;
}

/** One image's model input. */
export interface ModelInput {
  /** float32[S·S], the preprocessed image. */
  image: Float32Array;
  /** The clinical term inputs in manifest order (QFracture-2012 linear predictors hip, MOF). */
  clinical: readonly number[];
}

/** One image's raw model output. */
export interface ModelOutput {
  /** [members][outcomes] log-hazards of a log-hazard ensemble; empty for a T-score-mediated model (see baseLogHazard). */
  logHazard: number[][];
  /** T-score-mediated model: [members][outcomes] log-hazards without the T-score term; null otherwise. */
  baseLogHazard: number[][] | null;
  /** T-score-mediated model: [members] RAW T-score predictive mean and sd (before calibration); null otherwise. */
  tscore: { mean: number; sd: number }[] | null;
  /** [outcomes] CAM maps, each float32[h·w] row-major. */
  cam: Float32Array[];
  oodDistance: number;
  /** Wall time of the session run this item was part of, and that batch's size. */
  runMs: number;
  batchSize: number;
}

export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
  readonly code = 'MODEL_LOAD';
}
export class ModelNotFoundError extends Error {
  override readonly name = 'ModelNotFoundError';
  readonly code = 'MODEL_NOT_FOUND';
}

export interface LoadedModel {
  readonly id: string;
  readonly version: string;
  readonly dir: string;
  readonly manifest: ModelManifest;
  readonly provider: Provider;
  /** Why the provider is not the one asked for (auto → CPU fallback). */
  readonly providerNote?: string;
  /** The T-score calibration in force (T-score-mediated models only; null for a log-hazard ensemble). */
  readonly tscoreCalibration: TscoreCalibration | null;
  readonly session: ort.InferenceSession;
  readonly stats: BatchStats;
  infer(input: ModelInput): Promise<ModelOutput>;
}

export interface RegistryStatus {
  ready: boolean;
  detail: string;
  models: { id: string; version: string; provider: Provider; providerNote?: string }[];
  failed: { dir: string; error: string }[];
}

const sha256File = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

async function createSession(path: string, settings: InferenceSettings, logger: Logger): Promise<{ session: ort.InferenceSession; provider: Provider; note?: string }> {
  const base: ort.InferenceSession.SessionOptions = { intraOpNumThreads: settings.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  if (settings.device !== 'cpu') {
    const prev = ort.env.logLevel;
    ort.env.logLevel = 'fatal'; // the failed CUDA probe would otherwise print a native stack to stderr
    try {
      const session = await ort.InferenceSession.create(path, { ...base, executionProviders: ['cuda'], logSeverityLevel: 4 });
      return { session, provider: 'cuda' };
    } catch (err) {
      const reason = (err as Error).message.split('\n')[0]!.slice(0, 200);
      if (settings.device === 'cuda') throw new ModelLoadError(`INFERENCE_DEVICE=cuda but the CUDA execution provider cannot start: ${reason}`);
      logger.warn({ reason }, 'CUDA execution provider unavailable; falling back to CPU');
      const session = await ort.InferenceSession.create(path, { ...base, executionProviders: ['cpu'] });
      return { session, provider: 'cpu', note: `CUDA unavailable (${reason}); running on CPU` };
    } finally {
      ort.env.logLevel = prev;
    }
  }
  const session = await ort.InferenceSession.create(path, { ...base, executionProviders: ['cpu'] });
  return { session, provider: 'cpu' };
}

function outputDims(m: ModelManifest): { members: number; outcomes: number; camH: number; camW: number; size: number } {
  const img = m.inputs.find((t) => t.name === 'image')!;
  const size = Number(img.shape[img.shape.length - 1]);
  return { members: m.ensemble.members, outcomes: m.outcomes.length, camH: m.explanation.grid[0], camW: m.explanation.grid[1], size };
}

async function loadModel(dir: string, settings: InferenceSettings, logger: Logger): Promise<LoadedModel> {
  const manifest = readManifest(join(dir, 'manifest.json'));
  const onnxPath = join(dir, manifest.onnx.file);
  if (!existsSync(onnxPath)) throw new ModelLoadError(`${manifest.onnx.file} is missing`);
  const digest = sha256File(onnxPath);
  if (digest !== manifest.onnx.sha256) throw new ModelLoadError(`${manifest.onnx.file} sha256 ${digest.slice(0, 12)}… does not match the manifest (${manifest.onnx.sha256.slice(0, 12)}…)`);
  const mediated = isTscoreMediated(manifest);
  // Before the session: a recalibration file of another model is refused with its own clear error.
  const tscoreCalibration = mediated ? loadTscoreCalibration(manifest, settings.tscoreCalibration) : null;
  const { session, provider, note } = await createSession(onnxPath, settings, logger);
  for (const t of manifest.inputs) if (!session.inputNames.includes(t.name)) throw new ModelLoadError(`ONNX graph has no input '${t.name}'`);
  for (const t of manifest.outputs) if (!session.outputNames.includes(t.name)) throw new ModelLoadError(`ONNX graph has no output '${t.name}'`);
  const d = outputDims(manifest);
  const nClin = manifest.clinical_term.inputs.length;
  // The risk engine knows how to compute these clinical inputs (server/risk/assess.ts clinicalInputs).
  const unknown = manifest.clinical_term.inputs.filter((n) => !/^qf_(lp|cloglog10)_(hip|mof)$/.test(n));
  if (unknown.length > 0) throw new ModelLoadError(`clinical inputs ${unknown.join(', ')} are not supported by this service`);

  const run = async (items: ModelInput[]): Promise<ModelOutput[]> => {
    const B = items.length;
    const image = new Float32Array(B * d.size * d.size);
    const clinical = new Float32Array(B * nClin);
    items.forEach((it, b) => {
      if (it.image.length !== d.size * d.size) throw new RangeError(`image has ${it.image.length} values, model wants ${d.size}×${d.size}`);
      if (it.clinical.length !== nClin) throw new RangeError(`clinical has ${it.clinical.length} values, model wants ${nClin}`);
      image.set(it.image, b * d.size * d.size);
      it.clinical.forEach((v, k) => (clinical[b * nClin + k] = v));
    });
    const t0 = performance.now();
    const out = await session.run({
      image: new ort.Tensor('float32', image, [B, 1, d.size, d.size]),
      clinical: new ort.Tensor('float32', clinical, [B, nClin]),
    });
    const runMs = performance.now() - t0;
    const lh = out[mediated ? 'base_log_hazard' : 'log_hazard']!.data as Float32Array;
    const ts = mediated ? (out['tscore']!.data as Float32Array) : null;
    const cam = out['cam']!.data as Float32Array;
    const ood = out['ood_distance']!.data as Float32Array;
    const camCell = d.camH * d.camW;
    return items.map((_, b) => {
      const perMember = Array.from({ length: d.members }, (_m, m) => Array.from({ length: d.outcomes }, (_o, k) => lh[(b * d.members + m) * d.outcomes + k]!));
      return {
        logHazard: mediated ? [] : perMember,
        baseLogHazard: mediated ? perMember : null,
        tscore: ts ? Array.from({ length: d.members }, (_m, m) => ({ mean: ts[(b * d.members + m) * 2]!, sd: ts[(b * d.members + m) * 2 + 1]! })) : null,
        cam: Array.from({ length: d.outcomes }, (_o, k) => cam.slice((b * d.outcomes + k) * camCell, (b * d.outcomes + k + 1) * camCell)),
        oodDistance: ood[b]!,
        runMs,
        batchSize: B,
      };
    });
  };
  const batcher = new MicroBatcher(run, { maxBatch: settings.maxBatch, maxWaitMs: settings.maxWaitMs });
  logger.info({ model: manifest.id, version: manifest.version, provider, sha256: digest.slice(0, 12), ...(tscoreCalibration ? { tscoreCalibration: tscoreCalibration.version, calibrationSource: tscoreCalibration.source } : {}) }, 'model loaded');
  return {
    id: manifest.id,
    version: manifest.version,
    dir,
    manifest,
    provider,
    ...(note ? { providerNote: note } : {}),
    tscoreCalibration,
    session,
    stats: batcher.stats,
    infer: (input) => batcher.submit(input),
  };
}


/**
 * Whether a manifest belongs to a model this registry does not run: one that declares a top-level `kind` (the CT spine
 * model, `"kind": "ct-spine"`, is a classical analysis plus a Cox ensemble loaded by `risk/ct-model.ts` from
 * MODEL_CT_DIR, with no ONNX file). ONNX manifests (schema 1.x and 2.x) have no top-level `kind`. An unreadable
 * manifest is not skipped here, so its error is reported by the loader.
 */
function declaresOtherKind(manifestPath: string): boolean {
  try {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { kind?: unknown };
    return typeof m.kind === 'string';
  } catch {
    return false;
  }
}
export class ModelRegistry {
  readonly #models = new Map<string, LoadedModel>();
  readonly #failed: { dir: string; error: string }[] = [];
  readonly settings: InferenceSettings;

  private constructor(settings: InferenceSettings) {
    this.settings = settings;
  }

  /** Loads every model under `settings.modelsDir`; a model that fails is reported (status), the others still load. */
  static async load(settings: InferenceSettings, logger: Logger): Promise<ModelRegistry> {
    const reg = new ModelRegistry(settings);
    if (!existsSync(settings.modelsDir) || !statSync(settings.modelsDir).isDirectory()) {
      reg.#failed.push({ dir: settings.modelsDir, error: 'MODELS_DIR is not a folder' });
      return reg;
    }
    for (const name of readdirSync(settings.modelsDir).sort()) {
      const dir = join(settings.modelsDir, name);
      if (!statSync(dir).isDirectory() || !existsSync(join(dir, 'manifest.json'))) continue;
      if (declaresOtherKind(join(dir, 'manifest.json'))) continue;
      try {
        const m = await loadModel(dir, settings, logger);
        if (reg.#models.has(m.id)) throw new ModelLoadError(`duplicate model id ${m.id}`);
        reg.#models.set(m.id, m);
      } catch (err) {
        logger.error({ model: name, err: (err as Error).message }, 'model failed to load');
        reg.#failed.push({ dir: name, error: (err as Error).message });
      }
    }
    return reg;
  }

  list(): LoadedModel[] {
    return [...this.#models.values()];
  }

  /** A model by id, or the default: `settings.defaultModel` when set, else the first id in sort order. */
  get(id?: string): LoadedModel {
    const wanted = id ?? this.settings.defaultModel;
    if (wanted) {
      const m = this.#models.get(wanted);
      if (!m) throw new ModelNotFoundError(id ? `no model '${id}' is loaded` : `the default model '${wanted}' (MODEL_DEFAULT) is not loaded (see /readyz)`);
      return m;
    }
    const first = this.list().sort((a, b) => a.id.localeCompare(b.id))[0];
    if (!first) throw new ModelNotFoundError('no model is loaded (see /readyz)');
    return first;
  }

  status(): RegistryStatus {
    const models = this.list().map((m) => ({ id: m.id, version: m.version, provider: m.provider, ...(m.providerNote ? { providerNote: m.providerNote } : {}) }));
    const ready = models.length > 0 && this.#failed.length === 0;
    const detail = models.length === 0
      ? `no model loaded${this.#failed.length ? `: ${this.#failed.map((f) => `${f.dir}: ${f.error}`).join('; ')}` : ` from ${this.settings.modelsDir}`}`
      : `${models.map((m) => `${m.id}@${m.version} on ${m.provider}${m.providerNote ? ' (CUDA unavailable, CPU fallback)' : ''}`).join(', ')}${this.#failed.length ? `; failed: ${this.#failed.map((f) => f.dir).join(', ')}` : ''}`;
    return { ready, detail, models, failed: [...this.#failed] };
  }

  async close(): Promise<void> {
    for (const m of this.#models.values()) await m.session.release();
  }
}
