/**
 * The model manifest (issue 3, item 6; schema `models/manifest.schema.json`) as the service reads it: the typed
 * subset the engine uses, and validation of the whole file with ajv against the schema (JSON Schema 2020-12).
 *
 * Two kinds of model, told apart by `risk_model.kind` (schema 2.x requires it): the log-hazard ensemble of schema 1.x
 * (hip-xray-v1: outputs `log_hazard`) and the T-score-mediated model of schema 2.x (hip-xray-v2 contract: outputs
 * `base_log_hazard` and `tscore`, η = base + γ·T, a calibrated T-score head and Gauss-Hermite quadrature).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { REPO_ROOT } from '../config.ts';
import type { PreprocessRecipe } from '../imaging/preprocess.ts';

export const MANIFEST_SCHEMA_PATH = join(REPO_ROOT, 'models', 'manifest.schema.json');

export interface TensorSpec {
  name: string;
  dtype: string;
  shape: (number | string)[];
}

/** The fields every manifest has that the service relies on (the schema requires them). */
interface ManifestCommon {
  schema_version: string;
  id: string;
  version: string;
  date: string;
  name: string;
  license: string;
  synthetic_training_data: true;
  not_for_clinical_use: true;
  use_statement: string;
  intended_use: { purpose: string; population: { age_years: [number, number]; sex: string[] }; out_of_scope: string[] };
  dicom_selection: {
    modality: string[];
    body_part_examined: string[];
    view_position: string[];
    sop_class_uids: string[];
    photometric_interpretation?: string[];
    rule?: string;
  };
  preprocessing: PreprocessRecipe & { constants: PreprocessRecipe['constants'] };
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  outcomes: { id: string; index: number; definition: string; horizons_years: number[] }[];
  clinical_term: { definition: string; inputs: string[]; coefficient_per_member?: Record<string, number[]>; attribution: string };
  ensemble: { members: number; method: string };
  ood: { method: string; threshold: number; threshold_rule?: string };
  explanation: { method: string; output: string; grid: [number, number]; cell_size_working_px: number };
  onnx: { file: string; sha256: string; bytes: number; opset: number };
  metrics: Record<string, unknown>;
  limitations: string[];
}

type BaselineHazard = { grid_years: number[] } & Record<string, number[]>;

/** Schema 1.x: each member outputs the log-hazard; the interval is η̄ ± f·z·sd over members (server/risk/survival.ts). */
export interface LogHazardManifest extends ManifestCommon {
  risk_model: { kind?: 'log-hazard-ensemble'; formula: string; baseline_cumulative_hazard: BaselineHazard };
  uncertainty: { method: string; z: number; sd_ddof: number; interval_factor: Record<string, number>; test_coverage?: Record<string, number> };
}

/** The expected log-hazard sd at a risk level: intercept + slope · mean log-hazard. */
export interface SdReference {
  intercept: number;
  slope: number;
}

/**
 * Schema 2.x (hip-xray-v2 contract): member m outputs a base log-hazard per outcome and a raw T-score predictive
 * mean and sd; η_mk(T) = base_mk + γ_mk·T (server/risk/mediated.ts).
 */
export interface TscoreManifest extends ManifestCommon {
  risk_model: { kind: 'tscore-mediated'; formula: string; baseline_cumulative_hazard: BaselineHazard; tscore_coefficient_per_member: Record<string, number[]> };
  tscore_head: {
    calibration: { intercept: number; slope: number; sd_scale: number; fitted_on?: string; version?: string };
    predictive?: string;
    /** sd of a measured DXA T-score when it replaces the estimate (the cohort's DXA precision). */
    dxa_precision_sd: number;
    /** A DXA older than this at the assessment date is not used (a service setting may override it). */
    dxa_max_age_years: number;
  };
  uncertainty: {
    method: string;
    /** Probabilists' Gauss-Hermite nodes per member over its T-score distribution. */
    gauss_hermite_nodes: number;
    /**
     * sd σ ≥ 0 of a log-hazard offset u ~ N(−σ²/2, σ) shared by all heads and members, independent of the T-score:
     * determinants nothing measures (bone quality beyond BMD, chart errors). Absent or 0: none (mediated.ts).
     */
    unmeasured_log_hazard_sd?: number;
    /** How σ was chosen. */
    unmeasured_log_hazard_note?: string;
    interval?: string;
    low_confidence: { max_log_hazard_sd: number; sd_reference?: Record<string, SdReference>; rule?: string };
  };
}

/** A model manifest of either kind. */
export type ModelManifest = LogHazardManifest | TscoreManifest;

/** True for a T-score-mediated (schema 2.x) manifest. */
export const isTscoreMediated = (m: ModelManifest): m is TscoreManifest => m.risk_model.kind === 'tscore-mediated';

/** The ONNX outputs each kind of model must have. */
export const REQUIRED_OUTPUTS = {
  'log-hazard-ensemble': ['log_hazard', 'cam', 'ood_distance'],
  'tscore-mediated': ['base_log_hazard', 'tscore', 'cam', 'ood_distance'],
} as const;

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  readonly code = 'MODEL_MANIFEST';
}

let validator: ValidateFunction | undefined;

function schemaValidator(): ValidateFunction {
  if (validator) return validator;
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  // ajv-formats is CommonJS with `exports.default` (see server/config.ts for why it is required this way).
  const addFormats = (createRequire(import.meta.url)('ajv-formats') as { default: (a: Ajv2020) => Ajv2020 }).default;
  addFormats(ajv);
  validator = ajv.compile(JSON.parse(readFileSync(MANIFEST_SCHEMA_PATH, 'utf8')) as object);
  return validator;
}

const describe = (errors: ErrorObject[] | null | undefined): string =>
  (errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`).join('; ');

/** Parses and validates a manifest file; checks the cross-field facts the engine depends on. */
export function readManifest(path: string): ModelManifest {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ManifestError(`${path}: not readable JSON (${(err as Error).message})`);
  }
  const validate = schemaValidator();
  if (!validate(data)) throw new ManifestError(`manifest does not match models/manifest.schema.json: ${describe(validate.errors)}`);
  const m = data as ModelManifest;
  const bh = m.risk_model.baseline_cumulative_hazard;
  const mediated = isTscoreMediated(m);
  for (const o of m.outcomes) {
    const h = bh[o.id];
    if (!Array.isArray(h) || h.length !== bh.grid_years.length) throw new ManifestError(`baseline hazard of outcome ${o.id} is missing or not on the grid`);
    if (mediated) {
      const g = m.risk_model.tscore_coefficient_per_member[o.id];
      if (!g || g.length !== m.ensemble.members || !g.every(Number.isFinite)) throw new ManifestError(`risk_model.tscore_coefficient_per_member.${o.id} needs one number per member (${m.ensemble.members})`);
    } else if (!(m.uncertainty.interval_factor[o.id]! > 0)) throw new ManifestError(`no interval factor for outcome ${o.id}`);
  }
  for (const name of ['hip', 'mof']) if (!m.outcomes.some((o) => o.id === name)) throw new ManifestError(`manifest has no outcome '${name}'`);
  for (const name of ['image', 'clinical']) if (!m.inputs.some((t) => t.name === name)) throw new ManifestError(`manifest has no input '${name}'`);
  for (const name of REQUIRED_OUTPUTS[mediated ? 'tscore-mediated' : 'log-hazard-ensemble']) if (!m.outputs.some((t) => t.name === name)) throw new ManifestError(`manifest has no output '${name}'`);
  if (!(m.ood.threshold > 0)) throw new ManifestError('OOD threshold must be positive');
  return m;
}
