/**
 * Demo FLS pathway for the sandbox: puts a few demo-cohort patients along the fracture liaison service pathway so
 * the worklist, the coordinator's view and the KPIs have something to show — one just identified, one overdue for
 * contact, one with a DXA booked, one whose DXA result is in the chart (detected as "assessed", treatment decision
 * overdue), one whose osteoporosis medicine is in the chart (detected as "treatment decided", 16-week follow-up
 * overdue), one contacted, one dismissed; with owners and notes.
 *
 * Dates are counted back from the clock at seeding time, so "overdue" stays true whenever the demo runs. Each item
 * rests on a clinical-only RiskAssessment computed with QFracture-2012 from the patient's own chart (the radiograph
 * model is not loaded yet when the sandbox is seeded); it carries no `urn:frcds:assessment` identifier, so the app's
 * assessment history does not list it. Everything is written with fixed ids (PUT), so seeding twice gives the same
 * resources.
 */
import type { Condition, FamilyMemberHistory, ImagingStudy, MedicationRequest, MedicationStatement, Observation, Patient, Resource, RiskAssessment, ServiceRequest, Task } from '@medplum/fhirtypes';
import { loadValueSets, type ValueSetIndex } from '../fhir/valuesets.ts';
import { dismissalCoding, REFERRAL_IDENTIFIER_SYSTEM, referralId } from '../fls/fhir-model.ts';
import { currentStep, dueOf, eventExtension, pathwayCoding, taskStatusOf, DEFAULT_DUE_DAYS } from '../fls/pathway.ts';
import { buildTriageTask } from '../fls/triage.ts';
import { PATHWAY_STEP_LABELS, RESEARCH_NOTICE, type DismissalReasonCode, type PathwayEvent, type PathwayStep } from '../fls/types.ts';
import { flsReferral } from '../orders/service-requests.ts';
import { decide, DECISION_DEFAULTS } from '../risk/decision.ts';
import { extractFactors, type Chart } from '../risk/factors.ts';
import { EXT } from '../risk/fhir-output.ts';
import { riskPercent } from '../risk/qfracture.ts';

/** The demo FLS coordinator (server/sandbox/smart/users.ts). */
export const DEMO_OWNER = { reference: 'Practitioner/demo-fls-coordinator', display: 'Demo FLS-Coordinator' } as const;

/** One demo item: days are counted back from the seeding clock. */
export interface DemoPathwayPlan {
  patientId: string;
  identifiedDaysAgo: number;
  /** Steps recorded by the coordinator (after `identified`), with how many days ago. */
  steps: { step: PathwayStep; daysAgo: number; treatment?: PathwayEvent['treatment'] }[];
  owner?: boolean;
  notes?: { daysAgo: number; text: string }[];
  /** A DXA T-score Observation in the chart, this many days ago (the pathway detects "assessed"). */
  dxaDaysAgo?: number;
  /** An active alendronate MedicationRequest in the chart, this many days ago (the pathway detects treatment). */
  medicationDaysAgo?: number;
  dismissed?: { daysAgo: number; reason: DismissalReasonCode; note: string };
}

/**
 * The demo plan: patients that other demos and browser tests do not take along the pathway themselves, and whose
 * QFracture MOF risk is not below their hip risk (MOF includes hip fractures).
 */
export const DEMO_PLAN: readonly DemoPathwayPlan[] = [
  { patientId: 'demo-a-009', identifiedDaysAgo: 3, steps: [] },
  { patientId: 'demo-a-038', identifiedDaysAgo: 20, steps: [], owner: true, notes: [{ daysAgo: 12, text: 'Two calls, no answer; invitation letter sent.' }] },
  { patientId: 'demo-a-006', identifiedDaysAgo: 8, steps: [{ step: 'accepted', daysAgo: 7 }, { step: 'contacted', daysAgo: 5 }], owner: true },
  {
    patientId: 'demo-a-026', identifiedDaysAgo: 30, owner: true,
    steps: [{ step: 'accepted', daysAgo: 29 }, { step: 'contacted', daysAgo: 26 }, { step: 'dxa-booked', daysAgo: 22 }],
    notes: [{ daysAgo: 22, text: 'DXA booked at the main site; transport arranged.' }],
  },
  {
    patientId: 'demo-a-005', identifiedDaysAgo: 45, owner: true, dxaDaysAgo: 20,
    steps: [{ step: 'accepted', daysAgo: 44 }, { step: 'contacted', daysAgo: 40 }, { step: 'dxa-booked', daysAgo: 35 }],
  },
  {
    patientId: 'demo-a-034', identifiedDaysAgo: 150, owner: true, medicationDaysAgo: 125,
    steps: [{ step: 'accepted', daysAgo: 148 }, { step: 'contacted', daysAgo: 145 }, { step: 'dxa-booked', daysAgo: 140 }, { step: 'assessed', daysAgo: 131 }],
    notes: [{ daysAgo: 125, text: 'Started weekly alendronic acid; advised on calcium and vitamin D.' }],
  },
  { patientId: 'demo-b-001', identifiedDaysAgo: 12, steps: [{ step: 'accepted', daysAgo: 11 }], dismissed: { daysAgo: 9, reason: 'declined', note: 'Prefers follow-up with her own GP.' } },
];

const DAY_MS = 86_400_000;

/** The chart resources of one patient (the cohort's transaction bundle). */
export function chartOf(resources: readonly Resource[]): Chart | undefined {
  const of = <T extends Resource>(type: T['resourceType']): T[] => resources.filter((r): r is T => r.resourceType === type);
  const patient = of<Patient>('Patient')[0];
  if (!patient) return undefined;
  return {
    patient,
    observations: of<Observation>('Observation'),
    conditions: of<Condition>('Condition'),
    medicationRequests: of<MedicationRequest>('MedicationRequest'),
    medicationStatements: of<MedicationStatement>('MedicationStatement'),
    familyHistory: of<FamilyMemberHistory>('FamilyMemberHistory'),
    imagingStudies: of<ImagingStudy>('ImagingStudy'),
  };
}

/** A clinical-only (QFracture-2012) RiskAssessment of the chart on `at`; undefined when QFracture cannot be computed. */
export function demoRiskAssessment(chart: Chart, at: Date, tiers: { hipHigh: number; mofHigh: number; mofModerate: number }, vs: ValueSetIndex): (RiskAssessment & { id: string }) | undefined {
  const pid = chart.patient.id!;
  let factors;
  try {
    factors = extractFactors(chart, at.toISOString().slice(0, 10), vs);
  } catch {
    return undefined;
  }
  const hip = riskPercent('hip', factors.sex, factors.inputs) / 100;
  const mof = riskPercent('mof', factors.sex, factors.inputs) / 100;
  if (mof < hip) return undefined;
  const { tier } = decide({ hip: { risk10: hip, components: null }, mof: { risk10: mof, components: null } }, { tiers, decisionProbability: DECISION_DEFAULTS.decisionProbability, guideline: DECISION_DEFAULTS.guideline });
  const prediction = (system: string, code: string, display: string, p: number): NonNullable<RiskAssessment['prediction']>[number] => ({
    outcome: { coding: [{ system, code, display }] },
    probabilityDecimal: p,
    whenRange: { low: { value: 0, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' }, high: { value: 10, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' } },
    qualitativeRisk: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/risk-probability', code: tier }] },
  });
  return {
    resourceType: 'RiskAssessment',
    id: `fls-demo-ra-${pid}`,
    status: 'final',
    subject: { reference: `Patient/${pid}` },
    occurrenceDateTime: at.toISOString(),
    method: { text: 'QFracture-2012 (clinical factors only), computed when the sandbox was seeded for the FLS pathway demo' },
    extension: [{ url: EXT.mode, valueCode: 'clinical-only' }],
    prediction: [
      prediction('http://snomed.info/sct', '5913000', 'Fracture of neck of femur', hip),
      prediction('urn:frcds:outcome', 'mof', 'Major osteoporotic fracture', mof),
    ],
    note: [{ text: `${RESEARCH_NOTICE}.` }],
  };
}

/**
 * The demo resources for `plan` on the clock `now`: per patient a RiskAssessment, the triage Task along the
 * pathway, its FLS referral once accepted, and the DXA Observation / MedicationRequest the pathway detects.
 * `bundles` holds each patient's chart resources; patients missing there or without a QFracture estimate are skipped.
 */
export function flsDemoResources(
  bundles: ReadonlyMap<string, readonly Resource[]>, now: Date, plan: readonly DemoPathwayPlan[] = DEMO_PLAN,
  tiers = { hipHigh: 3, mofHigh: 20, mofModerate: 10 }, vs: ValueSetIndex = loadValueSets(),
): { resources: Resource[]; patients: string[]; skipped: string[] } {
  const resources: Resource[] = [];
  const patients: string[] = [];
  const skipped: string[] = [];
  const ago = (days: number, hour = 10): string => {
    const d = new Date(now.getTime() - days * DAY_MS);
    d.setUTCHours(hour, 0, 0, 0);
    return d.toISOString();
  };
  for (const p of plan) {
    const chart = chartOf(bundles.get(p.patientId) ?? []);
    const identifiedAt = new Date(ago(p.identifiedDaysAgo, 8));
    const ra = chart ? demoRiskAssessment(chart, identifiedAt, tiers, vs) : undefined;
    if (!ra) {
      skipped.push(p.patientId);
      continue;
    }
    const task = buildTriageTask(p.patientId, ra, identifiedAt);
    const taskId = task.id!;
    const events: PathwayEvent[] = [{ step: 'identified', time: identifiedAt.toISOString(), by: 'Fracture Risk CDS triage', source: 'fhir' }];
    for (const s of p.steps) events.push({ step: s.step, time: ago(s.daysAgo), by: DEMO_OWNER.display, source: 'user', ...(s.treatment ? { treatment: s.treatment } : {}) });
    if (p.dismissed) events.push({ step: 'dismissed', time: ago(p.dismissed.daysAgo), by: DEMO_OWNER.display, source: 'user' });
    const step = currentStep(events);
    const due = dueOf(events, identifiedAt.toISOString(), DEFAULT_DUE_DAYS);
    const accepted = events.find((e) => e.step === 'accepted');
    const own: Resource[] = [];
    const updated: Task = {
      ...task,
      status: taskStatusOf(step),
      businessStatus: { coding: [pathwayCoding(step)], text: PATHWAY_STEP_LABELS[step] },
      lastModified: events.at(-1)!.time,
      extension: events.map((e) => eventExtension(e)),
      ...(due.dueDate ? { restriction: { period: { end: due.dueDate } } } : {}),
      ...(p.owner || accepted ? { owner: { ...DEMO_OWNER } } : {}),
    };
    if (!due.dueDate) delete updated.restriction;
    const notes = [...(p.notes ?? []).map((n) => ({ time: ago(n.daysAgo, 14), text: n.text })), ...(p.dismissed ? [{ time: ago(p.dismissed.daysAgo), text: p.dismissed.note }] : [])];
    if (notes.length) updated.note = notes.map((n) => ({ ...n, authorReference: { ...DEMO_OWNER } }));
    if (p.dismissed) updated.statusReason = { coding: [dismissalCoding(p.dismissed.reason)], text: p.dismissed.note };
    if (accepted) {
      const sr: ServiceRequest = flsReferral({
        patientId: p.patientId, id: referralId(taskId), status: 'active', authoredOn: accepted.time,
        riskAssessmentRef: `RiskAssessment/${ra.id}`, requesterRef: DEMO_OWNER.reference, note: `${RESEARCH_NOTICE}. FLS pathway demo.`,
      });
      sr.identifier = [{ system: REFERRAL_IDENTIFIER_SYSTEM, value: taskId }];
      // Dismissing after acceptance withdraws the referral (as the worklist does).
      if (p.dismissed) sr.status = 'revoked';
      updated.output = [{ type: { text: 'FLS referral' }, valueReference: { reference: `ServiceRequest/${sr.id!}` } }];
      own.push(sr);
    }
    if (p.dxaDaysAgo !== undefined) {
      own.push({
        resourceType: 'Observation', id: `fls-demo-dxa-${p.patientId}`, status: 'final', subject: { reference: `Patient/${p.patientId}` },
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'imaging' }] }],
        code: { coding: [{ system: 'http://loinc.org', code: '38263-0', display: 'DXA Femur [T-score] Bone density' }] },
        bodySite: { text: 'Femoral neck' },
        effectiveDateTime: ago(p.dxaDaysAgo, 11),
        valueQuantity: { value: -2.6, unit: '{T-score}', system: 'http://unitsofmeasure.org', code: '{T-score}' },
      } satisfies Observation);
    }
    if (p.medicationDaysAgo !== undefined) {
      own.push({
        resourceType: 'MedicationRequest', id: `fls-demo-alendronate-${p.patientId}`, status: 'active', intent: 'order', subject: { reference: `Patient/${p.patientId}` },
        authoredOn: ago(p.medicationDaysAgo, 11),
        medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '46041', display: 'alendronate' }], text: 'Alendronic acid 70 mg once weekly' },
        requester: { reference: DEMO_OWNER.reference, display: DEMO_OWNER.display },
      } satisfies MedicationRequest);
    }
    // The RiskAssessment first: the referral and the Task point at it.
    resources.push(ra, ...own, updated);
    patients.push(p.patientId);
  }
  return { resources, patients, skipped };
}
