/**
 * The FLS worklist view of the SMART app (issue 8, item 3) in a real browser against the real service: two
 * high-risk patients are put on the worklist the way the background job does it (assessment → RiskAssessment
 * written to the sandbox FHIR server → triage Task, D2's `buildTriageTask`), then an FLS coordinator does a
 * standalone launch with user-level scopes (`launch.html?mode=worklist`), sees the rows sorted by risk with the
 * API's numbers, accepts one and dismisses the other with a reason. Screenshot: test/artifacts/app-worklist.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { RiskAssessment } from '@medplum/fhirtypes';
import type { WorklistResponse } from '../../server/fls/types.ts';
import { buildTriageTask } from '../../server/fls/triage.ts';
import { launchBrowser, newPage, runAxe, screenshot, seriousViolations } from '../support/browser.ts';
import { startAppService, type AppService } from '../support/app-service.ts';
import { appAccessToken, sandboxSystemToken, standaloneLaunch } from '../support/smart-launch.ts';

let svc: AppService;
let browser: Browser;
const PATIENTS = ['demo-a-022', 'demo-a-010'];

async function put(token: string, resource: { resourceType: string; id?: string }): Promise<void> {
  const res = await fetch(`${svc.base}/sandbox/fhir/${resource.resourceType}/${resource.id}`, { method: 'PUT', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(resource) });
  assert.ok(res.ok, `PUT ${resource.resourceType}: ${res.status} ${await res.text()}`);
}

before(async () => {
  svc = await startAppService();
  browser = await launchBrowser();
  const sys = await sandboxSystemToken(svc.base, 'system/*.cruds');
  for (const p of PATIENTS) {
    const res = await fetch(`${svc.base}/api/assessments`, { method: 'POST', headers: { Authorization: `Bearer ${sys}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ patient: p }) });
    assert.ok(res.ok, `assessment of ${p}: ${res.status}`);
    const body = (await res.json()) as { fhir: { riskAssessment: RiskAssessment & { id: string }; device: { resourceType: string; id?: string } } };
    await put(sys, body.fhir.device);
    await put(sys, body.fhir.riskAssessment);
    await put(sys, buildTriageTask(p, body.fhir.riskAssessment, new Date()));
  }
});

after(async () => {
  await browser?.close();
  await svc?.stop();
});

describe('FLS worklist view (user-level standalone launch)', () => {
  test('rows sorted by risk with the API’s numbers; accept and dismiss with a reason', async () => {
    const { context, page, problems } = await newPage(browser, { width: 1024, height: 768 });
    try {
      await standaloneLaunch(page, svc.base, { query: 'mode=worklist', user: 'Practitioner/demo-fls-coordinator' });
      await page.waitForSelector('.wl-table tbody tr, .error-screen, .empty-note', { timeout: 30_000 });
      await screenshot(page, 'app-worklist', false);
      assert.equal(await page.$('.error-screen'), null, `error screen: ${await page.textContent('body')}`);
      const token = await appAccessToken(page);
      const api = (await (await fetch(`${svc.base}/api/fls/worklist?status=requested`, { headers: { Authorization: `Bearer ${token}` } })).json()) as WorklistResponse;
      assert.ok(api.items.length >= 2, `worklist has ${api.items.length} items`);
      const rows = await page.$$eval('.wl-table tbody tr', (trs) => trs.map((tr) => ({ task: tr.getAttribute('data-task'), hip: tr.querySelector('td:nth-of-type(2) .wl-risk')?.textContent ?? '' })));
      assert.deepEqual(rows.map((r) => r.task), api.items.map((i) => i.taskId), 'same order as the API (sorted by risk)');
      for (const [i, r] of rows.entries()) {
        const est = api.items[i]!.hip10.estimate;
        assert.ok(Math.abs(Number(r.hip.replace(/[^\d.]/g, '')) - est) <= (est < 10 ? 0.05 : 0.5) + 1e-9, `hip ${r.hip} vs ${est}`);
      }
      assert.deepEqual(seriousViolations(await runAxe(page)), []);
      await screenshot(page, 'app-worklist', false);

      const [first, second] = api.items;
      await page.click(`tr[data-task="${first!.taskId}"] button:has-text("Accept")`);
      await page.waitForSelector(`.wl-message:has-text("Accepted")`);
      await page.click(`tr[data-task="${second!.taskId}"] button:has-text("Dismiss")`);
      await page.selectOption('dialog[open] select', 'declined');
      await screenshot(page, 'app-worklist-dismiss', false);
      await page.click('dialog[open] button.btn-primary');
      await page.waitForSelector(`.wl-message:has-text("Dismissed")`);
      await page.waitForFunction((ids) => ids.every((id) => !document.querySelector(`tr[data-task="${id}"]`)), [first!.taskId, second!.taskId]);
      const after = (await (await fetch(`${svc.base}/api/fls/worklist`, { headers: { Authorization: `Bearer ${token}` } })).json()) as WorklistResponse;
      const a = after.items.find((i) => i.taskId === first!.taskId)!;
      const d = after.items.find((i) => i.taskId === second!.taskId)!;
      assert.equal(a.status, 'accepted');
      assert.ok(a.serviceRequestId);
      assert.equal(d.status, 'dismissed');
      assert.equal(d.dismissalReason, 'declined');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
});
