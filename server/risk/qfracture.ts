/**
 * QFracture-2012 risk equations (issue 5, item 2): 10-year (1–18 year) risk of hip fracture and of major
 * osteoporotic fracture (MOF: hip, wrist, spine, shoulder), separate equations for women and men.
 *
 * QFracture-2012 equations, published by ClinRisk Ltd under LGPL-3.0 (Copyright 2012 ClinRisk Ltd). This is NOT the
 * current QFracture release. The coefficients are read from `models/qfracture-2012/coefficients.json` — the same
 * file the Python cohort generator reads (`models/training/frcds/qfracture.py`) — never re-typed here.
 *
 * Written by hand because no npm package ships the 2012 equations; the arithmetic is short
 * (risk = 100·(1 − S0(t)^exp(a))) and is tested against ClinRisk's five reference outputs and the Python port.
 *
 * Out-of-range inputs throw {@link QFractureInputError} (ClinRisk's C returns 0 instead, which would be a silent
 * number); callers that clamp (BMI to 20–40) do so explicitly and record it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../config.ts';

export const QFRACTURE_ATTRIBUTION =
  'QFracture-2012 equations, published by ClinRisk Ltd under LGPL-3.0 (not the current QFracture release)';

export type Outcome = 'hip' | 'mof';
export type Sex = 'female' | 'male';

/** Every boolean any of the four equations uses; an equation ignores booleans it does not list. */
export const QF_BOOLEANS = [
  'b_antidepressant', 'b_anycancer', 'b_asthmacopd', 'b_carehome', 'b_corticosteroids', 'b_cvd', 'b_dementia',
  'b_endocrine', 'b_epilepsy2', 'b_falls', 'b_fracture4', 'b_hrt_oest', 'b_liver', 'b_malabsorption', 'b_parkinsons',
  'b_ra_sle', 'b_renal', 'b_type1', 'b_type2', 'fh_osteoporosis',
] as const;
export type QfBoolean = (typeof QF_BOOLEANS)[number];

/** The inputs of one person, in ClinRisk's coding. */
export interface QFractureInputs {
  /** Integer years, 30..100. */
  age: number;
  /** kg/m², 20..40. */
  bmi: number;
  /** 1..9 (1 white or not stated). */
  ethrisk: number;
  /** 0..4 (0 non-smoker … 4 heavy smoker). */
  smoke_cat: number;
  /** 0..5 (0 none … 5 > 9 units/day). */
  alcohol_cat6: number;
  /** Absent booleans count as 0. */
  booleans: Partial<Record<QfBoolean, 0 | 1>>;
}

export const RANGES = { age: [30, 100], bmi: [20, 40], ethrisk: [1, 9], smoke_cat: [0, 4], alcohol_cat6: [0, 5], surv: [1, 18] } as const;

/** An input is outside the range ClinRisk's program accepts. */
export class QFractureInputError extends Error {
  override readonly name = 'QFractureInputError';
  readonly code = 'QFRACTURE_INPUT';
}

type FpEntry = [name: string, transform: string, centre: number, coef: number];
interface Equation {
  survivor: number[];
  Ialcohol: number[];
  Iethrisk: number[];
  Ismoke: number[];
  fp: FpEntry[];
  boolean: Partial<Record<QfBoolean, number>>;
}
interface CoefficientFile {
  equations: Record<string, Equation>;
}

/** The fractional-polynomial transforms that occur in the coefficient file, keyed by their literal text there. */
const TRANSFORMS: Record<string, (d: number) => number> = {
  dage: (d) => d,
  'pow(dage,0.5)': Math.sqrt,
  'pow(dage,2)': (d) => d * d,
  'pow(dage,3)': (d) => d * d * d,
  'pow(dage,3)*log(dage)': (d) => d * d * d * Math.log(d),
  'pow(dbmi,-1)': (d) => 1 / d,
  'pow(dbmi,-0.5)': (d) => 1 / Math.sqrt(d),
  'pow(dbmi,-2)': (d) => 1 / (d * d),
};

const OUTCOME_KEY: Record<Outcome, string> = { hip: 'nof', mof: 'fracture4' };

let cached: CoefficientFile | undefined;
/** Path of the coefficient file (shared with the Python generator). */
export const COEFFICIENTS_PATH = join(REPO_ROOT, 'models', 'qfracture-2012', 'coefficients.json');

function coefficients(): CoefficientFile {
  if (cached) return cached;
  const data = JSON.parse(readFileSync(COEFFICIENTS_PATH, 'utf8')) as CoefficientFile;
  for (const [key, eq] of Object.entries(data.equations)) {
    for (const [name, t] of eq.fp) {
      if (!(t in TRANSFORMS)) throw new QFractureInputError(`unknown fractional-polynomial transform ${t} (${key} ${name})`);
    }
  }
  cached = data;
  return data;
}

export function equation(outcome: Outcome, sex: Sex): Equation {
  const eq = coefficients().equations[`${OUTCOME_KEY[outcome]}_${sex}`];
  if (!eq) throw new QFractureInputError(`no QFracture-2012 equation for ${outcome}/${sex}`);
  return eq;
}

function checkInt(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new QFractureInputError(`${name} must be an integer in ${lo}..${hi}, got ${v}`);
  return v;
}

/** One additive term of the linear predictor, for explanation ("which factor adds how much log-hazard"). */
export interface QfTerm {
  /** 'age', 'bmi', 'ethrisk', 'smoke_cat', 'alcohol_cat6' or a boolean name. */
  factor: string;
  /** Log-hazard this factor adds relative to QFracture's reference (centred age/BMI, category 0/1, boolean 0). */
  logHazard: number;
}

/**
 * The linear predictor `a` and its additive terms (age and BMI terms summed over their fractional-polynomial
 * parts). Implements the `formula` of coefficients.json.
 */
export function linearPredictorTerms(outcome: Outcome, sex: Sex, x: QFractureInputs): { lp: number; terms: QfTerm[] } {
  const eq = equation(outcome, sex);
  const age = checkInt('age', x.age, ...RANGES.age);
  if (!(x.bmi >= RANGES.bmi[0] && x.bmi <= RANGES.bmi[1])) throw new QFractureInputError(`bmi must be in 20..40, got ${x.bmi}`);
  const eth = checkInt('ethrisk', x.ethrisk, ...RANGES.ethrisk);
  const smoke = checkInt('smoke_cat', x.smoke_cat, ...RANGES.smoke_cat);
  const alc = checkInt('alcohol_cat6', x.alcohol_cat6, ...RANGES.alcohol_cat6);
  const terms: QfTerm[] = [];
  // Same summation order as the Python port (alcohol, ethnicity, smoking, fp terms, booleans) so results agree bitwise.
  let a = eq.Ialcohol[alc]! + eq.Iethrisk[eth]! + eq.Ismoke[smoke]!;
  const d = { age: age / 10, bmi: x.bmi / 10 };
  let ageTerm = 0;
  let bmiTerm = 0;
  for (const [name, t, centre, coef] of eq.fp) {
    const isAge = name.startsWith('age');
    const term = coef * (TRANSFORMS[t]!(isAge ? d.age : d.bmi) - centre);
    a += term;
    if (isAge) ageTerm += term;
    else bmiTerm += term;
  }
  terms.push({ factor: 'age', logHazard: ageTerm }, { factor: 'bmi', logHazard: bmiTerm });
  terms.push({ factor: 'ethrisk', logHazard: eq.Iethrisk[eth]! }, { factor: 'smoke_cat', logHazard: eq.Ismoke[smoke]! });
  terms.push({ factor: 'alcohol_cat6', logHazard: eq.Ialcohol[alc]! });
  for (const [b, coef] of Object.entries(eq.boolean) as [QfBoolean, number][]) {
    const v = x.booleans[b] ?? 0;
    if (v !== 0 && v !== 1) throw new QFractureInputError(`${b} must be 0 or 1, got ${String(v)}`);
    a += coef * v;
    terms.push({ factor: b, logHazard: coef * v });
  }
  return { lp: a, terms };
}

export function linearPredictor(outcome: Outcome, sex: Sex, x: QFractureInputs): number {
  return linearPredictorTerms(outcome, sex, x).lp;
}

/** Risk as a FRACTION (0..1) at `years` (integer 1..18) for linear predictor `lp`. */
export function riskFromLp(lp: number, outcome: Outcome, sex: Sex, years = 10): number {
  const t = checkInt('surv', years, ...RANGES.surv);
  const s0 = equation(outcome, sex).survivor[t]!;
  return 1 - Math.pow(s0, Math.exp(lp));
}

/** QFracture-2012 risk in PERCENT of `outcome` within `years` years (ClinRisk's output unit). */
export function riskPercent(outcome: Outcome, sex: Sex, x: QFractureInputs, years = 10): number {
  return 100 * riskFromLp(linearPredictor(outcome, sex, x), outcome, sex, years);
}

/** Clamp to ClinRisk's BMI range (the caller records that it clamped). */
export function clampBmi(bmi: number): number {
  return Math.min(Math.max(bmi, RANGES.bmi[0]), RANGES.bmi[1]);
}
