/**
 * What care a patient already has for bone health, read over FHIR: an open FLS referral, an open DXA order, the
 * latest DXA result and current bone-protective treatment. The CDS cards, the SMART app and the FLS worklist read it
 * so that none of them suggests an order that already exists ("FLS referral active since 12 Nov 2026" instead of
 * another "Refer to FLS").
 *
 * Four searches on the patient, run together: ServiceRequest (open statuses), Observation (the DXA codes of ValueSet
 * `dxa-result`), MedicationRequest and MedicationStatement. Servers may ignore a search parameter they do not
 * support, so every condition (patient, status, code) is checked again on what comes back.
 *
 * No Node I/O of its own beyond loading the project's ValueSets (server/fhir/valuesets.ts); callers that already
 * hold a {@link ValueSetIndex} pass it in.
 */
import type { CodeableConcept, MedicationRequest, MedicationStatement, Observation, Resource, ServiceRequest } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { loadValueSets, type ValueSetIndex } from '../fhir/valuesets.ts';
import { isDxaOrder, isFlsReferral } from './service-requests.ts';

/** An open order or referral (ServiceRequest). `since`: `authoredOn`, else when the server last stored it. */
export interface OpenOrder {
  id: string;
  status: string;
  since: string | null;
}

/** The care a patient already has (contract shared by the CDS cards, the SMART app and the FLS worklist). */
export interface CareStatus {
  /** An active, draft or on-hold FLS referral. */
  flsReferral: OpenOrder | null;
  /** An active or draft DXA order. */
  dxaOrder: OpenOrder | null;
  /** The latest DXA Observation (ValueSet `dxa-result`); `tScore` when the result is a T-score. */
  dxaResult: { id: string; date: string | null; tScore: number | null } | null;
  /** Current bone-protective medicine (ValueSet `osteoporosis-treatment`, or an ingredient name). */
  treatment: { id: string; name: string; since: string | null } | null;
}

export interface CareStatusOptions {
  signal?: AbortSignal;
  /** The project's ValueSets (default: loaded from `fhir-profiles/valuesets/`). */
  valueSets?: ValueSetIndex;
}

/** The ValueSet `dxa-result` is missing or empty: DXA results cannot be recognised (a deployment error). */
export class CareStatusConfigError extends Error {
  override readonly name = 'CareStatusConfigError';
  readonly code = 'CARE_STATUS_CONFIG';
}

/** Statuses of a referral that is still open (R4 request-status). */
export const OPEN_REFERRAL_STATUSES: readonly string[] = ['active', 'on-hold', 'draft'];
/** Statuses of a DXA order that is still to happen. */
export const OPEN_DXA_ORDER_STATUSES: readonly string[] = ['active', 'draft'];
/** Observation statuses that carry a usable result. */
const RESULT_STATUSES: readonly string[] = ['final', 'amended', 'corrected', 'preliminary'];

/**
 * Ingredient names of bone-protective medicines matched in medication text and displays (lower case), so charts
 * coded in other terminologies than the ValueSet's RxNorm (dm+d, SNOMED CT, local codes) are still recognised.
 */
export const BONE_PROTECTIVE_NAMES: readonly string[] = [
  'alendron', 'risedron', 'ibandron', 'zoledron', 'etidron', 'pamidron', 'denosumab', 'teriparatide', 'abaloparatide', 'romosozumab', 'raloxifene', 'bazedoxifene', 'strontium ranelate',
];

const sameOrder = (a: number, b: number): number => a - b;
const rank = (statuses: readonly string[], s: string): number => {
  const i = statuses.indexOf(s);
  return i < 0 ? statuses.length : i;
};
const time = (d: string | null | undefined): number => {
  const t = Date.parse(d ?? '');
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
};

/** True when a resource's subject/patient reference names `Patient/<patientId>` (relative or absolute); absent counts as the patient's (the search was on the patient). */
function isAbout(r: Resource, patientId: string): boolean {
  const x = r as { subject?: { reference?: string }; patient?: { reference?: string } };
  const ref = x.subject?.reference ?? x.patient?.reference;
  if (ref === undefined) return true;
  const me = `Patient/${patientId}`;
  return ref === me || ref.endsWith(`/${me}`);
}

function conceptText(cc: CodeableConcept | undefined): string | undefined {
  return cc?.text ?? cc?.coding?.find((c) => c.display)?.display ?? undefined;
}

/** True for an active medicine order or statement of a bone-protective medicine. */
export function isBoneProtective(m: MedicationRequest | MedicationStatement, vs: ValueSetIndex): boolean {
  if (m.status !== 'active') return false;
  const cc = m.medicationCodeableConcept;
  if (!cc) return false;
  if ((cc.coding ?? []).some((c) => vs.has('osteoporosis-treatment', c.system, c.code))) return true;
  const words = [cc.text, ...(cc.coding ?? []).map((c) => c.display)].filter((x): x is string => !!x).map((x) => x.toLowerCase());
  return words.some((w) => BONE_PROTECTIVE_NAMES.some((n) => w.includes(n)));
}

/** The open order to report: the most committed status first (active, then on-hold, then draft), then the oldest. */
function pickOpen(orders: ServiceRequest[], statuses: readonly string[]): OpenOrder | null {
  const open = orders
    .filter((s) => !!s.id && statuses.includes(s.status))
    .map((s) => ({ id: s.id!, status: s.status, since: s.authoredOn ?? s.meta?.lastUpdated ?? null }))
    .sort((a, b) => sameOrder(rank(statuses, a.status), rank(statuses, b.status)) || time(a.since) - time(b.since));
  return open[0] ?? null;
}

const T_SCORE = /t[- ]?score/i;

/**
 * The T-score of a DXA Observation, when it is one: its code or unit says "T-score", or it carries a plain number
 * (no unit, `1`, `{T-score}`) in the range T-scores take. A BMD in g/cm² is not a T-score.
 */
export function tScoreOf(o: Observation): number | null {
  const q = o.valueQuantity;
  if (q?.value === undefined || !Number.isFinite(q.value)) return null;
  const unit = `${q.unit ?? ''} ${q.code ?? ''}`.trim();
  if (/g\/cm/i.test(unit)) return null;
  const named = T_SCORE.test(conceptText(o.code) ?? '') || (o.code?.coding ?? []).some((c) => T_SCORE.test(c.display ?? '')) || T_SCORE.test(unit);
  const plain = unit === '' || /^(1|\{t-?score\}|sd)$/i.test(q.unit ?? q.code ?? '');
  return named || (plain && Math.abs(q.value) <= 8) ? q.value : null;
}

/** `system|code` search tokens of ValueSet `dxa-result`. */
export function dxaResultTokens(vs: ValueSetIndex): string[] {
  const codes = [...(vs.byId.get('dxa-result') ?? [])];
  if (codes.length === 0) throw new CareStatusConfigError('ValueSet dxa-result is missing or empty: DXA results cannot be recognised');
  return codes.sort();
}

/**
 * Reads the patient's existing bone-health care. Rejects with what the data source throws (a FHIR error, a hook's
 * "data unavailable", an abort) — a caller that cannot read it must say so rather than guess "none".
 */
export async function loadCareStatus(fhir: FhirDataSource, patientId: string, opts: CareStatusOptions = {}): Promise<CareStatus> {
  const vs = opts.valueSets ?? loadValueSets();
  const signal = opts.signal;
  const ref = `Patient/${patientId}`;
  const tokens = dxaResultTokens(vs);
  const [orders, observations, medRequests, medStatements] = await Promise.all([
    fhir.search<ServiceRequest>('ServiceRequest', { subject: ref, status: OPEN_REFERRAL_STATUSES.join(',') }, signal),
    fhir.search<Observation>('Observation', { subject: ref, code: tokens.join(',') }, signal),
    fhir.search<MedicationRequest>('MedicationRequest', { subject: ref }, signal),
    fhir.search<MedicationStatement>('MedicationStatement', { subject: ref }, signal),
  ]);
  const mine = <T extends Resource>(rs: T[]): T[] => rs.filter((r) => isAbout(r, patientId));

  const requests = mine(orders);
  const flsReferral = pickOpen(requests.filter((s) => isFlsReferral(s)), OPEN_REFERRAL_STATUSES);
  const dxaOrder = pickOpen(requests.filter((s) => isDxaOrder(s)), OPEN_DXA_ORDER_STATUSES);

  const dxa = mine(observations)
    .filter((o) => !!o.id && RESULT_STATUSES.includes(o.status) && (o.code?.coding ?? []).some((c) => vs.has('dxa-result', c.system, c.code)))
    .map((o) => ({ o, date: o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.issued ?? null }))
    .sort((a, b) => {
      const ta = time(a.date);
      const tb = time(b.date);
      // Latest first; undated results last.
      return (Number.isFinite(tb) ? tb : -Infinity) - (Number.isFinite(ta) ? ta : -Infinity);
    });
  // The latest date's T-score when one of that day's results is a T-score (a scan reports BMD and T-score together).
  const latest = dxa[0];
  const sameDay = latest ? dxa.filter((x) => (x.date ?? '').slice(0, 10) === (latest.date ?? '').slice(0, 10)) : [];
  const withT = sameDay.find((x) => tScoreOf(x.o) !== null);
  const dxaResult = latest ? { id: (withT ?? latest).o.id!, date: latest.date, tScore: withT ? tScoreOf(withT.o) : null } : null;

  const meds = [
    ...mine(medRequests).filter((m) => isBoneProtective(m, vs)).map((m) => ({ id: m.id, name: conceptText(m.medicationCodeableConcept), since: m.authoredOn ?? null })),
    ...mine(medStatements).filter((m) => isBoneProtective(m, vs)).map((m) => ({ id: m.id, name: conceptText(m.medicationCodeableConcept), since: m.effectivePeriod?.start ?? m.effectiveDateTime ?? m.dateAsserted ?? null })),
  ]
    .filter((m): m is { id: string; name: string | undefined; since: string | null } => !!m.id)
    .sort((a, b) => time(a.since) - time(b.since));
  const first = meds[0];
  const treatment = first ? { id: first.id, name: first.name ?? 'bone-protective medicine', since: first.since } : null;

  return { flsReferral, dxaOrder, dxaResult, treatment };
}
