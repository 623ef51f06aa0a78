/**
 * The CT spine risk model (`models/ct-spine-v1/`, setting `MODEL_CT_DIR`): loading and checking its manifest
 * ({@link CtModelManifest}, server/pathways/ct-spine/types.ts) and the risk it gives for one patient.
 *
 * Risk, per member m and outcome k (hip, MOF): base_mk = intercept_mk + clinical_mk·clinical_k +
 * fracture_mk[worst Genant grade], with clinical_k = log(−log(1 − QFracture-2012 10-year risk k)); the T-score enters
 * as γ_mk·T. The T-score distribution, the same for every member:
 * - a recent measured DXA T-score (risk/dxa.ts, within `dxa_max_age_years` or the site's setting): N(DXA, DXA precision);
 * - else the estimate from the phase-adjusted L1 attenuation: N(intercept + slope·HU, sd), the sd widened by
 *   `unknown_phase_extra_sd` (in quadrature) when the contrast phase is unknown;
 * - else (no level measurable) the training cohort's prior N(mean, sd).
 * Curves, the mixture mean, its 95 % percentiles, threshold probabilities and MOF ≥ hip are mediated.ts, exactly as
 * for hip-xray-v2. Pure apart from reading the manifest file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContrastPhase } from '../pathways/ct-spine/l1-roi.ts';
import type { CtModelManifest, CtRiskInputs, GenantGrade } from '../pathways/ct-spine/types.ts';
import type { MeasuredDxa } from './dxa.ts';
import { gaussHermite, MediatedOutcome, type MediatedHead, type TscoreNormal } from './mediated.ts';
import type { Outcome } from './qfracture.ts';

export interface CtModel {
  id: string;
  version: string;
  dir: string;
  manifest: CtModelManifest;
}

/** The manifest is missing, unreadable or breaks the contract; the message names the field. */
export class CtModelError extends Error {
  override readonly name = 'CtModelError';
}

const PHASES: readonly ContrastPhase[] = ['non-contrast', 'arterial', 'portal-venous', 'delayed', 'unknown'];
const OUTCOMES: readonly Outcome[] = ['hip', 'mof'];

type Check = (ok: boolean, field: string, what: string) => void;

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Typed checks of everything the risk reads; throws {@link CtModelError} naming the first bad field. */
export function validateCtManifest(raw: unknown, source = 'manifest'): CtModelManifest {
  const check: Check = (ok, field, what) => {
    if (!ok) throw new CtModelError(`${source}: ${field} ${what}`);
  };
  check(typeof raw === 'object' && raw !== null, '(root)', 'must be an object');
  const m = raw as Record<string, unknown> & Partial<CtModelManifest>;
  check(m.kind === 'ct-spine', 'kind', `must be "ct-spine" (got ${JSON.stringify(m.kind)})`);
  for (const k of ['schema_version', 'id', 'version', 'name', 'use_statement'] as const) check(typeof m[k] === 'string' && m[k] !== '', k, 'must be a non-empty string');
  check(m.synthetic_training_data === true, 'synthetic_training_data', 'must be true');
  check(m.not_for_clinical_use === true, 'not_for_clinical_use', 'must be true');
  const h = m.tscore_from_hu;
  check(!!h && finite(h.intercept) && finite(h.slope) && finite(h.sd) && h.sd > 0, 'tscore_from_hu', 'needs finite intercept, slope and sd > 0');
  check(h!.slope > 0, 'tscore_from_hu.slope', 'must be > 0 (denser bone, higher T-score)');
  for (const p of PHASES) check(finite(h!.phase_offset_hu?.[p]), `tscore_from_hu.phase_offset_hu.${p}`, 'must be a number (HU)');
  check(finite(h!.unknown_phase_extra_sd) && h!.unknown_phase_extra_sd >= 0, 'tscore_from_hu.unknown_phase_extra_sd', 'must be ≥ 0');
  check(typeof h!.version === 'string', 'tscore_from_hu.version', 'must be a string');
  check(!!m.tscore_prior && finite(m.tscore_prior.mean) && finite(m.tscore_prior.sd) && m.tscore_prior.sd > 0, 'tscore_prior', 'needs a finite mean and sd > 0');
  const r = m.risk_model;
  check(r?.kind === 'tscore-mediated', 'risk_model.kind', 'must be "tscore-mediated"');
  const b = r!.baseline_cumulative_hazard;
  const grid = b?.grid_years;
  check(Array.isArray(grid) && grid.length >= 2 && grid.every(finite) && grid.every((t, i) => i === 0 || t > grid[i - 1]!), 'risk_model.baseline_cumulative_hazard.grid_years', 'must be increasing numbers');
  check(grid![grid!.length - 1]! >= 10, 'risk_model.baseline_cumulative_hazard.grid_years', 'must reach 10 years');
  for (const o of OUTCOMES) {
    const h0 = b[o];
    check(Array.isArray(h0) && h0.length === grid!.length && h0.every((x) => finite(x) && x >= 0) && h0.every((x, i) => i === 0 || x >= h0[i - 1]!), `risk_model.baseline_cumulative_hazard.${o}`, 'must be non-decreasing, ≥ 0, one value per grid point');
  }
  check(Array.isArray(r!.members) && r!.members.length > 0, 'risk_model.members', 'must be a non-empty list');
  r!.members.forEach((mem, i) => {
    for (const part of ['intercept', 'clinical', 'tscore'] as const) for (const o of OUTCOMES) check(finite(mem?.[part]?.[o]), `risk_model.members[${i}].${part}.${o}`, 'must be a number');
    for (const o of OUTCOMES) {
      const f = mem.fracture?.[o];
      check(Array.isArray(f) && f.length === 4 && f.every(finite) && f[0] === 0, `risk_model.members[${i}].fracture.${o}`, 'must be 4 log-hazards by grade 0..3 with grade 0 = 0');
    }
  });
  check(finite(r!.dxa_precision_sd) && r!.dxa_precision_sd > 0, 'risk_model.dxa_precision_sd', 'must be > 0');
  check(finite(r!.dxa_max_age_years) && r!.dxa_max_age_years > 0, 'risk_model.dxa_max_age_years', 'must be > 0');
  const u = m.uncertainty;
  check(u?.method === 'quadrature', 'uncertainty.method', 'must be "quadrature"');
  check(Number.isInteger(u!.gauss_hermite_nodes), 'uncertainty.gauss_hermite_nodes', 'must be an integer');
  try {
    gaussHermite(u!.gauss_hermite_nodes);
  } catch (e) {
    check(false, 'uncertainty.gauss_hermite_nodes', (e as Error).message);
  }
  if (u!.low_confidence !== undefined) check(finite(u!.low_confidence.max_log_hazard_sd) && u!.low_confidence.max_log_hazard_sd > 0, 'uncertainty.low_confidence.max_log_hazard_sd', 'must be > 0');
  return m as CtModelManifest;
}

/** Reads and checks `<dir>/manifest.json`; throws {@link CtModelError} with the path and the reason. */
export function loadCtModel(dir: string): CtModel {
  const file = join(dir, 'manifest.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CtModelError(`CT model manifest ${file} cannot be read: ${(e as Error).message}`);
  }
  const manifest = validateCtManifest(raw, `CT model manifest ${file}`);
  return { id: manifest.id, version: manifest.version, dir, manifest };
}

export interface CtRiskRequest {
  /** log(−log(1 − QFracture-2012 10-year risk)) per outcome: the model's clinical input. */
  clinical: Record<Outcome, number>;
  ct: CtRiskInputs & { phase: ContrastPhase };
  /** A recent measured femoral-neck DXA T-score (dxa.ts), which replaces the estimate. */
  dxa: MeasuredDxa | null;
}

export interface CtRisk {
  /** The T-score distribution the risk rests on and where it came from. */
  tscore: { normal: TscoreNormal; source: 'dxa' | 'ct' | 'prior' };
  /** The attenuation's own T-score estimate (also when a DXA replaced it); null when not measurable. */
  estimate: TscoreNormal | null;
  /** MOF carries the hip head as its floor (MOF includes hip). */
  outcomes: Record<Outcome, MediatedOutcome>;
  /** The heads, for what-if and image-term-only variants. */
  heads: Record<Outcome, MediatedHead>;
}

/** T-score estimate from the phase-adjusted attenuation (header). */
export function tscoreFromHu(man: CtModelManifest, adjustedHu: number, phase: ContrastPhase): TscoreNormal {
  const h = man.tscore_from_hu;
  const sd = phase === 'unknown' ? Math.hypot(h.sd, h.unknown_phase_extra_sd) : h.sd;
  return { mean: h.intercept + h.slope * adjustedHu, sd };
}

/** Per-member base log-hazard and T-score slope of one outcome at a worst grade and clinical input. */
function headOf(man: CtModelManifest, o: Outcome, clinical: number, grade: GenantGrade): MediatedHead {
  const r = man.risk_model;
  return {
    grid: r.baseline_cumulative_hazard.grid_years,
    h0: r.baseline_cumulative_hazard[o],
    base: r.members.map((m) => m.intercept[o] + m.clinical[o] * clinical + m.fracture[o][grade]),
    gamma: r.members.map((m) => m.tscore[o]),
  };
}

/** The risk of one patient (header). */
export function ctRisk(model: CtModel, req: CtRiskRequest): CtRisk {
  const man = model.manifest;
  const estimate = req.ct.adjustedHu !== null && Number.isFinite(req.ct.adjustedHu) ? tscoreFromHu(man, req.ct.adjustedHu, req.ct.phase) : null;
  const tscore: CtRisk['tscore'] = req.dxa
    ? { normal: { mean: req.dxa.value, sd: man.risk_model.dxa_precision_sd }, source: 'dxa' }
    : estimate
      ? { normal: estimate, source: 'ct' }
      : { normal: { ...man.tscore_prior }, source: 'prior' };
  const members = man.risk_model.members.map(() => tscore.normal);
  const n = man.uncertainty.gauss_hermite_nodes;
  const heads = { hip: headOf(man, 'hip', req.clinical.hip, req.ct.worstGrade), mof: headOf(man, 'mof', req.clinical.mof, req.ct.worstGrade) };
  return {
    tscore,
    estimate,
    heads,
    outcomes: { hip: new MediatedOutcome([heads.hip], members, n), mof: new MediatedOutcome([heads.mof, heads.hip], members, n) },
  };
}
