/**
 * The chart's bone-health care for many worklist patients at once: the same reading as `loadCareStatus`
 * (server/orders/care-status.ts — open FLS referral, open DXA order, latest DXA result, current bone-protective
 * medicine, with the same ValueSets and rules), batched by {@link BATCH} patients per search so a worklist costs a
 * constant number of round trips; plus the dated DXA results and medicine orders the FLS pathway detects steps from.
 */
import type { CodeableConcept, MedicationRequest, MedicationStatement, Observation, ServiceRequest } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { loadValueSets, type ValueSetIndex } from '../fhir/valuesets.ts';
import { dxaResultTokens, isBoneProtective, OPEN_DXA_ORDER_STATUSES, OPEN_REFERRAL_STATUSES, tScoreOf } from '../orders/care-status.ts';
import { isDxaOrder, isFlsReferral } from '../orders/service-requests.ts';
import { searchBySubject } from './fhir-model.ts';
import type { DetectedEvent } from './pathway.ts';
import type { CareRef, ItemCareStatus } from './types.ts';

/** Observation statuses that carry a usable result (as care-status.ts). */
const RESULT_STATUSES: readonly string[] = ['final', 'amended', 'corrected', 'preliminary'];

export interface PatientCare {
  care: ItemCareStatus;
  /** DXA results, oldest first (`date` YYYY-MM-DD…; undated ones left out). */
  dxaResults: { id: string; date: string }[];
  /** Bone-protective medicine orders, active or completed, oldest first. */
  treatments: { id: string; ref: string; name: string; date: string; active: boolean }[];
}

const EMPTY: ItemCareStatus = { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null };

function text(cc: CodeableConcept | undefined): string | undefined {
  return cc?.text ?? cc?.coding?.find((c) => c.display)?.display ?? undefined;
}

const ms = (d: string | null | undefined): number => {
  const t = Date.parse(d ?? '');
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
};

function pickOpen(orders: readonly ServiceRequest[], statuses: readonly string[]): CareRef | null {
  const rank = (s: string): number => statuses.indexOf(s);
  const open = orders
    .filter((s) => !!s.id && statuses.includes(s.status))
    .map((s) => ({ id: s.id!, status: s.status, since: s.authoredOn ?? s.meta?.lastUpdated ?? null }))
    .sort((a, b) => rank(a.status) - rank(b.status) || ms(a.since) - ms(b.since));
  return open[0] ?? null;
}

/** Reads the care of `patientIds` (batched); every patient asked for is in the answer. */
export async function loadCareMany(fhir: FhirDataSource, patientIds: readonly string[], opts: { signal?: AbortSignal; valueSets?: ValueSetIndex } = {}): Promise<Map<string, PatientCare>> {
  const vs = opts.valueSets ?? loadValueSets();
  const signal = opts.signal;
  const ids = [...new Set(patientIds)];
  const out = new Map<string, PatientCare>();
  if (ids.length === 0) return out;
  const [orders, observations, medRequests, medStatements] = await Promise.all([
    searchBySubject<ServiceRequest>(fhir, 'ServiceRequest', ids, { status: OPEN_REFERRAL_STATUSES.join(',') }, signal),
    searchBySubject<Observation>(fhir, 'Observation', ids, { code: dxaResultTokens(vs).join(',') }, signal),
    searchBySubject<MedicationRequest>(fhir, 'MedicationRequest', ids, {}, signal),
    searchBySubject<MedicationStatement>(fhir, 'MedicationStatement', ids, {}, signal),
  ]);
  for (const pid of ids) {
    const srs = orders.get(pid) ?? [];
    const dxa = (observations.get(pid) ?? [])
      .filter((o) => !!o.id && RESULT_STATUSES.includes(o.status) && (o.code?.coding ?? []).some((c) => vs.has('dxa-result', c.system, c.code)))
      .map((o) => ({ o, date: o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.issued ?? null }));
    const dated = dxa.filter((x): x is { o: Observation; date: string } => x.date !== null).sort((a, b) => ms(a.date) - ms(b.date));
    const latest = dated.at(-1) ?? dxa[0];
    const sameDay = latest ? dxa.filter((x) => (x.date ?? '').slice(0, 10) === (latest.date ?? '').slice(0, 10)) : [];
    const withT = sameDay.find((x) => tScoreOf(x.o) !== null);
    const meds = [
      ...(medRequests.get(pid) ?? []).map((m) => ({ m, date: m.authoredOn ?? null })),
      ...(medStatements.get(pid) ?? []).map((m) => ({ m, date: m.effectivePeriod?.start ?? m.effectiveDateTime ?? m.dateAsserted ?? null })),
    ]
      // A completed course still shows that treatment was started: judged as if active, flagged inactive.
      .filter((x) => !!x.m.id && (x.m.status === 'active' || x.m.status === 'completed') && isBoneProtective({ ...x.m, status: 'active' }, vs))
      .map((x) => ({ id: x.m.id!, ref: `${x.m.resourceType}/${x.m.id!}`, name: text(x.m.medicationCodeableConcept) ?? 'bone-protective medicine', date: x.date, active: x.m.status === 'active' }))
      .sort((a, b) => ms(a.date) - ms(b.date));
    const current = meds.find((m) => m.active);
    out.set(pid, {
      care: {
        ...EMPTY,
        flsReferral: pickOpen(srs.filter((s) => isFlsReferral(s)), OPEN_REFERRAL_STATUSES),
        dxaOrder: pickOpen(srs.filter((s) => isDxaOrder(s)), OPEN_DXA_ORDER_STATUSES),
        dxaResult: latest ? { id: (withT ?? latest).o.id!, date: latest.date, tScore: withT ? tScoreOf(withT.o) : null } : null,
        treatment: current ? { id: current.id, name: current.name, since: current.date } : null,
      },
      dxaResults: dated.map((x) => ({ id: x.o.id!, date: x.date })),
      treatments: meds.filter((m): m is typeof m & { date: string } => m.date !== null),
    });
  }
  return out;
}

/**
 * Steps the chart shows for a patient identified on `identifiedAt`: the first DXA result on or after that day
 * (`assessed`), the first bone-protective medicine prescribed on or after it (`treatment-decided`, started).
 */
export function detectedEvents(care: PatientCare | undefined, identifiedAt: string): DetectedEvent[] {
  if (!care) return [];
  const day = identifiedAt.slice(0, 10);
  const out: DetectedEvent[] = [];
  const dxa = care.dxaResults.find((d) => d.date.slice(0, 10) >= day);
  if (dxa) out.push({ step: 'assessed', time: dxa.date, by: `DXA result (Observation/${dxa.id})`, source: 'fhir', evidence: `Observation/${dxa.id}` });
  const med = care.treatments.find((m) => m.date.slice(0, 10) >= day);
  if (med) out.push({ step: 'treatment-decided', time: med.date, by: `${med.name} (${med.ref})`, source: 'fhir', evidence: med.ref, treatment: 'started' });
  return out;
}
