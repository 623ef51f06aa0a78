/**
 * FLS triage Task creation — when the tier warrants it and the patient has no open FLS referral or current
 * treatment, an FLS triage Task (pathway step `identified`) — called by the background jobs after a RiskAssessment is
 * written.
 *
 * Rules, in order (the first that applies is the `reason`):
 * 1. `tier-not-eligible` — the assessment's tier is not one of `tiers` (setting `FLS_TRIAGE_TIERS`, default high)
 *    and its CT shows no moderate or severe prevalent vertebral fracture (`ct.imminentRisk`: such a fracture is an
 *    indication for FLS review whatever the tier);
 * 2. `already-exists` — a Task with identifier `urn:frcds:fls-triage|<RiskAssessment id>` exists (a retried job);
 * 3. `open-fls-referral` — the patient has an FLS referral ServiceRequest (A's `isFlsReferral`) that is draft,
 *    active or on-hold;
 * 4. `open-triage-task` — the patient has another FLS triage Task that is still open (requested … in-progress);
 * 5. `current-treatment` — an active MedicationRequest / MedicationStatement codes a bone-protective medicine
 *    (ValueSet `osteoporosis-treatment`, or an ingredient name in {@link TREATMENT_NAMES});
 * otherwise `created`: a Task conforming to `frcds-fls-triage-task` is written with a client-assigned id derived from
 * the RiskAssessment id (PUT), so two concurrent retries converge on one Task. A Task for a moderate or severe
 * vertebral fracture on CT has priority `urgent` and that fracture as `reasonCode` ("vertebral fracture on CT,
 * grade 2 at L1"): the worklist ranks it first and flags the imminent risk with that reason.
 * A dismissed (rejected/cancelled) Task does not block a new one: a new report is a new episode to triage.
 * @see https://hl7.org/fhir/R4/task.html
 */
import type { MedicationRequest, MedicationStatement, RiskAssessment, ServiceRequest, Task } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { loadValueSets, type ValueSetIndex } from '../fhir/valuesets.ts';
import type { Logger } from '../logging.ts';
import { hashPatientId } from '../logging.ts';
import { isFlsReferral } from '../orders/service-requests.ts';
import { imminentReasonOf, ctOf, VERTEBRAL_FRACTURE_CODE } from '../cds/ct-words.ts';
import type { Assessment } from '../risk/assess.ts';
import {
  describeRisk, idOf, OPEN_TASK_STATUSES, summarise, TRIAGE_CODING, TRIAGE_IDENTIFIER_SYSTEM, TRIAGE_TASK_PROFILE, TRIAGE_TOKEN, triageTaskId,
} from './fhir-model.ts';
import { addDays, DEFAULT_DUE_DAYS, eventExtension, pathwayCoding } from './pathway.ts';
import { PATHWAY_STEP_LABELS, RESEARCH_NOTICE, type WorklistTier } from './types.ts';

export type TriageReason =
  | 'created'
  | 'tier-not-eligible'
  | 'already-exists'
  | 'open-fls-referral'
  | 'open-triage-task'
  | 'current-treatment';

export interface TriageResult {
  created: boolean;
  reason: TriageReason;
  /** The Task created, or the existing one that made creation unnecessary. */
  taskId?: string;
}

export interface TriageInput {
  patientId: string;
  /** The RiskAssessment as written to the FHIR server (its id is the idempotency key). */
  riskAssessment: RiskAssessment;
  /**
   * The risk service's assessment, when at hand (its tier wins over the RiskAssessment's qualitativeRisk; its CT
   * part, when there is one, may make an urgent Task).
   */
  assessment?: Pick<Assessment, 'tier'>;
}

export interface TriageOptions {
  /** Tiers that put a patient on the FLS worklist (setting `FLS_TRIAGE_TIERS`; default `['high']`). */
  tiers?: readonly WorklistTier[];
  /** Days after identification by which the patient should be contacted (`FLS_DUE_CONTACT_DAYS`, 14): the Task's first due date. */
  contactDays?: number;
  /** Clock for `authoredOn` (tests). */
  now?: () => Date;
  logger?: Logger;
  valueSets?: ValueSetIndex;
  signal?: AbortSignal;
}

/** The RiskAssessment cannot be triaged (no id: it was not written to the server first). */
export class TriageInputError extends Error {
  override readonly name = 'TriageInputError';
  readonly code = 'TRIAGE_INPUT';
}

/**
 * Ingredient names of bone-protective medicines, matched in `medicationCodeableConcept` text and displays
 * (lower case): the ValueSet's RxNorm ingredients plus abaloparatide and romosozumab, whose codes are not yet in it,
 * so charts coded in other terminologies (dm+d, SNOMED CT) are still recognised by name.
 */
export const TREATMENT_NAMES: readonly string[] = [
  'alendron', 'risedron', 'ibandron', 'zoledron', 'etidron', 'pamidron', 'denosumab', 'teriparatide', 'abaloparatide', 'romosozumab', 'raloxifene', 'bazedoxifene', 'strontium ranelate',
];

type Med = MedicationRequest | MedicationStatement;

export function isOsteoporosisTreatment(m: Med, vs: ValueSetIndex = loadValueSets()): boolean {
  if (m.status !== 'active') return false;
  const cc = m.medicationCodeableConcept;
  if (!cc) return false;
  if ((cc.coding ?? []).some((c) => vs.has('osteoporosis-treatment', c.system, c.code))) return true;
  const words = [cc.text, ...(cc.coding ?? []).map((c) => c.display)].filter((x): x is string => !!x).map((x) => x.toLowerCase());
  return words.some((w) => TREATMENT_NAMES.some((n) => w.includes(n)));
}

const OPEN_REFERRAL = ['draft', 'active', 'on-hold'] as const;

function describe(ra: RiskAssessment): string {
  const s = summarise(ra);
  return `FLS review: ${s.tier ?? 'unknown'} fracture-risk tier; 10-year hip ${describeRisk(s.hip10)}, major osteoporotic ${describeRisk(s.mof10)} (${s.mode}). ${RESEARCH_NOTICE}.`;
}

/**
 * Builds the triage Task for a RiskAssessment (profile `frcds-fls-triage-task`): pathway step `identified`, contact
 * due `contactDays` after creation.
 */
export function buildTriageTask(patientId: string, ra: RiskAssessment & { id: string }, authoredOn: Date, contactDays: number = DEFAULT_DUE_DAYS.contact, imminentReason: string | null = null): Task {
  const task: Task = {
    resourceType: 'Task',
    id: triageTaskId(ra.id),
    meta: { profile: [TRIAGE_TASK_PROFILE] },
    identifier: [{ system: TRIAGE_IDENTIFIER_SYSTEM, value: ra.id }],
    status: 'requested',
    intent: 'order',
    priority: imminentReason ? 'urgent' : 'routine',
    code: { coding: [{ ...TRIAGE_CODING }], text: TRIAGE_CODING.display },
    ...(imminentReason ? { reasonCode: { coding: [{ ...VERTEBRAL_FRACTURE_CODE }], text: imminentReason } } : {}),
    description: imminentReason ? `${imminentReason.charAt(0).toUpperCase()}${imminentReason.slice(1)}. ${describe(ra)}` : describe(ra),
    focus: { reference: `RiskAssessment/${ra.id}` },
    for: { reference: `Patient/${patientId}` },
    authoredOn: authoredOn.toISOString(),
    lastModified: authoredOn.toISOString(),
    businessStatus: { coding: [pathwayCoding('identified')], text: PATHWAY_STEP_LABELS.identified },
    extension: [eventExtension({ step: 'identified', time: authoredOn.toISOString(), by: 'Fracture Risk CDS triage', source: 'fhir' })],
    restriction: { period: { end: addDays(authoredOn.toISOString(), contactDays) } },
  };
  if (ra.performer?.reference) task.requester = { reference: ra.performer.reference };
  return task;
}

/** The imminent-risk reason of an urgent triage Task made for a vertebral fracture on CT, else undefined. */
export function imminentReasonOfTask(t: Pick<Task, 'priority' | 'reasonCode'>): string | undefined {
  if (t.priority !== 'urgent') return undefined;
  const rc = t.reasonCode;
  return rc?.text && rc.coding?.some((c) => c.system === VERTEBRAL_FRACTURE_CODE.system && c.code === VERTEBRAL_FRACTURE_CODE.code) ? rc.text : undefined;
}

/**
 * Creates an FLS triage Task for `riskAssessment` when the rules in the module header allow it.
 * @throws TriageInputError when the RiskAssessment has no id or is about another patient; FhirAccessError when the
 *   FHIR server fails (the job retries: the call is idempotent).
 */
export async function maybeCreateTriageTask(fhir: FhirDataSource, input: TriageInput, options: TriageOptions = {}): Promise<TriageResult> {
  const { patientId, riskAssessment: ra } = input;
  const signal = options.signal;
  if (!ra.id) throw new TriageInputError('the RiskAssessment has no id: write it to the FHIR server before triage');
  const subjectId = idOf(ra.subject?.reference, 'Patient');
  if (subjectId !== patientId) throw new TriageInputError('the RiskAssessment is about another patient');
  const tiers = options.tiers ?? ['high'];
  const tier = input.assessment?.tier.tier ?? summarise(ra).tier;
  const ctReason = input.assessment ? imminentReasonOf(ctOf(input.assessment)) : null;
  const log = options.logger?.child({ component: 'fls-triage', patientIdHash: hashPatientId(patientId) });
  const done = (r: TriageResult): TriageResult => {
    log?.info({ created: r.created, reason: r.reason, tier, urgent: ctReason !== null }, 'fls triage decision');
    return r;
  };
  if ((!tier || !tiers.includes(tier)) && !ctReason) return done({ created: false, reason: 'tier-not-eligible' });

  const ref = `Patient/${patientId}`;
  const [existing, referrals, tasks, medRequests, medStatements] = await Promise.all([
    fhir.search<Task>('Task', { identifier: `${TRIAGE_IDENTIFIER_SYSTEM}|${ra.id}` }, signal),
    fhir.search<ServiceRequest>('ServiceRequest', { subject: ref, status: OPEN_REFERRAL.join(',') }, signal),
    fhir.search<Task>('Task', { subject: ref, code: TRIAGE_TOKEN, status: OPEN_TASK_STATUSES.join(',') }, signal),
    fhir.search<MedicationRequest>('MedicationRequest', { subject: ref, status: 'active' }, signal),
    fhir.search<MedicationStatement>('MedicationStatement', { subject: ref, status: 'active' }, signal),
  ]);
  if (existing[0]?.id) return done({ created: false, reason: 'already-exists', taskId: existing[0].id });
  // Servers may ignore an unsupported search parameter: every condition is re-checked on the resources returned.
  if (referrals.some((s) => isFlsReferral(s) && (OPEN_REFERRAL as readonly string[]).includes(s.status) && idOf(s.subject?.reference, 'Patient') === patientId)) {
    return done({ created: false, reason: 'open-fls-referral' });
  }
  const open = tasks.find((t) => t.code && OPEN_TASK_STATUSES.includes(t.status) && idOf(t.for?.reference, 'Patient') === patientId && t.code.coding?.some((c) => c.system === TRIAGE_CODING.system && c.code === TRIAGE_CODING.code));
  if (open?.id) return done({ created: false, reason: 'open-triage-task', taskId: open.id });
  const vs = options.valueSets ?? loadValueSets();
  if ([...medRequests, ...medStatements].some((m) => idOf(m.subject?.reference, 'Patient') === patientId && isOsteoporosisTreatment(m, vs))) {
    return done({ created: false, reason: 'current-treatment' });
  }

  const task = buildTriageTask(patientId, ra as RiskAssessment & { id: string }, (options.now ?? (() => new Date()))(), options.contactDays, ctReason);
  const stored = await fhir.write(task, signal);
  return done({ created: true, reason: 'created', taskId: stored.id ?? task.id! });
}
