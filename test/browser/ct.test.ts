/**
 * A CT demo patient end to end in a real browser (Debian Chromium via playwright-core) against the whole service
 * in-process: demo-ct-003 (abdomen CT with an unreported moderate vertebral fracture) in the demo EHR → the
 * patient-view card says what the CT showed (attenuation with its Pickhardt anchor, the graded fracture "not in the
 * problem list") with an FLS referral and a provisional problem-list suggestion → the card's SMART link opens the app
 * with the "CT findings" panel: attenuation, per-level table with the fracture, both overlays loaded as images
 * (naturalWidth > 0) with alt text — at 1280 px and in a 420 px panel, no horizontal overflow, axe-core clean. Then
 * the patient is put on the FLS worklist as the background job does (assessment → RiskAssessment → the triage
 * rules) next to a higher-risk patient without a CT fracture; the coordinator's worklist ranks the CT patient first
 * with the imminent-risk flag and its reason. An order for a CT shows the risk and says the CT will be assessed;
 * accepting the card's problem-list suggestion creates a provisional Condition, the first one (the service writes
 * none itself). Screenshots: test/artifacts/ct-*.png. `CT_TEST_MODEL_DIR` runs it with another CT model folder
 * (e.g. the test fixture) than the default `models/ct-spine-v1`.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Frame, Page } from 'playwright-core';
import type { Bundle, Condition, RiskAssessment } from '@medplum/fhirtypes';
import { VERTEBRAL_FRACTURE_CODE } from '../../server/cds/ct-words.ts';
import { HttpFhirClient } from '../../server/fhir/client.ts';
import { buildTriageTask, maybeCreateTriageTask } from '../../server/fls/triage.ts';
import type { WorklistResponse } from '../../server/fls/types.ts';
import type { CtAssessmentView } from '../../server/pathways/ct-spine/types.ts';
import type { Assessment } from '../../server/risk/assess.ts';
import { ARTIFACTS_DIR, launchBrowser, newPage, runAxe, screenshot, seriousViolations } from '../support/browser.ts';
import { appAccessToken, standaloneLaunch } from '../support/smart-launch.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

const CT_PATIENT = 'demo-ct-003';
/** A high-risk hip patient without a CT: higher 10-year hip risk, no vertebral fracture. */
const HIP_PATIENT = 'demo-a-022';
const COORDINATOR = 'Practitioner/demo-fls-coordinator';
const FRACTURE = /(moderate|severe) \(grade [23]\) (T1[12]|L[1-4]) compression fracture, not in the problem list/;

let whole: WholeService;
let browser: Browser;
let base = '';

before(async () => {
  whole = await startWholeService(process.env["CT_TEST_MODEL_DIR"] ? { MODEL_CT_DIR: process.env["CT_TEST_MODEL_DIR"] } : {});
  base = whole.base;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await whole?.close();
});

interface AssessmentBody {
  assessment: Assessment & { ct?: CtAssessmentView | null };
  fhir: { riskAssessment: RiskAssessment & { id: string }; device: { resourceType: string; id?: string } };
}

async function assess(patient: string): Promise<AssessmentBody> {
  const res = await fetch(`${base}/api/assessments`, { method: 'POST', headers: { Authorization: `Bearer ${await whole.token()}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ patient }) });
  assert.ok(res.ok, `assessment of ${patient}: ${res.status} ${await res.clone().text()}`);
  return (await res.json()) as AssessmentBody;
}

async function noHorizontalOverflow(target: Page | Frame, what: string): Promise<void> {
  const m = await target.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: document.documentElement.clientWidth }));
  assert.ok(m.scroll <= m.view, `${what}: ${m.scroll} px wide in a ${m.view} px viewport`);
}

async function axeClean(target: Page | Frame, what: string): Promise<void> {
  assert.deepEqual(seriousViolations(await runAxe(target)), [], `${what}: axe-core serious/critical violations`);
}

describe(`CT demo patient ${CT_PATIENT}: card, app panel with overlays, FLS worklist`, () => {
  let ct: CtAssessmentView;

  test('the service assesses the CT: a grade ≥ 2 fracture, attenuation measured, overlays drawn', async () => {
    const body = await assess(CT_PATIENT);
    assert.ok(body.assessment.ct, `no CT in the assessment (mode ${body.assessment.mode}; warnings ${body.assessment.warnings.join(' | ')})`);
    ct = body.assessment.ct;
    assert.ok(ct.worstGrade >= 2 && ct.imminentRisk, `worst grade ${ct.worstGrade} at ${ct.worstLevel}`);
    assert.ok(ct.attenuation, 'attenuation measured');
    assert.ok(ct.overlays, 'overlays drawn');
    assert.equal(ct.inProblemList, false);
  });

  for (const width of [1280, 420]) {
    test(`${width} px: the patient-view card says what the CT showed; the app's CT panel shows both overlays; axe clean`, async () => {
      const { context, page, problems } = await newPage(browser, { width, height: 900 });
      try {
        await page.goto(`${base}/sandbox/ehr/patients/${CT_PATIENT}`);
        await page.waitForSelector('body[data-patient-view="done"]', { timeout: 120_000 });
        const card = await page.waitForSelector('.cds__cards[data-hook="patient-view"] article.cds-card');
        const text = (await card.textContent())!;
        assert.match(text, /(L1|T12|L2) attenuation \d+ HU \((osteoporosis likely at or below 110 HU|between 110 and 160 HU|osteoporosis unlikely above 160 HU)/, text);
        assert.match(text, FRACTURE, text);
        assert.match(text, /10-year hip [\d.]+% \(95% interval [\d.]+–[\d.]+%\)/);
        const labels = await card.$$eval('button[data-action="accept"]', (bs) => bs.map((b) => b.textContent ?? ''));
        assert.ok(labels.some((l) => /Refer to fracture liaison service/.test(l)), labels.join(' | '));
        assert.ok(labels.some((l) => /to the problem list \(provisional, check the images\)/.test(l)), labels.join(' | '));
        await screenshot(page, `ct-ehr-card-${width}`, false);
        await axeClean(page, `chart ${width}`);

        await page.click('.cds__cards[data-hook="patient-view"] article.cds-card button[data-action="launch"]');
        const frameHandle = await page.waitForSelector('#app-panel iframe');
        await page.waitForFunction(() => /\/app\/index\.html/.test((document.querySelector('#app-panel iframe') as HTMLIFrameElement).contentWindow?.location.href ?? ''), undefined, { timeout: 60_000 });
        const frame = (await frameHandle.contentFrame())!;
        await frame.waitForSelector('[data-testid="ct-findings"]', { timeout: 60_000 });
        await frame.waitForFunction(() => ['ct-sagittal', 'ct-axial'].every((id) => {
          const img = document.getElementById(id) as HTMLImageElement | null;
          return !!img && img.complete && img.naturalWidth > 0;
        }), undefined, { timeout: 60_000 });
        const imgs = await frame.$$eval('.ct-figure img', (els) => els.map((e) => ({ id: e.id, w: (e as HTMLImageElement).naturalWidth, h: (e as HTMLImageElement).naturalHeight, alt: e.getAttribute('alt') ?? '' })));
        assert.deepEqual(imgs.map((i) => i.id), ['ct-sagittal', 'ct-axial']);
        assert.equal(imgs[0]!.w, ct.overlays!.sagittal.width);
        assert.equal(imgs[1]!.w, ct.overlays!.axial.width);
        for (const i of imgs) assert.ok(i.alt.length > 30, `alt text of ${i.id}: "${i.alt}"`);
        assert.match(imgs[0]!.alt, new RegExp(`${ct.worstLevel} graded (moderate|severe)`));

        const hu = (await frame.textContent('[data-testid="ct-hu"]'))!;
        assert.match(hu, new RegExp(`${ct.attenuation!.level} ${Math.round(ct.attenuation!.adjustedHu)} HU`));
        assert.match(hu, /T-score estimate from CT: −?\d\.\d \(−?\d\.\d to −?\d\.\d\)/);
        const fxRow = (await frame.textContent(`[data-testid="ct-levels"] tr[data-level="${ct.worstLevel}"]`))!;
        assert.match(fxRow, /(Moderate|Severe) \(grade [23]\)/);
        const todo = (await frame.textContent('[data-testid="ct-todo"]'))!;
        assert.match(todo, /Refer to the fracture liaison service/);
        assert.match(todo, /problem list/);
        assert.equal(await frame.textContent('.summary .recommendation-title strong'), 'Refer to the fracture liaison service');
        await noHorizontalOverflow(frame, `app ${width}`);
        await noHorizontalOverflow(page, `chart with app ${width}`);
        await screenshot(page, `ct-app-${width}`, false);
        // The panel itself, whole (the app scrolls inside the chart's frame).
        await (await frame.$('[data-testid="ct-findings"]'))!.screenshot({ path: join(ARTIFACTS_DIR, `ct-app-panel-${width}.png`) });
        await frame.$eval('.ct-todo', (el) => el.scrollIntoView({ block: 'end' }));
        await screenshot(page, `ct-app-todo-${width}`, false);
        await axeClean(frame, `app ${width}`);
        assert.deepEqual(problems, [], problems.join('\n'));
      } finally {
        await context.close();
      }
    });
  }

  test('ordering a CT (order-select) shows the existing risk and says the CT will be assessed when reported', async () => {
    const { context, page, problems } = await newPage(browser, { width: 1280, height: 900 });
    try {
      await page.goto(`${base}/sandbox/ehr/patients/${CT_PATIENT}`);
      await page.waitForSelector('body[data-patient-view="done"]', { timeout: 120_000 });
      await page.click('button[data-action="open-order"]');
      await page.check('label.choice:has-text("CT Abdomen and Pelvis W contrast IV") input');
      await page.waitForFunction(() => {
        const c = document.querySelector('.order__cards');
        return !!c && c.getAttribute('aria-busy') === 'false' && c.children.length > 0;
      }, undefined, { timeout: 60_000 });
      const text = (await page.textContent('.order__cards article.cds-card'))!;
      assert.match(text, /10-year hip [\d.]+% \(95% interval [\d.]+–[\d.]+%\)/, text);
      assert.match(text, /The CT being ordered will be assessed for bone density and vertebral fractures when reported\./, text);
      await screenshot(page, 'ct-ehr-order-card', false);
      await axeClean(page, 'CT order card');
      assert.deepEqual(problems, [], problems.join('\n'));
    } finally {
      await context.close();
    }
  });

  test('the FLS worklist ranks the CT fracture patient first, with the imminent-risk flag and its reason', async () => {
    const token = await whole.token('system/*.cruds');
    const fhir = new HttpFhirClient({ baseUrl: `${base}/sandbox/fhir`, timeoutMs: 30_000, token });
    const put = async (r: { resourceType: string; id?: string }): Promise<void> => {
      const res = await fetch(`${base}/sandbox/fhir/${r.resourceType}/${r.id}`, { method: 'PUT', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(r) });
      assert.ok(res.ok, `PUT ${r.resourceType}/${r.id}: ${res.status}`);
    };
    const ctBody = await assess(CT_PATIENT);
    const hipBody = await assess(HIP_PATIENT);
    for (const b of [ctBody, hipBody]) {
      await put(b.fhir.device);
      await put(b.fhir.riskAssessment);
    }
    const triaged = await maybeCreateTriageTask(fhir, { patientId: CT_PATIENT, riskAssessment: ctBody.fhir.riskAssessment, assessment: ctBody.assessment });
    assert.equal(triaged.reason, 'created');
    await put(buildTriageTask(HIP_PATIENT, hipBody.fhir.riskAssessment, new Date()));

    for (const width of [1280, 420]) {
      const { context, page } = await newPage(browser, { width, height: 900 });
      try {
        await standaloneLaunch(page, base, { query: 'mode=worklist', user: COORDINATOR });
        await page.waitForSelector('.wl-table, .wl-cards', { timeout: 60_000 });
        const res = await fetch(`${base}/api/fls/worklist`, { headers: { Authorization: `Bearer ${await appAccessToken(page)}` } });
        const list = (await res.json()) as WorklistResponse;
        // First of the whole list, whatever the 10-year risks (the urgent Task ranks before every routine one).
        assert.equal(list.items[0]?.patientId, CT_PATIENT, list.items.map((i) => `${i.patientId} ${i.hip10.estimate}`).join(', '));
        const order = list.items.map((i) => i.patientId).filter((p) => p === CT_PATIENT || p === HIP_PATIENT);
        assert.deepEqual(order, [CT_PATIENT, HIP_PATIENT]);
        const item = list.items.find((i) => i.patientId === CT_PATIENT)!;
        const reason = `vertebral fracture on CT, grade ${ct.worstGrade} at ${ct.worstLevel}`;
        assert.equal(item.imminentReason, reason);
        const rows = await page.$$eval('[data-task]', (els) => els.map((e) => ({ task: e.getAttribute('data-task'), text: e.textContent ?? '' })));
        const ctRow = rows.findIndex((r) => r.task === item.taskId);
        const hipRow = rows.findIndex((r) => r.text.includes('DEMOA0022'));
        assert.ok(ctRow >= 0 && (hipRow < 0 || ctRow < hipRow), `CT row ${ctRow}, hip row ${hipRow}`);
        assert.match(rows[ctRow]!.text, new RegExp(`Imminent risk: ${reason}`));
        if (width === 1280) assert.match((await page.textContent('.wl-table caption'))!, /sorted by risk \(descending\), vertebral fractures on CT listed first\./);
        await screenshot(page, `ct-worklist-${width}`, false);
        await axeClean(page, `worklist ${width}`);
      } finally {
        await context.close();
      }
    }
  });

  test('accepting the problem-list suggestion creates a provisional problem-list Condition (nothing before the click)', async () => {
    const conditions = async (): Promise<Condition[]> => {
      const res = await fetch(`${base}/sandbox/fhir/Condition?subject=Patient/${CT_PATIENT}&code=${encodeURIComponent(`${VERTEBRAL_FRACTURE_CODE.system}|${VERTEBRAL_FRACTURE_CODE.code}`)}`, { headers: { Authorization: `Bearer ${await whole.token()}` } });
      assert.ok(res.ok, `Condition search: ${res.status}`);
      return ((await res.json()) as Bundle<Condition>).entry?.map((e) => e.resource!).filter((c) => c.subject?.reference === `Patient/${CT_PATIENT}`) ?? [];
    };
    assert.deepEqual(await conditions(), [], 'the service wrote no problem-list entry by itself');
    const { context, page, problems } = await newPage(browser, { width: 1280, height: 900 });
    try {
      await page.goto(`${base}/sandbox/ehr/patients/${CT_PATIENT}`);
      await page.waitForSelector('body[data-patient-view="done"]', { timeout: 120_000 });
      const card = '.cds__cards[data-hook="patient-view"] article.cds-card';
      await page.click(`${card} button[data-action="accept"]:has-text("problem list")`);
      const status = await page.waitForSelector(`${card} .cds-card__status[data-created*="Condition/"]`, { timeout: 30_000 });
      assert.match((await status.textContent())!, /Problem-list entry added: (Moderate|Severe) \(grade [23]\) (T1[12]|L[1-4]) compression fracture \(seen on CT, to confirm\) \(provisional until you confirm it\)/);
      await page.waitForFunction(() => /\(provisional\)/.test(document.getElementById('problems')?.textContent ?? ''), undefined, { timeout: 30_000 });
      await screenshot(page, 'ct-ehr-problem-list', false);
      const [c] = await conditions();
      assert.equal(c?.verificationStatus?.coding?.[0]?.code, 'provisional');
      assert.equal(c?.category?.[0]?.coding?.[0]?.code, 'problem-list-item');
      assert.equal(c?.bodySite?.[0]?.text, `${ct.worstLevel} vertebra`);
      assert.deepEqual(problems, [], problems.join('\n'));
    } finally {
      await context.close();
    }
  });
});
