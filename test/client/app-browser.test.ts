/**
 * The SMART app in a real browser (Debian Chromium via playwright-core) against the real service (`npm start` as a
 * child process: sandbox FHIR + SMART authorization server, DICOMweb, hip-xray-v1): a standalone launch with PKCE
 * through `/sandbox/auth`, then the app at 1280 px and in a 420 px EHR side panel —
 * - summary first: the risk, its meaning against the guideline threshold, the caveat and the tier's action, all in
 *   the first 600 px at 420 × 800, nothing wider than the panel;
 * - the tier's order is the one prominent button (FLS referral for high, DXA for moderate); a low-risk patient gets
 *   no prominent referral or DXA button;
 * - creating a duplicate FLS referral asks first, naming the patient;
 * - history shows a past assessment (one seeded on the FHIR server) and what changed;
 * - the print summary carries name, birth date and MRN; the patient view has a 100-person icon array;
 * - numbers equal the API's, canvases drawn, no serious/critical axe-core violations, no CSP violation;
 * plus the OOD fail-safe, the error screens and the static serving. Screenshots go to test/artifacts/app-*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CodeableConcept, Patient, RiskAssessment, ServiceRequest } from '@medplum/fhirtypes';
import type { Browser, Page } from 'playwright-core';
import { canvasIsDrawn, launchBrowser, newPage, runAxe, screenshot, seriousViolations } from '../support/browser.ts';
import { startAppService, type AppService } from '../support/app-service.ts';
import { appAccessToken, sandboxSystemToken, standaloneLaunch } from '../support/smart-launch.ts';
import type { AssessmentResponse } from '../../client/src/types.ts';
import { formatInterval, formatRisk, inHundred } from '../../server/risk/numbers.ts';
import { formatDate } from '../../client/src/format.ts';
import { EXT } from '../../server/risk/fhir-output.ts';

let svc: AppService;
let browser: Browser;

/** The date of the past assessment seeded for demo-a-022. */
const PAST_DATE = '2026-10-12T09:30:00Z';

async function fhir<T>(path: string, init: { method?: string; body?: unknown; scope?: string } = {}): Promise<T> {
  const token = await sandboxSystemToken(svc.base, init.scope ?? 'system/*.rs');
  const res = await fetch(`${svc.base}/sandbox/fhir/${path}`, {
    method: init.method ?? 'GET',
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/fhir+json', ...(init.body ? { 'Content-Type': 'application/fhir+json' } : {}) },
    ...(init.body ? { body: JSON.stringify(init.body) } : {}),
  });
  assert.ok(res.ok, `FHIR ${init.method ?? 'GET'} ${path}: ${res.status} ${await res.clone().text()}`);
  return (await res.json()) as T;
}

/** A past RiskAssessment of the service for demo-a-022, as server/risk/fhir-output.ts writes them (10-year part). */
function pastAssessment(): RiskAssessment {
  const pred = (outcome: CodeableConcept, p: number, lo: number, hi: number) => ({
    outcome,
    probabilityDecimal: p,
    whenRange: { low: { value: 0, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' }, high: { value: 10, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' } },
    extension: [{ url: EXT.interval, extension: [{ url: 'level', valueDecimal: 0.95 }, { url: 'lower', valueDecimal: lo }, { url: 'upper', valueDecimal: hi }] }],
    qualitativeRisk: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/risk-probability', code: 'moderate', display: 'moderate' }] },
  });
  return {
    resourceType: 'RiskAssessment',
    id: 'past-demo-a-022',
    identifier: [{ system: 'urn:frcds:assessment', value: 'past-demo-a-022' }],
    status: 'final',
    subject: { reference: 'Patient/demo-a-022' },
    occurrenceDateTime: PAST_DATE,
    extension: [{ url: EXT.mode, valueCode: 'image-and-clinical' }],
    prediction: [
      pred({ coding: [{ system: 'http://snomed.info/sct', code: '5913000', display: 'Fracture of neck of femur' }], text: 'Hip fracture' }, 0.041, 0.01, 0.2),
      pred({ coding: [{ system: 'urn:frcds:outcome', code: 'mof', display: 'Major osteoporotic fracture (hip, wrist, spine, shoulder)' }], text: 'Major osteoporotic fracture' }, 0.12, 0.05, 0.3),
    ],
  };
}

before(async () => {
  svc = await startAppService();
  browser = await launchBrowser();
  await fhir('RiskAssessment/past-demo-a-022', { method: 'PUT', body: pastAssessment(), scope: 'system/*.cruds' });
});

after(async () => {
  await browser?.close();
  await svc?.stop();
});

async function apiAssessment(token: string, patient: string): Promise<AssessmentResponse> {
  const res = await fetch(`${svc.base}/api/assessments`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ patient }) });
  assert.ok(res.ok, `API answered ${res.status}`);
  return (await res.json()) as AssessmentResponse;
}

async function launchPatient(patientId: string, viewport: { width: number; height: number }): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
  const { context, page, problems } = await newPage(browser, viewport);
  await standaloneLaunch(page, svc.base, { patientId });
  await page.waitForSelector('[data-testid="risk10-hip"]', { timeout: 60_000 });
  return { page, problems, close: () => context.close() };
}

/** Bottom edge (px from the top of the page) of an element. */
const bottomOf = (page: Page, selector: string): Promise<number> => page.$eval(selector, (e) => e.getBoundingClientRect().bottom + window.scrollY);

/** Elements wider than the viewport or reaching past its right edge (the panel must not scroll sideways). */
const overflowing = (page: Page): Promise<string[]> =>
  page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    const out: string[] = [];
    for (const el of Array.from(document.querySelectorAll('main *'))) {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.right > w + 0.5 && getComputedStyle(el).position !== 'fixed') out.push(`${el.tagName.toLowerCase()}.${(el as HTMLElement).className} right=${Math.round(r.right)}`);
    }
    return out.slice(0, 5);
  });

describe('SMART app in a 420 px EHR side panel', () => {
  test('high risk (demo-a-022): summary and primary action above the fold; nothing wider than the panel', async () => {
    const { page, problems, close } = await launchPatient('demo-a-022', { width: 420, height: 800 });
    try {
      await page.waitForSelector('[data-testid="history-change"]');
      assert.ok((await bottomOf(page, '[data-testid="risk10-hip"]')) < 400, 'the risk number near the top');
      assert.ok((await bottomOf(page, '[data-testid="meaning"]')) <= 600);
      const action = await bottomOf(page, '.summary .btn-primary[data-order="fls"]');
      assert.ok(action <= 600, `primary action ends at ${action} px`);
      assert.deepEqual(await overflowing(page), []);
      assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 420);
      assert.deepEqual(seriousViolations(await runAxe(page)), []);
      assert.deepEqual(problems, []);
      await screenshot(page, 'app-demo-a-022-420', false);
      await screenshot(page, 'app-demo-a-022-420-full');
    } finally {
      await close();
    }
  });

  test('moderate risk (demo-a-003): a DXA order is the prominent action, the referral waits behind "Other orders"', async () => {
    const { page, close } = await launchPatient('demo-a-003', { width: 420, height: 800 });
    try {
      const api = await apiAssessment(await appAccessToken(page), 'demo-a-003');
      assert.equal(api.assessment.decision.action, 'order-dxa', 'demo-a-003 is a moderate-risk patient');
      assert.equal(await page.$$eval('main .btn-primary', (b) => b.map((x) => x.getAttribute('data-order')).join(',')), 'dxa');
      assert.ok((await bottomOf(page, '.summary [data-order="dxa"]')) <= 600);
      assert.equal(await page.isVisible('[data-order="fls"]'), false);
      assert.match((await page.textContent('[data-testid="recommendation"]'))!, /Measure bone density \(DXA\)/);
      assert.deepEqual(await overflowing(page), []);
      assert.deepEqual(seriousViolations(await runAxe(page)), []);
      await screenshot(page, 'app-demo-a-003-420-moderate', false);
    } finally {
      await close();
    }
  });

  test('low risk (demo-a-025): no prominent referral or DXA button; the orders wait behind a closed section', async () => {
    const { page, close } = await launchPatient('demo-a-025', { width: 420, height: 800 });
    try {
      const api = await apiAssessment(await appAccessToken(page), 'demo-a-025');
      assert.equal(api.assessment.decision.action, 'none', 'demo-a-025 is a low-risk patient');
      assert.equal(await page.getAttribute('.summary', 'data-action'), 'none');
      assert.equal(await page.$('main .btn-primary'), null, 'no prominent order button');
      assert.equal(await page.isVisible('[data-order="fls"]'), false);
      assert.equal(await page.isVisible('[data-order="dxa"]'), false);
      assert.match((await page.textContent('[data-testid="recommendation"]'))!, /No scan or treatment suggested now/);
      assert.ok((await bottomOf(page, '[data-testid="recommendation"]')) <= 600);
      assert.deepEqual(await overflowing(page), []);
      await page.waitForSelector('#heatmap-canvas[data-drawn="true"]', { timeout: 30_000 });
      assert.match((await page.textContent('.heatmap'))!, /risk is low.*do not point to a problem/);
      assert.deepEqual(seriousViolations(await runAxe(page)), []);
      await screenshot(page, 'app-demo-a-025-420-low', false);
    } finally {
      await close();
    }
  });
});

describe('SMART app at 1280 px: a high-risk patient with an image (demo-a-022)', () => {
  let page: Page;
  let problems: string[];
  let close: () => Promise<void>;
  let api: AssessmentResponse;
  before(async () => {
    ({ page, problems, close } = await launchPatient('demo-a-022', { width: 1280, height: 900 }));
    await page.waitForSelector('#heatmap-canvas[data-drawn="true"]', { timeout: 30_000 });
    api = await apiAssessment(await appAccessToken(page), 'demo-a-022');
  });
  after(() => close());

  test('the survival curve and the heatmap are drawn; factors in plain words', async () => {
    const curve = await canvasIsDrawn(page, '#survival-canvas');
    assert.ok(curve.drawn, `curve canvas ${JSON.stringify(curve)}`);
    const heat = await canvasIsDrawn(page, '#heatmap-canvas', 0.2);
    assert.ok(heat.drawn, `heatmap canvas ${JSON.stringify(heat)}`);
    assert.equal(heat.width, 512);
    const factors = (await page.textContent('.factors'))!;
    assert.match(factors, /Age \d+— raises the risk the most/);
    assert.doesNotMatch(factors, /log hazard|×\d|QFracture group/i);
    assert.match(factors, /highlighted by the heatmap/);
    assert.match((await page.textContent('.heatmap'))!, /moved the estimate.*not a diagnosis/);
    await page.waitForSelector('[data-testid="history-change"]');
    await screenshot(page, 'app-demo-a-022-1280', false);
    await screenshot(page, 'app-demo-a-022-full');
  });

  test('summary: the numbers, the meaning, the caveat and the guideline are the API’s, in the shared format', async () => {
    const a = api.assessment;
    assert.equal(a.mode, 'image-and-clinical');
    for (const o of ['hip', 'mof'] as const) {
      const r10 = a.outcomes[o].risks.find((r) => r.years === 10)!;
      assert.equal((await page.textContent(`[data-testid="risk10-${o}"]`))!.trim(), formatRisk(r10.risk));
      assert.equal((await page.textContent(`[data-testid="interval10-${o}"]`))!.trim(), `95% interval ${formatInterval(r10.lower! * 100, r10.upper! * 100)}`);
    }
    assert.match((await page.textContent('.summary .tier'))!, new RegExp(a.tier.tier, 'i'));
    assert.equal((await page.textContent('[data-testid="meaning"]'))!.trim(), a.decision.meaning);
    if (a.caveat) assert.match((await page.textContent('[data-testid="caveat"]'))!, new RegExp(a.caveat.slice(0, 40).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.equal(await page.getAttribute('[data-testid="recommendation"] a', 'href'), a.decision.guideline.url);
    // The tier's action is the one prominent button.
    assert.equal(a.decision.action, 'refer-fls', 'demo-a-022 is a high-risk patient');
    assert.equal(await page.isVisible('.summary .btn-primary[data-order="fls"]'), true);
    assert.equal(await page.isVisible('[data-order="dxa"]'), false, 'DXA waits behind "Other orders"');
    // Every warning of the assessment is listed in the notes.
    for (const w of a.warnings) assert.ok((await page.textContent('#notes'))!.includes(w), `note shown: ${w}`);
  });

  test('history: the past assessment on the FHIR server and what changed since', async () => {
    const change = (await page.textContent('[data-testid="history-change"]'))!;
    const hip = api.assessment.outcomes.hip.risks.find((r) => r.years === 10)!.risk;
    assert.match(change, new RegExp(`^Hip 10-year 4\\.1% → ${formatRisk(hip).replace('.', '\\.')}`));
    assert.match(change, /tier moderate → high since 12 Oct 2026$/);
    const rows = await page.$$eval('.history-table tbody tr', (trs) => trs.map((t) => t.textContent ?? ''));
    assert.equal(rows.length, 2);
    assert.match(rows[1]!, /12 Oct 2026.*4\.1%.*12%.*Moderate/);
    assert.match((await page.getAttribute('.trend svg', 'aria-label'))!, /12 Oct 2026 hip 4\.1%/);
  });

  test('the research-use notice and the model facts are shown', async () => {
    assert.match((await page.textContent('.app-bar'))!, /Research use — trained on synthetic data/);
    await page.waitForSelector('.facts .metric');
    assert.match((await page.textContent('.facts'))!, /hip-xray-v1 v1\.0\.0[\s\S]*C-index 0\.\d\d/);
    const card = await page.getAttribute('.facts a', 'href');
    const res = await fetch(new URL(card!, `${svc.base}/app/index.html`));
    assert.equal(res.status, 200);
  });

  test('heatmap controls change the picture (overlay off, window narrowed)', async () => {
    const pixels = () => page.$eval('#heatmap-canvas', (c) => Array.from((c as HTMLCanvasElement).getContext('2d')!.getImageData(256, 200, 1, 1).data).join(','));
    // Preact runs the redraw effect after the next paint, so wait for the canvas to change rather than reading it at once.
    const pixelsChangeFrom = async (previous: string): Promise<string> => {
      await page.waitForFunction(
        (prev) => Array.from((document.querySelector('#heatmap-canvas') as HTMLCanvasElement).getContext('2d')!.getImageData(256, 200, 1, 1).data).join(',') !== prev,
        previous,
        { timeout: 5000 },
      );
      return pixels();
    };
    const before = await pixels();
    await page.uncheck('.heatmap input[type="checkbox"]');
    const noOverlay = await pixelsChangeFrom(before); // fails (time-out) if turning the overlay off changes nothing
    await page.check('.heatmap input[type="checkbox"]');
    assert.equal(await pixelsChangeFrom(noOverlay), before, 'turning the overlay back on restores the picture');
    await page.uncheck('.heatmap input[type="checkbox"]');
    await page.$eval('.heatmap input[type="range"][min="16"]', (el) => {
      const input = el as HTMLInputElement;
      input.value = '32';
      input.dispatchEvent(new Event('input', { bubbles: true }));
    });
    const extremesFraction = (): Promise<number> =>
      page.$eval('#heatmap-canvas', (c) => {
        const d = (c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, 512, 512).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] === 0 || d[i] === 255) n++;
        return n / (d.length / 4);
      });
    let extremes = await extremesFraction();
    for (let i = 0; i < 50 && extremes <= 0.8; i++) {
      await new Promise((r) => setTimeout(r, 100));
      extremes = await extremesFraction();
    }
    assert.ok(extremes > 0.8, `narrow window: ${extremes} of pixels at black or white`);
    await page.click('text=Reset view');
  });

  test('no serious or critical accessibility violations (axe-core); no CSP violation or page error', async () => {
    assert.deepEqual(seriousViolations(await runAxe(page)), []);
    assert.deepEqual(problems, []);
  });

  test('print summary: name, birth date and MRN from the Patient resource, the explanation, next steps, the notice', async () => {
    const patient = await fhir<Patient>('Patient/demo-a-022');
    const name = `${patient.name![0]!.given!.join(' ')} ${patient.name![0]!.family}`;
    const mrn = patient.identifier!.find((i) => i.type?.coding?.some((c) => c.code === 'MR'))!.value!;
    await page.emulateMedia({ media: 'print' });
    try {
      assert.equal(await page.isVisible('main#main'), false, 'the screen view is not printed');
      assert.equal(await page.isVisible('[data-testid="patient-summary-print"]'), true);
      const sel = (id: string) => `[data-testid="patient-summary-print"] [data-testid="${id}"]`;
      assert.equal(await page.textContent(sel('ps-name')), name);
      assert.equal(await page.textContent(sel('ps-birth')), formatDate(patient.birthDate!));
      assert.equal(await page.textContent(sel('ps-mrn')), mrn);
      const mof = api.assessment.outcomes.mof.risks.find((r) => r.years === 10)!.risk;
      const text = (await page.textContent('[data-testid="patient-summary-print"]'))!;
      assert.ok(text.includes(`${inHundred(mof).replace(/^a/, 'A')} people like you`), text.slice(0, 400));
      assert.match(text, /Next steps.*fracture liaison service/s);
      assert.match(text, /Research use — trained on synthetic data/);
      assert.doesNotMatch(text, /Patient\/demo-a-022|×\d/);
      await screenshot(page, 'app-print-summary');
    } finally {
      await page.emulateMedia({ media: 'screen' });
    }
  });

  test('patient view: plain words and an accessible icon array of 100 people', async () => {
    await page.click('.app-bar button:has-text("Patient view")');
    await page.waitForSelector('[data-testid="patient-summary-screen"]');
    assert.equal(await page.$$eval('[data-testid="patient-summary-screen"] [data-testid="icon-array"] g.icon', (g) => g.length), 100);
    assert.equal(await page.getAttribute('[data-testid="patient-summary-screen"] [data-testid="icon-array"]', 'role'), 'img');
    const alt = (await page.textContent('[data-testid="patient-summary-screen"] [data-testid="icon-array"] title'))!;
    const mof = Math.round(api.assessment.outcomes.mof.risks.find((r) => r.years === 10)!.risk * 100);
    assert.match(alt, new RegExp(`about ${mof} of them break a bone`));
    assert.equal(await page.$$eval('[data-testid="patient-summary-screen"] g.icon-mof, [data-testid="patient-summary-screen"] g.icon-hip', (g) => g.length), mof);
    assert.deepEqual(seriousViolations(await runAxe(page)), []);
    await screenshot(page, 'app-patient-view');
    await page.click('.app-bar button:has-text("Clinician view")');
    await page.waitForSelector('.summary');
  });

  test('refer to FLS: the patient by name in the dialog; a second referral asks first and is not created on cancel', async () => {
    const count = async (): Promise<number> => ((await fhir<{ entry?: { resource: ServiceRequest }[] }>('ServiceRequest?subject=Patient/demo-a-022&_count=100')).entry ?? []).filter((e) => e.resource.status === 'active' && e.resource.meta?.profile?.some((p) => p.endsWith('frcds-fls-referral'))).length;
    const before = await count();
    if (before === 0) {
      await page.click('text=Refer to fracture liaison service…');
      await page.waitForSelector('dialog[open]');
      const dialog = (await page.textContent('dialog'))!;
      assert.match(dialog, /Wei Synthetic-Khan, born 26 Feb 1943, MRN DEMOA0022/);
      assert.doesNotMatch(dialog, /Patient\/demo-a-022/);
      assert.equal(await page.$('dialog [data-testid="duplicate-question"]'), null, 'no question before the first referral');
      await screenshot(page, 'app-confirm-dialog', false);
      await page.click('dialog button[type="submit"]');
      const id = await (await page.waitForSelector('[data-testid="created-fls"]', { timeout: 15_000 })).textContent();
      const sr = await fhir<ServiceRequest>(`ServiceRequest/${id}`);
      assert.equal(sr.subject?.reference, 'Patient/demo-a-022');
      assert.ok(sr.meta?.profile?.some((p) => p.endsWith('frcds-fls-referral')));
      assert.equal(await count(), 1);
    }
    // The summary now shows the referral in place, and asks before another one.
    await page.waitForSelector('[data-testid="care-status"]');
    assert.match((await page.textContent('[data-testid="care-status"]'))!, /FLS referral active since \d{1,2} [A-Z][a-z]{2} \d{4}/);
    await page.click('text=Refer to fracture liaison service…');
    await page.waitForSelector('dialog[open] [data-testid="duplicate-question"]');
    const q = (await page.textContent('[data-testid="duplicate-question"]'))!;
    assert.match(q, /^An FLS referral for Wei Synthetic-Khan is already active since \d{1,2} [A-Z][a-z]{2} \d{4}\. Create another\?$/);
    assert.equal((await page.textContent('dialog button[type="submit"]'))!.trim(), 'Create another');
    await screenshot(page, 'app-duplicate-question', false);
    await page.click('dialog button:has-text("Cancel")');
    await page.waitForSelector('dialog[open]', { state: 'detached', timeout: 5000 }).catch(() => undefined);
    assert.equal(await page.isVisible('dialog'), false);
    assert.equal(await count(), Math.max(before, 1), 'no second referral after Cancel');
  });
});

describe('SMART app: out-of-distribution image (demo-b-001)', () => {
  test('the caveat in the summary, every note listed, no image-derived number, no heatmap said plainly', async () => {
    const { page, close } = await launchPatient('demo-b-001', { width: 420, height: 800 });
    try {
      const api = await apiAssessment(await appAccessToken(page), 'demo-b-001');
      assert.equal(api.assessment.mode, 'clinical-only');
      assert.ok(api.assessment.caveat, 'an OOD result has a caveat');
      assert.ok((await page.textContent('[data-testid="caveat"]'))!.includes(api.assessment.caveat!), 'the assessment’s caveat');
      assert.equal(await page.getAttribute('[data-testid="caveat"]', 'class'), 'caveat caveat-critical', 'a withheld image is a critical caveat');
      assert.ok((await bottomOf(page, '[data-testid="caveat"]')) <= 600);
      assert.match((await page.textContent('#notes'))!, /Outside the model's training distribution/);
      assert.match((await page.textContent('[data-testid="interval10-hip"]'))!, /no interval/);
      assert.equal(await page.$('#heatmap-canvas'), null);
      assert.match((await page.textContent('.heatmap'))!, /No heatmap: the radiograph was not used/);
      assert.match((await page.textContent('.factors'))!, /The radiograph was not used/);
      assert.doesNotMatch((await page.textContent('main'))!, /shown by the heatmap|highlighted by the heatmap/);
      assert.match((await page.textContent('.summary'))!, /Clinical factors only/);
      const hip = api.assessment.outcomes.hip.clinicalOnly.risks.find((r) => r.years === 10)!.risk;
      assert.equal((await page.textContent('[data-testid="risk10-hip"]'))!.trim(), formatRisk(hip));
      assert.ok((await canvasIsDrawn(page, '#survival-canvas')).drawn);
      assert.deepEqual(seriousViolations(await runAxe(page)), []);
      await screenshot(page, 'app-demo-b-001-ood', false);
    } finally {
      await close();
    }
  });
});

describe('SMART app: error screens', () => {
  test('opening index.html without a launch shows the launch error', async () => {
    const { context, page } = await newPage(browser, { width: 1024, height: 768 });
    try {
      await page.goto(`${svc.base}/app/index.html`);
      await page.waitForSelector('.error-screen');
      assert.match((await page.textContent('h1'))!, /could not be launched/);
      assert.deepEqual(seriousViolations(await runAxe(page)), []);
      await screenshot(page, 'app-error-launch', false);
    } finally {
      await context.close();
    }
  });

  test('a token the service rejects shows "Access refused" (401), not a number', async () => {
    const { context, page } = await newPage(browser, { width: 1024, height: 768 });
    try {
      // The fault: the browser sends a forged token to the real service (the API must refuse it).
      await page.route('**/api/assessments**', (route) => route.continue({ headers: { ...route.request().headers(), authorization: 'Bearer forged.token.value' } }));
      await standaloneLaunch(page, svc.base, { patientId: 'demo-a-003' });
      await page.waitForSelector('.error-screen', { timeout: 30_000 });
      assert.match((await page.textContent('h1'))!, /Access refused/);
      assert.equal(await page.$('[data-testid="risk10-hip"]'), null);
      await screenshot(page, 'app-error-401', false);
    } finally {
      await context.close();
    }
  });

  test('the patient routes refuse another patient than the token’s (403)', async () => {
    const { page, close } = await launchPatient('demo-a-003', { width: 1024, height: 768 });
    try {
      const token = await appAccessToken(page);
      for (const path of ['assessments', 'care-status']) {
        const own = await fetch(`${svc.base}/api/patients/demo-a-003/${path}`, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(own.status, 200, path);
        const other = await fetch(`${svc.base}/api/patients/demo-a-022/${path}`, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(other.status, 403, path);
      }
      assert.equal((await fetch(`${svc.base}/api/patients/demo-a-003/assessments`)).status, 401, 'no token, no history');
    } finally {
      await close();
    }
  });
});

describe('/app static serving', () => {
  test('CSP: frame-ancestors and connect-src limited; no-referrer; bundle within budget', async () => {
    const res = await fetch(`${svc.base}/app/index.html`);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'self'/);
    assert.match(csp, new RegExp(`connect-src 'self' ${svc.base.replace(/[.]/g, '\\.')}(;|$)`));
    assert.match(csp, /script-src 'self';/);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    const js = await fetch(`${svc.base}/app/app.js`);
    assert.equal(js.status, 200);
    assert.ok(!/https?:\/\/(fonts|cdn|unpkg|jsdelivr)/.test(await js.text()), 'no CDN URLs in the bundle');
  });
});
