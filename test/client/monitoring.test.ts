/**
 * The "Model monitoring" view's pure logic (client/src/monitoring-model.ts) and its launch (launch-options.ts):
 * rows with alarms first and their status in words, the alarm rule as a sentence, which sessions open the view.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LaunchError, MONITORING_SCOPES, planLaunch, WORKLIST_SCOPES } from '../../client/src/launch-options.ts';
import { isMonitoringLaunch, monitoringRows, ruleText } from '../../client/src/monitoring-model.ts';
import type { MonitoringResponse, MonitoringSeries } from '../../server/monitoring/types.ts';

const series = (site: string, state: MonitoringSeries['alarm']['state'], over: Partial<MonitoringSeries> = {}): MonitoringSeries => ({
  site, model: 'hip-xray-v2@2.0.0', calibration: 'cal-1', from: '2026-01-02', to: '2026-11-30',
  agreement: { n: 40, r: 0.8123, bias: -0.004, coverage: 0.875, sdDiff: 0.6, limits: { lower: -1.18, upper: 1.17 }, mae: 0.5 },
  alarm: { state, reason: state === 'alarm' ? 'coverage 0.88 < 0.9 over the last 40 pairs' : state === 'too-few-pairs' ? '12 of the 30 pairs needed' : null, since: state === 'alarm' ? '2026-12-01T10:00:00Z' : null },
  ...over,
});

test('rows: raised alarms first, then by site; numbers and status in words', () => {
  const rows = monitoringRows({ series: [series('site-b', 'ok'), series('site-c', 'too-few-pairs'), series('site-a', 'ok'), series('site-d', 'alarm')] });
  assert.deepEqual(rows.map((r) => r.site), ['site-d', 'site-a', 'site-b', 'site-c']);
  const alarm = rows[0]!;
  assert.equal(alarm.statusText, 'Drift alarm since 1 Dec 2026: coverage 0.88 < 0.9 over the last 40 pairs');
  assert.deepEqual([alarm.pairs, alarm.r, alarm.bias, alarm.coverage, alarm.limits], ['40', '0.81', '0.00', '87.5 %', '-1.18 to 1.17']);
  assert.equal(alarm.window, '2 Jan 2026 – 30 Nov 2026');
  assert.equal(rows[1]!.statusText, 'Within the limits');
  assert.equal(rows[3]!.statusText, 'Too few pairs to judge (12 of the 30 pairs needed)');
  const empty = monitoringRows({ series: [series('x', 'ok', { agreement: { n: 1, r: null, bias: 0.3, coverage: 1, sdDiff: null, limits: null, mae: 0.3 }, from: '2026-05-01', to: '2026-05-01' })] })[0]!;
  assert.deepEqual([empty.r, empty.limits, empty.window], ['–', '–', '1 May 2026']);
});

test('the alarm rule in words follows the settings', () => {
  const s: MonitoringResponse['settings'] = { windowPairs: 200, minPairs: 30, minCoverage: 0.9, maxAbsBias: 0.5, pairWindowDays: 730, pollSeconds: 300 };
  assert.match(ruleText(s), /latest 200 pairs of a site \(at least 30\), fewer than 90 % .* more than 0\.5 T units .* at most 730 days/);
});

test('launch: ?mode=monitoring asks for user-level RiskAssessment reads only; such a session opens the view, a worklist session does not', () => {
  const plan = planLaunch(new URLSearchParams('mode=monitoring&iss=https://fhir.example.org/r4'), null);
  assert.equal(plan.mode, 'monitoring');
  assert.equal(plan.options.scope, MONITORING_SCOPES.join(' '));
  assert.throws(() => planLaunch(new URLSearchParams('mode=monitoring&launch=abc&iss=https://fhir.example.org/r4'), null), LaunchError);
  assert.equal(isMonitoringLaunch({ patientId: null, scopes: [...MONITORING_SCOPES] }), true);
  assert.equal(isMonitoringLaunch({ patientId: null, scopes: [...WORKLIST_SCOPES] }), false, 'the worklist links to it instead');
  assert.equal(isMonitoringLaunch({ patientId: 'p1', scopes: ['patient/*.rs'] }), false);
});
