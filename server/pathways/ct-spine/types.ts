/**
 * The CT spine pathway's contracts, in one place: what the analysis of a volume returns (`CtFindings`), what the
 * CT survival model's manifest holds (`CtModelManifest`, `models/ct-spine-v1/manifest.json`), and what an
 * assessment shows of a CT (`CtAssessmentView`, `Assessment.ct`). Pure types; the rules live in the modules named.
 */
import type { CtGate } from './gate.ts';
import type { ContrastPhase, RoiStats } from './l1-roi.ts';
import type { LevelMorphometry } from './morphometry.ts';
import type { BodyBox } from './vertebrae.ts';

export type GenantGrade = 0 | 1 | 2 | 3;

/** One labelled vertebra as found in the volume (inferior → superior order in `CtFindings.levels`). */
export interface CtLevel {
  label: string;
  /** Head–foot extent, mm (patient z, + superior). */
  zBottom: number;
  zTop: number;
  /** Cut by the edge of the field of view: neither its height nor its grade is measured. */
  truncated: boolean;
  /** Why the level was left out of attenuation and morphometry (metal, truncated), if it was. */
  excluded?: string;
}

/** L1 (else T12, else L2) trabecular attenuation, with the contrast-phase handling applied. */
export interface CtAttenuation extends RoiStats {
  phase: ContrastPhase;
  /**
   * The median HU referred to a non-contrast scan (median − the manifest's phase offset), the value the T-score
   * estimate and the Pickhardt band use; equal to `medianHu` for a non-contrast series.
   */
  adjustedHu: number;
}

/** A vertebra's morphometry with the grade rule applied (`morphometry.ts`); levels excluded are not listed. */
export type CtLevelMorphometry = LevelMorphometry;

/** What `analyseCtVolume` returns for a volume it can read. */
export interface CtFindings {
  pathway: 'ct-spine';
  levels: CtLevel[];
  /** Null when no level in L1, T12, L2 was usable (the reason is in `warnings`). */
  attenuation: CtAttenuation | null;
  /** Null when the slices are too thick for heights (the reason is in `warnings`). */
  morphometry: CtLevelMorphometry[] | null;
  /** Highest Genant grade over the measured levels (0 when none measured or none fractured). */
  worstGrade: GenantGrade;
  worstLevel: string | null;
  /** Where the overlays draw: the midline column and body box in the axial plane. */
  geometry: { midlineColumn: number; box: BodyBox };
  warnings: string[];
  /**
   * The out-of-distribution gate (`gate.ts`): reference tissues and acquisition against expected ranges. Outside →
   * the service does not use `attenuation` for the T-score; morphometry is geometric and still counts. Absent when
   * no level of L1, T12, L2 is wholly in the field.
   */
  gate?: CtGate;
}

/** A measured prevalent vertebral fracture as the risk model uses it: the worst grade (0 = none). */
export interface CtRiskInputs {
  worstGrade: GenantGrade;
  /** Phase-adjusted L1 (or fallback level) HU; null when not measurable. */
  adjustedHu: number | null;
}

/**
 * `models/ct-spine-v<N>/manifest.json`: no ONNX file (the analysis is classical image processing); a T-score
 * estimate from attenuation and a T-score-mediated Cox ensemble with a prevalent-fracture term.
 *
 * Member m, outcome k: base_mk = intercept_mk + clinical_mk·clinical_k + fracture_mk[worstGrade], with
 * clinical_k = log(−log(1 − QFracture-2012 10-year risk k)); η_mk(T) = base_mk + tscore_mk·T; risk_k(t) =
 * 1 − exp(−H0_k(t)·exp(η)). T ~ N(tscoreFromHu(adjustedHu)) for every member, or N(DXA, dxa_precision_sd) when a
 * recent measured DXA exists, or `tscore_prior` when attenuation was not measurable. Everything else (mixture,
 * percentiles, threshold probabilities, MOF ≥ hip) is `server/risk/mediated.ts`.
 */
export interface CtModelManifest {
  schema_version: string;
  id: string;
  version: string;
  kind: 'ct-spine';
  name: string;
  synthetic_training_data: true;
  not_for_clinical_use: true;
  use_statement: string;
  tscore_from_hu: {
    /** T = intercept + slope · adjustedHu, predictive sd `sd` (a linear fit on measured DXA pairs). */
    intercept: number;
    slope: number;
    sd: number;
    /** HU added by contrast at the trabecular ROI, subtracted before the estimate; `unknown` widens by `unknown_phase_extra_sd`. */
    phase_offset_hu: Record<ContrastPhase, number>;
    unknown_phase_extra_sd: number;
    fitted_on: string;
    version: string;
  };
  /** The T-score distribution when attenuation could not be measured (population of the training cohort). */
  tscore_prior: { mean: number; sd: number };
  risk_model: {
    kind: 'tscore-mediated';
    baseline_cumulative_hazard: { grid_years: number[]; hip: number[]; mof: number[] };
    members: {
      intercept: { hip: number; mof: number };
      clinical: { hip: number; mof: number };
      tscore: { hip: number; mof: number };
      /** Log-hazard by worst Genant grade 0..3 (index 0 is 0). */
      fracture: { hip: [number, number, number, number]; mof: [number, number, number, number] };
    }[];
    dxa_precision_sd: number;
    dxa_max_age_years: number;
  };
  uncertainty: { method: 'quadrature'; gauss_hermite_nodes: number; low_confidence?: { max_log_hazard_sd: number } };
  metrics?: Record<string, unknown>;
  training_data?: Record<string, unknown>;
  limitations?: string[];
  references?: string[];
}

/** What an assessment shows of a CT (`Assessment.ct`); null for a radiograph or a clinical-only assessment. */
export interface CtAssessmentView {
  seriesUid: string;
  seriesDescription: string | null;
  sliceThicknessMm: number;
  slices: number;
  phase: ContrastPhase;
  levels: CtLevel[];
  attenuation: (CtAttenuation & { tScore: { estimate: number; low: number; high: number } }) | null;
  morphometry: CtLevelMorphometry[] | null;
  worstGrade: GenantGrade;
  worstLevel: string | null;
  /** The out-of-distribution gate (`gate.ts`); outside → `attenuation` is null here (withheld) and a warning says why. */
  gate?: CtGate;
  /** A moderate or severe (grade ≥ 2) prevalent fracture: raises FLS priority and sets the imminent-risk flag. */
  imminentRisk: boolean;
  /** Whether the chart's problem list already records a vertebral fracture (the card says when it does not). */
  inProblemList: boolean;
  /** Ids of the device-derived Observations written for this study (L1 attenuation, per-level morphometry). */
  observationIds: string[];
  overlays: { sagittal: { width: number; height: number }; axial: { width: number; height: number } } | null;
}
