/**
 * The FLS worklist (issue 8, item 3): triage Tasks joined with their RiskAssessment and Patient, filtered and ranked;
 * accept (FLS referral ServiceRequest via `flsReferral`, Task → in-progress with the referral as output) and
 * dismiss (Task → rejected with a reason from the `fls-triage` CodeSystem).
 *
 * Reads are batched: one Task search, then one `_id=` search per 50 RiskAssessments / Patients / ImagingStudies and
 * one `subject=` search per 50 patients for fractures (the imminent-risk flag) — a constant number of round trips
 * for a typical worklist, whatever its length.
 */
import type { Condition, ImagingStudy, Patient, RiskAssessment, ServiceRequest, Task } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { flsReferral } from '../orders/service-requests.ts';
import {
  dismissalCoding, idOf, isTriageTask, readMany, REFERRAL_IDENTIFIER_SYSTEM, referralId, searchBySubject, summarise, TASK_STATUSES,
  TRIAGE_TOKEN, worklistStatusOf, hasImminentRisk,
} from './fhir-model.ts';
import {
  DISMISSAL_REASONS, FLS_TRIAGE_SYSTEM, RESEARCH_NOTICE, type DismissalReasonCode, type WorklistItem, type WorklistQuery, type WorklistStatus,
} from './types.ts';

/** A request the worklist refuses: unknown Task (404) or a state that does not allow the action (409). */
export class WorklistError extends Error {
  override readonly name = 'WorklistError';
  constructor(readonly code: 'NOT_FOUND' | 'CONFLICT' | 'BAD_REQUEST', message: string) {
    super(message);
  }
}

export interface WorklistOptions {
  fhir: FhirDataSource;
  /** Days before the assessment in which a fragility fracture makes the risk "imminent" (`FLS_IMMINENT_DAYS`, 730). */
  imminentDays: number;
  now?: () => Date;
}

const SEX = new Set(['female', 'male', 'other', 'unknown']);

function nameOf(p: Patient | undefined): string {
  const n = p?.name?.find((x) => x.use === 'official') ?? p?.name?.[0];
  if (!n) return '';
  if (n.text) return n.text;
  return [...(n.given ?? []), n.family ?? ''].filter((x) => x !== '').join(' ');
}

/**
 * The patient's site: `Patient.managingOrganization` (display, else the Organization id), else the assigner of the
 * medical record number. The demo cohort records neither: its items have no site unless a chart says so.
 */
export function siteOf(p: Patient | undefined): string | undefined {
  const org = p?.managingOrganization;
  if (org?.display) return org.display;
  const orgId = idOf(org?.reference, 'Organization');
  if (orgId) return orgId;
  const mrn = p?.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR'));
  return mrn?.assigner?.display ?? idOf(mrn?.assigner?.reference, 'Organization');
}

/** Validates a worklist query from URL parameters; throws WorklistError('BAD_REQUEST') naming the parameter. */
export function parseQuery(q: Record<string, unknown>): WorklistQuery {
  const out: WorklistQuery = {};
  const one = (k: string): string | undefined => {
    const v = q[k];
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') throw new WorklistError('BAD_REQUEST', `"${k}" must be given once`);
    return v;
  };
  const tier = one('tier');
  if (tier !== undefined) {
    if (tier !== 'low' && tier !== 'moderate' && tier !== 'high') throw new WorklistError('BAD_REQUEST', '"tier" must be low, moderate or high');
    out.tier = tier;
  }
  const status = one('status');
  if (status !== undefined) {
    if (!Object.hasOwn(TASK_STATUSES, status)) throw new WorklistError('BAD_REQUEST', '"status" must be requested, accepted or dismissed');
    out.status = status as WorklistStatus;
  }
  for (const k of ['from', 'to'] as const) {
    const v = one(k);
    if (v === undefined) continue;
    if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`))) throw new WorklistError('BAD_REQUEST', `"${k}" must be a date YYYY-MM-DD`);
    out[k] = v;
  }
  if (out.from && out.to && out.from > out.to) throw new WorklistError('BAD_REQUEST', '"from" must not be after "to"');
  const site = one('site');
  if (site !== undefined) out.site = site;
  return out;
}

export class Worklist {
  readonly #fhir: FhirDataSource;
  readonly #imminentDays: number;
  readonly #now: () => Date;
  /** Serialises accept/dismiss per Task inside this process (a double click must not make two referrals). */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(opts: WorklistOptions) {
    this.#fhir = opts.fhir;
    this.#imminentDays = opts.imminentDays;
    this.#now = opts.now ?? (() => new Date());
  }

  /** The items matching `q`, highest 10-year hip risk first (then MOF, then oldest first). */
  async list(q: WorklistQuery = {}, signal?: AbortSignal): Promise<WorklistItem[]> {
    const params: Record<string, string> = { code: TRIAGE_TOKEN, _sort: '-authored-on' };
    params['status'] = (q.status ? TASK_STATUSES[q.status] : Object.values(TASK_STATUSES).flat()).join(',');
    if (q.from) params['authored-on'] = `ge${q.from}`;
    const tasks = (await this.#fhir.search<Task>('Task', params, signal)).filter((t) => isTriageTask(t) && t.id);
    const items = await this.#items(tasks, signal);
    const filtered = items.filter((it) =>
      (!q.status || it.status === q.status) &&
      (!q.tier || it.tier === q.tier) &&
      (!q.from || it.authoredOn.slice(0, 10) >= q.from) &&
      (!q.to || it.authoredOn.slice(0, 10) <= q.to) &&
      (!q.site || (it.site ?? '').toLowerCase() === q.site.toLowerCase()));
    return filtered.sort((a, b) => b.hip10.estimate - a.hip10.estimate || b.mof10.estimate - a.mof10.estimate || a.authoredOn.localeCompare(b.authoredOn) || a.taskId.localeCompare(b.taskId));
  }

  /** One item by Task id. */
  async get(taskId: string, signal?: AbortSignal): Promise<WorklistItem> {
    const task = await this.#task(taskId, signal);
    const [item] = await this.#items([task], signal);
    if (!item) throw new WorklistError('CONFLICT', `Task/${taskId} is not a worklist item (status ${task.status})`);
    return item;
  }

  async #task(taskId: string, signal?: AbortSignal): Promise<Task> {
    let task: Task;
    try {
      task = await this.#fhir.read<Task>('Task', taskId, signal);
    } catch (err) {
      if ((err as { code?: string }).code === 'FHIR_NOT_FOUND') throw new WorklistError('NOT_FOUND', `Task/${taskId} was not found`);
      throw err;
    }
    if (!isTriageTask(task)) throw new WorklistError('NOT_FOUND', `Task/${taskId} is not an FLS triage Task`);
    return task;
  }

  async #items(tasks: readonly Task[], signal?: AbortSignal): Promise<WorklistItem[]> {
    const raIds = tasks.map((t) => idOf(t.focus?.reference, 'RiskAssessment')).filter((x): x is string => !!x);
    const pids = tasks.map((t) => idOf(t.for?.reference, 'Patient')).filter((x): x is string => !!x);
    const [ras, patients, conditions] = await Promise.all([
      readMany<RiskAssessment>(this.#fhir, 'RiskAssessment', raIds, signal),
      readMany<Patient>(this.#fhir, 'Patient', pids, signal),
      searchBySubject<Condition>(this.#fhir, 'Condition', pids, {}, signal),
    ]);
    const studyIds = [...ras.values()].map((ra) => summarise(ra).studyId).filter((x): x is string => !!x);
    const studies = await readMany<ImagingStudy>(this.#fhir, 'ImagingStudy', studyIds, signal);
    const out: WorklistItem[] = [];
    for (const t of tasks) {
      const status = worklistStatusOf(t);
      const raId = idOf(t.focus?.reference, 'RiskAssessment');
      const pid = idOf(t.for?.reference, 'Patient');
      if (!status || !raId || !pid || !t.id) continue;
      const ra = ras.get(raId);
      const p = patients.get(pid);
      const warnings: string[] = [];
      const s = ra ? summarise(ra) : undefined;
      if (!ra) warnings.push(`RiskAssessment/${raId} could not be read: risk unknown.`);
      if (!p) warnings.push(`Patient/${pid} could not be read.`);
      if (s) warnings.push(...s.warnings);
      const at = s?.occurrence ?? t.authoredOn ?? this.#now().toISOString();
      const study = s?.studyId ? studies.get(s.studyId) : undefined;
      const site = siteOf(p);
      const srId = t.output?.map((o) => idOf(o.valueReference?.reference, 'ServiceRequest')).find((x) => x !== undefined);
      const reason = t.statusReason?.coding?.find((c) => c.system === FLS_TRIAGE_SYSTEM && c.code && Object.hasOwn(DISMISSAL_REASONS, c.code))?.code as DismissalReasonCode | undefined;
      const nan = { estimate: 0, lower: null, upper: null };
      out.push({
        taskId: t.id,
        patientId: pid,
        patientName: nameOf(p),
        birthDate: p?.birthDate ?? null,
        sex: p?.gender && SEX.has(p.gender) ? p.gender : 'unknown',
        riskAssessmentId: raId,
        ...(s?.assessmentId ? { assessmentId: s.assessmentId } : {}),
        tier: s?.tier ?? 'low',
        mode: s?.mode ?? 'clinical-only',
        hip10: s?.hip10 ?? nan,
        mof10: s?.mof10 ?? nan,
        imminent: hasImminentRisk(conditions.get(pid) ?? [], at, this.#imminentDays),
        status,
        authoredOn: t.authoredOn ?? '',
        ...(site ? { site } : {}),
        ...(study?.started ? { studyDate: study.started } : {}),
        warnings,
        ...(srId ? { serviceRequestId: srId } : {}),
        ...(reason ? { dismissalReason: reason } : {}),
      });
    }
    return out;
  }

  async #exclusive<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(taskId) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(taskId, tail);
    void tail.then(() => {
      if (this.#locks.get(taskId) === tail) this.#locks.delete(taskId);
    });
    return run;
  }

  /**
   * Accepts an item: writes the FLS referral (A's `flsReferral`, status active, client id derived from the Task so
   * a retry or a second instance writes the same resource) and moves the Task to in-progress with the referral as
   * output. Accepting an accepted item answers the existing referral; a dismissed one is a conflict.
   */
  async accept(taskId: string, by: { fhirUser?: string; note?: string }, signal?: AbortSignal): Promise<{ item: WorklistItem; serviceRequestId: string; changed: boolean }> {
    return this.#exclusive(taskId, async () => {
      const task = await this.#task(taskId, signal);
      const status = worklistStatusOf(task);
      const existing = task.output?.map((o) => idOf(o.valueReference?.reference, 'ServiceRequest')).find((x) => x !== undefined);
      if (status === 'accepted' && existing) return { item: await this.get(taskId, signal), serviceRequestId: existing, changed: false };
      if (status !== 'requested') throw new WorklistError('CONFLICT', `Task/${taskId} is ${task.status}: only a requested item can be accepted`);
      const pid = idOf(task.for?.reference, 'Patient');
      const raId = idOf(task.focus?.reference, 'RiskAssessment');
      if (!pid) throw new WorklistError('CONFLICT', `Task/${taskId} names no patient`);
      const now = this.#now().toISOString();
      const item = (await this.#items([task], signal))[0];
      const requester = by.fhirUser && /^(Practitioner|PractitionerRole)\/[A-Za-z0-9\-.]{1,64}$/.test(by.fhirUser) ? by.fhirUser : undefined;
      const fmt = (r: { estimate: number; lower: number | null; upper: number | null }): string =>
        `${r.estimate.toFixed(1)} %${r.lower !== null && r.upper !== null ? ` (95 % interval ${r.lower.toFixed(1)}–${r.upper.toFixed(1)} %)` : ''}`;
      const sr: ServiceRequest = flsReferral({
        patientId: pid,
        id: referralId(taskId),
        status: 'active',
        authoredOn: now,
        ...(raId ? { riskAssessmentRef: `RiskAssessment/${raId}` } : {}),
        ...(requester ? { requesterRef: requester } : {}),
        ...(item ? { reason: `FLS worklist: ${item.tier} fracture-risk tier, 10-year hip ${fmt(item.hip10)}, major osteoporotic ${fmt(item.mof10)}${item.imminent ? '; fragility fracture in the last 2 years (imminent risk)' : ''}` } : {}),
        note: `${RESEARCH_NOTICE}.${by.note ? ` ${by.note}` : ''}`,
      });
      sr.identifier = [{ system: REFERRAL_IDENTIFIER_SYSTEM, value: taskId }];
      const storedSr = await this.#fhir.write(sr, signal);
      const srId = storedSr.id ?? sr.id!;
      const updated: Task = {
        ...task,
        status: 'in-progress',
        businessStatus: { text: 'Referred to the fracture liaison service' },
        lastModified: now,
        ...(by.fhirUser ? { owner: { reference: by.fhirUser } } : {}),
        output: [...(task.output ?? []), { type: { text: 'FLS referral' }, valueReference: { reference: `ServiceRequest/${srId}` } }],
        ...(by.note ? { note: [...(task.note ?? []), { text: by.note, time: now, ...(requester ? { authorReference: { reference: requester } } : {}) }] } : {}),
      };
      delete updated.meta?.versionId;
      await this.#fhir.write(updated, signal);
      return { item: await this.get(taskId, signal), serviceRequestId: srId, changed: true };
    });
  }

  /** Dismisses an item with a reason (Task → rejected, statusReason). Re-dismissing with the same reason is a no-op. */
  async dismiss(taskId: string, reason: DismissalReasonCode, by: { fhirUser?: string; note?: string }, signal?: AbortSignal): Promise<{ item: WorklistItem; changed: boolean }> {
    if (reason === 'other' && !by.note?.trim()) throw new WorklistError('BAD_REQUEST', 'reason "other" needs a note');
    return this.#exclusive(taskId, async () => {
      const task = await this.#task(taskId, signal);
      const status = worklistStatusOf(task);
      if (status === 'dismissed' && task.statusReason?.coding?.some((c) => c.system === FLS_TRIAGE_SYSTEM && c.code === reason)) {
        return { item: await this.get(taskId, signal), changed: false };
      }
      if (status !== 'requested') throw new WorklistError('CONFLICT', `Task/${taskId} is ${task.status}: only a requested item can be dismissed`);
      const now = this.#now().toISOString();
      const author = by.fhirUser && /^(Practitioner|PractitionerRole)\/[A-Za-z0-9\-.]{1,64}$/.test(by.fhirUser) ? by.fhirUser : undefined;
      const updated: Task = {
        ...task,
        status: 'rejected',
        statusReason: { coding: [dismissalCoding(reason)], text: by.note?.trim() || DISMISSAL_REASONS[reason] },
        businessStatus: { text: 'Dismissed from the FLS worklist' },
        lastModified: now,
        ...(by.fhirUser ? { owner: { reference: by.fhirUser } } : {}),
        ...(by.note?.trim() ? { note: [...(task.note ?? []), { text: by.note.trim(), time: now, ...(author ? { authorReference: { reference: author } } : {}) }] } : {}),
      };
      delete updated.meta?.versionId;
      await this.#fhir.write(updated, signal);
      return { item: await this.get(taskId, signal), changed: true };
    });
  }
}
