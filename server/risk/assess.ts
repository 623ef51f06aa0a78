/**
 * The assessment (issue 5, items 3–4): chart → QFracture-2012 inputs; latest eligible hip radiograph (manifest
 * selection rule, look-back window) → DICOMweb fetch → preprocessing → ensemble; then for hip and MOF the survival
 * curve 0–10 y with its 95 % band, risks at 1/2/5/10 y with intervals, clinical-only (QFracture-2012) and
 * image-term-only comparisons, per-factor log-hazard contributions, a tier, a heatmap — and the fail-safes:
 *
 * - OOD distance above the manifest threshold → the image-derived risk is WITHHELD; the clinical-only risk is shown
 *   with "Outside the model's training distribution — review by a clinician".
 * - no eligible image, or the image cannot be fetched/decoded/preprocessed → clinical-only, with the reason.
 * - image-quality checks (quality.ts) → warnings.
 * - "Low confidence" only when the uncertainty is unusual: an outcome's ensemble spread (sd of the members'
 *   log-hazards) above `lowConfidence.maxLogHazardSd`, or an in-distribution image close to the OOD threshold
 *   (distance above `lowConfidence.nearOodFraction` × threshold). A wide interval in percentage points alone is not
 *   unusual: the same spread on the log-hazard scale gives a wider interval the higher the risk.
 * - missing key factors (defaults used) → listed. Age outside the model's intended population → warning.
 * Every number comes with its basis; nothing is shown without saying what it rests on.
 *
 * MOF includes hip fracture, so the MOF cumulative hazard is never below the hip's (survival.ts, "Composite
 * outcomes"): for the fused risks, their bounds and curves, the radiograph-term-only comparison and the
 * clinical-only QFracture-2012 risks alike, and therefore for the tier, the decision and the FHIR output.
 * The decision (decision.ts) and the one most important caveat for a summary line are part of the assessment.
 *
 * "Image-term only" is the fused model's prediction with the clinical term set to QFracture's reference profile
 * (linear predictor 0: centred age and BMI, no risk factors) — what the radiograph alone moves; it is not a
 * separately trained image-only model.
 *
 * A T-score-mediated model (manifest `risk_model.kind = "tscore-mediated"`, hip-xray-v2) is read through
 * mediated.ts: the radiograph gives each member's calibrated femoral-neck T-score distribution (the manifest's
 * calibration, or the site's recalibration file) and a base log-hazard; a measured DXA T-score in the chart that is
 * recent enough (dxa.ts; `tscore_head.dxa_max_age_years` or `RISK_DXA_MAX_AGE_YEARS`) replaces the estimate, with
 * the manifest's DXA precision as its sd, and joins the basis. Risks, intervals, curves and threshold probabilities
 * come from the T-score mixture; "low confidence" follows the manifest's rule (its log-hazard sd over the mixture,
 * less the sd expected at that risk level when the manifest gives one, above `low_confidence.max_log_hazard_sd`).
 * `assessment.tscore` reports the estimate, the DXA and which one was used.
 *
 * A BMI outside QFracture-2012's 20–40 is clamped (factors.ts) and always a warning; it is the caveat when the
 * charted value could change the tier: the BMI term continued beyond the range at its slope at the edge, tried like
 * another value of a missing factor.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ImagingStudy } from '@medplum/fhirtypes';
import type { DicomWebClient } from '../imaging/dicomweb-client.ts';
import { DecodeError, ImagingError, PacsHttpError } from '../imaging/errors.ts';
import { checkRecipe } from '../imaging/preprocess.ts';
import { jsonString, TAG } from '../imaging/dicom-json.ts';
import { assertImageIdentity, PatientMismatchError } from '../imaging/identity.ts';
import { fetchFrame } from '../imaging/retrieve.ts';
import { inlineImaging, type ImagingExecutor } from '../imaging/worker-pool.ts';
import { candidateSeries, selectImage, selectionRuleFromManifest, studyUidOf, type ImagingStudyLike, type SelectionRule } from '../imaging/select.ts';
import type { FhirDataSource } from '../fhir/client.ts';
import { calibrate } from '../inference/calibration.ts';
import { isTscoreMediated } from '../inference/manifest.ts';
import type { LoadedModel, ModelRegistry, Provider } from '../inference/registry.ts';
import { hashPatientId, type Logger } from '../logging.ts';
import { measuredDxa, type MeasuredDxa } from './dxa.ts';
import { bmiText, extractFactors, loadChart, type Chart, type ClinicalFactors } from './factors.ts';
import { MediatedOutcome, tscoreSummary, type MediatedHead, type TscoreNormal } from './mediated.ts';
import { renderHeatmap } from './heatmap.ts';
import { checkImageQuality, type QualityCheck } from './quality.ts';
import { linearPredictor, linearPredictorTerms, QFRACTURE_ATTRIBUTION, riskFromLp, type Outcome, type QFractureInputs, type Sex } from './qfracture.ts';
import { baselineAt, compositeBinds, compositeCurve, compositeRisksAt, spread, type CurvePoint, type EnsembleSpread, type HazardTerm, type RiskWithInterval } from './survival.ts';
import { decide, DECISION_DEFAULTS, type Decision, type DecisionSettings, type HazardComponent, type ThresholdProbability } from './decision.ts';
import { ctEligible } from '../pathways/ct-spine/pathway.ts';
import type { CtAssessmentView } from '../pathways/ct-spine/types.ts';
import { assessCt, type CtAssessConfig } from './ct-assess.ts';

export const OOD_WARNING = "Outside the model's training distribution — review by a clinician. The image-derived risk is withheld; the clinical-only (QFracture-2012) risk is shown.";
export const HORIZONS = [1, 2, 5, 10] as const;
const OUTCOMES: readonly Outcome[] = ['hip', 'mof'];

/** When an image-derived risk is flagged "low confidence" (header). */
export interface LowConfidenceSettings {
  /** Largest ordinary ensemble sd of an outcome's log-hazard (`RISK_MAX_LOG_HAZARD_SD`). */
  maxLogHazardSd: number;
  /** An OOD distance above this fraction of the manifest threshold is "near the edge" (`RISK_NEAR_OOD_FRACTION`). */
  nearOodFraction: number;
}

/** Defaults of {@link LowConfidenceSettings} (the README's configuration table explains how they were chosen). */
export const LOW_CONFIDENCE_DEFAULTS: LowConfidenceSettings = { maxLogHazardSd: 0.9, nearOodFraction: 0.95 };

export interface AssessmentSettings {
  lookbackDays: number;
  tiers: { mofModerate: number; mofHigh: number; hipHigh: number };
  /** Default {@link LOW_CONFIDENCE_DEFAULTS}. */
  lowConfidence?: LowConfidenceSettings;
  /** Probability above a threshold needed for tier high (`RISK_DECISION_PROBABILITY`); default 0.8. */
  decisionProbability?: number;
  /** The guideline the thresholds come from (`RISK_GUIDELINE_NAME`, `RISK_GUIDELINE_URL`); default BHOF 2022. */
  guideline?: { name: string; url: string };
  /** Patient.identifier systems that carry the PACS Patient ID (server/imaging/identity.ts); absent or empty: its default rule. */
  imagePatientIdSystems?: readonly string[];
  /** Oldest measured DXA T-score (years before the assessment date) that replaces the estimate (`RISK_DXA_MAX_AGE_YEARS`); default the manifest's. */
  dxaMaxAgeYears?: number | undefined;
}

/** A safety event the operator's audit trail must hold (ids, no other PHI). */
export interface SecurityEvent {
  readonly kind: 'image-patient-mismatch';
  readonly patientId: string;
  readonly studyId: string | undefined;
  readonly reason: PatientMismatchError['reason'];
}

export interface AssessDeps {
  fhir: FhirDataSource;
  dicomweb: DicomWebClient;
  registry: ModelRegistry;
  settings: AssessmentSettings;
  logger: Logger;
  /** Where frames are decoded and preprocessed (`IMAGING_WORKERS`): a worker pool, or inline when absent. */
  imaging?: ImagingExecutor;
  /** Told of safety events (an image of another patient); it records them (AuditEvent). Must not throw. */
  onSecurityEvent?: (event: SecurityEvent) => void;
  /** CT studies (ct-assess.ts): the CT model and overlay renderer; absent, CT studies are not assessed. */
  ct?: CtAssessConfig;
}

export interface AssessRequest {
  patientId: string;
  /** ImagingStudy id to use instead of the latest eligible one. */
  studyId?: string;
  /** Assessment date (default now). */
  at?: Date;
  modelId?: string;
  signal?: AbortSignal;
}

export interface FactorContribution {
  factor: string;
  label: string;
  value: number;
  /** Log-hazard term in QFracture-2012 (relative to its reference profile). */
  qfracture: number;
  /** The same term as it enters the fused model (× the member-mean clinical coefficient). */
  fused: number | null;
}

export interface OutcomeResult {
  outcome: Outcome;
  definition: string;
  /** Which risk the clinician sees: the fused model's, or QFracture-2012 alone when the image is unusable. */
  shown: 'fused' | 'clinical-only';
  /** Risks of the shown model at 1, 2, 5, 10 years (fractions); clinical-only has no interval (lower = upper = null). */
  risks: { years: number; risk: number; lower: number | null; upper: number | null }[];
  fused: { risks: RiskWithInterval[]; curve: CurvePoint[]; logHazard: number; sd: number } | null;
  /** True when the image was read but is out of distribution: `fused` and `imageTermOnly` are then null. */
  withheld: boolean;
  clinicalOnly: { risks: { years: number; risk: number }[]; curve: { years: number; survival: number }[]; linearPredictor: number };
  imageTermOnly: { risks: RiskWithInterval[]; logHazard: number } | null;
  contributions: FactorContribution[];
  /** 10-year 95 % interval width in percentage points (shown fused risk), for information; null when clinical-only. */
  intervalWidth10y: number | null;
  /** The image-derived risk is shown and its uncertainty is unusual (header: ensemble sd or near the OOD threshold). */
  lowConfidence: boolean;
  /** MOF only: the hip hazard raised some MOF number (risk, bound or curve point) to the hip's (MOF includes hip). */
  raisedToHip: boolean;
}

export type Tier = 'low' | 'moderate' | 'high';

/** The femoral-neck T-score of a T-score-mediated model's assessment (contract amendment 1). */
export interface TscoreResult {
  /** The radiograph's calibrated predictive distribution (mixture over members): mean, sd, 95 % interval; null without a usable image. */
  estimate: { mean: number; sd: number; low: number; high: number } | null;
  /** The measured DXA T-score within the age limit, if the chart has one (used only with a usable image). */
  dxa: { value: number; date: string; observationId: string } | null;
  /** Which T-score the risk rests on; 'none' for a clinical-only risk. */
  used: 'dxa' | 'image' | 'none';
  /** Version of the T-score calibration in force (manifest or the site's recalibration file). */
  calibrationVersion: string;
}

export interface Assessment {
  id: string;
  createdAt: string;
  patientId: string;
  indexDate: string;
  mode: 'image-and-clinical' | 'clinical-only';
  /** `modality`: the DICOM modality read (CR/DX for a radiograph, CT); `sopUid` is empty for a CT (a whole series). */
  study: { id: string; studyUid: string; seriesUid: string; sopUid: string; started: string | null; laterality: string | null; modality: string } | null;
  model: { id: string; version: string; provider: Provider; providerNote?: string; useStatement: string; syntheticTrainingData: true; notForClinicalUse: true };
  factors: ClinicalFactors;
  /** T-score-mediated models only (null for a log-hazard ensemble): the estimate, the DXA and which was used. */
  tscore: TscoreResult | null;
  outcomes: Record<Outcome, OutcomeResult>;
  tier: { tier: Tier; basis: 'fused' | 'clinical-only'; rule: string };
  /** What the risk means against the guideline thresholds and what to do (decision.ts). */
  decision: Decision;
  /** The single most important caveat for a summary line, in plain words; the full list stays in `warnings`. */
  caveat: string | null;
  /** The radiograph's embedding distance, or for a CT the reference-tissue gate (ct-spine/gate.ts; threshold 1). */
  ood: { distance: number; threshold: number; outside: boolean } | null;
  quality: QualityCheck[];
  /** Every warning the user must see, in order of importance. */
  warnings: string[];
  missingFactors: string[];
  heatmap: { outcome: Outcome; width: number; height: number; peak: { x: number; y: number } | null } | null;
  /** What the CT showed (ct-assess.ts); null for a radiograph or a clinical-only assessment. */
  ct: CtAssessmentView | null;
  basis: string[];
  cacheKey: string;
  timings: Record<string, number>;
  attribution: string;
}

export interface AssessmentResult {
  assessment: Assessment;
  /** Lazily encoded PNGs (display radiograph, heatmap overlay of the same size); null without a usable image. */
  pngs: { display: () => Buffer; overlay: () => Buffer } | null;
}

export class AssessmentError extends Error {
  override readonly name = 'AssessmentError';
  constructor(readonly code: 'STUDY_NOT_FOUND' | 'BAD_REQUEST', message: string) {
    super(message);
  }
}

/**
 * The model's clinical input vector, by the names the manifest gives (`clinical_term.inputs`):
 * `qf_lp_<k>` = the QFracture-2012 linear predictor a; `qf_cloglog10_<k>` = log(−log(1 − 10-year risk)) =
 * a + log(−log S0_sex(10)). Both are a plus a constant per sex, so "the clinical term at QFracture's reference
 * profile (a = 0)" is reached by subtracting β·a in either encoding.
 */
export function clinicalInputs(model: LoadedModel, sex: Sex, lp: Record<Outcome, number>): number[] {
  return model.manifest.clinical_term.inputs.map((name) => {
    const m = /^qf_(lp|cloglog10)_(hip|mof)$/.exec(name);
    if (!m) throw new Error(`model ${model.id}: unsupported clinical input '${name}'`);
    const o = m[2] as Outcome;
    return m[1] === 'lp' ? lp[o] : Math.log(-Math.log1p(-riskFromLp(lp[o], o, sex, 10)));
  });
}

/** Structured log fields of an imaging failure beyond code and message: status, route and PACS excerpt; syntax. */
function imagingLogFields(err: ImagingError): Record<string, unknown> {
  if (err instanceof PacsHttpError) return { status: err.status, route: err.url, ...(err.pacsDetail ? { pacs: err.pacsDetail } : {}) };
  if (err instanceof DecodeError) return { transferSyntax: err.transferSyntaxUid };
  return {};
}

/** The manifest's DICOM selection rule (modality, body part, view, SOP class, photometric), via server/imaging. */
function ruleOf(model: LoadedModel): SelectionRule {
  return selectionRuleFromManifest(model.manifest.dicom_selection);
}

const isoDay = (d: Date): string => d.toISOString().slice(0, 10);

/** Latest ImagingStudy within the look-back whose series can satisfy the rule (by FHIR); null when none. */
export function chooseStudy(studies: ImagingStudy[], rule: SelectionRule, at: Date, lookbackDays: number): ImagingStudy | null {
  const latest = at.getTime() + 86_400_000; // a study dated "today" in another time zone still counts
  const earliest = at.getTime() - lookbackDays * 86_400_000;
  const ok = studies.filter((s) => {
    const t = Date.parse(s.started ?? '');
    return s.status !== 'entered-in-error' && s.status !== 'cancelled' && t >= earliest && t <= latest &&
      !!studyUidOf(s as ImagingStudyLike) && candidateSeries(s as ImagingStudyLike, rule).length > 0;
  });
  ok.sort((a, b) => Date.parse(b.started!) - Date.parse(a.started!));
  return ok[0] ?? null;
}

/** Newest ImagingStudy within the look-back that the CT spine pathway can read (pathway.ts `ctEligible`); null when none. */
export function chooseCtStudy(studies: ImagingStudy[], at: Date, lookbackDays: number): ImagingStudy | null {
  const latest = at.getTime() + 86_400_000;
  const earliest = at.getTime() - lookbackDays * 86_400_000;
  const ok = studies.filter((s) => {
    const t = Date.parse(s.started ?? '');
    return t >= earliest && t <= latest && ctEligible(s);
  });
  ok.sort((a, b) => Date.parse(b.started!) - Date.parse(a.started!));
  return ok[0] ?? null;
}

/** The decision settings of an assessment: the tier thresholds plus the defaults of what is not set. */
export function decisionSettingsOf(s: AssessmentSettings): DecisionSettings {
  return { tiers: s.tiers, decisionProbability: s.decisionProbability ?? DECISION_DEFAULTS.decisionProbability, guideline: s.guideline ?? DECISION_DEFAULTS.guideline };
}

/** The tier rule in words, for the assessment's `tier.rule`. */
export function tierRuleText(s: DecisionSettings): string {
  const t = s.tiers;
  const p = Math.round(s.decisionProbability * 100);
  return `high if the shown 10-year hip risk ≥ ${t.hipHigh}% or MOF ≥ ${t.mofHigh}% with a probability of being above that threshold ≥ ${p}% (or no interval); moderate if at or above a threshold with less certainty, MOF ≥ ${t.mofModerate}%, or a probability above a threshold ≥ ${100 - p}%; else low (RISK_TIER_*, RISK_DECISION_PROBABILITY; thresholds: ${s.guideline.name})`;
}

/**
 * Other values a missing key factor could take, tried one factor at a time to see whether recording it could change
 * the tier: BMI 20 and 35 kg/m² (QFracture accepts 20–40), every smoking and alcohol category, every ethnicity group.
 */
export const ALTERNATIVES = {
  bmi: [20, 35],
  smoke_cat: [1, 2, 3, 4],
  alcohol_cat6: [1, 2, 3, 4, 5],
  ethrisk: [1, 2, 3, 4, 5, 6, 7, 8, 9],
} as const;

/** The hazard components of a 10-year decision: the outcome's own head and, for MOF, the hip head (composite). */
function componentsOf(terms: readonly HazardTerm[], factors: readonly number[]): HazardComponent[] {
  return terms.map((x, i) => ({ h0: baselineAt(x.grid, x.h0, 10), eta: x.spread.etaMean, s: factors[i]! * x.spread.sd }));
}

/**
 * Cache key: (study, model version, factor hash); for a T-score-mediated model the hash also covers the measured DXA
 * in use and the calibration version, so a new DXA result or a site recalibration gives a new assessment.
 */
export function cacheKeyOf(study: ImagingStudy | null, model: LoadedModel, factors: ClinicalFactors, dxa: MeasuredDxa | null = null): string {
  const t = model.tscoreCalibration ? { dxa, cal: model.tscoreCalibration.version } : {};
  const h = createHash('sha256').update(JSON.stringify({ sex: factors.sex, index: factors.indexDate, x: factors.inputs, ...t })).digest('hex').slice(0, 16);
  const uid = study ? studyUidOf(study as ImagingStudyLike) ?? `ImagingStudy/${study.id}` : 'no-image';
  return `${uid}|${model.id}@${model.version}|${h}`;
}

/**
 * The measured DXA T-score a T-score-mediated model uses at `at` (dxa.ts); null for any other model or without one.
 * The age limit is `settings.dxaMaxAgeYears` when set, else the manifest's `tscore_head.dxa_max_age_years`.
 */
export function dxaFor(model: LoadedModel, chart: Chart, at: Date, settings: AssessmentSettings): MeasuredDxa | null {
  const man = model.manifest;
  if (!isTscoreMediated(man)) return null;
  return measuredDxa(chart.dxaObservations ?? [], at, settings.dxaMaxAgeYears ?? man.tscore_head.dxa_max_age_years);
}

/** The index date of an assessment: the radiograph's date, else the assessment date. */
export const indexDateOf = (study: ImagingStudy | null, at: Date): string => (study?.started ? study.started.slice(0, 10) : isoDay(at));

export type Prepared = Awaited<ReturnType<typeof prepare>>;

/** The part of an assessment that does not need the image (reused when the image is withheld or missing). */
export async function prepare(deps: AssessDeps, req: AssessRequest): Promise<{
  model: LoadedModel; chart: Awaited<ReturnType<typeof loadChart>>; study: ImagingStudy | null; warnings: string[]; at: Date; fhirMs: number;
  /** Which pathway reads `study`: the hip radiograph's, or the CT spine's (ct-assess.ts). */
  pathway: 'hip-xray' | 'ct-spine';
}> {
  const t0 = performance.now();
  const model = deps.registry.get(req.modelId);
  const at = req.at ?? new Date();
  const chart = await loadChart(deps.fhir, req.patientId, req.signal, { dxa: isTscoreMediated(model.manifest) || !!deps.ct });
  const fhirMs = performance.now() - t0;
  const rule = ruleOf(model);
  const warnings: string[] = [];
  let study: ImagingStudy | null;
  if (req.studyId) {
    study = chart.imagingStudies.find((s) => s.id === req.studyId) ?? null;
    if (!study) throw new AssessmentError('STUDY_NOT_FOUND', `ImagingStudy/${req.studyId} is not a study of this patient`);
    const age = (at.getTime() - Date.parse(study.started ?? '')) / 86_400_000;
    if (!(age <= deps.settings.lookbackDays)) warnings.push(`The requested study is older than the ${deps.settings.lookbackDays}-day look-back window.`);
  } else {
    study = chooseStudy(chart.imagingStudies, rule, at, deps.settings.lookbackDays);
    // The newest eligible study across pathways: a CT taken after the newest hip radiograph is the one read.
    const ct = deps.ct ? chooseCtStudy(chart.imagingStudies, at, deps.settings.lookbackDays) : null;
    if (ct && (!study || Date.parse(ct.started!) > Date.parse(study.started!))) study = ct;
  }
  const pathway = study && deps.ct && ctEligible(study) ? 'ct-spine' : 'hip-xray';
  return { model, chart, study, warnings, at, fhirMs, pathway };
}

/**
 * The one caveat a summary line shows, most important first: the image-derived risk withheld (OOD); the radiograph
 * not used (none eligible, not retrievable, another patient's); an image-quality problem; unusual uncertainty; a BMI
 * outside QFracture-2012's range whose charted value could change the tier; a missing key factor whose recorded value
 * could change the tier. Other missing-factor defaults and clamped BMIs stay in `warnings`.
 */
export function caveatOf(x: { oodOutside: boolean; imageProblem: string | null; quality: readonly QualityCheck[]; outcomes: Record<Outcome, OutcomeResult>; nearOod: boolean; missingThatMatter: readonly string[]; bmiOutOfRange?: string | null }): string | null {
  if (x.oodOutside) return 'The radiograph is unlike the images the model was trained on: its risk is withheld and this risk rests on clinical factors only — review by a clinician.';
  if (x.imageProblem) return /^No eligible/.test(x.imageProblem) ? 'No recent hip radiograph: this risk rests on clinical factors only.' : 'The radiograph could not be used: this risk rests on clinical factors only.';
  const q = x.quality.find((c) => !c.passed);
  if (q) return `Image quality: ${q.message}`;
  if (x.nearOod) return 'Low confidence: the radiograph is close to the edge of what the model was trained on; weigh the 95% interval.';
  const lc = OUTCOMES.filter((o) => x.outcomes[o].lowConfidence);
  if (lc.length > 0) return `Low confidence: the model is unusually uncertain about the ${lc.map((o) => (o === 'hip' ? 'hip fracture' : 'major osteoporotic fracture')).join(' and ')} risk; weigh the 95% interval.`;
  if (x.bmiOutOfRange) return x.bmiOutOfRange;
  if (x.missingThatMatter.length > 0) return `Not recorded: ${x.missingThatMatter.join(', ').toLowerCase()} (a default was used); recording it could change the recommendation.`;
  return null;
}

export async function assess(deps: AssessDeps, req: AssessRequest, prepared?: Prepared): Promise<AssessmentResult> {
  const tStart = performance.now();
  const ready = prepared ?? (await prepare(deps, req));
  if (ready.pathway === 'ct-spine' && ready.study && deps.ct) return assessCt(deps, req, ready, deps.ct);
  const { model, chart, study, warnings: studyWarnings, at, fhirMs } = ready;
  const man = model.manifest;
  const timings: Record<string, number> = { fhirMs };
  const warnings: string[] = [];
  const log = deps.logger.child({ patient: hashPatientId(req.patientId) });

  // Image path (any failure → clinical-only with the reason).
  let image: {
    sel: Awaited<ReturnType<typeof selectImage>>;
    out: Awaited<ReturnType<LoadedModel['infer']>>;
    quality: QualityCheck[];
    pngs: ReturnType<typeof renderHeatmap>;
  } | null = null;
  let imageProblem: string | null = null;
  const indexDate = indexDateOf(study, at);
  const factors = extractFactors(chart, indexDate);
  const terms = Object.fromEntries(OUTCOMES.map((o) => [o, linearPredictorTerms(o, factors.sex, factors.inputs)])) as Record<Outcome, ReturnType<typeof linearPredictorTerms>>;

  if (!study) {
    imageProblem = `No eligible hip radiograph (${man.dicom_selection.modality.join('/')} ${man.dicom_selection.body_part_examined.join('/')} ${man.dicom_selection.view_position.join('/')}) in the last ${deps.settings.lookbackDays} days: clinical-only (QFracture-2012) risk.`;
  } else {
    try {
      const t1 = performance.now();
      const sel = await selectImage(deps.dicomweb, study as ImagingStudyLike, ruleOf(model), req.signal ? { signal: req.signal } : undefined);
      // Before any pixel is fetched: the study link is only a pointer, the DICOM header says whose image it is.
      assertImageIdentity(sel.metadata, chart.patient, { systems: deps.settings.imagePatientIdSystems ?? [] });
      const t2 = performance.now();
      const imaging = deps.imaging ?? inlineImaging;
      const frame = await fetchFrame(deps.dicomweb, sel, { metadata: sel.metadata, imaging, ...(req.signal ? { signal: req.signal } : {}) });
      const t3 = performance.now();
      const constants = checkRecipe(man.preprocessing);
      // With a worker pool the stored array travels to the worker and back: use the one returned from here on.
      const { stored, working } = await imaging.preprocess({ stored: frame.stored, pixelModule: frame.pixelModule, laterality: sel.laterality }, man.preprocessing);
      const t4 = performance.now();
      const out = await model.infer({ image: working, clinical: clinicalInputs(model, factors.sex, { hip: terms.hip.lp, mof: terms.mof.lp }) });
      const t5 = performance.now();
      const quality = checkImageQuality(stored, frame.pixelModule, working, constants.S, sel.laterality);
      const hipIdx = man.outcomes.find((o) => o.id === 'hip')!.index;
      const pngs = renderHeatmap({ stored, pixelModule: frame.pixelModule, laterality: sel.laterality, constants, cam: out.cam[hipIdx]!, grid: man.explanation.grid });
      const t6 = performance.now();
      Object.assign(timings, { selectMs: t2 - t1, fetchMs: frame.timings.frameMs, decodeMs: frame.timings.decodeMs, retrieveMs: t3 - t2, preprocessMs: t4 - t3, inferenceWaitMs: t5 - t4, onnxRunMs: out.runMs, batchSize: out.batchSize, qualityAndHeatmapMs: t6 - t5 });
      image = { sel, out, quality, pngs };
    } catch (err) {
      if (!(err instanceof ImagingError)) throw err;
      if (err instanceof PatientMismatchError) {
        imageProblem = `The radiograph was not used: ${err.message}. Check which patient the study is filed under in the PACS and the EHR. Clinical-only (QFracture-2012) risk.`;
        log.warn({ code: err.code, reason: err.reason }, 'image identity check failed; image not used');
        deps.onSecurityEvent?.({ kind: 'image-patient-mismatch', patientId: req.patientId, studyId: study.id, reason: err.reason });
      } else {
        // Plain words for the clinician (no URLs, UIDs or PACS text); the operator's details go to the log.
        imageProblem = `The radiograph could not be used (${err.userMessage}): clinical-only (QFracture-2012) risk.`;
        log.warn({ code: err.code, detail: err.message, ...imagingLogFields(err) }, 'image not usable; clinical-only assessment');
      }
    }
  }

  // A T-score-mediated model's outputs must be finite, with a T-score sd > 0 (contract); else no risk can rest on them.
  if (image && isTscoreMediated(man) && !(image.out.tscore?.every((x) => Number.isFinite(x.mean) && x.sd > 0 && Number.isFinite(x.sd)) && image.out.baseLogHazard?.every((r) => r.every(Number.isFinite)))) {
    imageProblem = 'The model could not estimate a T-score from this radiograph: clinical-only (QFracture-2012) risk.';
    log.warn({ model: model.id, version: model.version }, 'T-score-mediated model output not usable; clinical-only assessment');
    image = null;
  }
  const ood = image ? { distance: image.out.oodDistance, threshold: man.ood.threshold, outside: !(image.out.oodDistance <= man.ood.threshold) } : null;
  const useImage = !!image && !ood!.outside;
  if (ood?.outside) warnings.push(OOD_WARNING);
  if (imageProblem) warnings.push(imageProblem);
  for (const q of image?.quality ?? []) if (!q.passed) warnings.push(`Image quality: ${q.message}`);

  const grid = man.risk_model.baseline_cumulative_hazard.grid_years;
  const tRisk = performance.now();
  const lowConf = deps.settings.lowConfidence ?? LOW_CONFIDENCE_DEFAULTS;
  // The two kinds of model (manifest.ts): a log-hazard ensemble (v1) or a T-score-mediated model (v2, mediated.ts).
  const ensembleMan = isTscoreMediated(man) ? null : man;
  const mediatedMan = isTscoreMediated(man) ? man : null;
  const dxa = mediatedMan ? dxaFor(model, chart, at, deps.settings) : null;
  // Per member, the T-score distribution the risk is computed under: the calibrated radiograph estimate, or a recent
  // measured DXA value with the DXA precision as its sd (for every member).
  const estimate: TscoreNormal[] | null = mediatedMan && image && useImage && image.out.tscore && model.tscoreCalibration
    ? image.out.tscore.map((raw) => calibrate(model.tscoreCalibration!, raw))
    : null;
  const tscoreUsed: TscoreNormal[] | null = estimate && dxa ? estimate.map(() => ({ mean: dxa.value, sd: mediatedMan!.tscore_head.dxa_precision_sd })) : estimate;
  const nearOod = useImage && ood!.distance > lowConf.nearOodFraction * ood!.threshold;
  if (nearOod) warnings.push(`Low confidence: the radiograph is close to the edge of the model's training distribution (distance ${ood!.distance.toFixed(1)}; risks are withheld above ${ood!.threshold.toFixed(1)}).`);
  /**
   * Per outcome: the ensemble spreads of the fused model and of its radiograph term alone (null without an image).
   * `lpShift` moves the QFracture linear predictor (another value of a missing factor): the clinical term enters
   * each member linearly (η_m = image_m + β_m·x, x = linear predictor + a constant per sex), so η_m + β_m·shift is
   * exactly what the model would output — no second inference. Without per-member β a shift cannot be applied (null).
   */
  type Heads = Record<Outcome, { h0: number[]; fused: EnsembleSpread; imageOnly: EnsembleSpread | null; factor: number } | null>;
  const headsFor = (lpShift: Record<Outcome, number>): Heads => {
    const out = {} as Heads;
    for (const o of OUTCOMES) {
      if (!ensembleMan) {
        out[o] = null;
        continue;
      }
      const mo = man.outcomes.find((x) => x.id === o)!;
      const betas = man.clinical_term.coefficient_per_member?.[o];
      const factor = ensembleMan.uncertainty.interval_factor[o]!;
      const etas0 = image ? image.out.logHazard.map((m) => m[mo.index]!) : null;
      const perMember = !!betas && !!etas0 && betas.length === etas0.length;
      if (!etas0 || (lpShift[o] !== 0 && !perMember)) {
        out[o] = null;
        continue;
      }
      const etas = lpShift[o] === 0 ? etas0 : etas0.map((e, m) => e + betas![m]! * lpShift[o]);
      const fusedSpread = spread(etas, factor, ensembleMan.uncertainty.z, ensembleMan.uncertainty.sd_ddof);
      const imageOnly = perMember
        ? spread(etas.map((e, m) => e - betas![m]! * (terms[o].lp + lpShift[o])), factor, ensembleMan.uncertainty.z, ensembleMan.uncertainty.sd_ddof)
        : null;
      out[o] = { h0: man.risk_model.baseline_cumulative_hazard[o]!, fused: fusedSpread, imageOnly, factor };
    }
    return out;
  };
  const heads = headsFor({ hip: 0, mof: 0 });
  // MOF includes hip: its hazard is the larger of the MOF and hip heads' (survival.ts); hip stands alone.
  const termsOf = (o: Outcome, which: 'fused' | 'imageOnly', hs: Heads = heads): HazardTerm[] | null => {
    const own = hs[o];
    const sp = own?.[which];
    if (!own || !sp) return null;
    const list: HazardTerm[] = [{ grid, h0: own.h0, spread: sp }];
    const hip = hs.hip;
    if (o === 'mof' && hip?.[which]) list.push({ grid, h0: hip.h0, spread: hip[which]! });
    return list;
  };
  /**
   * T-score-mediated model, per outcome: the predictive distribution of the fused risk and of its radiograph term
   * alone (null without per-member clinical coefficients), MOF with the hip head as its floor. `lpShift` moves the
   * QFracture linear predictor exactly as for the ensemble (the clinical term is linear in each member's base
   * log-hazard). Null without a usable image, or when a shift is asked for and cannot be applied.
   */
  type Mediated = Record<Outcome, { fused: MediatedOutcome; imageOnly: MediatedOutcome | null }>;
  const mediatedFor = (lpShift: Record<Outcome, number>): Mediated | null => {
    const base = image?.out.baseLogHazard;
    if (!mediatedMan || !tscoreUsed || !base) return null;
    const heads = {} as Record<Outcome, { fused: MediatedHead; imageOnly: MediatedHead | null }>;
    for (const o of OUTCOMES) {
      const mo = man.outcomes.find((x) => x.id === o)!;
      const betas = man.clinical_term.coefficient_per_member?.[o];
      const base0 = base.map((m) => m[mo.index]!);
      const perMember = !!betas && betas.length === base0.length;
      if (lpShift[o] !== 0 && !perMember) return null;
      const b = lpShift[o] === 0 ? base0 : base0.map((x, m) => x + betas![m]! * lpShift[o]);
      const head: MediatedHead = { grid, h0: man.risk_model.baseline_cumulative_hazard[o]!, base: b, gamma: mediatedMan.risk_model.tscore_coefficient_per_member[o]! };
      heads[o] = { fused: head, imageOnly: perMember ? { ...head, base: b.map((x, m) => x - betas![m]! * (terms[o].lp + lpShift[o])) } : null };
    }
    const n = mediatedMan.uncertainty.gauss_hermite_nodes;
    // The unmeasured-determinants log-hazard sd (mediated.ts): absent in older manifests, which means none.
    const u = { unmeasuredLogHazardSd: mediatedMan.uncertainty.unmeasured_log_hazard_sd ?? 0 };
    const hipOnly = heads.hip.imageOnly;
    const mofOnly = heads.mof.imageOnly;
    return {
      hip: { fused: new MediatedOutcome([heads.hip.fused], tscoreUsed, n, u), imageOnly: hipOnly ? new MediatedOutcome([hipOnly], tscoreUsed, n, u) : null },
      mof: { fused: new MediatedOutcome([heads.mof.fused, heads.hip.fused], tscoreUsed, n, u), imageOnly: mofOnly && hipOnly ? new MediatedOutcome([mofOnly, hipOnly], tscoreUsed, n, u) : null },
    };
  };
  const mediated = mediatedFor({ hip: 0, mof: 0 });
  const clinicalRisk = (o: Outcome, t: number): number => {
    const r = riskFromLp(terms[o].lp, o, factors.sex, t);
    return o === 'mof' ? Math.max(r, riskFromLp(terms.hip.lp, 'hip', factors.sex, t)) : r;
  };
  const components = {} as Record<Outcome, HazardComponent[] | ThresholdProbability | null>;
  const outcomes = {} as Record<Outcome, OutcomeResult>;
  for (const o of OUTCOMES) {
    const mo = man.outcomes.find((x) => x.id === o)!;
    const betas = man.clinical_term.coefficient_per_member?.[o];
    const betaMean = betas ? betas.reduce((a, b) => a + b, 0) / betas.length : null;
    const clinicalRaised = o === 'mof' && HORIZONS.some((t) => riskFromLp(terms.hip.lp, 'hip', factors.sex, t) > riskFromLp(terms.mof.lp, 'mof', factors.sex, t));
    const clinical = {
      linearPredictor: terms[o].lp,
      risks: HORIZONS.map((t) => ({ years: t, risk: clinicalRisk(o, t) })),
      curve: [{ years: 0, survival: 1 }, ...Array.from({ length: 10 }, (_, i) => ({ years: i + 1, survival: 1 - clinicalRisk(o, i + 1) }))],
    };
    const fusedTerms = termsOf(o, 'fused');
    const imageTerms = termsOf(o, 'imageOnly');
    const head = heads[o];
    const med = mediated?.[o];
    let fused: OutcomeResult['fused'] = null;
    let imageTermOnly: OutcomeResult['imageTermOnly'] = null;
    let spreadHigh = false;
    let raised = false;
    const outcomeWords = o === 'hip' ? 'hip fracture' : 'major osteoporotic fracture';
    if (med && mediatedMan) {
      const sp = med.fused.logHazardSpread();
      fused = { risks: HORIZONS.map((t) => med.fused.riskAt(t)), curve: med.fused.curve(), logHazard: sp.mean, sd: sp.sd };
      imageTermOnly = med.imageOnly ? { risks: HORIZONS.map((t) => med.imageOnly!.riskAt(t)), logHazard: med.imageOnly.logHazardSpread().mean } : null;
      components[o] = (threshold: number) => med.fused.probabilityAtLeast(10, threshold);
      const rule = mediatedMan.uncertainty.low_confidence;
      const ref = rule.sd_reference?.[o];
      const expected = ref ? ref.intercept + ref.slope * sp.mean : 0;
      spreadHigh = sp.sd - expected > rule.max_log_hazard_sd;
      if (spreadHigh) warnings.push(`Low confidence: the model is more uncertain than usual about the 10-year ${outcomeWords} risk (spread ${sp.sd.toFixed(2)} on the log-hazard scale over its members and the T-score distribution, usual up to ${(expected + rule.max_log_hazard_sd).toFixed(2)}); weigh the 95% interval.`);
      raised = med.fused.floorRaised(fused.curve);
    } else {
      fused = fusedTerms && head
        ? { risks: compositeRisksAt(fusedTerms, HORIZONS), curve: compositeCurve(fusedTerms), logHazard: head.fused.etaMean, sd: head.fused.sd }
        : null;
      imageTermOnly = imageTerms && head?.imageOnly
        ? { risks: compositeRisksAt(imageTerms, HORIZONS), logHazard: head.imageOnly.etaMean }
        : null;
      components[o] = useImage && fusedTerms ? componentsOf(fusedTerms, fusedTerms.map((_, i) => (i === 0 ? head!.factor : heads.hip!.factor))) : null;
      spreadHigh = useImage && !!head && head.fused.sd > lowConf.maxLogHazardSd;
      if (spreadHigh) warnings.push(`Low confidence: the model's ensemble members disagree more than usual about the 10-year ${outcomeWords} risk (spread ${head!.fused.sd.toFixed(2)} on the log-hazard scale, usual up to ${lowConf.maxLogHazardSd}); weigh the 95% interval.`);
      raised = fusedTerms ? compositeBinds(fusedTerms) : false;
    }
    const r10 = fused?.risks.find((r) => r.years === 10);
    const width = r10 && useImage ? (r10.upper - r10.lower) * 100 : null;
    outcomes[o] = {
      outcome: o,
      definition: mo.definition,
      shown: useImage ? 'fused' : 'clinical-only',
      risks: useImage
        ? fused!.risks.map((r) => ({ years: r.years, risk: r.risk, lower: r.lower, upper: r.upper }))
        : clinical.risks.map((r) => ({ years: r.years, risk: r.risk, lower: null, upper: null })),
      // A withheld image-derived risk is not handed out at all (not even for "audit"): a consumer cannot show it.
      fused: useImage ? fused : null,
      withheld: !!image && !useImage,
      clinicalOnly: clinical,
      imageTermOnly: useImage ? imageTermOnly : null,
      contributions: terms[o].terms
        .map((t) => ({ factor: t.factor, label: factors.records.find((r) => r.factor === t.factor)?.label ?? t.factor, value: factors.records.find((r) => r.factor === t.factor)?.value ?? 0, qfracture: t.logHazard, fused: betaMean === null ? null : betaMean * t.logHazard }))
        .filter((c) => c.qfracture !== 0 || ['age', 'bmi'].includes(c.factor))
        .sort((a, b) => Math.abs(b.qfracture) - Math.abs(a.qfracture)),
      intervalWidth10y: width,
      lowConfidence: spreadHigh || nearOod,
      raisedToHip: useImage ? raised : clinicalRaised,
    };
  }

  const [pLo, pHi] = man.intended_use.population.age_years;
  if (factors.inputs.age < pLo || factors.inputs.age > pHi) warnings.push(`Age ${factors.inputs.age} is outside the model's intended population (${pLo}–${pHi} years).`);
  if (factors.missing.length > 0) warnings.push(`Missing risk factors (defaults used): ${factors.missing.join(', ')}.`);
  warnings.push(...factors.warnings, ...studyWarnings);

  const basis = useImage ? 'fused' : 'clinical-only';
  const pick = (o: Outcome) => outcomes[o].risks.find((r) => r.years === 10)!.risk;
  const ds = decisionSettingsOf(deps.settings);
  const decided = decide({ hip: { risk10: pick('hip'), components: components.hip }, mof: { risk10: pick('mof'), components: components.mof } }, ds);
  const tier = { tier: decided.tier, basis: basis as 'fused' | 'clinical-only', rule: tierRuleText(ds) };
  // A missing factor "matters" when another value of it alone would change the tier (ALTERNATIVES).
  const tierWith = (inputs: QFractureInputs): Tier | null => tierAtLp({ hip: linearPredictor('hip', factors.sex, inputs), mof: linearPredictor('mof', factors.sex, inputs) });
  function tierAtLp(lp: Record<Outcome, number>): Tier | null {
    if (!useImage) {
      const hip10 = riskFromLp(lp.hip, 'hip', factors.sex, 10);
      return decide({ hip: { risk10: hip10, components: null }, mof: { risk10: Math.max(riskFromLp(lp.mof, 'mof', factors.sex, 10), hip10), components: null } }, ds).tier;
    }
    if (mediatedMan) {
      const ms = mediatedFor({ hip: lp.hip - terms.hip.lp, mof: lp.mof - terms.mof.lp });
      if (!ms) return null;
      return decide({
        hip: { risk10: ms.hip.fused.meanRisk(10), components: (thr: number) => ms.hip.fused.probabilityAtLeast(10, thr) },
        mof: { risk10: ms.mof.fused.meanRisk(10), components: (thr: number) => ms.mof.fused.probabilityAtLeast(10, thr) },
      }, ds).tier;
    }
    const hs = headsFor({ hip: lp.hip - terms.hip.lp, mof: lp.mof - terms.mof.lp });
    const hipTerms = termsOf('hip', 'fused', hs);
    const mofTerms = termsOf('mof', 'fused', hs);
    if (!hipTerms || !mofTerms) return null;
    const f = (o: Outcome, list: HazardTerm[]) => componentsOf(list, list.map((_, i) => (i === 0 ? hs[o]!.factor : hs.hip!.factor)));
    return decide({ hip: { risk10: compositeRisksAt(hipTerms, [10])[0]!.risk, components: f('hip', hipTerms) }, mof: { risk10: compositeRisksAt(mofTerms, [10])[0]!.risk, components: f('mof', mofTerms) } }, ds).tier;
  }
  const mattering = factors.records
    .filter((r) => r.status === 'default' && r.factor in ALTERNATIVES)
    .filter((r) => ALTERNATIVES[r.factor as keyof typeof ALTERNATIVES].some((v) => {
      const t = tierWith({ ...factors.inputs, [r.factor]: v });
      return t !== null && t !== decided.tier;
    }))
    .map((r) => r.label);
  // A clamped BMI: the BMI term continued past the edge of QFracture's range at its slope there (per unit, from the
  // last unit inside the range) stands in for the charted value the equation does not accept.
  const bmiRec = factors.records.find((r) => r.factor === 'bmi');
  let bmiOutOfRange: string | null = null;
  if (bmiRec && bmiRec.status !== 'default' && typeof bmiRec.raw === 'number' && bmiRec.raw !== bmiRec.value) {
    const edge = bmiRec.value;
    const inner = edge > 30 ? edge - 1 : edge + 1;
    const lpAt = (o: Outcome, bmi: number) => linearPredictor(o, factors.sex, { ...factors.inputs, bmi });
    const raw = bmiRec.raw;
    const lp = { hip: terms.hip.lp + (lpAt('hip', edge) - lpAt('hip', inner)) / (edge - inner) * (raw - edge), mof: terms.mof.lp + (lpAt('mof', edge) - lpAt('mof', inner)) / (edge - inner) * (raw - edge) };
    const t = tierAtLp(lp);
    if (t !== null && t !== decided.tier) bmiOutOfRange = `BMI ${bmiText(raw)} ${bmiRec.status === 'derived' ? 'from weight and height' : 'as recorded'} is outside the 20–40 range QFracture-2012 accepts; ${edge} was used, and the actual value could change the recommendation.`;
  }
  const caveat = caveatOf({ oodOutside: !!ood?.outside, imageProblem, quality: image?.quality ?? [], outcomes, nearOod, missingThatMatter: mattering, bmiOutOfRange });
  // Risks, curves, intervals, the decision and the what-if tiers of missing or clamped factors.
  timings['riskMs'] = performance.now() - tRisk;

  const sourcesUsed = new Set<string>([`Patient/${req.patientId}`]);
  for (const r of factors.records) for (const s of r.sources) sourcesUsed.add(s);
  if (study?.id) sourcesUsed.add(`ImagingStudy/${study.id}`);
  const tscoreIn: Assessment['tscore'] = mediatedMan
    ? { estimate: estimate ? tscoreSummary(estimate) : null, dxa, used: !tscoreUsed ? 'none' : estimate && dxa ? 'dxa' : 'image', calibrationVersion: model.tscoreCalibration?.version ?? 'none' }
    : null;
  if (tscoreIn?.used === 'dxa' && dxa) sourcesUsed.add(`Observation/${dxa.observationId}`);

  const assessment: Assessment = {
    id: randomUUID(),
    createdAt: new Date().toISOString(),
    patientId: req.patientId,
    indexDate,
    mode: useImage ? 'image-and-clinical' : 'clinical-only',
    study: image && study ? { id: study.id!, studyUid: image.sel.studyUid, seriesUid: image.sel.seriesUid, sopUid: image.sel.sopUid, started: study.started ?? null, laterality: image.sel.laterality ?? null, modality: jsonString(image.sel.metadata, TAG.Modality) ?? 'DX' } : null,
    model: { id: model.id, version: model.version, provider: model.provider, ...(model.providerNote ? { providerNote: model.providerNote } : {}), useStatement: man.use_statement, syntheticTrainingData: true, notForClinicalUse: true },
    factors,
    tscore: tscoreIn,
    outcomes,
    tier,
    decision: decided.decision,
    caveat,
    ood,
    quality: image?.quality ?? [],
    warnings,
    missingFactors: factors.missing,
    heatmap: image && useImage ? { outcome: 'hip', width: image.pngs.width, height: image.pngs.height, peak: image.pngs.peak ?? null } : null,
    ct: null,
    basis: [...sourcesUsed],
    cacheKey: cacheKeyOf(study, model, factors, dxa),
    timings: { ...timings, totalMs: performance.now() - tStart },
    attribution: QFRACTURE_ATTRIBUTION,
  };
  log.info({ mode: assessment.mode, tier: tier.tier, ood: ood?.outside ?? null, warnings: warnings.length, ms: Math.round(assessment.timings['totalMs']!) }, 'assessment done');
  return { assessment, pngs: image && useImage ? { display: image.pngs.display, overlay: image.pngs.overlay } : null };
}
