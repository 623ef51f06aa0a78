/**
 * The FLS coordinator's screens of the SMART app in a real browser against the real service (`npm start` as a child
 * process), at 1280 px and in a 420 px EHR side panel. Patients are put on the worklist the way the background job
 * does it (assessment → RiskAssessment written to the sandbox FHIR server → triage Task), then an FLS coordinator
 * does a standalone launch with user-level scopes (`launch.html?mode=worklist`) and, at each width:
 * - sees every row with MRN and site, in human words only (no codes, no "Patient/…" references), no horizontal
 *   overflow and every row's actions on screen;
 * - watches an item turn overdue once its contact due date has passed (the Task's dates are moved back as if the
 *   days had gone by — the service's clock is the real one) and the KPI "overdue" count rise;
 * - takes the item through every pathway step in the UI (accept in the worklist, then contacted, DXA booked, DXA
 *   result, treatment decision, 16-week and 12-month follow-ups, closed in the coordinator's patient view), with
 *   the overdue flag gone once contacted and the KPI counts moving accordingly;
 * - dismisses another item through a dialog that opens with no reason chosen (submit disabled until one is);
 * at 1280 px also sorts by keyboard (aria-sort), filters by overdue, bulk-assigns and bulk-advances two items and
 * adds a note. axe-core: no serious or critical violation on the worklist, the coordinator's view, the dialogs and
 * the KPI panel. Screenshots: test/artifacts/fls-*.png and client/docs/worklist{,-coordinator,-kpis}{,-420}.png.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { RiskAssessment, Task } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../../server/config.ts';
import type { KpiResponse, WorklistItem, WorklistResponse } from '../../server/fls/types.ts';
import { buildTriageTask } from '../../server/fls/triage.ts';
import { launchBrowser, newPage, runAxe, screenshot, seriousViolations } from '../support/browser.ts';
import { startAppService, type AppService } from '../support/app-service.ts';
import { appAccessToken, sandboxSystemToken, standaloneLaunch } from '../support/smart-launch.ts';

let svc: AppService;
let browser: Browser;
let sys: string;
/** Triage Task id per patient. */
const tasks = new Map<string, string>();

/** Patients per scenario: the one taken along the whole pathway, the one dismissed, and (1280 px) two for bulk actions. */
const WIDE = { walk: 'demo-a-022', dismiss: 'demo-a-010', bulk: ['demo-a-003', 'demo-a-015'] };
const NARROW = { walk: 'demo-a-031', dismiss: 'demo-a-027' };
const COORDINATOR = 'Practitioner/demo-fls-coordinator';

async function fhir(method: 'GET' | 'PUT', path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${svc.base}/sandbox/fhir/${path}`, {
    method,
    headers: { Authorization: `Bearer ${sys}`, 'Content-Type': 'application/fhir+json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as unknown;
}

/** Puts the patient on the worklist as the background job does: assessment, RiskAssessment, triage Task (now). */
async function flag(patient: string): Promise<void> {
  const res = await fetch(`${svc.base}/api/assessments`, { method: 'POST', headers: { Authorization: `Bearer ${sys}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ patient }) });
  assert.ok(res.ok, `assessment of ${patient}: ${res.status}`);
  const body = (await res.json()) as { fhir: { riskAssessment: RiskAssessment & { id: string }; device: { resourceType: string; id?: string } } };
  await fhir('PUT', `${body.fhir.device.resourceType}/${body.fhir.device.id}`, body.fhir.device);
  await fhir('PUT', `RiskAssessment/${body.fhir.riskAssessment.id}`, body.fhir.riskAssessment);
  const task = buildTriageTask(patient, body.fhir.riskAssessment, new Date());
  await fhir('PUT', `Task/${task.id}`, task);
  tasks.set(patient, task.id!);
}

/**
 * Lets `days` days pass for one item: every date in its Task (identification, pathway events, due date, notes) moves
 * back by that much, which is what the item looks like `days` later. `meta` is the server's and stays.
 */
async function letDaysPass(taskId: string, days: number): Promise<void> {
  const task = (await fhir('GET', `Task/${taskId}`)) as Task;
  const shift = (v: unknown, key: string): unknown => {
    if (key === 'meta') return v;
    if (typeof v === 'string') {
      if (/^\d{4}-\d{2}-\d{2}$/.test(v)) return new Date(Date.parse(`${v}T00:00:00Z`) - days * 86_400_000).toISOString().slice(0, 10);
      if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v) && !Number.isNaN(Date.parse(v))) return new Date(Date.parse(v) - days * 86_400_000).toISOString();
      return v;
    }
    if (Array.isArray(v)) return v.map((x) => shift(x, ''));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shift(x, k)]));
    return v;
  };
  await fhir('PUT', `Task/${taskId}`, shift(task, ''));
}

async function api<T>(page: Page, path: string): Promise<T> {
  const res = await fetch(`${svc.base}/api/fls${path}`, { headers: { Authorization: `Bearer ${await appAccessToken(page)}` } });
  assert.ok(res.ok, `GET ${path}: ${res.status}`);
  return (await res.json()) as T;
}

/** The page never scrolls sideways: nothing wider than the viewport. */
async function assertNoHorizontalOverflow(page: Page, what: string): Promise<void> {
  const m = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: window.innerWidth }));
  assert.ok(m.scroll <= m.view, `${what}: page is ${m.scroll} px wide in a ${m.view} px viewport`);
}

/** No raw codes or FHIR references in what the coordinator reads. */
async function assertHumanText(page: Page, what: string): Promise<void> {
  const text = await page.evaluate(() => document.body.innerText);
  assert.doesNotMatch(text, /\b(Patient|Practitioner|Task|Observation|ServiceRequest|RiskAssessment)\/[A-Za-z0-9]/, `${what}: a FHIR reference is shown`);
  assert.doesNotMatch(text, /\b(dxa-booked|treatment-decided|follow-up-16w|follow-up-12m|already-treated|not-fragility|image-and-clinical|clinical-only)\b/, `${what}: a raw code is shown`);
}

async function assertAxe(page: Page, what: string): Promise<void> {
  assert.deepEqual(seriousViolations(await runAxe(page)), [], `${what}: axe-core serious/critical violations`);
}

const row = (taskId: string): string => `[data-task="${taskId}"]`;

async function showTab(page: Page, tab: 'Worklist' | 'Key performance indicators'): Promise<void> {
  await page.click(`.fls-tabs button:text-is("${tab}")`);
  if (tab === 'Worklist') await page.waitForSelector('.wl-table, .wl-cards, .empty-note');
  else await page.waitForSelector('.kpi-table tr[data-kpi]');
}

/** The KPI panel's counts as shown (freshly loaded), checked against the API's; leaves the panel open. */
async function kpis(page: Page): Promise<Record<string, number>> {
  await showTab(page, 'Worklist');
  await showTab(page, 'Key performance indicators');
  const shown = await page.$$eval('.kpi-table tr[data-kpi]', (trs) => Object.fromEntries(trs.map((tr) => [tr.getAttribute('data-kpi'), Number(tr.querySelector('.kpi-value')?.textContent)])));
  const k = await api<KpiResponse>(page, '/kpis');
  for (const key of ['identified', 'contacted', 'assessedWithin12Weeks', 'treatmentStarted', 'onTreatmentAt12Months', 'overdue', 'dismissed'] as const) {
    assert.equal(shown[key], k[key], `KPI ${key}: panel ${shown[key]} vs API ${k[key]}`);
  }
  return shown as Record<string, number>;
}

/** Opens the step dialog from a button, answers it (treatment outcome where asked) and saves. */
async function recordStepVia(page: Page, button: string, treatment?: string): Promise<void> {
  await page.click(button);
  await page.waitForSelector('dialog[open] form');
  if (treatment) {
    assert.equal(await page.isDisabled('dialog[open] button[type="submit"]'), true, 'no outcome chosen: Save disabled');
    await page.check(`dialog[open] input[name="treatment"][value="${treatment}"]`);
  }
  await page.click('dialog[open] button[type="submit"]');
  await page.waitForSelector('dialog[open]', { state: 'detached' });
}

/** The dismiss dialog: opens with no reason chosen and Dismiss disabled; a reason enables it. */
async function dismissVia(page: Page, button: string, shot: string): Promise<void> {
  await page.click(button);
  await page.waitForSelector('dialog[open] input[name="dismiss-reason"]');
  assert.equal(await page.$$eval('dialog[open] input[name="dismiss-reason"]', (rs) => rs.filter((r) => (r as HTMLInputElement).checked).length), 0, 'no reason preselected');
  assert.equal(await page.$$eval('dialog[open] select', (s) => s.length), 0, 'reasons are radio buttons, not a select with a first option chosen');
  assert.equal(await page.isDisabled('dialog[open] button[type="submit"]'), true, 'Dismiss disabled until a reason is chosen');
  await assertAxe(page, 'dismiss dialog');
  await screenshot(page, shot, false);
  await page.check('dialog[open] input[name="dismiss-reason"][value="declined"]');
  assert.equal(await page.isDisabled('dialog[open] button[type="submit"]'), false);
  await page.click('dialog[open] button[type="submit"]');
  await page.waitForSelector('dialog[open]', { state: 'detached' });
}

/**
 * One coordinator's session at a width: overdue after the due date, every pathway step, KPIs, dismissal, layout
 * and accessibility checks. Returns the page (still open) for width-specific checks.
 */
async function scenario(page: Page, problems: string[], width: number, who: { walk: string; dismiss: string }): Promise<void> {
  const tag = `fls-${width}`;
  const walkId = tasks.get(who.walk)!;
  const dismissId = tasks.get(who.dismiss)!;
  const narrow = width < 600;
  await standaloneLaunch(page, svc.base, { query: 'mode=worklist', user: COORDINATOR });
  await page.waitForSelector(`${row(walkId)}, .error-screen`, { timeout: 30_000 });
  assert.equal(await page.$('.error-screen'), null, `error screen: ${await page.textContent('body')}`);
  assert.equal(await page.$(narrow ? '.wl-table' : '.wl-cards'), null, narrow ? 'no table in a narrow panel' : 'a table at full width');

  // Every row: MRN and site as the API gives them, in words; the actions on screen.
  const list = await api<WorklistResponse>(page, '/worklist');
  const walkItem = list.items.find((i) => i.taskId === walkId)!;
  assert.ok(walkItem, 'the flagged patient is on the worklist');
  assert.equal(walkItem.pathway.step, 'identified');
  assert.equal(walkItem.pathway.overdue, false);
  for (const it of list.items.filter((i) => i.pathway.step !== 'closed' && i.pathway.step !== 'dismissed')) {
    const text = await page.textContent(row(it.taskId));
    assert.ok(text, `row of ${it.taskId} shown`);
    assert.ok(text.includes(it.mrn ? `MRN ${it.mrn}` : 'No MRN'), `row shows the MRN: ${text}`);
    assert.ok(text.includes(it.site ? `Site ${it.site}` : 'No site'), `row shows the site: ${text}`);
  }
  assert.ok(walkItem.mrn, 'the demo patient has an MRN');
  await assertHumanText(page, `worklist ${width}`);
  await assertNoHorizontalOverflow(page, `worklist ${width}`);
  const buttons = await page.$$eval(`${row(walkId)} .wl-actions button`, (bs) => bs.map((b) => ({ text: b.textContent ?? '', box: b.getBoundingClientRect().toJSON() as DOMRect })));
  assert.ok(buttons.length >= 3, 'open, next step, note, dismiss');
  for (const b of buttons) assert.ok(b.box.left >= 0 && b.box.right <= width && b.box.width > 0, `action "${b.text}" within the ${width} px viewport (${b.box.left}–${b.box.right})`);
  assert.match(await page.textContent(row(walkId)) ?? '', /in 14 days/, 'contact due in 14 days');
  assert.equal(await page.$(`${row(walkId)} .overdue-flag`), null, 'not overdue yet');
  await assertAxe(page, `worklist ${width}`);
  await screenshot(page, `${tag}-worklist`, false);

  // Time passes: 20 days later the contact (due after 14) is overdue, on the row and in the KPIs.
  const k0 = await kpis(page);
  await letDaysPass(walkId, 20);
  const k1 = await kpis(page);
  assert.equal(k1['overdue'], k0['overdue']! + 1, 'one more overdue item');
  await assertAxe(page, `KPI panel ${width}`);
  await assertNoHorizontalOverflow(page, `KPI panel ${width}`);
  await screenshot(page, `${tag}-kpis`, false);
  copyFileSync(join(REPO_ROOT, `test/artifacts/${tag}-kpis.png`), join(REPO_ROOT, `client/docs/worklist-kpis${narrow ? '-420' : ''}.png`));
  await showTab(page, 'Worklist');
  await page.waitForSelector(`${row(walkId)} .overdue-flag`);
  assert.match(await page.textContent(row(walkId)) ?? '', /Overdue[\s\S]*Contact the patient by[\s\S]*6 days overdue/);
  await screenshot(page, `${tag}-worklist-overdue`, false);

  // Accept in the worklist (the FLS takes the patient on), then open the coordinator's view.
  await recordStepVia(page, `${row(walkId)} button[data-step="accepted"]`);
  await page.waitForSelector(`.wl-message:has-text("Accepted by FLS")`);
  await page.waitForSelector(`${row(walkId)} button[data-step="contacted"]`);
  await page.click(`${row(walkId)} button:has-text("Open")`);
  await page.waitForSelector('.coordinator .co-timeline');
  const body = await page.textContent('main');
  assert.ok(body?.includes(walkItem.patientName), 'name');
  assert.ok(body?.includes(`MRN ${walkItem.mrn}`), 'MRN');
  assert.match(body ?? '', /Born \d{1,2} [A-Z][a-z]{2} \d{4}/, 'birth date');
  assert.ok(body?.includes(walkItem.flagReason), `why flagged: ${walkItem.flagReason}`);
  assert.match(body ?? '', /Research use — trained on synthetic data/);
  assert.match(body ?? '', /\d(\.\d)?% \(95% interval \d+(\.\d)?–\d+(\.\d)?%\)|no interval/, 'risk in the shared number format: 14% (95% interval 10–19%)');
  assert.doesNotMatch(body ?? '', /Refer to/i, 'the FLS is not offered a referral to itself');
  assert.equal(await page.$('[data-testid="risk10-hip"]'), null, 'not the clinician view');
  assert.match(await page.textContent('.co-next') ?? '', /Overdue[\s\S]*Contact the patient/);
  await assertAxe(page, `coordinator view ${width}`);
  await assertNoHorizontalOverflow(page, `coordinator view ${width}`);
  await assertHumanText(page, `coordinator view ${width}`);
  await screenshot(page, `${tag}-coordinator`, false);
  await screenshot(page, `${tag}-coordinator-full`);
  copyFileSync(join(REPO_ROOT, `test/artifacts/${tag}-coordinator.png`), join(REPO_ROOT, `client/docs/worklist-coordinator${narrow ? '-420' : ''}.png`));

  if (!narrow) {
    // Someone else changes the item meanwhile: the action is refused (409, stale version), the view reloads and says
    // so, and the second try goes through.
    await fhir('PUT', `Task/${walkId}`, await fhir('GET', `Task/${walkId}`));
    await page.fill('.co-note-form textarea', 'Phoned the patient: no answer.');
    await page.click('.co-note-form button[type="submit"]');
    await page.waitForSelector('.wl-message:has-text("Someone else changed this item")');
    await page.waitForSelector('.co-note-form button[type="submit"]:not([disabled])');
    await page.click('.co-note-form button[type="submit"]');
    await page.waitForSelector('.co-notes li:has-text("Phoned the patient: no answer.")');
    const stale = problems.findIndex((p) => /^http 409 POST .*\/notes$/.test(p));
    assert.ok(stale >= 0, `the stale write was answered 409: ${problems.join('; ')}`);
    problems.splice(stale, 1);
  }

  // Every remaining step, each recorded with its button; the timeline follows.
  const steps: [string, string | undefined][] = [
    ['contacted', undefined], ['dxa-booked', undefined], ['assessed', undefined], ['treatment-decided', 'started'],
    ['follow-up-16w', 'continuing'], ['follow-up-12m', 'continuing'], ['closed', undefined],
  ];
  for (const [step, treatment] of steps) {
    await recordStepVia(page, `.co-next button[data-step="${step}"]`, treatment);
    await page.waitForSelector(`.co-timeline li[aria-current="step"][data-step="${step}"]`);
    if (step === 'contacted') {
      const next = await page.textContent('.co-next');
      assert.doesNotMatch(next ?? '', /Overdue/, 'contacted: nothing overdue (DXA due 12 weeks after identification)');
      assert.match(next ?? '', /DXA result by/);
    }
    if (step === 'treatment-decided') assert.match(await page.textContent('.co-timeline') ?? '', /treatment started/);
  }
  assert.equal(await page.$('.co-next button[data-step]'), null, 'closed: no further step');
  const closed = await api<{ item: WorklistItem }>(page, `/worklist/${walkId}`);
  assert.equal(closed.item.pathway.step, 'closed');
  assert.deepEqual(
    closed.item.pathway.history.map((e) => e.step),
    ['identified', 'accepted', 'contacted', 'dxa-booked', 'assessed', 'treatment-decided', 'follow-up-16w', 'follow-up-12m', 'closed'],
  );
  await assertHumanText(page, `coordinator view, closed ${width}`);
  await screenshot(page, `${tag}-coordinator-closed`);

  // Back: the closed item left the open list; the KPIs moved along the path.
  await page.click('.app-bar button:has-text("Worklist")');
  await page.waitForSelector('.wl-table, .wl-cards');
  assert.equal(await page.$(row(walkId)), null, 'closed items are not in the open list');
  const k2 = await kpis(page);
  assert.equal(k2['identified'], k1['identified'], 'identified unchanged');
  assert.equal(k2['contacted'], k1['contacted']! + 1, 'contacted +1');
  assert.equal(k2['contactedWithinTarget'], k1['contactedWithinTarget'], 'contacted after 20 days: not within the 14-day target');
  assert.equal(k2['assessedWithin12Weeks'], k1['assessedWithin12Weeks']! + 1, 'assessed within 12 weeks +1');
  assert.equal(k2['treatmentStarted'], k1['treatmentStarted']! + 1, 'treatment started +1');
  assert.equal(k2['onTreatmentAt12Months'], k1['onTreatmentAt12Months']! + 1, 'on treatment at 12 months +1');
  assert.equal(k2['overdue'], k0['overdue'], 'overdue back to where it was');

  // Dismiss another item: no preselected reason.
  await showTab(page, 'Worklist');
  await dismissVia(page, `${row(dismissId)} button:has-text("Dismiss")`, `${tag}-dismiss-dialog`);
  await page.waitForSelector(`.wl-message:has-text("Dismissed")`);
  await page.waitForSelector(row(dismissId), { state: 'detached' });
  const dismissed = await api<{ item: WorklistItem }>(page, `/worklist/${dismissId}`);
  assert.equal(dismissed.item.pathway.step, 'dismissed');
  assert.equal(dismissed.item.dismissalReason, 'declined');
  const k3 = await kpis(page);
  assert.equal(k3['dismissed'], k2['dismissed']! + 1, 'dismissed +1');
  await showTab(page, 'Worklist');
}

before(async () => {
  svc = await startAppService();
  browser = await launchBrowser();
  sys = await sandboxSystemToken(svc.base, 'system/*.cruds');
  for (const p of [WIDE.walk, WIDE.dismiss, ...WIDE.bulk, NARROW.walk, NARROW.dismiss]) await flag(p);
});

after(async () => {
  await browser?.close();
  await svc?.stop();
});

describe('FLS coordinator screens (user-level standalone launch)', () => {
  test('1280 px: overdue, every pathway step, KPIs, dismiss without a preselected reason, sorting, filters, bulk actions, notes', async () => {
    const { context, page, problems } = await newPage(browser, { width: 1280, height: 900 });
    try {
      await scenario(page, problems, 1280, WIDE);

      // Exports from the KPI panel: the server's kpis.csv and worklist.csv (with MRN and site) as downloads.
      await showTab(page, 'Key performance indicators');
      for (const [button, name, expect] of [
        ['Export KPIs (CSV)', /^fls-kpis-\d{4}-\d{2}-\d{2}\.csv$/, /identified/i],
        ['Export worklist (CSV)', /^fls-worklist-\d{4}-\d{2}-\d{2}\.csv$/, /^taskId,mrn,[\s\S]*,site,[\s\S]*DEMOA0022/],
      ] as const) {
        const [download] = await Promise.all([page.waitForEvent('download'), page.click(`.kpis button:text-is("${button}")`)]);
        assert.match(download.suggestedFilename(), name);
        const { readFileSync } = await import('node:fs');
        assert.match(readFileSync((await download.path())!, 'utf8'), expect, `${button}: content`);
      }
      await showTab(page, 'Worklist');

      // Sorting by keyboard: Enter on the Patient header sorts by name (aria-sort), again reverses.
      await page.focus('thead th:has-text("Patient") button');
      await page.keyboard.press('Enter');
      await page.waitForSelector('th[aria-sort="ascending"]:has-text("Patient")');
      assert.equal(await page.getAttribute('th:has-text("Risk, 10 years")', 'aria-sort'), 'none');
      const byName = await api<WorklistResponse>(page, '/worklist?sort=name&dir=asc');
      const open = (r: WorklistResponse): string[] => r.items.filter((i) => i.pathway.step !== 'closed' && i.pathway.step !== 'dismissed').map((i) => i.taskId);
      await page.waitForFunction((ids) => JSON.stringify([...document.querySelectorAll('.wl-table tbody tr')].map((tr) => tr.getAttribute('data-task'))) === JSON.stringify(ids), open(byName));
      await page.keyboard.press('Enter');
      await page.waitForSelector('th[aria-sort="descending"]:has-text("Patient")');
      const byNameDesc = await api<WorklistResponse>(page, '/worklist?sort=name&dir=desc');
      await page.waitForFunction((ids) => JSON.stringify([...document.querySelectorAll('.wl-table tbody tr')].map((tr) => tr.getAttribute('data-task'))) === JSON.stringify(ids), open(byNameDesc));

      // Bulk: select two items, assign them to the coordinator, then accept both.
      const [b1, b2] = WIDE.bulk.map((p) => tasks.get(p)!);
      await page.check(`${row(b1!)} input[type="checkbox"]`);
      await page.check(`${row(b2!)} input[type="checkbox"]`);
      await page.waitForSelector('.wl-bulk:has-text("2 selected")');
      const ownerValue = await page.$eval('.wl-bulk select', (s) => [...(s as HTMLSelectElement).options].find((o) => o.value.startsWith('Practitioner/'))?.value ?? '');
      assert.ok(ownerValue, 'an owner to assign to');
      await page.selectOption('.wl-bulk select >> nth=0', ownerValue);
      await assertAxe(page, 'worklist with bulk bar');
      await screenshot(page, 'fls-1280-bulk', false);
      await page.click('.wl-bulk button:text-is("Assign")');
      await page.waitForSelector('.wl-message:has-text("Assigned to"):has-text("2 of 2 done")');
      const ownerName = (await api<{ item: WorklistItem }>(page, `/worklist/${b1}`)).item.pathway.owner?.display;
      assert.ok(ownerName, 'assigned');
      await page.waitForFunction(([a, b, n]) => [a, b].every((id) => document.querySelector(`[data-task="${id}"] .wl-owner`)?.textContent === n), [b1, b2, ownerName]);
      await page.check(`${row(b1!)} input[type="checkbox"]`);
      await page.check(`${row(b2!)} input[type="checkbox"]`);
      await page.selectOption('.wl-bulk select >> nth=1', 'accepted');
      await page.click('.wl-bulk button:text-is("Advance")');
      await page.waitForSelector('.wl-message:has-text("Moved to"):has-text("2 of 2 done")');
      for (const id of [b1!, b2!]) assert.equal((await api<{ item: WorklistItem }>(page, `/worklist/${id}`)).item.pathway.step, 'accepted');

      // Owner filter and a note.
      await page.selectOption('.filters select >> nth=2', ownerValue);
      await page.waitForFunction((ids) => {
        const shown = [...document.querySelectorAll('.wl-table tbody tr')].map((tr) => tr.getAttribute('data-task'));
        return ids.every((id) => shown.includes(id)) && shown.length >= 2;
      }, [b1!, b2!]);
      await page.click(`${row(b1!)} button:has-text("Note")`);
      await page.fill('dialog[open] textarea', 'Left a voicemail; will call again on Friday.');
      await page.click('dialog[open] button[type="submit"]');
      await page.waitForSelector(`${row(b1!)} .wl-note:has-text("voicemail")`);
      await page.selectOption('.filters select >> nth=2', '');

      // Overdue filter: 20 days later the first bulk item's contact is overdue, the second's is not yet.
      await letDaysPass(b1!, 20);
      await page.selectOption('.filters select >> nth=3', 'true');
      await page.waitForSelector(`${row(b1!)} .overdue-flag`);
      assert.equal(await page.$(row(b2!)), null, 'the item not overdue is filtered out');
      assert.equal(await page.$('.wl-table tbody tr:not(.wl-row-over)'), null, 'only overdue rows');
      await page.selectOption('.filters select >> nth=3', '');
      await page.waitForSelector(row(b2!));
      await screenshot(page, 'fls-1280-worklist-after', false);
      copyFileSync(join(REPO_ROOT, 'test/artifacts/fls-1280-worklist-after.png'), join(REPO_ROOT, 'client/docs/worklist.png'));
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('420 px side panel: stacked cards, no horizontal overflow, actions visible; the same pathway, KPIs and dismissal', async () => {
    const { context, page, problems } = await newPage(browser, { width: 420, height: 860 });
    try {
      await scenario(page, problems, 420, NARROW);
      const cards = await page.$$eval('.wl-card', (cs) => cs.map((c) => c.getBoundingClientRect().toJSON() as DOMRect));
      assert.ok(cards.length > 0);
      for (const c of cards) assert.ok(c.right <= 420 && c.left >= 0, `card within the panel (${c.left}–${c.right})`);
      const first = await page.$eval('.wl-card .wl-actions', (a) => ({ visible: a.getBoundingClientRect().top < window.innerHeight, right: a.getBoundingClientRect().right }));
      assert.ok(first.visible && first.right <= 420, 'the first card’s actions are on the first screen');
      // Filters fold away in the panel; opened, they fit it too.
      assert.equal(await page.isVisible('.filters'), false, 'filters folded');
      await page.click('.wl-filters-box summary');
      await page.waitForSelector('.filters select', { state: 'visible' });
      await assertNoHorizontalOverflow(page, 'filters at 420 px');
      for (const r of await page.$$eval('.filters select, .filters input, .filters button', (es) => es.map((e) => e.getBoundingClientRect().right))) assert.ok(r <= 420, `filter control within the panel (${r})`);
      await assertAxe(page, 'filters at 420 px');
      await screenshot(page, 'fls-420-filters', false);
      await page.click('.wl-filters-box summary');
      await page.check('.wl-card input[type="checkbox"] >> nth=0');
      await page.waitForSelector('.wl-bulk');
      await assertNoHorizontalOverflow(page, 'bulk bar at 420 px');
      const bulkButtons = await page.$$eval('.wl-bulk button', (bs) => bs.map((b) => b.getBoundingClientRect().right));
      for (const r of bulkButtons) assert.ok(r <= 420, `bulk button within the panel (${r})`);
      await assertAxe(page, 'worklist 420 px with bulk bar');
      await page.click('.wl-bulk button:text-is("Clear selection")');
      await screenshot(page, 'fls-420-worklist-after', false);
      copyFileSync(join(REPO_ROOT, 'test/artifacts/fls-420-worklist-after.png'), join(REPO_ROOT, 'client/docs/worklist-420.png'));
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
});
