/**
 * The T-score head's calibration (models/hip-xray-v2 contract, `tscore_head.calibration`; amendment 1): the raw
 * per-member T-score predictive mean and sd the ONNX graph outputs become `mean = intercept + slope · raw_mean`,
 * `sd = sdScale · raw_sd`. The manifest carries the calibration fitted by training; a site may replace it by a local
 * recalibration file (written by `npm run site-check`, fitted on the site's own radiograph–DXA pairs, on the same raw
 * outputs) named by the setting `MODEL_TSCORE_CALIBRATION`. The service records which version it used.
 *
 * A file made for another model or another model version is refused: its parameters were fitted on another head's
 * raw outputs and would silently shift every estimate.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject } from 'ajv';

/** The calibration in force for one loaded model. */
export interface TscoreCalibration {
  readonly intercept: number;
  readonly slope: number;
  readonly sdScale: number;
  /** The manifest's `tscore_head.calibration.version`, or the local file's `version`. */
  readonly version: string;
  readonly source: 'manifest' | 'local';
}

/** Agreement of the calibrated estimate with measured DXA on a set of pairs (site-check before/after). */
export interface AgreementSummary {
  readonly n: number;
  /** Pearson correlation of estimate mean and measured T-score; null with fewer than 3 pairs or no spread. */
  readonly r: number | null;
  /** Mean of (estimate − measured). */
  readonly bias: number | null;
  /** Share of measured values inside the estimate's 95 % predictive interval. */
  readonly coverage: number | null;
}

/** The local recalibration file (contract amendment 1). */
export interface RecalibrationFile {
  readonly kind: 'frcds-tscore-recalibration';
  readonly model: string;
  readonly modelVersion: string;
  /** `<site>-<yyyymmdd>-<n>`. */
  readonly version: string;
  readonly created: string;
  readonly site: string;
  readonly intercept: number;
  readonly slope: number;
  readonly sd_scale: number;
  readonly basis: { readonly pairs: number; readonly from: string; readonly to: string };
  readonly before: AgreementSummary;
  readonly after: AgreementSummary;
  /** How the parameters were fitted and how `after` was measured (free text; optional for other writers). */
  readonly method?: string;
}

/** The part of a model manifest this module reads (v1 manifests have no `tscore_head`). */
export interface CalibratedManifest {
  readonly id: string;
  readonly version: string;
  readonly tscore_head?: {
    readonly calibration?: { readonly intercept: number; readonly slope: number; readonly sd_scale: number; readonly version?: string; readonly fitted_on?: string };
  };
}

export class CalibrationError extends Error {
  override readonly name = 'CalibrationError';
  readonly code = 'MODEL_TSCORE_CALIBRATION';
}

export const RECALIBRATION_KIND = 'frcds-tscore-recalibration';

const agreement = {
  type: 'object',
  required: ['n', 'r', 'bias', 'coverage'],
  properties: {
    n: { type: 'integer', minimum: 0 },
    r: { type: ['number', 'null'], minimum: -1, maximum: 1 },
    bias: { type: ['number', 'null'] },
    coverage: { type: ['number', 'null'], minimum: 0, maximum: 1 },
  },
} as const;

/** JSON Schema of {@link RecalibrationFile}. A slope ≤ 0 or a scale ≤ 0 would invert or collapse the estimate. */
export const RECALIBRATION_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  required: ['kind', 'model', 'modelVersion', 'version', 'created', 'site', 'intercept', 'slope', 'sd_scale', 'basis', 'before', 'after'],
  properties: {
    kind: { const: RECALIBRATION_KIND },
    model: { type: 'string', minLength: 1 },
    modelVersion: { type: 'string', minLength: 1 },
    version: { type: 'string', pattern: '^[A-Za-z0-9._-]+-[0-9]{8}-[0-9]+$' },
    created: { type: 'string', minLength: 10 },
    site: { type: 'string', minLength: 1, maxLength: 100 },
    intercept: { type: 'number', minimum: -10, maximum: 10 },
    slope: { type: 'number', exclusiveMinimum: 0, maximum: 10 },
    sd_scale: { type: 'number', exclusiveMinimum: 0, maximum: 20 },
    basis: {
      type: 'object',
      required: ['pairs', 'from', 'to'],
      properties: { pairs: { type: 'integer', minimum: 1 }, from: { type: 'string' }, to: { type: 'string' } },
    },
    before: agreement,
    after: agreement,
    method: { type: 'string' },
  },
} as const;

let validator: ReturnType<Ajv2020['compile']> | undefined;
const describe = (errors: ErrorObject[] | null | undefined): string =>
  (errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`).join('; ');

/** Checks the shape of a parsed recalibration file; `where` names it in the error. */
export function parseRecalibration(data: unknown, where: string): RecalibrationFile {
  validator ??= new Ajv2020({ allErrors: true, strict: false }).compile(RECALIBRATION_SCHEMA);
  if (!validator(data)) throw new CalibrationError(`${where}: not a T-score recalibration file (${describe(validator.errors)})`);
  return data as RecalibrationFile;
}

/**
 * The calibration to use for a model: the local file's when `filePath` is given (checked against the model id and
 * version), else the manifest's `tscore_head.calibration`. Throws {@link CalibrationError} when neither is usable.
 */
export function loadTscoreCalibration(manifest: CalibratedManifest, filePath: string | undefined): TscoreCalibration {
  if (filePath !== undefined) {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(filePath, 'utf8'));
    } catch (err) {
      throw new CalibrationError(`MODEL_TSCORE_CALIBRATION: ${filePath} is not readable JSON (${(err as Error).message.split('\n')[0]})`);
    }
    const file = parseRecalibration(data, `MODEL_TSCORE_CALIBRATION ${filePath}`);
    if (file.model !== manifest.id || file.modelVersion !== manifest.version) {
      throw new CalibrationError(
        `MODEL_TSCORE_CALIBRATION ${filePath} was fitted for ${file.model}@${file.modelVersion}, not ${manifest.id}@${manifest.version}: refit it with npm run site-check for this model`,
      );
    }
    return { intercept: file.intercept, slope: file.slope, sdScale: file.sd_scale, version: file.version, source: 'local' };
  }
  const c = manifest.tscore_head?.calibration;
  if (!c) throw new CalibrationError(`model ${manifest.id}@${manifest.version} has no tscore_head.calibration`);
  if (![c.intercept, c.slope, c.sd_scale].every(Number.isFinite) || !(c.slope > 0) || !(c.sd_scale > 0)) {
    throw new CalibrationError(`model ${manifest.id}@${manifest.version}: tscore_head.calibration needs finite intercept, slope > 0 and sd_scale > 0`);
  }
  return { intercept: c.intercept, slope: c.slope, sdScale: c.sd_scale, version: c.version ?? `${manifest.id}@${manifest.version}`, source: 'manifest' };
}

/** One member's calibrated T-score predictive mean and sd from its raw head output. */
export function calibrate(cal: Pick<TscoreCalibration, 'intercept' | 'slope' | 'sdScale'>, raw: { mean: number; sd: number }): { mean: number; sd: number } {
  return { mean: cal.intercept + cal.slope * raw.mean, sd: cal.sdScale * raw.sd };
}
