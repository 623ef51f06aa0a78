import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Task } from '@medplum/fhirtypes';
import { detectedEvents, type PatientCare } from './care.ts';
import { computeKpis, kpisCsv } from './kpis.ts';
import {
  addDays, currentStep, DEFAULT_DUE_DAYS, dueOf, eventExtension, historyOf, isOverdue, nextStepsOf, recordedEvents, taskStatusOf,
} from './pathway.ts';
import { sortItems } from './worklist.ts';
import { parseCsv } from '../../test/support/csv.ts';
import type { PathwayEvent, WorklistItem } from './types.ts';

const IDENTIFIED = '2026-09-01T08:00:00.000Z';

function task(status: Task['status'], events: PathwayEvent[] = []): Task {
  return {
    resourceType: 'Task', id: 't1', status, intent: 'order', authoredOn: IDENTIFIED, lastModified: '2026-09-03T10:00:00.000Z',
    extension: events.map((e) => eventExtension(e)),
  };
}

const ev = (step: PathwayEvent['step'], time: string, extra: Partial<PathwayEvent> = {}): PathwayEvent => ({ step, time, by: 'Demo FLS-Coordinator', source: 'user', ...extra });

test('due dates follow each step: contact 14 d and DXA 12 weeks after identification, decision 14 d after DXA, follow-ups after the decision', () => {
  const d = DEFAULT_DUE_DAYS;
  const steps: [PathwayEvent[], string | null, string | null][] = [
    [[ev('identified', IDENTIFIED)], '2026-09-15', 'Contact the patient'],
    [[ev('identified', IDENTIFIED), ev('accepted', '2026-09-02')], '2026-09-15', 'Contact the patient'],
    [[ev('identified', IDENTIFIED), ev('accepted', '2026-09-02'), ev('contacted', '2026-09-05')], '2026-11-24', 'DXA result'],
    [[ev('identified', IDENTIFIED), ev('dxa-booked', '2026-09-20')], '2026-11-24', 'DXA result'],
    [[ev('identified', IDENTIFIED), ev('assessed', '2026-10-10')], '2026-10-24', 'Treatment decision'],
    [[ev('identified', IDENTIFIED), ev('treatment-decided', '2026-10-20')], '2027-02-09', '16-week follow-up'],
    [[ev('identified', IDENTIFIED), ev('treatment-decided', '2026-10-20'), ev('follow-up-16w', '2027-02-01')], '2027-10-20', '12-month follow-up'],
    [[ev('identified', IDENTIFIED), ev('follow-up-12m', '2027-10-20')], null, null],
    [[ev('identified', IDENTIFIED), ev('closed', '2027-10-21')], null, null],
    [[ev('identified', IDENTIFIED), ev('contacted', '2026-09-05'), ev('dismissed', '2026-09-06')], null, null],
  ];
  for (const [events, due, what] of steps) {
    assert.deepEqual(dueOf(events, IDENTIFIED, d), { dueDate: due, dueFor: what }, currentStep(events));
  }
});

test('overdue only after the due date (injected clock)', () => {
  assert.equal(isOverdue('2026-09-15', new Date('2026-09-15T23:59:00Z')), false, 'due today is not overdue');
  assert.equal(isOverdue('2026-09-15', new Date('2026-09-16T00:00:00Z')), true);
  assert.equal(isOverdue(null, new Date('2030-01-01T00:00:00Z')), false, 'nothing due');
});

test('next steps: accept first, then any later step; none once the pathway has ended', () => {
  assert.deepEqual(nextStepsOf('identified'), ['accepted']);
  assert.deepEqual(nextStepsOf('follow-up-16w'), ['follow-up-12m', 'closed']);
  assert.deepEqual(nextStepsOf('closed'), []);
  assert.deepEqual(nextStepsOf('dismissed'), []);
  assert.equal(taskStatusOf('identified'), 'requested');
  assert.equal(taskStatusOf('dxa-booked'), 'in-progress');
  assert.equal(taskStatusOf('closed'), 'completed');
  assert.equal(taskStatusOf('dismissed'), 'rejected');
});

test('events round-trip through the Task extension; a Task from before the pathway reads as its status implies', () => {
  const events = [ev('identified', IDENTIFIED, { source: 'fhir', by: 'triage' }), ev('treatment-decided', '2026-10-01', { treatment: 'started' })];
  assert.deepEqual(recordedEvents(task('in-progress', events)), events);
  const legacy = historyOf({ ...task('in-progress'), owner: { reference: 'Practitioner/x', display: 'X' } });
  assert.deepEqual(legacy.map((e) => [e.step, e.time]), [['identified', IDENTIFIED], ['accepted', '2026-09-03T10:00:00.000Z']]);
  assert.equal(currentStep(historyOf(task('rejected'))), 'dismissed');
});

const care = (dxa: string[], meds: string[]): PatientCare => ({
  care: { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null },
  dxaResults: dxa.map((date, i) => ({ id: `obs-${i}`, date })),
  treatments: meds.map((date, i) => ({ id: `mr-${i}`, ref: `MedicationRequest/mr-${i}`, name: 'alendronic acid', date, active: true })),
});

test('detection: a DXA after identification → assessed, a medicine → treatment started; only once accepted; earlier results ignored', () => {
  const detected = detectedEvents(care(['2025-01-01', '2026-10-02'], ['2026-10-20']), IDENTIFIED);
  assert.deepEqual(detected.map((e) => [e.step, e.time, e.evidence, e.treatment]), [
    ['assessed', '2026-10-02', 'Observation/obs-1', undefined],
    ['treatment-decided', '2026-10-20', 'MedicationRequest/mr-0', 'started'],
  ]);
  const accepted = historyOf(task('in-progress', [ev('identified', IDENTIFIED), ev('accepted', '2026-09-02'), ev('contacted', '2026-09-05')]), detected);
  assert.equal(currentStep(accepted), 'treatment-decided');
  assert.equal(accepted.find((e) => e.step === 'assessed')?.source, 'fhir');
  const identifiedOnly = historyOf(task('requested', [ev('identified', IDENTIFIED)]), detected);
  assert.equal(currentStep(identifiedOnly), 'identified', 'the FLS has not taken the patient on yet');
  const recorded = historyOf(task('in-progress', [ev('identified', IDENTIFIED), ev('accepted', '2026-09-02'), ev('assessed', '2026-09-30')]), detected);
  assert.equal(recorded.filter((e) => e.step === 'assessed').length, 1, 'a recorded step is not doubled by detection');
});

function item(id: string, over: Partial<WorklistItem['pathway']> & { site?: string | null; hip?: number; name?: string; authoredOn?: string; dismissalReason?: WorklistItem['dismissalReason']; treatment?: WorklistItem['care']['treatment'] }): WorklistItem {
  const history = over.history ?? [ev('identified', over.authoredOn ?? IDENTIFIED)];
  const step = currentStep(history);
  const due = dueOf(history, over.authoredOn ?? IDENTIFIED, DEFAULT_DUE_DAYS);
  return {
    taskId: id, patientId: `p-${id}`, patientName: over.name ?? id, birthDate: null, sex: 'female', riskAssessmentId: `ra-${id}`, tier: 'high', mode: 'clinical-only',
    hip10: { estimate: over.hip ?? 5, lower: null, upper: null }, mof10: { estimate: 20, lower: null, upper: null }, imminent: false,
    status: step === 'identified' ? 'requested' : step === 'dismissed' ? 'dismissed' : 'accepted', authoredOn: over.authoredOn ?? IDENTIFIED, warnings: [],
    mrn: `MRN-${id}`, site: over.site === undefined ? 'North' : over.site, flagReason: '', ...(over.dismissalReason ? { dismissalReason: over.dismissalReason } : {}),
    pathway: {
      step, stepSince: history.at(-1)!.time, dueDate: due.dueDate, dueFor: due.dueFor, overdue: over.overdue ?? false, owner: over.owner ?? null, notes: [],
      history, nextSteps: nextStepsOf(step), version: '1',
    },
    care: { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: over.treatment ?? null },
  };
}

test('KPIs: counts along the path, targets, dismissals by reason, per site, date range; CSV', () => {
  const id = (d: string): PathwayEvent => ev('identified', `${d}T08:00:00Z`);
  const items = [
    item('a', { history: [id('2026-09-01')], overdue: true }),
    item('b', { history: [id('2026-09-01'), ev('accepted', '2026-09-02'), ev('contacted', '2026-09-10'), ev('assessed', '2026-10-15', { source: 'fhir' })] }),
    item('c', { history: [id('2026-09-01'), ev('accepted', '2026-09-02'), ev('contacted', '2026-09-30'), ev('dxa-booked', '2026-10-01'), ev('assessed', '2026-12-20')], site: 'South' }),
    item('d', {
      history: [id('2026-09-01'), ev('accepted', '2026-09-02'), ev('contacted', '2026-09-03'), ev('assessed', '2026-09-20'), ev('treatment-decided', '2026-09-25', { treatment: 'started' }),
        ev('follow-up-16w', '2027-01-15', { treatment: 'continuing' }), ev('follow-up-12m', '2027-09-25', { treatment: 'continuing' }), ev('closed', '2027-09-26')],
    }),
    item('e', { history: [id('2026-09-01'), ev('accepted', '2026-09-02'), ev('dismissed', '2026-09-04')], dismissalReason: 'declined', site: null }),
    item('f', { history: [id('2026-09-01'), ev('accepted', '2026-09-02'), ev('follow-up-12m', '2027-09-01', { treatment: 'stopped' })] }),
    item('late', { history: [id('2026-12-01')], authoredOn: '2026-12-01T08:00:00Z' }),
  ];
  const k = computeKpis(items, { from: '2026-09-01', to: '2026-09-30' }, new Date('2026-10-01T00:00:00Z'), DEFAULT_DUE_DAYS);
  assert.equal(k.identified, 6, 'the December patient is outside the range');
  assert.equal(k.accepted, 5);
  assert.equal(k.contacted, 4, 'b, c, d and f (a later step counts)');
  assert.equal(k.contactedWithinTarget, 2, 'b and d; c was contacted after 29 days, f has no contact before its 12-month follow-up');
  assert.equal(k.assessed, 3);
  assert.equal(k.assessedWithin12Weeks, 2, 'c had its DXA after 16 weeks');
  assert.equal(k.treatmentStarted, 1);
  assert.equal(k.onTreatmentAt12Months, 1, 'f stopped its treatment');
  assert.equal(k.closed, 1);
  assert.equal(k.dismissed, 1);
  assert.equal(k.dismissedByReason.declined, 1);
  assert.equal(k.open, 4);
  assert.equal(k.overdue, 1);
  assert.equal(k.byStep.identified, 1);
  assert.deepEqual(k.bySite.map((s) => [s.site, s.identified]), [['North', 4], ['South', 1], [null, 1]]);
  assert.equal(computeKpis(items, { site: 'south' }, new Date(), DEFAULT_DUE_DAYS).identified, 1, 'site matched case-insensitively');
  const rows = parseCsv(kpisCsv(k));
  assert.equal(rows.length, 1 + 1 + 3);
  const header = rows[0]!;
  assert.equal(rows[1]![header.indexOf('site')], 'All sites');
  assert.equal(rows[1]![header.indexOf('assessedWithin12Weeks')], '2');
  assert.equal(rows[4]![header.indexOf('site')], '(no site)');
  assert.equal(rows[1]![header.indexOf('notice')], 'Research use — trained on synthetic data');
});

test('sorting: risk (default), due date with nothing-due last, name, step, authored; both directions', () => {
  const x = [
    item('1', { hip: 2, name: 'Cole', history: [ev('identified', IDENTIFIED), ev('assessed', '2026-09-10')] }),
    item('2', { hip: 9, name: 'adams', history: [ev('identified', IDENTIFIED), ev('closed', '2026-09-10')] }),
    item('3', { hip: 5, name: 'Baker', authoredOn: '2026-09-05T00:00:00Z', history: [ev('identified', '2026-09-05T00:00:00Z')] }),
  ];
  const ids = (s: WorklistItem[]): string => s.map((i) => i.taskId).join('');
  assert.equal(ids(sortItems([...x])), '231');
  assert.equal(ids(sortItems([...x], 'risk', 'asc')), '132');
  assert.equal(ids(sortItems([...x], 'due')), '312', 'identified 09-05: due 09-19; assessed 09-10: due 09-24; closed: nothing due');
  assert.equal(ids(sortItems([...x], 'due', 'desc')), '132', 'nothing due stays last');
  assert.equal(ids(sortItems([...x], 'name')), '231', 'case-insensitive');
  assert.equal(ids(sortItems([...x], 'step')), '312');
  assert.equal(ids(sortItems([...x], 'authored')), '312', 'newest first');
  assert.equal(addDays('2026-12-25', 14), '2027-01-08');
});
