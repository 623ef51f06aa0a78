/**
 * The FLS worklist: triage Tasks joined with their RiskAssessment, Patient and the chart's bone-health care,
 * filtered and sorted, and the pathway actions on them — accept (FLS referral ServiceRequest via `flsReferral`),
 * advance a step, assign an owner, add a note, dismiss (with a reason from the `fls-triage` CodeSystem) — with
 * optimistic concurrency on the Task version. The pathway's FHIR encoding and rules are in `pathway.ts`.
 *
 * Reads are batched: one Task search, then one `_id=` search per 50 RiskAssessments / Patients / ImagingStudies and
 * one `subject=` search per 50 patients for fractures (the imminent-risk flag), referrals, DXA results and
 * medicines — a constant number of round trips for a typical worklist, whatever its length.
 *
 * Concurrency: each action reads the Task, compares its `meta.versionId` with the caller's If-Match and writes,
 * serialised per Task inside this process. Across service instances the deterministic referral id keeps accept
 * single; other actions from two instances at the same moment may overwrite each other (the FHIR data source has
 * no conditional update).
 */
import type { Condition, ImagingStudy, Patient, Practitioner, RiskAssessment, ServiceRequest, Task } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { flsReferral } from '../orders/service-requests.ts';
import { formatPercent, shownPercent } from '../risk/numbers.ts';
import { detectedEvents, loadCareMany, type PatientCare } from './care.ts';
import { imminentReasonOfTask } from './triage.ts';
import {
  describeRisk, dismissalCoding, idOf, isTriageTask, readMany, recentFracture, REFERRAL_IDENTIFIER_SYSTEM, referralId, searchBySubject, summarise,
  TASK_STATUSES, TRIAGE_TOKEN, worklistStatusOf,
} from './fhir-model.ts';
import {
  currentStep, dayOf, DEFAULT_DUE_DAYS, dueOf, eventExtension, eventOf, isOverdue, nextStepsOf, PATHWAY_EVENT_URL, pathwayCoding,
  stepIndex, taskStatusOf, treatmentOutcomesFor, historyOf, isPathwayStep, type DetectedEvent,
} from './pathway.ts';
import {
  ALL_PATHWAY_STEPS, DEFAULT_SORT_DIR, DISMISSAL_REASONS, FLS_TRIAGE_SYSTEM, isOpenStep, PATHWAY_STEP_LABELS, RESEARCH_NOTICE,
  WORKLIST_SORTS, type DismissalReasonCode, type DueDays, type PathwayEvent, type PathwayOwner, type PathwayStep, type RiskWithInterval,
  type TreatmentOutcome, type WorklistItem, type WorklistQuery, type WorklistSort, type WorklistStatus,
} from './types.ts';

/** A request the worklist refuses: unknown Task (404), a state or version that does not allow the action (409), bad input (400). */
export class WorklistError extends Error {
  override readonly name = 'WorklistError';
  constructor(readonly code: 'NOT_FOUND' | 'CONFLICT' | 'STALE_VERSION' | 'BAD_REQUEST', message: string) {
    super(message);
  }
}

/** Thresholds the flag reason names (the risk tiers' settings `RISK_TIER_*`, in percent). */
export interface FlagThresholds {
  hipHigh: number;
  mofHigh: number;
  mofModerate: number;
}

export interface WorklistOptions {
  fhir: FhirDataSource;
  /** Days before the assessment in which a fragility fracture makes the risk "imminent" (`FLS_IMMINENT_DAYS`, 730). */
  imminentDays: number;
  /** Pathway due dates in days (`FLS_DUE_*`). */
  due?: DueDays;
  /** Tier thresholds for the flag reason (`RISK_TIER_*`; default 3 / 20 / 10). */
  thresholds?: FlagThresholds;
  /** The clock (overdue flags, action times); tests inject one. */
  now?: () => Date;
}

/** Who acts: the SMART user. */
export interface Actor {
  fhirUser?: string;
  /** Token subject, used as the name when there is no fhirUser. */
  subject?: string;
}

const SEX = new Set(['female', 'male', 'other', 'unknown']);
const USER_REF = /^(Practitioner|PractitionerRole)\/[A-Za-z0-9\-.]{1,64}$/;
const OWNER_REF = /^(Practitioner|PractitionerRole|CareTeam|Organization)\/[A-Za-z0-9\-.]{1,64}$/;

function nameOf(p: Patient | undefined): string {
  const n = p?.name?.find((x) => x.use === 'official') ?? p?.name?.[0];
  if (!n) return '';
  if (n.text) return n.text;
  return [...(n.given ?? []), n.family ?? ''].filter((x) => x !== '').join(' ');
}

/** A person's name for owner and history lines: given + family, else the name's text. */
function personName(p: Practitioner | undefined): string | undefined {
  const n = p?.name?.find((x) => x.use === 'official') ?? p?.name?.[0];
  if (!n) return undefined;
  const parts = [...(n.given ?? []), n.family ?? ''].filter((x) => x !== '').join(' ');
  return parts || n.text || undefined;
}

/**
 * The patient's site: `Patient.managingOrganization` (display, else the Organization id), else the assigner of the
 * medical record number (display, else the Organization id); null when the chart names none.
 */
export function siteOf(p: Patient | undefined): string | null {
  const org = p?.managingOrganization;
  if (org?.display) return org.display;
  const orgId = idOf(org?.reference, 'Organization');
  if (orgId) return orgId;
  const mrn = p?.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR'));
  return mrn?.assigner?.display ?? idOf(mrn?.assigner?.reference, 'Organization') ?? null;
}

/** The medical record number: the identifier typed MR, else the first identifier with a value; null when none. */
export function mrnOf(p: Patient | undefined): string | null {
  const ids = p?.identifier ?? [];
  const mr = ids.find((i) => i.value && i.type?.coding?.some((c) => c.code === 'MR'));
  return mr?.value ?? ids.find((i) => i.value)?.value ?? null;
}

/**
 * Why the patient was flagged, in plain words with the numbers as shown everywhere (numbers.ts), compared on the
 * shown value: "10-year hip fracture risk 5.2% (above the 3% threshold); recent fracture: wrist fracture (2026-03-02)".
 */
export function flagReasonOf(
  risk: { tier: string; hip10: RiskWithInterval | undefined; mof10: RiskWithInterval | undefined },
  t: FlagThresholds,
  fracture?: { name: string; date: string },
): string {
  const parts: string[] = [];
  // A threshold is a setting such as 3 or 20: written as configured ("3%"), not as a rounded risk ("3.0%").
  const pct = (threshold: number): string => `${threshold}%`;
  const cmp = (shown: number, threshold: number): string => (shown > threshold ? `above the ${pct(threshold)} threshold` : `at the ${pct(threshold)} threshold`);
  const { hip10, mof10 } = risk;
  if (!hip10 || !mof10) parts.push('risk unknown (the assessment could not be read)');
  else {
    const hip = shownPercent(hip10.estimate / 100);
    const mof = shownPercent(mof10.estimate / 100);
    if (hip >= t.hipHigh) parts.push(`10-year hip fracture risk ${formatPercent(hip10.estimate)} (${cmp(hip, t.hipHigh)})`);
    if (mof >= t.mofHigh) parts.push(`10-year major osteoporotic fracture risk ${formatPercent(mof10.estimate)} (${cmp(mof, t.mofHigh)})`);
    else if (parts.length === 0 && mof >= t.mofModerate) parts.push(`10-year major osteoporotic fracture risk ${formatPercent(mof10.estimate)} (moderate: from ${pct(t.mofModerate)})`);
    if (parts.length === 0) parts.push(`${risk.tier} risk: 10-year hip fracture risk ${formatPercent(hip10.estimate)}, major osteoporotic ${formatPercent(mof10.estimate)}`);
  }
  if (fracture) parts.push(`recent fracture: ${fracture.name} (${fracture.date})`);
  return parts.join('; ');
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const isDay = (v: string): boolean => DAY.test(v) && !Number.isNaN(Date.parse(`${v}T00:00:00Z`)) && new Date(`${v}T00:00:00Z`).toISOString().startsWith(v);

/**
 * Validates a worklist query from URL parameters; throws WorklistError('BAD_REQUEST') naming the parameter.
 * `owner=me` is resolved to `me` (the caller's fhirUser) by the caller.
 */
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
  const step = one('step');
  if (step !== undefined) {
    if (!isPathwayStep(step)) throw new WorklistError('BAD_REQUEST', `"step" must be one of ${ALL_PATHWAY_STEPS.join(', ')}`);
    out.step = step;
  }
  const owner = one('owner');
  if (owner !== undefined) {
    if (owner !== 'me' && owner !== 'none' && !OWNER_REF.test(owner)) throw new WorklistError('BAD_REQUEST', '"owner" must be me, none or a reference such as Practitioner/123');
    out.owner = owner;
  }
  const overdue = one('overdue');
  if (overdue !== undefined) {
    if (overdue !== 'true' && overdue !== 'false') throw new WorklistError('BAD_REQUEST', '"overdue" must be true or false');
    out.overdue = overdue === 'true';
  }
  for (const k of ['from', 'to'] as const) {
    const v = one(k);
    if (v === undefined) continue;
    if (!isDay(v)) throw new WorklistError('BAD_REQUEST', `"${k}" must be a date YYYY-MM-DD`);
    out[k] = v;
  }
  if (out.from && out.to && out.from > out.to) throw new WorklistError('BAD_REQUEST', '"from" must not be after "to"');
  const site = one('site');
  if (site !== undefined) out.site = site;
  const sort = one('sort');
  if (sort !== undefined) {
    if (!(WORKLIST_SORTS as readonly string[]).includes(sort)) throw new WorklistError('BAD_REQUEST', `"sort" must be one of ${WORKLIST_SORTS.join(', ')}`);
    out.sort = sort as WorklistSort;
  }
  const dir = one('dir');
  if (dir !== undefined) {
    if (dir !== 'asc' && dir !== 'desc') throw new WorklistError('BAD_REQUEST', '"dir" must be asc or desc');
    out.dir = dir;
  }
  return out;
}

/**
 * Sorts items in place by `sort` / `dir` (default: risk, highest first — an urgent Task for a vertebral fracture on
 * CT before the others, then 10-year hip risk, then MOF). Items with nothing
 * due go last whatever the direction of a due-date sort. Ties: oldest Task first, then Task id.
 */
export function sortItems(items: WorklistItem[], sort: WorklistSort = 'risk', dir: 'asc' | 'desc' = DEFAULT_SORT_DIR[sort]): WorklistItem[] {
  const sign = dir === 'asc' ? 1 : -1;
  const primary = (a: WorklistItem, b: WorklistItem): number => {
    switch (sort) {
      case 'risk': return sign * (Number(a.imminentReason !== undefined) - Number(b.imminentReason !== undefined) || a.hip10.estimate - b.hip10.estimate || a.mof10.estimate - b.mof10.estimate);
      case 'name': return sign * a.patientName.localeCompare(b.patientName, 'en', { sensitivity: 'base' });
      case 'step': return sign * (stepIndex(a.pathway.step) - stepIndex(b.pathway.step));
      case 'authored': return sign * a.authoredOn.localeCompare(b.authoredOn);
      case 'due': {
        const da = a.pathway.dueDate;
        const db = b.pathway.dueDate;
        if (da === null || db === null) return (da === null ? 1 : 0) - (db === null ? 1 : 0);
        return sign * da.localeCompare(db) || b.hip10.estimate - a.hip10.estimate;
      }
    }
  };
  return items.sort((a, b) => primary(a, b) || a.authoredOn.localeCompare(b.authoredOn) || a.taskId.localeCompare(b.taskId));
}

/** `W/"3"`, `"3"` or `3` → `3`. */
export function parseIfMatch(h: string | undefined): string | undefined {
  if (h === undefined || h.trim() === '') return undefined;
  const m = /^\s*(?:W\/)?"?([^"]*)"?\s*$/.exec(h);
  return m?.[1];
}

export interface StepInput {
  step: PathwayStep;
  date?: string;
  note?: string;
  treatment?: TreatmentOutcome;
}

/** What a Task write carries besides the pathway. */
interface Change {
  step?: PathwayEvent;
  owner?: PathwayOwner | null;
  note?: string;
  patch?: (t: Task) => void;
}

export class Worklist {
  readonly #fhir: FhirDataSource;
  readonly #imminentDays: number;
  readonly #due: DueDays;
  readonly #thresholds: FlagThresholds;
  readonly #now: () => Date;
  /** Serialises actions per Task inside this process (a double click must not make two referrals). */
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #names = new Map<string, string>();

  constructor(opts: WorklistOptions) {
    this.#fhir = opts.fhir;
    this.#imminentDays = opts.imminentDays;
    this.#due = opts.due ?? DEFAULT_DUE_DAYS;
    this.#thresholds = opts.thresholds ?? { hipHigh: 3, mofHigh: 20, mofModerate: 10 };
    this.#now = opts.now ?? (() => new Date());
  }

  /** The clock the overdue flags use. */
  now(): Date {
    return this.#now();
  }

  /** The due-date targets. */
  get due(): DueDays {
    return this.#due;
  }

  /**
   * The items matching `q` in the order asked for (default: highest 10-year hip risk first, then MOF, then oldest).
   * `me` is the caller's fhirUser, for `owner=me`.
   */
  async list(q: WorklistQuery = {}, signal?: AbortSignal, me?: string): Promise<WorklistItem[]> {
    const params: Record<string, string> = { code: TRIAGE_TOKEN, _sort: '-authored-on' };
    params['status'] = (q.status ? TASK_STATUSES[q.status] : Object.values(TASK_STATUSES).flat()).join(',');
    if (q.from) params['authored-on'] = `ge${q.from}`;
    const tasks = (await this.#fhir.search<Task>('Task', params, signal)).filter((t) => isTriageTask(t) && t.id);
    const items = await this.#items(tasks, signal);
    const owner = q.owner === 'me' ? me ?? '\u0000nobody' : q.owner;
    const filtered = items.filter((it) =>
      (!q.status || it.status === q.status) &&
      (!q.tier || it.tier === q.tier) &&
      (!q.step || it.pathway.step === q.step) &&
      (owner === undefined || (owner === 'none' ? it.pathway.owner === null : it.pathway.owner?.reference === owner)) &&
      (q.overdue === undefined || it.pathway.overdue === q.overdue) &&
      (!q.from || it.authoredOn.slice(0, 10) >= q.from) &&
      (!q.to || it.authoredOn.slice(0, 10) <= q.to) &&
      (!q.site || (it.site ?? '').toLowerCase() === q.site.toLowerCase()));
    return sortItems(filtered, q.sort, q.dir);
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

  /** The pathway history of a Task with the steps its patient's chart shows. */
  #history(t: Task, care: PatientCare | undefined): PathwayEvent[] {
    return historyOf(t, detectedEvents(care, t.authoredOn ?? t.lastModified ?? ''));
  }

  async #items(tasks: readonly Task[], signal?: AbortSignal): Promise<WorklistItem[]> {
    const raIds = tasks.map((t) => idOf(t.focus?.reference, 'RiskAssessment')).filter((x): x is string => !!x);
    const pids = tasks.map((t) => idOf(t.for?.reference, 'Patient')).filter((x): x is string => !!x);
    const [ras, patients, conditions, cares] = await Promise.all([
      readMany<RiskAssessment>(this.#fhir, 'RiskAssessment', raIds, signal),
      readMany<Patient>(this.#fhir, 'Patient', pids, signal),
      searchBySubject<Condition>(this.#fhir, 'Condition', pids, {}, signal),
      loadCareMany(this.#fhir, pids, signal ? { signal } : {}),
    ]);
    const studyIds = [...ras.values()].map((ra) => summarise(ra).studyId).filter((x): x is string => !!x);
    const studies = await readMany<ImagingStudy>(this.#fhir, 'ImagingStudy', studyIds, signal);
    const now = this.#now();
    const out: WorklistItem[] = [];
    for (const t of tasks) {
      const status = worklistStatusOf(t);
      const raId = idOf(t.focus?.reference, 'RiskAssessment');
      const pid = idOf(t.for?.reference, 'Patient');
      if (!status || !raId || !pid || !t.id) continue;
      const ra = ras.get(raId);
      const p = patients.get(pid);
      const care = cares.get(pid);
      const warnings: string[] = [];
      const s = ra ? summarise(ra) : undefined;
      if (!ra) warnings.push('The risk assessment could not be read: risk unknown.');
      if (!p) warnings.push('The patient record could not be read.');
      if (s) warnings.push(...s.warnings);
      const at = s?.occurrence ?? t.authoredOn ?? now.toISOString();
      const study = s?.studyId ? studies.get(s.studyId) : undefined;
      const srId = t.output?.map((o) => idOf(o.valueReference?.reference, 'ServiceRequest')).find((x) => x !== undefined);
      const reason = t.statusReason?.coding?.find((c) => c.system === FLS_TRIAGE_SYSTEM && c.code && Object.hasOwn(DISMISSAL_REASONS, c.code))?.code as DismissalReasonCode | undefined;
      const fracture = recentFracture(conditions.get(pid) ?? [], at, this.#imminentDays);
      const fractureName = fracture ? (fracture.condition.code?.text ?? fracture.condition.code?.coding?.find((c) => c.display)?.display ?? 'fracture').toLowerCase() : undefined;
      const ctReason = imminentReasonOfTask(t);
      const nan = { estimate: 0, lower: null, upper: null };
      const history = this.#history(t, care);
      const step = currentStep(history);
      const identifiedAt = t.authoredOn ?? history[0]?.time ?? '';
      const due = dueOf(history, identifiedAt, this.#due);
      out.push({
        taskId: t.id,
        patientId: pid,
        patientName: nameOf(p),
        birthDate: p?.birthDate ?? null,
        sex: p?.gender && SEX.has(p.gender) ? p.gender : 'unknown',
        mrn: mrnOf(p),
        site: siteOf(p),
        riskAssessmentId: raId,
        ...(s?.assessmentId ? { assessmentId: s.assessmentId } : {}),
        tier: s?.tier ?? 'low',
        mode: s?.mode ?? 'clinical-only',
        hip10: s?.hip10 ?? nan,
        mof10: s?.mof10 ?? nan,
        imminent: fracture !== undefined || ctReason !== undefined,
        ...(ctReason ? { imminentReason: ctReason } : {}),
        flagReason: [flagReasonOf({ tier: s?.tier ?? 'unknown', hip10: s?.hip10, mof10: s?.mof10 }, this.#thresholds, fracture && fractureName ? { name: fractureName, date: fracture.date } : undefined), ctReason].filter((x) => !!x).join('; '),
        status,
        authoredOn: t.authoredOn ?? '',
        ...(study?.started ? { studyDate: study.started } : {}),
        warnings,
        ...(srId ? { serviceRequestId: srId } : {}),
        ...(reason ? { dismissalReason: reason } : {}),
        pathway: {
          step,
          stepSince: eventOf(history, step)?.time ?? identifiedAt,
          dueDate: due.dueDate,
          dueFor: due.dueFor,
          overdue: isOverdue(due.dueDate, now),
          owner: t.owner?.reference ? { reference: t.owner.reference, display: t.owner.display ?? t.owner.reference } : null,
          notes: (t.note ?? []).filter((n) => n.text).map((n) => ({ time: n.time ?? '', author: n.authorReference?.display ?? n.authorString ?? n.authorReference?.reference ?? 'unknown', text: n.text })),
          history,
          nextSteps: nextStepsOf(step),
          version: t.meta?.versionId ?? '',
        },
        care: care?.care ?? { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null },
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

  /** The user's display name (Practitioner name), cached; the reference or the token subject when unknown. */
  async #nameOf(by: Actor, signal?: AbortSignal): Promise<string> {
    const ref = by.fhirUser;
    if (!ref || !USER_REF.test(ref)) return by.subject ?? 'unknown user';
    const cached = this.#names.get(ref);
    if (cached) return cached;
    let name = ref;
    if (ref.startsWith('Practitioner/')) {
      try {
        name = personName(await this.#fhir.read<Practitioner>('Practitioner', ref.slice('Practitioner/'.length), signal)) ?? ref;
      } catch {
        name = ref;
      }
    }
    if (this.#names.size > 500) this.#names.clear();
    this.#names.set(ref, name);
    return name;
  }

  /** Reads the Task, checks the If-Match version, returns it with its current pathway (detected steps included). */
  async #load(taskId: string, ifMatch: string | undefined, signal?: AbortSignal): Promise<{ task: Task; history: PathwayEvent[]; step: PathwayStep; care: PatientCare | undefined }> {
    const task = await this.#task(taskId, signal);
    if (ifMatch !== undefined && ifMatch !== (task.meta?.versionId ?? '')) {
      throw new WorklistError('STALE_VERSION', `Task/${taskId} has changed since it was read (version ${task.meta?.versionId ?? 'unknown'}, not ${ifMatch}): reload it`);
    }
    const pid = idOf(task.for?.reference, 'Patient');
    const care = pid ? (await loadCareMany(this.#fhir, [pid], signal ? { signal } : {})).get(pid) : undefined;
    const history = this.#history(task, care);
    return { task, history, step: currentStep(history), care };
  }

  /** Writes the Task with its pathway: events (detected ones kept), business status, Task.status, due date, owner, note. */
  async #save(task: Task, history: PathwayEvent[], change: Change, by: Actor, signal?: AbortSignal): Promise<void> {
    const now = this.#now().toISOString();
    const events = change.step ? [...history, change.step] : history;
    const step = currentStep(events);
    const due = dueOf(events, task.authoredOn ?? events[0]?.time ?? now, this.#due);
    const author = by.fhirUser && USER_REF.test(by.fhirUser) ? { reference: by.fhirUser, display: await this.#nameOf(by, signal) } : undefined;
    const updated: Task = {
      ...task,
      status: taskStatusOf(step),
      businessStatus: { coding: [pathwayCoding(step)], text: PATHWAY_STEP_LABELS[step] },
      lastModified: now,
      extension: [
        ...(task.extension ?? []).filter((e) => e.url !== PATHWAY_EVENT_URL),
        ...events.map((e) => eventExtension(e, (e as Partial<DetectedEvent>).evidence)),
      ],
    };
    if (due.dueDate) updated.restriction = { ...task.restriction, period: { ...task.restriction?.period, end: due.dueDate } };
    else if (updated.restriction?.period?.end) {
      const { end: _end, ...period } = updated.restriction.period;
      updated.restriction = { ...updated.restriction, period };
    }
    if (change.owner === null) delete updated.owner;
    else if (change.owner) updated.owner = { reference: change.owner.reference, display: change.owner.display };
    if (change.note) {
      updated.note = [...(task.note ?? []), { text: change.note, time: now, ...(author ? { authorReference: author } : { authorString: by.subject ?? 'unknown user' }) }];
    }
    change.patch?.(updated);
    if (updated.meta) {
      const { versionId: _v, lastUpdated: _l, ...meta } = updated.meta;
      updated.meta = meta;
    }
    await this.#fhir.write(updated, signal);
  }

  /**
   * A user event for `step` at `date` (YYYY-MM-DD: not in the future, not before identification nor before the
   * current step was reached, so the history reads in order) or now.
   */
  async #event(step: PathwayStep, task: Task, input: { date?: string; treatment?: TreatmentOutcome }, by: Actor, signal?: AbortSignal, notBefore?: string): Promise<PathwayEvent> {
    const now = this.#now();
    let time = now.toISOString();
    if (input.date !== undefined) {
      if (!isDay(input.date)) throw new WorklistError('BAD_REQUEST', '"date" must be a date YYYY-MM-DD');
      if (input.date > dayOf(time)) throw new WorklistError('BAD_REQUEST', '"date" must not be in the future');
      if (task.authoredOn && input.date < dayOf(task.authoredOn)) throw new WorklistError('BAD_REQUEST', '"date" must not be before the patient was identified');
      if (notBefore && input.date < dayOf(notBefore)) throw new WorklistError('BAD_REQUEST', `"date" must not be before the current step was reached (${dayOf(notBefore)})`);
      if (input.date !== dayOf(time)) time = input.date;
    }
    return { step, time, by: await this.#nameOf(by, signal), source: 'user', ...(input.treatment ? { treatment: input.treatment } : {}) };
  }

  /**
   * Sets the status of the FLS referral accepting this item wrote (closing completes it, dismissing after acceptance
   * revokes it). A referral made elsewhere and only linked is left to whoever made it.
   */
  async #settleReferral(task: Task, status: 'completed' | 'revoked', signal?: AbortSignal): Promise<void> {
    const srId = task.output?.map((o) => idOf(o.valueReference?.reference, 'ServiceRequest')).find((x) => x !== undefined);
    if (!srId) return;
    let sr: ServiceRequest;
    try {
      sr = await this.#fhir.read<ServiceRequest>('ServiceRequest', srId, signal);
    } catch (err) {
      if ((err as { code?: string }).code === 'FHIR_NOT_FOUND') return;
      throw err;
    }
    if (!['active', 'on-hold', 'draft'].includes(sr.status)) return;
    if (!sr.identifier?.some((i) => i.system === REFERRAL_IDENTIFIER_SYSTEM && i.value === task.id)) return;
    const { meta: _m, ...rest } = sr;
    await this.#fhir.write<ServiceRequest>({ ...rest, status }, signal);
  }

  /**
   * Accepts an item: writes the FLS referral (A's `flsReferral`, status active, client id derived from the Task so
   * a retry or a second instance writes the same resource) and moves the Task to step `accepted` (in-progress) with
   * the referral as output; the owner becomes the accepting user unless one is set. When the patient already has an
   * open FLS referral (made elsewhere, e.g. from a card), that one is linked instead of writing a duplicate
   * (`existingReferral`). Accepting an accepted item answers its referral; a dismissed or closed one is a conflict.
   */
  async accept(taskId: string, by: Actor & { note?: string; date?: string }, signal?: AbortSignal, ifMatch?: string): Promise<{ item: WorklistItem; serviceRequestId: string; changed: boolean; existingReferral: boolean }> {
    return this.#exclusive(taskId, async () => {
      const { task, history, step, care } = await this.#load(taskId, ifMatch, signal);
      const existing = task.output?.map((o) => idOf(o.valueReference?.reference, 'ServiceRequest')).find((x) => x !== undefined);
      if (step !== 'identified' && isOpenStep(step) && existing) return { item: await this.get(taskId, signal), serviceRequestId: existing, changed: false, existingReferral: false };
      if (step !== 'identified') throw new WorklistError('CONFLICT', `Task/${taskId} is ${PATHWAY_STEP_LABELS[step].toLowerCase()}: only an identified item can be accepted`);
      const pid = idOf(task.for?.reference, 'Patient');
      const raId = idOf(task.focus?.reference, 'RiskAssessment');
      if (!pid) throw new WorklistError('CONFLICT', `Task/${taskId} names no patient`);
      const event = await this.#event('accepted', task, by, by, signal);
      const now = this.#now().toISOString();
      const item = (await this.#items([task], signal))[0];
      const requester = by.fhirUser && USER_REF.test(by.fhirUser) ? by.fhirUser : undefined;
      const sr: ServiceRequest = flsReferral({
        patientId: pid,
        id: referralId(taskId),
        status: 'active',
        authoredOn: now,
        ...(raId ? { riskAssessmentRef: `RiskAssessment/${raId}` } : {}),
        ...(requester ? { requesterRef: requester } : {}),
        ...(item ? { reason: `FLS worklist: ${item.tier} fracture-risk tier, 10-year hip ${describeRisk(item.hip10)}, major osteoporotic ${describeRisk(item.mof10)}${item.imminent ? '; fragility fracture in the last 2 years (imminent risk)' : ''}` } : {}),
        note: `${RESEARCH_NOTICE}.${by.note ? ` ${by.note}` : ''}`,
      });
      sr.identifier = [{ system: REFERRAL_IDENTIFIER_SYSTEM, value: taskId }];
      const open = care?.care.flsReferral;
      const reuse = open !== null && open !== undefined && open.id !== sr.id;
      const srId = reuse ? open.id : ((await this.#fhir.write(sr, signal)).id ?? sr.id!);
      const owner = !task.owner?.reference && requester ? { reference: requester, display: await this.#nameOf(by, signal) } : undefined;
      await this.#save(task, history, {
        step: event,
        ...(owner ? { owner } : {}),
        ...(by.note ? { note: by.note } : {}),
        patch: (t) => {
          t.output = [...(task.output ?? []), { type: { text: reuse ? 'FLS referral (already open)' : 'FLS referral' }, valueReference: { reference: `ServiceRequest/${srId}` } }];
        },
      }, by, signal);
      return { item: await this.get(taskId, signal), serviceRequestId: srId, changed: true, existingReferral: reuse };
    });
  }

  /**
   * Records a step reached (see `nextStepsOf`): `accepted` is {@link accept}; later steps need an accepted item and
   * must be after the current one; `closed` completes the FLS referral. `treatment` goes with the treatment decision
   * (started / not-indicated / declined) and the follow-ups (continuing / stopped).
   */
  async step(taskId: string, input: StepInput, by: Actor, signal?: AbortSignal, ifMatch?: string): Promise<{ item: WorklistItem; changed: boolean }> {
    if (input.step === 'dismissed') throw new WorklistError('BAD_REQUEST', 'dismissing needs a reason: use the dismiss action');
    if (input.step === 'identified') throw new WorklistError('CONFLICT', 'an item cannot go back to identified');
    if (input.treatment !== undefined && !treatmentOutcomesFor(input.step).includes(input.treatment)) {
      throw new WorklistError('BAD_REQUEST', `"treatment" ${input.treatment} does not go with step ${input.step}${treatmentOutcomesFor(input.step).length ? ` (allowed: ${treatmentOutcomesFor(input.step).join(', ')})` : ''}`);
    }
    if (input.step === 'accepted') {
      const out = await this.accept(taskId, { ...by, ...(input.note ? { note: input.note } : {}), ...(input.date ? { date: input.date } : {}) }, signal, ifMatch);
      return { item: out.item, changed: out.changed };
    }
    return this.#exclusive(taskId, async () => {
      const { task, history, step } = await this.#load(taskId, ifMatch, signal);
      if (!nextStepsOf(step).includes(input.step)) {
        const why = step === 'identified' ? 'accept it first (that creates the FLS referral)'
          : !isOpenStep(step) ? 'its pathway has ended'
            : `it is already at "${PATHWAY_STEP_LABELS[step]}"`;
        throw new WorklistError('CONFLICT', `Task/${taskId} cannot move to "${PATHWAY_STEP_LABELS[input.step]}": ${why}`);
      }
      const event = await this.#event(input.step, task, input, by, signal, eventOf(history, step)?.time);
      if (input.step === 'closed') await this.#settleReferral(task, 'completed', signal);
      await this.#save(task, history, { step: event, ...(input.note ? { note: input.note } : {}) }, by, signal);
      return { item: await this.get(taskId, signal), changed: true };
    });
  }

  /** Assigns the item to `owner` (null unassigns); the display name is read from the Practitioner when not given. */
  async assign(taskId: string, owner: { reference: string; display?: string } | null, by: Actor, signal?: AbortSignal, ifMatch?: string): Promise<{ item: WorklistItem; changed: boolean }> {
    if (owner !== null && !OWNER_REF.test(owner.reference)) throw new WorklistError('BAD_REQUEST', '"owner.reference" must be a reference such as Practitioner/123');
    return this.#exclusive(taskId, async () => {
      const { task, history } = await this.#load(taskId, ifMatch, signal);
      if ((task.owner?.reference ?? null) === (owner?.reference ?? null) && (owner === null || !owner.display || owner.display === task.owner?.display)) {
        return { item: await this.get(taskId, signal), changed: false };
      }
      const display = owner ? owner.display?.trim() || (USER_REF.test(owner.reference) ? await this.#nameOf({ fhirUser: owner.reference }, signal) : owner.reference) : '';
      await this.#save(task, history, { owner: owner ? { reference: owner.reference, display } : null }, by, signal);
      return { item: await this.get(taskId, signal), changed: true };
    });
  }

  /** Adds a note (Task.note, with the author and time). */
  async addNote(taskId: string, text: string, by: Actor, signal?: AbortSignal, ifMatch?: string): Promise<{ item: WorklistItem; changed: boolean }> {
    const t = text.trim();
    if (!t) throw new WorklistError('BAD_REQUEST', '"text" must not be empty');
    return this.#exclusive(taskId, async () => {
      const { task, history } = await this.#load(taskId, ifMatch, signal);
      await this.#save(task, history, { note: t }, by, signal);
      return { item: await this.get(taskId, signal), changed: true };
    });
  }

  /**
   * Dismisses an item from any open step with a reason (Task → rejected, statusReason; an FLS referral made by
   * accepting is revoked). Re-dismissing with the same reason is a no-op; a closed item cannot be dismissed.
   */
  async dismiss(taskId: string, reason: DismissalReasonCode, by: Actor & { note?: string }, signal?: AbortSignal, ifMatch?: string): Promise<{ item: WorklistItem; changed: boolean }> {
    if (reason === 'other' && !by.note?.trim()) throw new WorklistError('BAD_REQUEST', 'reason "other" needs a note');
    return this.#exclusive(taskId, async () => {
      const { task, history, step } = await this.#load(taskId, ifMatch, signal);
      if (step === 'dismissed' && task.statusReason?.coding?.some((c) => c.system === FLS_TRIAGE_SYSTEM && c.code === reason)) {
        return { item: await this.get(taskId, signal), changed: false };
      }
      if (!isOpenStep(step)) throw new WorklistError('CONFLICT', `Task/${taskId} is ${PATHWAY_STEP_LABELS[step].toLowerCase()}: only an open item can be dismissed`);
      const event = await this.#event('dismissed', task, {}, by, signal);
      await this.#settleReferral(task, 'revoked', signal);
      const note = by.note?.trim();
      await this.#save(task, history, {
        step: event,
        ...(note ? { note } : {}),
        patch: (t) => {
          t.statusReason = { coding: [dismissalCoding(reason)], text: note || DISMISSAL_REASONS[reason] };
        },
      }, by, signal);
      return { item: await this.get(taskId, signal), changed: true };
    });
  }

  /** Active Practitioners an item can be assigned to, by name. */
  async owners(signal?: AbortSignal): Promise<PathwayOwner[]> {
    const list = await this.#fhir.search<Practitioner>('Practitioner', { active: 'true', _count: '200' }, signal);
    return list
      .filter((p) => p.id && p.active !== false)
      .map((p) => ({ reference: `Practitioner/${p.id!}`, display: personName(p) ?? `Practitioner/${p.id!}` }))
      .sort((a, b) => a.display.localeCompare(b.display));
  }
}
