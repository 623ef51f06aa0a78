/**
 * FHIR R4 output of an assessment (issue 5, item 5), following the profile
 * `fhir-profiles/structuredefinitions/frcds-risk-assessment.json`:
 * - RiskAssessment: status, subject, occurrence, basis (ImagingStudy and every resource a factor came from), method
 *   (model id and version, or QFracture-2012 when clinical-only), one prediction per outcome × horizon with
 *   `probabilityDecimal` and `whenRange`, the 95 % interval in the `prediction-interval` extension,
 *   `qualitativeRisk` (risk-probability low/moderate/high: the tier of decision.ts) on the 10-year predictions and,
 *   for an image-derived risk, the treatment threshold with the probability of being at or above it
 *   (`threshold-probability`); the decision as a generated narrative (`text`), as `mitigation` (recommended action
 *   and guideline) and as the first `note`, then every warning; the survival curves in `survival-curve` extensions
 *   and the heatmap in `heatmap` (→ DocumentReference). Every number is written as numbers.ts writes it.
 *   A T-score-mediated model's assessment also carries the radiograph's femoral-neck T-score estimate
 *   (`tscore-estimate`: mean, 95 % interval, calibration version, which T-score was used) and says it in the
 *   narrative beside the measured DXA value; a DXA Observation that replaced the estimate is in `basis`.
 * - Device for the model version; Provenance (agent = the Device; entities = the basis); Binary (PNG) +
 *   DocumentReference for the heatmap overlay and the display image.
 * @see https://hl7.org/fhir/R4/riskassessment.html
 */
import type {
  Binary, CodeableConcept, Device, DocumentReference, Extension, Patient, Provenance, Reference, RiskAssessment,
  RiskAssessmentPrediction,
} from '@medplum/fhirtypes';
import type { Assessment, AssessmentResult } from './assess.ts';
import type { Outcome } from './qfracture.ts';
import type { Decision, RecommendedAction } from './decision.ts';
import { formatRiskWithInterval, tscoreText } from './numbers.ts';
import { ctFhir, type CtFhir } from './ct-fhir.ts';

export const PROFILE_URL = 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/frcds-risk-assessment';
export const EXT = {
  interval: 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/prediction-interval',
  curve: 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/survival-curve',
  heatmap: 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/heatmap',
  mode: 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/assessment-mode',
  thresholdProbability: 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/threshold-probability',
  tscoreEstimate: 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/tscore-estimate',
} as const;

/** The recommended action in words (RiskAssessment.mitigation and the narrative). */
export const ACTION_TEXT: Record<RecommendedAction, string> = {
  'refer-fls': 'Refer to the fracture liaison service (FLS) for assessment and treatment.',
  'order-dxa': 'Consider a DXA scan to measure bone density before deciding on treatment.',
  none: 'No action on fracture risk is needed now; reassess if risk factors change.',
};

const escapeXhtml = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The decision in one line for `note`: the meaning, then the recommended action, then the guideline by name. Notes
 * are plain words without addresses (warnings share them and must never carry one); the guideline's link is in
 * `mitigation`.
 */
export function decisionNote(d: Decision, tier: string): string {
  return `${tier[0]!.toUpperCase()}${tier.slice(1)} risk. ${d.meaning} ${ACTION_TEXT[d.action]} Thresholds: ${d.guideline.name}.`;
}

const OUTCOME_CODE: Record<Outcome, CodeableConcept> = {
  hip: { coding: [{ system: 'http://snomed.info/sct', code: '5913000', display: 'Fracture of neck of femur' }], text: 'Hip fracture' },
  mof: { coding: [{ system: 'urn:frcds:outcome', code: 'mof', display: 'Major osteoporotic fracture (hip, wrist, spine, shoulder)' }], text: 'Major osteoporotic fracture' },
};
const TIER_SYSTEM = 'http://terminology.hl7.org/CodeSystem/risk-probability';

const dec = (x: number, nd = 6): number => Number(x.toFixed(nd));

/**
 * A warning as it goes into RiskAssessment.note, which travels to the EHR and stays in the chart: the warnings are
 * written in plain words already; an address that slipped into one (a server URL naming image UIDs) is withheld.
 */
const noteText = (warning: string): string => warning.replace(/\b(?:https?|wss?):\/\/[^\s)]+/gi, '(address withheld)');

export interface AssessmentFhir {
  riskAssessment: RiskAssessment;
  device: Device;
  provenance: Provenance;
  binaries: Binary[];
  documentReference: DocumentReference | null;
  /** A CT assessment's device-derived Observations with their Device and Provenance (ct-fhir.ts); else null. */
  ct?: CtFhir | null;
}

function curveExtension(a: Assessment, o: Outcome): Extension | null {
  const f = a.outcomes[o].fused;
  if (!f || a.outcomes[o].shown !== 'fused') return null;
  return {
    url: EXT.curve,
    extension: [
      { url: 'outcome', valueCodeableConcept: OUTCOME_CODE[o] },
      ...f.curve.map((p) => ({
        url: 'point',
        extension: [
          { url: 'years', valueDecimal: dec(p.years, 4) },
          { url: 'survival', valueDecimal: dec(p.survival) },
          { url: 'lower', valueDecimal: dec(p.lower) },
          { url: 'upper', valueDecimal: dec(p.upper) },
        ],
      })),
    ],
  };
}

/** What the CT showed, in one plain line of the RiskAssessment narrative (the Observations hold the numbers). */
function ctNarrative(ct: NonNullable<Assessment['ct']>): string {
  const att = ct.attenuation ? `${ct.attenuation.level} attenuation ${ct.attenuation.adjustedHu.toFixed(0)} HU (${ct.attenuation.band})` : 'vertebral attenuation not measurable';
  const frac = ct.morphometry === null ? 'heights not measured' : ct.worstGrade > 0 ? `worst vertebral deformity Genant grade ${ct.worstGrade} at ${ct.worstLevel}${ct.inProblemList ? '' : ', not in the problem list'}` : 'no vertebral fracture on the measured levels';
  return `CT: ${att}; ${frac} (device-derived, to confirm on the images).`;
}

/**
 * Builds the FHIR resources of one assessment. Ids are derived from the assessment id (stable per assessment).
 * `binaries: false` leaves the Binary resources out (their PNGs are then encoded only when someone asks for them;
 * the DocumentReference still points at their ids).
 */
export function toFhir(result: AssessmentResult, options: { binaries?: boolean } = {}): AssessmentFhir {
  const withBinaries = options.binaries ?? true;
  const a = result.assessment;
  const subject: Reference<Patient> = { reference: `Patient/${a.patientId}` };
  const deviceId = `frcds-model-${a.model.id}-${a.model.version.replace(/[^A-Za-z0-9-.]/g, '-')}`;
  const device: Device = {
    resourceType: 'Device',
    id: deviceId,
    status: 'active',
    deviceName: [{ name: a.model.id, type: 'model-name' }],
    version: [{ value: a.model.version }],
    type: { text: 'Software: fracture-risk model (ONNX ensemble) — research use, trained on synthetic data' },
    note: [{ text: a.model.useStatement }],
  };
  const raId = `frcds-${a.id}`;
  const binaries: Binary[] = [];
  let documentReference: DocumentReference | null = null;
  if (result.pngs && a.heatmap) {
    const pngs = result.pngs;
    const overlay = { id: `${raId}-heatmap` };
    const display = { id: `${raId}-display` };
    if (withBinaries) {
      binaries.push(
        { resourceType: 'Binary', id: overlay.id, contentType: 'image/png', data: pngs.overlay().toString('base64') },
        { resourceType: 'Binary', id: display.id, contentType: 'image/png', data: pngs.display().toString('base64') },
      );
    }
    documentReference = {
      resourceType: 'DocumentReference',
      id: `${raId}-heatmap`,
      status: 'current',
      type: { text: 'Fracture-risk heatmap (class activation map over the hip radiograph)' },
      subject,
      date: a.createdAt,
      description: `Heatmap of the ${a.heatmap.outcome} log-hazard (member-averaged CAM), ${a.heatmap.width}×${a.heatmap.height}, to overlay on the display image. Research use — synthetic training data.`,
      content: [
        { attachment: { contentType: 'image/png', url: `Binary/${overlay.id}`, title: 'Heatmap overlay (RGBA)' } },
        { attachment: { contentType: 'image/png', url: `Binary/${display.id}`, title: 'Radiograph, windowed for display' } },
      ],
      ...(a.study ? { context: { related: [{ reference: `ImagingStudy/${a.study.id}` }] } } : {}),
    };
  }

  const prediction: RiskAssessmentPrediction[] = [];
  for (const o of ['hip', 'mof'] as const) {
    for (const r of a.outcomes[o].risks) {
      const p: RiskAssessmentPrediction = {
        outcome: OUTCOME_CODE[o],
        probabilityDecimal: dec(r.risk),
        whenRange: { low: { value: 0, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' }, high: { value: r.years, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' } },
      };
      if (r.lower !== null && r.upper !== null) {
        p.extension = [{ url: EXT.interval, extension: [{ url: 'level', valueDecimal: 0.95 }, { url: 'lower', valueDecimal: dec(r.lower) }, { url: 'upper', valueDecimal: dec(r.upper) }] }];
      }
      if (r.years === 10) {
        p.qualitativeRisk = { coding: [{ system: TIER_SYSTEM, code: a.tier.tier, display: a.tier.tier }], text: `${a.tier.tier} (tier from the ${a.tier.basis} 10-year risks)` };
        const d = a.decision[o];
        if (d.probabilityAbove !== null) {
          p.extension = [
            ...(p.extension ?? []),
            { url: EXT.thresholdProbability, extension: [{ url: 'threshold', valueDecimal: dec(d.thresholdPercent / 100) }, { url: 'probability', valueDecimal: dec(d.probabilityAbove) }] },
          ];
        }
      }
      prediction.push(p);
    }
  }
  const extension: Extension[] = [{ url: EXT.mode, valueCode: a.mode }];
  for (const o of ['hip', 'mof'] as const) {
    const c = curveExtension(a, o);
    if (c) extension.push(c);
  }
  if (documentReference) extension.push({ url: EXT.heatmap, valueReference: { reference: `DocumentReference/${documentReference.id}` } });
  const est = a.tscore?.estimate;
  if (a.tscore && est) {
    extension.push({
      url: EXT.tscoreEstimate,
      extension: [
        { url: 'mean', valueDecimal: dec(est.mean, 3) },
        { url: 'low', valueDecimal: dec(est.low, 3) },
        { url: 'high', valueDecimal: dec(est.high, 3) },
        { url: 'calibration', valueString: a.tscore.calibrationVersion },
        { url: 'sd', valueDecimal: dec(est.sd, 3) },
        { url: 'used', valueCode: a.tscore.used },
      ],
    });
  }

  const imageWord = a.ct ? 'CT' : 'radiograph';
  const method: CodeableConcept = a.mode === 'image-and-clinical'
    ? { coding: [{ system: 'urn:frcds:model', code: a.model.id, version: a.model.version, display: `${a.model.id} ${a.model.version} (${imageWord} + QFracture-2012 fusion)` }], text: `${a.model.id} ${a.model.version}` }
    : { coding: [{ system: 'urn:frcds:model', code: 'qfracture-2012', display: 'QFracture-2012 (clinical factors only)' }], text: 'QFracture-2012 equations (ClinRisk Ltd, LGPL-3.0), clinical factors only' };
  const r10 = (o: Outcome) => a.outcomes[o].risks.find((x) => x.years === 10)!;
  const summary = [
    `10-year risk of hip fracture ${formatRiskWithInterval(r10('hip').risk, r10('hip').lower, r10('hip').upper)}; of a major osteoporotic fracture ${formatRiskWithInterval(r10('mof').risk, r10('mof').lower, r10('mof').upper)} (${a.mode === 'image-and-clinical' ? `${imageWord} and clinical factors` : 'clinical factors only, QFracture-2012'}).`,
    ...(a.tscore && (a.tscore.estimate || a.tscore.dxa) ? [`${a.ct ? 'T-score' : 'Femoral-neck T-score'}: ${tscoreText(a.tscore, (d) => d, a.ct ? 'CT' : 'radiograph')}.`] : []),
    ...(a.ct ? [ctNarrative(a.ct)] : []),
    decisionNote(a.decision, a.tier.tier),
    ...(a.caveat ? [noteText(a.caveat)] : []),
    'Research use — trained on synthetic data.',
  ];
  const riskAssessment: RiskAssessment = {
    resourceType: 'RiskAssessment',
    id: raId,
    meta: { profile: [PROFILE_URL] },
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${summary.map((l) => `<p>${escapeXhtml(l)}</p>`).join('')}</div>` },
    extension,
    identifier: [{ system: 'urn:frcds:assessment', value: a.id }],
    status: 'final',
    subject,
    occurrenceDateTime: a.createdAt,
    performer: { reference: `Device/${deviceId}` },
    basis: a.basis.map((ref) => ({ reference: ref })),
    method,
    prediction,
    mitigation: `${ACTION_TEXT[a.decision.action]} Thresholds: ${a.decision.guideline.name} (${a.decision.guideline.url}).`,
    note: [
      { text: decisionNote(a.decision, a.tier.tier) },
      ...a.warnings.map((w) => ({ text: noteText(w) })),
      { text: `${a.model.useStatement} ${a.attribution}.` },
    ],
  };
  const provenance: Provenance = {
    resourceType: 'Provenance',
    id: `${raId}-provenance`,
    target: [{ reference: `RiskAssessment/${raId}` }, ...(documentReference ? [{ reference: `DocumentReference/${documentReference.id}` }] : [])],
    recorded: a.createdAt,
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'CREATE', display: 'create' }] },
    agent: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'assembler', display: 'Assembler' }] }, who: { reference: `Device/${deviceId}` } }],
    entity: a.basis.map((ref) => ({ role: 'source', what: { reference: ref } })),
    reason: [{ text: `Fracture-risk assessment; inference on ${a.model.provider}${a.model.providerNote ? ` (${a.model.providerNote})` : ''}` }],
  };
  const ct = a.ct && a.study
    ? ctFhir({ assessmentId: a.id, patientId: a.patientId, studyId: a.study.id, effective: a.study.started ?? a.createdAt, issued: a.createdAt, ct: a.ct, analysis: { id: a.model.id, version: a.model.version } })
    : null;
  return { riskAssessment, device, provenance, binaries, documentReference, ct };
}
