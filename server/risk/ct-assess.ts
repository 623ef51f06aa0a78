/**
 * The assessment of a patient whose newest eligible imaging study is a CT (or the CT asked for): the CT spine
 * pathway (server/pathways/ct-spine/pathway.ts) → findings → the CT model's risk (ct-model.ts, mediated.ts) → the
 * same Assessment as the hip radiograph's (outcomes, decision, tier, caveat, warnings, factors), with `model` the CT
 * model, `ct` the CT findings view and `study.modality` 'CT'.
 *
 * Rules beyond the hip path (assess.ts):
 * - A refusal of the pathway (not CT, localizer only, too thick, L1–L2 not in the field, PACS trouble, …) is a plain
 *   warning and a clinical-only (QFracture-2012) assessment, never an exception. An instance of another patient
 *   inside the study refuses it and raises the security event, like the hip path.
 * - The T-score the risk rests on: a recent measured DXA (dxa.ts), else the estimate from the phase-adjusted L1
 *   attenuation, else the training cohort's prior (with a warning that attenuation was not measurable).
 * - The CT out-of-distribution gate (pathways/ct-spine/gate.ts): when the reference tissues or the acquisition are
 *   outside their ranges, the attenuation is withheld from the T-score (DXA or the prior instead) with a plain
 *   warning naming the failed check, like the hip path's OOD rule; the morphometry (geometric) still counts.
 *   `Assessment.ood` is the gate as {distance, threshold: 1, outside}.
 * - A moderate or severe (Genant grade ≥ 2) prevalent vertebral fracture sets `imminentRisk` and makes the
 *   recommended action at least an FLS referral: a prevalent vertebral fracture is itself a treatment indication in
 *   the guidelines (BHOF 2022: a clinical or morphometric vertebral fracture → treat), whatever the modelled risk.
 * - `inProblemList`: the chart has an active (or unstated), not refuted Condition coded as a vertebral fracture —
 *   {@link VERTEBRAL_FRACTURE_CONDITIONS}. The card says when it does not; nothing is ever added automatically.
 * - The overlays are the assessment's PNGs: the sagittal reformat in `pngs.display`, the axial slice in
 *   `pngs.overlay` (the result store keeps the two image slots whatever the modality; routes.ts serves them as
 *   `ct-sagittal.png` and `ct-axial.png` when `ct.overlays` is set, and never as a radiograph's display or heatmap).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Condition, ImagingStudy } from '@medplum/fhirtypes';
import { studyUidOf, type ImagingStudyLike } from '../imaging/select.ts';
import { inlineImaging } from '../imaging/worker-pool.ts';
import { readCtStudy, type CtReadDeps } from '../pathways/ct-spine/pathway.ts';
import type { CtAssessmentView, CtFindings } from '../pathways/ct-spine/types.ts';
import { isRefusal } from '../pathways/types.ts';
import { hashPatientId } from '../logging.ts';
import {
  ALTERNATIVES, assess, caveatOf, decisionSettingsOf, HORIZONS, indexDateOf, tierRuleText,
  type AssessDeps, type Assessment, type AssessmentResult, type AssessRequest, type OutcomeResult, type Prepared, type Tier,
} from './assess.ts';
import { ctObservationIds } from './ct-fhir.ts';
import { ctRisk, type CtModel, type CtRisk } from './ct-model.ts';
import { decide, type Decision } from './decision.ts';
import { measuredDxa, type MeasuredDxa } from './dxa.ts';
import { extractFactors, type ClinicalFactors } from './factors.ts';
import { tscoreSummary } from './mediated.ts';
import { linearPredictor, linearPredictorTerms, QFRACTURE_ATTRIBUTION, riskFromLp, type Outcome, type QFractureInputs, type Sex } from './qfracture.ts';

const OUTCOMES: readonly Outcome[] = ['hip', 'mof'];

/** What the risk service needs for CT studies: the CT model and how the pathway reads (`AssessDeps.ct`). */
export interface CtAssessConfig {
  model: CtModel;
  /** Draws the overlays (overlay.ts `renderCtOverlays`); null: none. */
  renderOverlays: CtReadDeps['renderOverlays'];
  /** Frames fetched at once (`CT_FETCH_CONCURRENCY`). */
  concurrency?: number;
}

/**
 * Conditions that record a vertebral fracture: ICD-10(-CM) M48.5 (collapsed vertebra), M80.08 / M80.88
 * (osteoporosis with current pathological fracture, vertebra), S22.0 (fracture of thoracic vertebra), S32.0
 * (fracture of lumbar vertebra) by prefix; SNOMED CT 15724005 (fracture of vertebral column without spinal cord
 * injury, the code a confirmed card suggestion writes), 207938004 and 42942008 (vertebral fracture concepts used by
 * sites) exactly.
 */
export const VERTEBRAL_FRACTURE_CONDITIONS = {
  icd10Prefixes: ['M48.5', 'M80.08', 'M80.88', 'S22.0', 'S32.0'],
  snomed: ['15724005', '207938004', '42942008'],
} as const;

/** Whether the chart's problem list already records a vertebral fracture (header rule). */
export function vertebralFractureInProblemList(conditions: readonly Condition[]): boolean {
  return conditions.some((c) => {
    const clinical = c.clinicalStatus?.coding?.[0]?.code;
    const verification = c.verificationStatus?.coding?.[0]?.code;
    if (clinical && !['active', 'recurrence', 'relapse'].includes(clinical)) return false;
    if (verification === 'refuted' || verification === 'entered-in-error') return false;
    return (c.code?.coding ?? []).some((k) => {
      const v = (k.code ?? '').toUpperCase();
      if (k.system === 'http://snomed.info/sct') return (VERTEBRAL_FRACTURE_CONDITIONS.snomed as readonly string[]).includes(v);
      if (/icd-?10/i.test(k.system ?? '')) return VERTEBRAL_FRACTURE_CONDITIONS.icd10Prefixes.some((p) => v.startsWith(p) || v.replace('.', '').startsWith(p.replace('.', '')));
      return false;
    });
  });
}

/** Cache key of a CT assessment: (study, CT model version, factor hash incl. the DXA in use). */
export function ctCacheKeyOf(study: ImagingStudy, model: CtModel, factors: ClinicalFactors, dxa: MeasuredDxa | null): string {
  const h = createHash('sha256').update(JSON.stringify({ sex: factors.sex, index: factors.indexDate, x: factors.inputs, dxa, ct: model.manifest.tscore_from_hu.version })).digest('hex').slice(0, 16);
  return `${studyUidOf(study as ImagingStudyLike) ?? `ImagingStudy/${study.id}`}|${model.id}@${model.version}|${h}`;
}

/** The measured DXA a CT assessment uses (the setting's age limit, else the CT manifest's). */
export function ctDxaFor(model: CtModel, prepared: Pick<Prepared, 'chart' | 'at'>, deps: Pick<AssessDeps, 'settings'>): MeasuredDxa | null {
  return measuredDxa(prepared.chart.dxaObservations ?? [], prepared.at, deps.settings.dxaMaxAgeYears ?? model.manifest.risk_model.dxa_max_age_years);
}

/** Whether the gate lets the attenuation into the T-score, and the warning when it does not (header). */
export function ctAttenuationUse(findings: Pick<CtFindings, 'attenuation' | 'gate'>): { adjustedHu: number | null; withheld: string | null } {
  if (!findings.attenuation) return { adjustedHu: null, withheld: null };
  if (findings.gate?.outside) return { adjustedHu: null, withheld: `CT attenuation withheld: ${findings.gate.reason ?? 'outside the checked range'}; fractures still reported.` };
  return { adjustedHu: findings.attenuation.adjustedHu, withheld: null };
}

const cloglog10 = (lp: number, o: Outcome, sex: Sex): number => Math.log(-Math.log1p(-riskFromLp(lp, o, sex, 10)));

/** A grade ≥ 2 prevalent fracture makes the action at least an FLS referral (header). */
function withFractureIndication(d: Decision, level: string): Decision {
  if (d.action === 'refer-fls') return d;
  return { ...d, action: 'refer-fls', meaning: `${d.meaning} A moderate or severe ${level} vertebral fracture on the CT is itself a treatment indication (${d.guideline.name}): refer to the fracture liaison service.` };
}

/**
 * A clinical-only assessment of a CT study the pathway could not use: the hip path's clinical-only result with the
 * CT's reason in place of "no eligible radiograph".
 */
async function clinicalOnly(deps: AssessDeps, req: AssessRequest, prepared: Prepared, reason: string): Promise<AssessmentResult> {
  const r = await assess(deps, req, { ...prepared, study: null });
  const a = r.assessment;
  a.warnings = [`The CT could not be used: ${reason}. Clinical-only (QFracture-2012) risk.`, ...a.warnings.filter((w) => !w.startsWith('No eligible hip radiograph'))];
  a.caveat = 'The CT could not be used: this risk rests on clinical factors only.';
  if (prepared.study?.id) a.basis = [...new Set([...a.basis, `ImagingStudy/${prepared.study.id}`])];
  return r;
}

/** The assessment of a CT study (header). `prepared.study` is the CT. */
export async function assessCt(deps: AssessDeps, req: AssessRequest, prepared: Prepared, config: CtAssessConfig): Promise<AssessmentResult> {
  const tStart = performance.now();
  const { chart, study, at, fhirMs } = prepared;
  if (!study) throw new Error('assessCt needs a study');
  const model = config.model;
  const man = model.manifest;
  const log = deps.logger.child({ patient: hashPatientId(req.patientId), pathway: 'ct-spine' });
  const read = await readCtStudy({
    dicomweb: deps.dicomweb,
    imaging: deps.imaging ?? inlineImaging,
    patient: chart.patient,
    identitySystems: deps.settings.imagePatientIdSystems ?? [],
    phaseOffsetHu: man.tscore_from_hu.phase_offset_hu,
    renderOverlays: config.renderOverlays,
    ...(config.concurrency ? { concurrency: config.concurrency } : {}),
    ...(req.signal ? { signal: req.signal } : {}),
    logger: deps.logger,
  }, study);
  if (isRefusal(read)) {
    if (read.code === 'patient-mismatch') deps.onSecurityEvent?.({ kind: 'image-patient-mismatch', patientId: req.patientId, studyId: study.id, reason: read.mismatch ?? 'mismatch' });
    log.warn({ code: read.code }, 'CT study not used; clinical-only assessment');
    const r = await clinicalOnly(deps, req, prepared, read.reason);
    r.assessment.cacheKey = ctCacheKeyOf(study, model, r.assessment.factors, ctDxaFor(model, prepared, deps));
    return r;
  }
  const tRisk = performance.now();
  const { findings } = read;
  const indexDate = indexDateOf(study, at);
  const factors = extractFactors(chart, indexDate);
  const terms = Object.fromEntries(OUTCOMES.map((o) => [o, linearPredictorTerms(o, factors.sex, factors.inputs)])) as Record<Outcome, ReturnType<typeof linearPredictorTerms>>;
  const dxa = ctDxaFor(model, prepared, deps);
  const use = ctAttenuationUse(findings);
  const ctIn = { worstGrade: findings.worstGrade, adjustedHu: use.adjustedHu, phase: read.series.phase };
  const riskAt = (lp: Record<Outcome, number>): CtRisk => ctRisk(model, { clinical: { hip: cloglog10(lp.hip, 'hip', factors.sex), mof: cloglog10(lp.mof, 'mof', factors.sex) }, ct: ctIn, dxa });
  const risk = riskAt({ hip: terms.hip.lp, mof: terms.mof.lp });
  const imageOnly = riskAt({ hip: 0, mof: 0 });
  const meanClinical = (o: Outcome) => man.risk_model.members.reduce((s, m) => s + m.clinical[o], 0) / man.risk_model.members.length;
  const warnings: string[] = [];
  const maxSd = man.uncertainty.low_confidence?.max_log_hazard_sd;
  const outcomes = {} as Record<Outcome, OutcomeResult>;
  for (const o of OUTCOMES) {
    const med = risk.outcomes[o];
    const sp = med.logHazardSpread();
    const fused = { risks: HORIZONS.map((t) => med.riskAt(t)), curve: med.curve(), logHazard: sp.mean, sd: sp.sd };
    const lowConfidence = maxSd !== undefined && sp.sd > maxSd;
    const words = o === 'hip' ? 'hip fracture' : 'major osteoporotic fracture';
    if (lowConfidence) warnings.push(`Low confidence: the model is more uncertain than usual about the 10-year ${words} risk (spread ${sp.sd.toFixed(2)} on the log-hazard scale, usual up to ${maxSd!.toFixed(2)}); weigh the 95% interval.`);
    const clinicalRisk = (t: number): number => {
      const r = riskFromLp(terms[o].lp, o, factors.sex, t);
      return o === 'mof' ? Math.max(r, riskFromLp(terms.hip.lp, 'hip', factors.sex, t)) : r;
    };
    const r10 = fused.risks.find((r) => r.years === 10)!;
    outcomes[o] = {
      outcome: o,
      definition: prepared.model.manifest.outcomes.find((x) => x.id === o)?.definition ?? o,
      shown: 'fused',
      risks: fused.risks.map((r) => ({ years: r.years, risk: r.risk, lower: r.lower, upper: r.upper })),
      fused,
      withheld: false,
      clinicalOnly: {
        linearPredictor: terms[o].lp,
        risks: HORIZONS.map((t) => ({ years: t, risk: clinicalRisk(t) })),
        curve: [{ years: 0, survival: 1 }, ...Array.from({ length: 10 }, (_, i) => ({ years: i + 1, survival: 1 - clinicalRisk(i + 1) }))],
      },
      imageTermOnly: { risks: HORIZONS.map((t) => imageOnly.outcomes[o].riskAt(t)), logHazard: imageOnly.outcomes[o].logHazardSpread().mean },
      contributions: terms[o].terms
        .map((t) => ({ factor: t.factor, label: factors.records.find((r) => r.factor === t.factor)?.label ?? t.factor, value: factors.records.find((r) => r.factor === t.factor)?.value ?? 0, qfracture: t.logHazard, fused: meanClinical(o) * t.logHazard }))
        .filter((c) => c.qfracture !== 0 || ['age', 'bmi'].includes(c.factor))
        .sort((a, b) => Math.abs(b.qfracture) - Math.abs(a.qfracture)),
      intervalWidth10y: (r10.upper - r10.lower) * 100,
      lowConfidence,
      raisedToHip: o === 'mof' ? med.floorRaised(fused.curve) : false,
    };
  }

  const imminentRisk = findings.worstGrade >= 2;
  const ds = decisionSettingsOf(deps.settings);
  const decideAt = (r: CtRisk) => decide({
    hip: { risk10: r.outcomes.hip.meanRisk(10), components: (thr: number) => r.outcomes.hip.probabilityAtLeast(10, thr) },
    mof: { risk10: r.outcomes.mof.meanRisk(10), components: (thr: number) => r.outcomes.mof.probabilityAtLeast(10, thr) },
  }, ds);
  const decided = decideAt(risk);
  const decision = imminentRisk ? withFractureIndication(decided.decision, findings.worstLevel ?? 'spine') : decided.decision;
  // A missing factor "matters" when another value of it alone would change the tier (assess.ts ALTERNATIVES).
  const tierWith = (inputs: QFractureInputs): Tier => decideAt(riskAt({ hip: linearPredictor('hip', factors.sex, inputs), mof: linearPredictor('mof', factors.sex, inputs) })).tier;
  const mattering = factors.records
    .filter((r) => r.status === 'default' && r.factor in ALTERNATIVES)
    .filter((r) => ALTERNATIVES[r.factor as keyof typeof ALTERNATIVES].some((v) => tierWith({ ...factors.inputs, [r.factor]: v }) !== decided.tier))
    .map((r) => r.label);

  // What the CT adds to the warnings, in plain words, before the clinical factors'.
  const ctWarnings = [...read.warnings, ...findings.warnings].map((w) => `CT: ${w.charAt(0).toUpperCase()}${w.slice(1)}${/[.!?]$/.test(w) ? '' : '.'}`);
  if (use.withheld) ctWarnings.unshift(`${use.withheld} The risk uses ${risk.tscore.source === 'dxa' ? 'the measured DXA' : 'the T-score distribution of the training population'} instead.`);
  else if (!findings.attenuation) ctWarnings.push('CT: no vertebral attenuation could be measured; the risk uses the T-score distribution of the training population instead of an estimate.');
  if (risk.tscore.source === 'dxa') ctWarnings.push(`A measured DXA T-score of ${dxa!.value.toFixed(1)} (${dxa!.date}) is used instead of the CT estimate.`);
  warnings.unshift(...ctWarnings);
  if (factors.missing.length > 0) warnings.push(`Missing risk factors (defaults used): ${factors.missing.join(', ')}.`);
  warnings.push(...factors.warnings, ...prepared.warnings);

  const id = randomUUID();
  // A withheld attenuation is not written as an Observation (ct-fhir.ts writes what the view shows), so no id for it.
  const obsIds = ctObservationIds(id, { morphometry: findings.morphometry, attenuation: use.withheld ? null : findings.attenuation });
  const observationIds = [...(obsIds.attenuation ? [obsIds.attenuation] : []), ...obsIds.morphometry.map((m) => m.id)];
  const est = risk.estimate ? tscoreSummary([risk.estimate]) : null;
  const ct: CtAssessmentView = {
    seriesUid: read.series.uid,
    seriesDescription: read.series.description,
    sliceThicknessMm: read.series.thicknessMm,
    slices: read.series.slices,
    phase: read.series.phase,
    levels: findings.levels,
    ...(findings.gate ? { gate: findings.gate } : {}),
    attenuation: findings.attenuation && est && !use.withheld ? { ...findings.attenuation, tScore: { estimate: est.mean, low: est.low, high: est.high } } : null,
    morphometry: findings.morphometry,
    worstGrade: findings.worstGrade,
    worstLevel: findings.worstLevel,
    imminentRisk,
    inProblemList: vertebralFractureInProblemList(chart.conditions),
    observationIds,
    overlays: read.overlays ? { sagittal: { width: read.overlays.sagittal.width, height: read.overlays.sagittal.height }, axial: { width: read.overlays.axial.width, height: read.overlays.axial.height } } : null,
  };
  const caveat = imminentRisk
    ? `A ${findings.worstGrade === 3 ? 'severe' : 'moderate'} ${findings.worstLevel} vertebral fracture is seen on the CT${ct.inProblemList ? '' : ' and is not in the problem list'}: confirm it on the images.`
    : use.withheld
      ? use.withheld
      : caveatOf({ oodOutside: false, imageProblem: null, quality: [], outcomes, nearOod: false, missingThatMatter: mattering });

  const sources = new Set<string>([`Patient/${req.patientId}`]);
  for (const r of factors.records) for (const s of r.sources) sources.add(s);
  sources.add(`ImagingStudy/${study.id}`);
  for (const o of observationIds) sources.add(`Observation/${o}`);
  if (risk.tscore.source === 'dxa' && dxa) sources.add(`Observation/${dxa.observationId}`);
  const timings = { fhirMs, ...read.timings, riskMs: performance.now() - tRisk, totalMs: performance.now() - tStart };
  const assessment: Assessment = {
    id,
    createdAt: new Date().toISOString(),
    patientId: req.patientId,
    indexDate,
    mode: 'image-and-clinical',
    study: { id: study.id!, studyUid: read.studyUid, seriesUid: read.series.uid, sopUid: '', started: study.started ?? null, laterality: null, modality: 'CT' },
    model: { id: model.id, version: model.version, provider: 'cpu', providerNote: 'classical image analysis; no neural network', useStatement: man.use_statement, syntheticTrainingData: true, notForClinicalUse: true },
    factors,
    tscore: { estimate: est, dxa, used: risk.tscore.source === 'dxa' ? 'dxa' : risk.tscore.source === 'ct' ? 'image' : 'none', calibrationVersion: man.tscore_from_hu.version },
    outcomes,
    tier: { tier: decided.tier, basis: 'fused', rule: tierRuleText(ds) },
    decision,
    caveat,
    ood: findings.gate ? { distance: findings.gate.distance, threshold: 1, outside: findings.gate.outside } : null,
    quality: [],
    warnings,
    missingFactors: factors.missing,
    heatmap: null,
    basis: [...sources],
    cacheKey: ctCacheKeyOf(study, model, factors, dxa),
    timings,
    attribution: QFRACTURE_ATTRIBUTION,
    ct,
  };
  log.info({ mode: assessment.mode, tier: decided.tier, worstGrade: findings.worstGrade, imminent: imminentRisk, ms: Math.round(timings.totalMs) }, 'CT assessment done');
  const overlays = read.overlays;
  return { assessment, pngs: overlays ? { display: () => overlays.sagittal.png, overlay: () => overlays.axial.png } : null };
}
