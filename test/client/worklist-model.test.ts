/**
 * Pure logic of the FLS coordinator's screens (client/src/worklist-model.ts): due-date wording and overdue,
 * the button that records each step, column sorting with aria-sort, the pathway timeline (done, current, next,
 * skipped, dismissed), the names shown for who recorded a step (never a FHIR reference) and the KPI lines.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PATHWAY_STEPS, type KpiCounts, type PathwayEvent, type PathwayStep } from '../../server/fls/types.ts';
import {
  ariaSort, byLabel, caveatsOf, daysBetween, dueText, identifiersLine, kpiRows, ownerLabel, primaryNextStep, recordLabel, shortDate, timeline, toggleSort, treatmentChoices,
} from '../../client/src/worklist-model.ts';

describe('due dates', () => {
  test('days between two dates, either order', () => {
    assert.equal(daysBetween('2026-12-01', '2026-12-15'), 14);
    assert.equal(daysBetween('2026-12-15T10:00:00Z', '2026-12-01'), -14);
    assert.equal(daysBetween('2026-03-28', '2026-03-30'), 2); // across a DST change in Europe: still whole days
  });

  test('due in the future, today, and overdue read differently; overdue comes from the server', () => {
    const asOf = '2026-12-03T10:30:00Z';
    assert.deepEqual(dueText({ dueDate: '2026-12-17', dueFor: 'Contact the patient', overdue: false }, asOf), { text: 'Contact the patient by 17 Dec 2026', relative: 'in 14 days', overdue: false });
    assert.equal(dueText({ dueDate: '2026-12-04', dueFor: 'DXA result', overdue: false }, asOf)?.relative, 'in 1 day');
    assert.equal(dueText({ dueDate: '2026-12-03', dueFor: 'DXA result', overdue: false }, asOf)?.relative, 'due today');
    const over = dueText({ dueDate: '2026-11-30', dueFor: 'Treatment decision', overdue: true }, asOf)!;
    assert.equal(over.overdue, true);
    assert.equal(over.relative, '3 days overdue');
    assert.equal(dueText({ dueDate: '2026-12-02', dueFor: null, overdue: true }, asOf)?.relative, '1 day overdue');
    assert.equal(dueText({ dueDate: '2026-12-02', dueFor: null, overdue: true }, asOf)?.text, 'Next step by 2 Dec 2026');
    assert.equal(dueText({ dueDate: null, dueFor: null, overdue: false }, asOf), null);
  });

  test('dates are shown in UTC, never as ISO text', () => {
    assert.equal(shortDate('2026-01-05'), '5 Jan 2026');
    assert.equal(shortDate('2026-01-05T23:59:00Z'), '5 Jan 2026');
    assert.equal(shortDate(null), '–');
    assert.equal(shortDate('not a date'), '–');
  });
});

describe('steps and actions', () => {
  test('every step has a plain "record" label without codes', () => {
    for (const s of PATHWAY_STEPS) {
      const label = recordLabel(s);
      assert.ok(!label.includes(s) || !s.includes('-'), `${s}: ${label} shows the code`);
      assert.doesNotMatch(label, /follow-up-1|dxa-booked|treatment-decided/, `${s}: ${label}`);
    }
    assert.equal(recordLabel('assessed'), 'Record DXA result');
    assert.equal(recordLabel('accepted'), 'Accept onto the pathway');
  });

  test('the primary next step is the earliest allowed one, whatever order the server lists them in', () => {
    assert.equal(primaryNextStep(['closed', 'dxa-booked', 'assessed']), 'dxa-booked');
    assert.equal(primaryNextStep(['accepted']), 'accepted');
    assert.equal(primaryNextStep([]), null);
    assert.equal(primaryNextStep(['dismissed']), null, 'dismissing is its own action');
  });

  test('treatment outcomes are asked for at the decision and at follow-ups only', () => {
    assert.deepEqual(treatmentChoices('treatment-decided').map((c) => c.code), ['started', 'not-indicated', 'declined']);
    assert.deepEqual(treatmentChoices('follow-up-16w').map((c) => c.code), ['continuing', 'stopped']);
    assert.deepEqual(treatmentChoices('follow-up-12m').map((c) => c.code), ['continuing', 'stopped']);
    assert.deepEqual(treatmentChoices('contacted'), []);
  });

  test('owner and identifiers read in words; a missing MRN or site is said, not hidden', () => {
    assert.equal(ownerLabel(null), 'Unassigned');
    assert.equal(ownerLabel({ reference: 'Practitioner/x', display: 'Sam Lee' }), 'Sam Lee');
    assert.equal(identifiersLine({ mrn: 'A123', site: 'North' }), 'MRN A123 · Site North');
    assert.equal(identifiersLine({ mrn: null, site: null }), 'No MRN · No site');
  });
});

describe('who recorded a step', () => {
  const owners = [{ reference: 'Practitioner/demo-fls-coordinator', display: 'Alex Morgan' }];
  test('a known owner by name; detections by the kind of record; never a raw reference', () => {
    assert.equal(byLabel({ by: 'Practitioner/demo-fls-coordinator', source: 'user' }, owners), 'Alex Morgan');
    assert.equal(byLabel({ by: 'Practitioner/other-1', source: 'user' }, owners), 'FLS team');
    assert.equal(byLabel({ by: 'Observation/dxa-1', source: 'fhir' }), 'detected from a DXA result in the chart');
    assert.equal(byLabel({ by: 'MedicationRequest/m1', source: 'fhir' }), 'detected from a prescription in the chart');
    assert.equal(byLabel({ by: 'Patient/demo-a-022', source: 'user' }), 'FLS team');
    assert.equal(byLabel({ by: 'unknown', source: 'user' }), 'FLS team');
    assert.equal(byLabel({ by: 'Jo Bloggs', source: 'user' }), 'Jo Bloggs');
    assert.equal(byLabel({ by: 'Fracture Risk CDS triage', source: 'fhir' }), 'Fracture Risk CDS triage');
    assert.equal(byLabel({ by: 'Condition/c1', source: 'fhir' }), 'detected from the chart');
  });

  test('the clinician-facing recommendation is not a caveat for the FLS; real warnings stay', () => {
    const rec = 'High risk. Above the 3% hip-fracture treatment threshold (probability 96%). Refer to the fracture liaison service (FLS) for assessment and treatment. Thresholds: BHOF (2022) (https://example.org).';
    const low = 'Low risk. Below the 3% hip-fracture and 20% major-osteoporotic-fracture treatment thresholds. No action on fracture risk is needed now; reassess if risk factors change. Thresholds: BHOF.';
    const warn = 'Low confidence: the model\'s ensemble members disagree more than usual; weigh the 95% interval.';
    assert.deepEqual(caveatsOf([rec, warn]), [warn]);
    assert.deepEqual(caveatsOf([low]), []);
    assert.deepEqual(caveatsOf(['High risk of error: image not usable.']), ['High risk of error: image not usable.']);
  });
});

describe('sorting', () => {
  test('the same column flips direction; another column starts in its natural direction', () => {
    const s0 = { sort: 'risk' as const, dir: 'desc' as const };
    assert.deepEqual(toggleSort(s0, 'risk'), { sort: 'risk', dir: 'asc' });
    assert.deepEqual(toggleSort(s0, 'due'), { sort: 'due', dir: 'asc' });
    assert.deepEqual(toggleSort(s0, 'authored'), { sort: 'authored', dir: 'desc' });
    assert.deepEqual(toggleSort({ sort: 'name', dir: 'asc' }, 'name'), { sort: 'name', dir: 'desc' });
  });
  test('aria-sort names the sorted column only', () => {
    const s = { sort: 'due' as const, dir: 'asc' as const };
    assert.equal(ariaSort(s, 'due'), 'ascending');
    assert.equal(ariaSort({ sort: 'due', dir: 'desc' }, 'due'), 'descending');
    assert.equal(ariaSort(s, 'risk'), 'none');
  });
});

describe('timeline', () => {
  const ev = (step: PathwayStep, time: string): PathwayEvent => ({ step, time, by: 'Practitioner/p', source: 'user' });

  test('done, current, next with its due date, then later steps', () => {
    const rows = timeline({ step: 'contacted', history: [ev('identified', '2026-12-01'), ev('accepted', '2026-12-01'), ev('contacted', '2026-12-02')], dueDate: '2027-02-23' });
    assert.deepEqual(rows.map((r) => `${r.step}:${r.state}`), [
      'identified:done', 'accepted:done', 'contacted:current', 'dxa-booked:next', 'assessed:later', 'treatment-decided:later', 'follow-up-16w:later', 'follow-up-12m:later', 'closed:later',
    ]);
    assert.equal(rows.find((r) => r.state === 'next')?.dueDate, '2027-02-23');
    assert.equal(rows.filter((r) => r.dueDate !== null).length, 1);
  });

  test('a step passed over (DXA done elsewhere) is "skipped", not "done"', () => {
    const rows = timeline({ step: 'assessed', history: [ev('identified', '2026-12-01'), ev('accepted', '2026-12-01'), ev('assessed', '2026-12-05')], dueDate: '2026-12-19' });
    assert.equal(rows.find((r) => r.step === 'contacted')?.state, 'skipped');
    assert.equal(rows.find((r) => r.step === 'dxa-booked')?.state, 'skipped');
    assert.equal(rows.find((r) => r.step === 'assessed')?.state, 'current');
    assert.equal(rows.find((r) => r.step === 'treatment-decided')?.state, 'next');
  });

  test('closed: everything done, nothing next', () => {
    const history = PATHWAY_STEPS.map((s, i) => ev(s, `2026-12-${String(i + 1).padStart(2, '0')}`));
    const rows = timeline({ step: 'closed', history, dueDate: null });
    assert.ok(rows.slice(0, -1).every((r) => r.state === 'done'));
    assert.equal(rows.at(-1)?.state, 'current');
    assert.ok(!rows.some((r) => r.state === 'next'));
  });

  test('dismissed: the steps reached, then the dismissal; no future steps', () => {
    const rows = timeline({ step: 'dismissed', history: [ev('identified', '2026-12-01'), ev('accepted', '2026-12-01'), ev('dismissed', '2026-12-03')], dueDate: null });
    assert.deepEqual(rows.map((r) => `${r.step}:${r.state}`), ['identified:done', 'accepted:done', 'dismissed:current']);
    assert.equal(rows.at(-1)?.event?.time, '2026-12-03');
  });
});

describe('KPI lines', () => {
  test('shares of the identified patients, pathway order, no share for the base', () => {
    const k = {
      identified: 8, accepted: 6, contacted: 5, contactedWithinTarget: 4, dxaBooked: 3, assessed: 3, assessedWithin12Weeks: 2, treatmentDecided: 2, treatmentStarted: 1,
      followUp16Weeks: 1, onTreatmentAt12Months: 0, closed: 0, open: 5, overdue: 2, dismissed: 3,
    } as KpiCounts;
    const rows = kpiRows(k);
    assert.equal(rows[0]!.key, 'identified');
    assert.equal(rows[0]!.share, '');
    assert.equal(rows.find((r) => r.key === 'assessedWithin12Weeks')?.share, '25%');
    assert.equal(rows.find((r) => r.key === 'overdue')?.value, 2);
    for (const key of ['identified', 'contacted', 'assessedWithin12Weeks', 'treatmentStarted', 'onTreatmentAt12Months', 'overdue'] as const) assert.ok(rows.some((r) => r.key === key), key);
    assert.ok(kpiRows({ ...k, identified: 0 }).every((r) => r.share === ''), 'no share of nothing');
  });
});
