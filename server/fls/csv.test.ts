import assert from 'node:assert/strict';
import { test } from 'node:test';
import { csvField, CSV_COLUMNS, worklistCsv } from './csv.ts';
import { RESEARCH_NOTICE, type WorklistItem } from './types.ts';
import { parseCsv } from '../../test/support/csv.ts';

const item = (over: Partial<WorklistItem>): WorklistItem => ({
  taskId: 't1', patientId: 'p1', patientName: 'Ann Example', birthDate: '1940-01-02', sex: 'female', riskAssessmentId: 'ra1', tier: 'high',
  mode: 'clinical-only', hip10: { estimate: 12.5, lower: null, upper: null }, mof10: { estimate: 30, lower: 25.25, upper: 35 }, imminent: true,
  status: 'requested', authoredOn: '2026-11-27T10:00:00.000Z', warnings: [], mrn: 'MRN-1', site: null, flagReason: '10-year hip fracture risk 13% (above the 3% threshold)',
  pathway: {
    step: 'identified', stepSince: '2026-11-27T10:00:00.000Z', dueDate: '2026-12-11', dueFor: 'Contact the patient', overdue: false, owner: null, notes: [],
    history: [{ step: 'identified', time: '2026-11-27T10:00:00.000Z', by: 'triage', source: 'fhir' }], nextSteps: ['accepted'], version: '1',
  },
  care: { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null },
  ...over,
});

test('csvField: quotes only when needed, doubles quotes, neutralises formulas', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\r\nlines'), '"two\r\nlines"');
  assert.equal(csvField('=HYPERLINK("x")'), '"\'=HYPERLINK(""x"")"');
  assert.equal(csvField('+1'), "'+1");
  assert.equal(csvField('@SUM'), "'@SUM");
  assert.equal(csvField(-3), '-3', 'numbers are data, not formulas');
  assert.equal(csvField(null), '');
  assert.equal(csvField(undefined), '');
  assert.equal(csvField(true), 'true');
  assert.equal(csvField(Number.NaN), '');
});

test('worklistCsv: RFC 4180 round trip of awkward names, notes and nulls; CRLF; notice on every row', () => {
  const items = [
    item({ patientName: 'O\'Brien, "Jo"\nJunior', warnings: ['Age 95 is above the range; computed at 90.', 'BMI, default'] }),
    item({
      taskId: 't2', patientName: '-Dash', site: 'Site, A', studyDate: '2026-11-01T09:00:00Z', serviceRequestId: 'sr1', dismissalReason: 'other',
      pathway: { ...item({}).pathway, step: 'contacted', overdue: true, owner: { reference: 'Practitioner/demo-fls-coordinator', display: 'Demo FLS-Coordinator' } },
      care: { flsReferral: { id: 'sr1', status: 'active', since: '2026-11-28' }, dxaOrder: null, dxaResult: null, treatment: null },
    }),
  ];
  const text = worklistCsv(items);
  assert.ok(text.endsWith('\r\n'));
  assert.ok(!/[^\r]\n/.test(text.replace(/"[^"]*(?:""[^"]*)*"/g, '')), 'outside quoted fields every LF is part of a CRLF');
  const rows = parseCsv(text);
  assert.equal(rows.length, 3);
  assert.deepEqual(rows[0], [...CSV_COLUMNS]);
  for (const r of rows) assert.equal(r.length, CSV_COLUMNS.length);
  const col = (r: string[], name: (typeof CSV_COLUMNS)[number]): string => r[CSV_COLUMNS.indexOf(name)]!;
  assert.equal(col(rows[1]!, 'patientName'), 'O\'Brien, "Jo"\nJunior');
  assert.equal(col(rows[1]!, 'warnings'), 'Age 95 is above the range; computed at 90. | BMI, default');
  assert.equal(col(rows[1]!, 'hip10Lower'), '', 'clinical-only: no interval');
  assert.equal(col(rows[1]!, 'mof10Lower'), '25', 'rounded as displayed (numbers.ts: no decimals from 10%)');
  assert.equal(col(rows[1]!, 'hip10'), '13');
  assert.equal(col(rows[1]!, 'mof10Text'), '30% (95% interval 25–35%)');
  assert.equal(col(rows[1]!, 'mrn'), 'MRN-1');
  assert.equal(col(rows[1]!, 'step'), 'identified');
  assert.equal(col(rows[1]!, 'dueDate'), '2026-12-11');
  assert.equal(col(rows[1]!, 'overdue'), 'false');
  assert.equal(col(rows[1]!, 'site'), '', 'no site in the chart: empty, not a guess');
  assert.equal(col(rows[2]!, 'owner'), 'Demo FLS-Coordinator');
  assert.equal(col(rows[2]!, 'overdue'), 'true');
  assert.equal(col(rows[2]!, 'flsReferralStatus'), 'active');
  assert.equal(col(rows[1]!, 'imminent'), 'true');
  assert.equal(col(rows[2]!, 'patientName'), "'-Dash");
  assert.equal(col(rows[2]!, 'site'), 'Site, A');
  assert.equal(col(rows[2]!, 'serviceRequestId'), 'sr1');
  assert.equal(col(rows[2]!, 'notice'), RESEARCH_NOTICE);
  assert.throws(() => parseCsv('a,"b\r\n'), /unterminated/, 'the reader itself rejects broken CSV');
});
