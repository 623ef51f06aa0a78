/**
 * FHIR R4 write-back of a CT spine assessment's measurements, device-derived and profiled
 * (`fhir-profiles/structuredefinitions/frcds-ct-attenuation.json`, `frcds-ct-morphometry.json`; codes of CodeSystem
 * `frcds-ct-measures`):
 * - one Observation of trabecular attenuation at L1 (or the fallback level used): valueQuantity the median HU
 *   (UCUM `[hnsf'U]`), components the phase-adjusted HU and the interquartile range, `method` the ROI rule and the
 *   contrast phase, `bodySite` the level, `interpretation`-free (the Pickhardt band is in `note`);
 * - one Observation of morphometry per measured level: components anterior / middle / posterior heights (mm), the
 *   height-loss ratio and the Genant grade (valueInteger 0–3), with the deformity shape in `note`;
 * each with `device` → the CT analysis Device, `derivedFrom` → the ImagingStudy, status `final` and category
 * imaging; and one Provenance (target = the Observations, entity = the ImagingStudy, agent = the Device). The
 * RiskAssessment lists the Observations in `basis` (ct-assess.ts puts them there). Ids derive from the assessment id.
 * @see https://hl7.org/fhir/R4/observation.html
 */
import type { Device, Observation, ObservationComponent, Provenance, Reference } from '@medplum/fhirtypes';
import type { CtAssessmentView, CtFindings } from '../pathways/ct-spine/types.ts';

export const CT_MEASURES = 'https://fracture-risk-cds.invalid/fhir/CodeSystem/frcds-ct-measures';
export const CT_PROFILES = {
  attenuation: 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/frcds-ct-attenuation',
  morphometry: 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/frcds-ct-morphometry',
} as const;
const UCUM = 'http://unitsofmeasure.org';
const HU = { unit: 'HU', system: UCUM, code: "[hnsf'U]" } as const;
const MM = { unit: 'mm', system: UCUM, code: 'mm' } as const;
const IMAGING_CATEGORY = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'imaging', display: 'Imaging' }] };

const code = (c: string, display: string) => ({ coding: [{ system: CT_MEASURES, code: c, display }], text: display });
const dec = (x: number, nd = 2): number => Number(x.toFixed(nd));

/** Ids of the Observations of one assessment: attenuation first, then one per measured level (inferior → superior). */
export function ctObservationIds(assessmentId: string, findings: Pick<CtFindings, 'attenuation' | 'morphometry'>): { attenuation: string | null; morphometry: { level: string; id: string }[] } {
  const base = `frcds-${assessmentId}-ct`;
  return {
    attenuation: findings.attenuation ? `${base}-attenuation` : null,
    morphometry: (findings.morphometry ?? []).map((m) => ({ level: m.level, id: `${base}-${m.level.toLowerCase()}` })),
  };
}

export interface CtFhirInput {
  assessmentId: string;
  patientId: string;
  studyId: string;
  /** When the CT was taken (ImagingStudy.started), else the assessment time. */
  effective: string;
  issued: string;
  ct: CtAssessmentView;
  /** Which version of the analysis made the measurements (the CT model id and version it was run for). */
  analysis: { id: string; version: string };
}

export interface CtFhir {
  device: Device;
  observations: Observation[];
  provenance: Provenance;
}

/** The CT analysis as a FHIR Device (the `device` of every CT Observation). */
export function ctAnalysisDevice(analysis: CtFhirInput['analysis']): Device {
  return {
    resourceType: 'Device',
    id: `frcds-ct-spine-analysis-${analysis.id}-${analysis.version.replace(/[^A-Za-z0-9-.]/g, '-')}`,
    status: 'active',
    deviceName: [{ name: 'ct-spine-analysis', type: 'model-name' }],
    version: [{ value: `${analysis.id} ${analysis.version}` }],
    type: { text: 'Software: opportunistic CT spine analysis (vertebra labelling, L1 trabecular attenuation, Genant morphometry; classical image processing) — research use' },
    note: [{ text: 'Measurements are device-derived and unconfirmed: a clinician confirms any fracture before it enters the problem list.' }],
  };
}

/** The CT Observations, their Device and Provenance (header); null when nothing was measured. */
export function ctFhir(x: CtFhirInput): CtFhir | null {
  const { ct } = x;
  const ids = ctObservationIds(x.assessmentId, ct);
  const device = ctAnalysisDevice(x.analysis);
  const common = {
    resourceType: 'Observation' as const,
    status: 'final' as const,
    category: [IMAGING_CATEGORY],
    subject: { reference: `Patient/${x.patientId}` },
    effectiveDateTime: x.effective,
    issued: x.issued,
    device: { reference: `Device/${device.id}` } as Reference<Device>,
    derivedFrom: [{ reference: `ImagingStudy/${x.studyId}` }],
  };
  const observations: Observation[] = [];
  const att = ct.attenuation;
  if (att && ids.attenuation) {
    const components: ObservationComponent[] = [
      { code: code('adjusted-attenuation', 'Trabecular attenuation referred to a non-contrast scan'), valueQuantity: { value: dec(att.adjustedHu, 1), ...HU } },
      { code: code('attenuation-p25', 'Trabecular attenuation, 25th percentile'), valueQuantity: { value: dec(att.p25, 1), ...HU } },
      { code: code('attenuation-p75', 'Trabecular attenuation, 75th percentile'), valueQuantity: { value: dec(att.p75, 1), ...HU } },
    ];
    observations.push({
      ...common,
      id: ids.attenuation,
      meta: { profile: [CT_PROFILES.attenuation] },
      code: code('trabecular-attenuation', 'Vertebral trabecular attenuation (CT)'),
      valueQuantity: { value: dec(att.medianHu, 1), ...HU },
      method: { text: `Median of a trabecular ellipse ROI in the central half of ${att.level} (${att.voxels} voxels), cortex and basivertebral vein avoided; contrast phase: ${att.phase}` },
      bodySite: { text: `${att.level} vertebral body` },
      component: components,
      note: [{ text: `Pickhardt band of the adjusted value: ${att.band}. Device-derived, unconfirmed.` }],
    });
  }
  for (const m of ct.morphometry ?? []) {
    const id = ids.morphometry.find((e) => e.level === m.level)!.id;
    observations.push({
      ...common,
      id,
      meta: { profile: [CT_PROFILES.morphometry] },
      code: code('vertebral-morphometry', 'Vertebral body morphometry (CT, mid-sagittal)'),
      bodySite: { text: `${m.level} vertebral body` },
      method: { text: 'Mid-sagittal anterior, middle and posterior heights between the end plates; Genant grade by height loss (1: 20–25 %, 2: 25–40 %, 3: > 40 %)' },
      component: [
        { code: code('anterior-height', 'Anterior vertebral body height'), valueQuantity: { value: dec(m.ha), ...MM } },
        { code: code('middle-height', 'Middle vertebral body height'), valueQuantity: { value: dec(m.hm), ...MM } },
        { code: code('posterior-height', 'Posterior vertebral body height'), valueQuantity: { value: dec(m.hp), ...MM } },
        { code: code('height-loss', 'Height loss ratio'), valueQuantity: { value: dec(m.heightLoss, 3), unit: '1', system: UCUM, code: '1' } },
        { code: code('genant-grade', 'Genant semiquantitative grade'), valueInteger: m.grade },
      ],
      note: [{ text: `Shape: ${m.shape}. Device-derived, unconfirmed.` }],
    });
  }
  if (observations.length === 0) return null;
  const provenance: Provenance = {
    resourceType: 'Provenance',
    id: `frcds-${x.assessmentId}-ct-provenance`,
    target: observations.map((o) => ({ reference: `Observation/${o.id}` })),
    recorded: x.issued,
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'CREATE', display: 'create' }] },
    agent: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'assembler', display: 'Assembler' }] }, who: { reference: `Device/${device.id}` } }],
    entity: [{ role: 'source', what: { reference: `ImagingStudy/${x.studyId}` } }],
    reason: [{ text: 'Opportunistic CT: vertebral attenuation and morphometry measured by software' }],
  };
  return { device, observations, provenance };
}
