/**
 * "Finalise report" in the demo EHR through the real event path, with the whole service started in-process as
 * `npm start` runs it (`startService`: sandbox FHIR + SMART + DICOMweb + models + report events + jobs): the EHR's
 * route updates the preliminary DiagnosticReport to `final` with its own token, the sandbox FHIR server's
 * Subscription notifies the service, the background job writes the RiskAssessment — which the chart then shows.
 * Also: the patient list's "Preliminary report" badge and filter, the header's FLS worklist link, refusals.
 * In Chromium (playwright-core): the button, the progress line, the new assessment row; screenshot
 * `test/artifacts/ehr-reports-finalised.png`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { Bundle, DiagnosticReport, RiskAssessment, Task } from '@medplum/fhirtypes';
import { planLaunch } from '../../../client/src/launch-options.ts';
import { launchBrowser, newPage, runAxe, screenshot, seriousViolations } from '../../../test/support/browser.ts';
import { waitFor } from '../../../test/support/service-process.ts';
import { startWholeService, type WholeService } from '../../../test/support/whole-service.ts';
import type { AppConfig } from '../../config.ts';
import { REPORT_EVENT_SYSTEM } from '../../jobs/process.ts';
import { idempotencyKey } from '../../jobs/types.ts';

let whole: WholeService;
let config: AppConfig;
let browser: Browser | undefined;
let base = '';

before(async () => {
  whole = await startWholeService();
  ({ base, config } = whole);
});

after(async () => {
  await browser?.close();
  await whole?.close();
});

async function fhir<T>(path: string): Promise<T> {
  const res = await fetch(`${base}/sandbox/fhir/${path}`, { headers: { Authorization: `Bearer ${await whole.token()}`, Accept: 'application/fhir+json' } });
  assert.ok(res.ok, `GET ${path.split('?')[0]} → ${res.status}`);
  return (await res.json()) as T;
}

/** Patient ids with a preliminary report, as the FHIR server says (the service set them at start-up). */
async function preliminaryPatients(): Promise<string[]> {
  const b = await fhir<Bundle<DiagnosticReport>>('DiagnosticReport?status=preliminary&_count=200');
  return [...new Set((b.entry ?? []).map((e) => e.resource!.subject!.reference!.replace('Patient/', '')))].sort();
}

const post = (path: string, body: unknown = {}, type = 'application/json'): Promise<Response> =>
  fetch(`${base}/sandbox/ehr${path}`, { method: 'POST', headers: { 'Content-Type': type, Accept: 'application/json' }, body: JSON.stringify(body) });

/** Patient ids that carry the badge on a patient-list page. */
const badged = (page: string): string[] =>
  [...page.matchAll(/data-patient="([^"]+)">[^<]*<\/a> <span class="badge badge--pending" data-badge="preliminary-report"/g)].map((m) => m[1]!).sort();

describe('demo EHR: imaging reports and the FLS worklist link (whole service)', () => {
  test('the header links to the SMART app\'s FLS worklist launch, in a new tab, with the parameters the app expects', async () => {
    const page = await (await fetch(`${base}/sandbox/ehr/`)).text();
    const a = /<a href="([^"]+)" target="_blank" rel="noopener" data-link="fls-worklist">FLS worklist/.exec(page);
    assert.ok(a, 'the header has the FLS worklist link');
    const url = new URL(a[1]!.replace(/&amp;/g, '&'));
    assert.equal(`${url.origin}${url.pathname}`, `${base}/app/launch.html`);
    assert.equal(url.searchParams.get('mode'), 'worklist');
    assert.equal(url.searchParams.get('iss'), config.fhir.publicBaseUrl);
    // The app's own launch planning (client/src/launch-options.ts) reads it as a worklist launch against that server.
    const plan = planLaunch(url.searchParams, null);
    assert.equal(plan.mode, 'worklist');
    assert.equal(plan.iss, config.fhir.publicBaseUrl);
    assert.equal((await fetch(url)).status, 200, 'the launch page is served');
  });

  test('the patient list badges exactly the patients with a preliminary report; "?pending=1" lists only them', async () => {
    const expected = await preliminaryPatients();
    assert.ok(expected.length >= 2, `the service set demo reports preliminary at start-up (${expected.join(', ')})`);
    const firstPage = await (await fetch(`${base}/sandbox/ehr/`)).text();
    const onFirstPage = [...firstPage.matchAll(/data-patient="([^"]+)"/g)].map((m) => m[1]!);
    assert.equal(onFirstPage.length, 20);
    assert.deepEqual(badged(firstPage), expected.filter((id) => onFirstPage.includes(id)));
    assert.ok(badged(firstPage).length > 0, 'the first page shows at least one badge');
    const pending = await (await fetch(`${base}/sandbox/ehr/?pending=1`)).text();
    assert.deepEqual(badged(pending), expected);
    assert.deepEqual([...pending.matchAll(/data-patient="([^"]+)"/g)].map((m) => m[1]!).sort(), expected, 'no other patient is listed');
    assert.match(pending, new RegExp(`${expected.length} patients with a preliminary imaging report`));
  });

  test('the chart lists the reports; the route finalises a preliminary one, and the real event path writes the RiskAssessment', { timeout: 120_000 }, async () => {
    const patient = 'demo-a-010';
    const report = 'demo-a-010-xr-report';
    const chart = await (await fetch(`${base}/sandbox/ehr/patients/${patient}`)).text();
    const row = new RegExp(`<tr data-report="${report}">([\\s\\S]*?)</tr>`).exec(chart)?.[1];
    assert.ok(row, 'the "Imaging reports" section lists the report');
    assert.match(chart, /<h2 id="reports-h">Imaging reports/);
    assert.match(row, />preliminary</);
    assert.match(row, new RegExp(`data-action="finalise-report" data-report="${report}">Finalise report<`));
    const before = await fhir<DiagnosticReport>(`DiagnosticReport/${report}`);
    assert.equal(before.status, 'preliminary');

    // Refusals first: another patient's report through this chart, an unknown report, a cross-site form post.
    assert.equal((await post(`/api/patients/${patient}/reports/demo-a-031-xr-report/finalise`)).status, 404);
    assert.equal((await post(`/api/patients/${patient}/reports/no-such-report/finalise`)).status, 404);
    assert.equal((await post(`/api/patients/${patient}/reports/${report}/finalise`, {}, 'application/x-www-form-urlencoded')).status, 415);
    assert.equal((await fhir<DiagnosticReport>('DiagnosticReport/demo-a-031-xr-report')).status, 'preliminary', 'the refused report is untouched');

    const t0 = Date.now();
    const res = await post(`/api/patients/${patient}/reports/${report}/finalise`);
    assert.equal(res.status, 200);
    const done = (await res.json()) as { report: string; status: string; versionId?: string; lastUpdated?: string };
    assert.equal(done.report, `DiagnosticReport/${report}`);
    const after = await fhir<DiagnosticReport>(`DiagnosticReport/${report}`);
    assert.equal(after.status, 'final');
    assert.equal(after.meta?.versionId, done.versionId);
    assert.notEqual(after.meta?.versionId, before.meta?.versionId);
    assert.ok(Date.parse(after.issued!) >= t0 - 1000, 'issued is the sign-off time');
    assert.equal((await post(`/api/patients/${patient}/reports/${report}/finalise`)).status, 409, 'a final report cannot be finalised again');

    // Nothing else is done by the EHR: the Subscription → receiver → job writes the RiskAssessment.
    const poll = `${base}/sandbox/ehr/api/patients/${patient}/reports/${report}/assessment?since=${encodeURIComponent(done.lastUpdated!)}`;
    const found = await waitFor('the EHR to find the RiskAssessment', async () => {
      const a = (await (await fetch(poll)).json()) as { found: boolean; id?: string };
      return a.found ? a : undefined;
    }, 90_000, 300);
    const ra = await fhir<RiskAssessment>(`RiskAssessment/${found.id!}`);
    assert.equal(ra.subject?.reference, `Patient/${patient}`);
    assert.ok(ra.basis?.some((b) => b.reference === `DiagnosticReport/${report}`), 'the assessment is based on the report');
    assert.ok(ra.basis?.some((b) => b.reference === 'ImagingStudy/demo-a-010-xr'), 'and on its study');
    assert.ok((ra.prediction ?? []).length > 0);
    // Written by the report-event job for exactly the version the EHR's update created.
    assert.equal(ra.identifier?.find((i) => i.system === REPORT_EVENT_SYSTEM)?.value, idempotencyKey(report, done.versionId));

    // The chart sections the page reloads now show it, and the button is gone; the badge too.
    const assessments = await (await fetch(`${base}/sandbox/ehr/patients/${patient}/sections/assessments`)).text();
    assert.match(assessments, new RegExp(`<tr data-ra="${found.id!}">`));
    assert.match(assessments, /95% interval/);
    const reports = await (await fetch(`${base}/sandbox/ehr/patients/${patient}/sections/reports`)).text();
    assert.match(reports, />final</);
    assert.doesNotMatch(reports, /data-action="finalise-report"/);
    assert.ok(!badged(await (await fetch(`${base}/sandbox/ehr/?pending=1`)).text()).includes(patient));
  });

  test('in Chromium: "Finalise report" on demo-a-022 shows the triggered assessment in the chart (screenshot)', { timeout: 180_000 }, async () => {
    const patient = 'demo-a-022';
    const report = 'demo-a-022-xr-report';
    browser = await launchBrowser();
    const { context, page, problems } = await newPage(browser, { width: 1280, height: 900 });
    try {
      await page.goto(`${base}/sandbox/ehr/?pending=1`);
      assert.ok(await page.$(`a[data-patient="${patient}"] + span.badge`), 'the patient has the badge');
      assert.deepEqual(seriousViolations(await runAxe(page)), [], 'the filtered list with badges is accessible');
      await Promise.all([page.waitForURL(new RegExp(`/patients/${patient}$`)), page.click(`a[data-patient="${patient}"]`)]);
      await page.waitForSelector('body[data-patient-view="done"]', { timeout: 60_000 });
      assert.equal(await page.$$eval('#assessments tbody tr', (r) => r.length), 0, 'no assessment before');
      await page.click(`#reports button[data-action="finalise-report"][data-report="${report}"]`);
      await page.waitForSelector('body[data-report-finalise="assessed"], body[data-report-finalise="no-assessment"], body[data-report-finalise="failed"]', { timeout: 60_000 });
      const status = (await page.textContent('#reports-status'))!;
      assert.equal(await page.getAttribute('body', 'data-report-finalise'), 'assessed', status);
      assert.match(status, /Background assessment done/);
      const raId = await page.getAttribute('#assessments tr.is-new', 'data-ra');
      assert.ok(raId, 'the new assessment row is highlighted');
      const ra = await fhir<RiskAssessment>(`RiskAssessment/${raId}`);
      assert.ok(ra.basis?.some((b) => b.reference === `DiagnosticReport/${report}`));
      assert.match((await page.textContent('#assessments tr.is-new'))!, /10-year: (<0\.1|[\d.]+)% \(95% interval [\d.<]+–[\d.]+%\)/);
      assert.match((await page.textContent(`#reports tr[data-report="${report}"]`))!, /final/);
      assert.equal(await page.$(`#reports button[data-action="finalise-report"][data-report="${report}"]`), null);
      await page.waitForTimeout(300); // let the highlight and status settle before the picture
      await screenshot(page, 'ehr-reports-finalised');
      assert.deepEqual(seriousViolations(await runAxe(page)), []);
      assert.deepEqual(problems, []);
      // demo-a-022 is high-risk: the job's FLS triage makes a Task, which is what the worklist shows.
      const tasks = await waitFor('the FLS triage Task', async () => {
        const b = await fhir<Bundle<Task>>('Task?_count=100');
        const mine = (b.entry ?? []).map((e) => e.resource!).filter((t) => t.for?.reference === `Patient/${patient}`);
        return mine.length > 0 ? mine : undefined;
      }, 30_000);
      assert.ok(tasks.some((t) => t.focus?.reference?.endsWith(`RiskAssessment/${raId}`)));
    } finally {
      await context.close();
    }
  });
});
