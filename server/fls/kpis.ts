/**
 * Key performance indicators along the FLS pathway, after the IOF Capture the Fracture Best Practice Framework and
 * the UK FLS-DB KPIs: of the patients identified in a date range (Task.authoredOn) — how many were contacted (and
 * within the contact target), had a DXA within 12 weeks, started treatment, were on treatment at 12 months; how many
 * are overdue now; how many were dismissed and why. Totals, and the same counts per site.
 *
 * "Reached a step" means the step or a later one was recorded or detected (a step may be skipped), dismissals
 * excluded — except `assessed`, which needs a DXA result (recorded as `assessed` or detected from an Observation),
 * because treatment can be decided without one.
 * @see https://www.capturethefracture.org/best-practice-framework
 */
import { addDays, dayOf, eventOf, reached, reachedOn } from './pathway.ts';
import { csvField } from './csv.ts';
import {
  ALL_PATHWAY_STEPS, DISMISSAL_REASONS, RESEARCH_NOTICE, type DismissalReasonCode, type DueDays, type KpiCounts, type KpiQuery, type KpiResponse,
  type PathwayStep, type WorklistItem,
} from './types.ts';

function zeroCounts(): KpiCounts {
  return {
    identified: 0, accepted: 0, contacted: 0, contactedWithinTarget: 0, dxaBooked: 0, assessed: 0, assessedWithin12Weeks: 0,
    treatmentDecided: 0, treatmentStarted: 0, followUp16Weeks: 0, onTreatmentAt12Months: 0, closed: 0, open: 0, overdue: 0, dismissed: 0,
    dismissedByReason: Object.fromEntries(Object.keys(DISMISSAL_REASONS).map((k) => [k, 0])) as Record<DismissalReasonCode, number>,
    byStep: Object.fromEntries(ALL_PATHWAY_STEPS.map((s) => [s, 0])) as Record<PathwayStep, number>,
  };
}

/** Treatment started: recorded with the treatment decision, or a bone-protective medicine in the chart since identification. */
export function treatmentStarted(it: WorklistItem): boolean {
  if (it.pathway.history.some((e) => e.step === 'treatment-decided' && e.treatment === 'started')) return true;
  const since = it.care.treatment?.since;
  return since !== null && since !== undefined && dayOf(since) >= dayOf(it.authoredOn);
}

/**
 * On treatment at 12 months: the 12-month follow-up was done and the patient was still taking treatment then
 * (recorded as `continuing`; when the follow-up recorded nothing about it, an active medicine in the chart counts).
 */
export function onTreatmentAt12Months(it: WorklistItem): boolean {
  const f = eventOf(it.pathway.history, 'follow-up-12m');
  if (!f) return false;
  if (f.treatment) return f.treatment === 'continuing';
  return it.care.treatment !== null;
}

function add(c: KpiCounts, it: WorklistItem, due: DueDays): void {
  const h = it.pathway.history;
  const id = dayOf(it.authoredOn);
  c.identified++;
  c.byStep[it.pathway.step]++;
  if (reached(h, 'accepted')) c.accepted++;
  if (reached(h, 'contacted')) {
    c.contacted++;
    const on = reachedOn(h, 'contacted');
    if (on !== undefined && on <= addDays(id, due.contact)) c.contactedWithinTarget++;
  }
  if (reached(h, 'dxa-booked')) c.dxaBooked++;
  const dxa = eventOf(h, 'assessed');
  if (dxa) {
    c.assessed++;
    if (dayOf(dxa.time) <= addDays(id, due.dxa)) c.assessedWithin12Weeks++;
  }
  if (reached(h, 'treatment-decided')) c.treatmentDecided++;
  if (treatmentStarted(it)) c.treatmentStarted++;
  if (reached(h, 'follow-up-16w')) c.followUp16Weeks++;
  if (onTreatmentAt12Months(it)) c.onTreatmentAt12Months++;
  if (it.pathway.step === 'closed') c.closed++;
  if (it.pathway.step === 'dismissed') {
    c.dismissed++;
    if (it.dismissalReason) c.dismissedByReason[it.dismissalReason]++;
  } else if (it.pathway.step !== 'closed') c.open++;
  if (it.pathway.overdue) c.overdue++;
}

/** The KPIs of `items` (every status) identified in the query's range and site; `now` is the overdue clock. */
export function computeKpis(items: readonly WorklistItem[], q: KpiQuery, now: Date, due: DueDays): KpiResponse {
  const inRange = items.filter((it) =>
    (!q.from || dayOf(it.authoredOn) >= q.from) &&
    (!q.to || dayOf(it.authoredOn) <= q.to) &&
    (!q.site || (it.site ?? '').toLowerCase() === q.site.toLowerCase()));
  const total = zeroCounts();
  const bySite = new Map<string | null, KpiCounts>();
  for (const it of inRange) {
    add(total, it, due);
    const c = bySite.get(it.site) ?? zeroCounts();
    add(c, it, due);
    bySite.set(it.site, c);
  }
  return {
    ...total,
    from: q.from ?? null,
    to: q.to ?? null,
    site: q.site ?? null,
    asOf: now.toISOString(),
    bySite: [...bySite.entries()]
      .sort(([a], [b]) => (a === null ? 1 : 0) - (b === null ? 1 : 0) || (a ?? '').localeCompare(b ?? ''))
      .map(([site, c]) => ({ site, ...c })),
    targets: { ...due },
    notice: RESEARCH_NOTICE,
  };
}

/** The plain counts of {@link KpiCounts}, in CSV column order. */
export const KPI_CSV_COUNTS = [
  'identified', 'accepted', 'contacted', 'contactedWithinTarget', 'dxaBooked', 'assessed', 'assessedWithin12Weeks', 'treatmentDecided',
  'treatmentStarted', 'followUp16Weeks', 'onTreatmentAt12Months', 'closed', 'open', 'overdue', 'dismissed',
] as const;

/**
 * The KPIs as RFC 4180 CSV: one row for all sites (`site` = "All sites"), then one per site ("(no site)" for charts
 * without one); columns: range, site, the counts, dismissals per reason, the research-use notice.
 */
export function kpisCsv(k: KpiResponse): string {
  const reasons = Object.keys(DISMISSAL_REASONS) as DismissalReasonCode[];
  const header = ['from', 'to', 'asOf', 'site', ...KPI_CSV_COUNTS, ...reasons.map((r) => `dismissed:${r}`), 'notice'];
  const row = (site: string, c: KpiCounts): string[] => [
    k.from ?? '', k.to ?? '', k.asOf, site, ...KPI_CSV_COUNTS.map((key) => String(c[key])), ...reasons.map((r) => String(c.dismissedByReason[r])), RESEARCH_NOTICE,
  ];
  const rows = [header, row(k.site ?? 'All sites', k), ...(k.site ? [] : k.bySite.map((s) => row(s.site ?? '(no site)', s)))];
  return rows.map((r) => r.map((x) => csvField(/^\d+$/.test(x) ? Number(x) : x)).join(',')).join('\r\n') + '\r\n';
}
