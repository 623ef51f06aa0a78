/**
 * The demo EHR end to end in a real browser (Debian Chromium via playwright-core) against the real service started
 * in-process (`startService`, sandbox FHIR + SMART authorization server + DICOMweb + hip-xray-v1 + CDS Hooks):
 * open the demo EHR → open the high-risk patient demo-a-022 → order a hip X-ray (order-select) → the card shows
 * risk and interval → launch the app from the card's SMART link (iframe, EHR launch with appContext) → curve and
 * heatmap drawn, numbers equal the API's → accept the FLS referral in the app → the ServiceRequest exists in the
 * sandbox FHIR server. Then: sign the order (order-sign), accept and dismiss card suggestions (feedback recorded),
 * and the OOD patient demo-b-001 (warning, no image-derived number). At 1280 and 420 px: the order screen shows
 * exactly one fracture-risk card (the order card replaces the sidebar's; signing adds none), and a patient with an
 * active FLS referral gets a card that says since when and suggests no second one. Screenshots:
 * test/artifacts/ehr-*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Frame, Page } from 'playwright-core';
import { flsReferral } from '../../server/orders/service-requests.ts';
import { canvasIsDrawn, launchBrowser, newPage, runAxe, screenshot, seriousViolations } from '../support/browser.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

interface Risk {
  years: number;
  risk: number;
  lower: number | null;
  upper: number | null;
}
interface ApiAssessment {
  assessment: { id: string; mode: string; outcomes: Record<'hip' | 'mof', { risks: Risk[]; clinicalOnly: { risks: Risk[] } }>; warnings: string[] };
}

let whole: WholeService;
let browser: Browser;
let base = '';

before(async () => {
  whole = await startWholeService();
  base = whole.base;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await whole?.close();
});

async function fhirGet<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}/sandbox/fhir/${path}`, { headers: { Authorization: `Bearer ${await whole.token()}`, Accept: 'application/fhir+json' } });
  return { status: res.status, body: (await res.json()) as T };
}

/** The SMART access token fhirclient keeps in the app frame's sessionStorage. */
async function frameToken(frame: Frame): Promise<string> {
  return frame.evaluate(() => {
    const key = JSON.parse(sessionStorage.getItem('SMART_KEY') ?? 'null') as string | null;
    const state = key ? (JSON.parse(sessionStorage.getItem(key) ?? '{}') as { tokenResponse?: { access_token?: string } }) : {};
    if (!state.tokenResponse?.access_token) throw new Error('no SMART access token in the app frame');
    return state.tokenResponse.access_token;
  });
}

async function apiAssessment(token: string, patient: string): Promise<ApiAssessment> {
  const res = await fetch(`${base}/api/assessments`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ patient }) });
  assert.ok(res.ok, `API answered ${res.status}`);
  return (await res.json()) as ApiAssessment;
}

const numbers = (text: string): number[] => [...text.matchAll(/\d+(?:\.\d+)?/g)].map((m) => Number(m[0]));
/** `shown` (percent, as rounded for display: 1 decimal below 10 %, else whole) is `fraction`. */
const shows = (shown: number, fraction: number): boolean => Math.abs(shown - fraction * 100) <= (fraction * 100 < 10 ? 0.05 : 0.5) + 1e-9;
const tenYear = (risks: Risk[]): Risk => risks.find((r) => r.years === 10)!;

async function openChart(page: Page, patientId: string): Promise<void> {
  await page.goto(`${base}/sandbox/ehr/patients/${patientId}`);
  await page.waitForSelector('body[data-patient-view="done"]', { timeout: 60_000 });
}

/** Opens the order panel and picks a study by its ValueSet display; resolves when the order-select cards are in. */
async function orderStudy(page: Page, display: string): Promise<void> {
  await page.click('button[data-action="open-order"]');
  await page.check(`label.choice:has-text("${display}") input`);
  await page.waitForFunction(() => {
    const c = document.querySelector('.order__cards');
    return !!c && c.getAttribute('aria-busy') === 'false' && c.children.length > 0;
  }, undefined, { timeout: 60_000 });
}

describe('demo EHR: high-risk patient demo-a-022, order → card → SMART app → FLS referral', () => {
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let cardHip: number[] = [];

  before(async () => {
    ({ context, page, problems } = await newPage(browser, { width: 1024, height: 768 }));
  });
  after(() => context.close());

  test('GET / points to the demo EHR; the patient list searches the sandbox FHIR server', async () => {
    await page.goto(`${base}/`);
    await page.click('text=Open the demo EHR');
    await page.waitForSelector('table.patients');
    assert.equal(new URL(page.url()).pathname, '/sandbox/ehr/');
    await screenshot(page, 'ehr-patient-list', false);
    await page.fill('#q', 'DEMOA0022');
    await Promise.all([page.waitForURL(/q=DEMOA0022/), page.click('form.search button[type="submit"]')]);
    const rows = await page.$$('table.patients tbody tr');
    assert.equal(rows.length, 1);
    assert.deepEqual(seriousViolations(await runAxe(page)), []);
    await Promise.all([page.waitForURL(/\/patients\/demo-a-022$/), page.click('a[data-patient="demo-a-022"]')]);
  });

  test('the chart shows demographics, problems, imaging; patient-view ran', async () => {
    await page.waitForSelector('body[data-patient-view="done"]', { timeout: 60_000 });
    assert.match((await page.textContent('.banner'))!, /DEMOA0022/);
    assert.match((await page.textContent('#imaging'))!, /XR hip left AP/);
    assert.ok((await page.$$('#problems tbody tr')).length >= 1);
    await screenshot(page, 'ehr-chart-demo-a-022', false);
    assert.deepEqual(seriousViolations(await runAxe(page)), []);
  });

  test('ordering a hip X-ray fires order-select; the card shows the 10-year hip risk and its 95 % interval', async () => {
    await orderStudy(page, 'XR Hip - left Single view');
    const card = await page.waitForSelector('.order__cards article.cds-card');
    const summary = (await card.$eval('.cds-card__summary', (e) => e.textContent))!;
    assert.match(summary, /10-year hip [\d.]+% \(95% interval [\d.]+–[\d.]+%\)/, summary);
    cardHip = numbers(summary.replace(/^.*10-year hip /, '').replace('95%', ''));
    assert.match((await card.textContent())!, /Research use — trained on synthetic data/);
    assert.ok(await card.$('button[data-action="launch"]'), 'the card has a SMART link');
    assert.ok(await card.$('button[data-action="accept"]'), 'the card has suggestions');
    assert.equal(await card.$eval('form.cds-card__override', (f) => getComputedStyle(f).display), 'none', 'the override picker stays closed until "Dismiss"');
    await screenshot(page, 'ehr-order-select-card', false);
    await screenshot(page, 'ehr-order-select-card-full');
    assert.deepEqual(seriousViolations(await runAxe(page)), []);
  });

  test('the card’s SMART link opens the app in the chart (EHR launch); curve and heatmap drawn; numbers equal the API’s and the card’s', async () => {
    await page.click('.order__cards article.cds-card button[data-action="launch"]');
    await page.waitForSelector('#app-panel:not([hidden])');
    const src = (await page.getAttribute('#app-panel iframe', 'src'))!;
    assert.match(src, /\/app\/launch\.html\?iss=.*%2Fsandbox%2Ffhir&launch=/);
    const frameHandle = await page.waitForSelector('#app-panel iframe');
    let frame = (await frameHandle.contentFrame())!;
    await page.waitForFunction(() => /\/app\/index\.html/.test((document.querySelector('#app-panel iframe') as HTMLIFrameElement).contentWindow?.location.href ?? ''), undefined, { timeout: 60_000 });
    frame = (await frameHandle.contentFrame())!;
    await frame.waitForSelector('[data-testid="risk10-hip"]', { timeout: 60_000 });
    await frame.waitForFunction(() => {
      const c = document.getElementById('heatmap-canvas') as HTMLCanvasElement | null;
      return !!c && c.width > 1;
    }, undefined, { timeout: 60_000 });
    const curve = await canvasIsDrawn(frame, '#survival-canvas');
    assert.ok(curve.drawn, `curve ${JSON.stringify(curve)}`);
    const heat = await canvasIsDrawn(frame, '#heatmap-canvas', 0.2);
    assert.ok(heat.drawn, `heatmap ${JSON.stringify(heat)}`);

    const api = await apiAssessment(await frameToken(frame), 'demo-a-022');
    assert.equal(api.assessment.mode, 'image-and-clinical');
    for (const o of ['hip', 'mof'] as const) {
      const r10 = tenYear(api.assessment.outcomes[o].risks);
      const [shown] = numbers((await frame.textContent(`[data-testid="risk10-${o}"]`))!);
      assert.ok(shows(shown!, r10.risk), `${o}: app ${shown} vs API ${r10.risk}`);
      const [lo, hi] = numbers((await frame.textContent(`[data-testid="interval10-${o}"]`))!.replace(/95 ?%/, ''));
      assert.ok(shows(lo!, r10.lower!) && shows(hi!, r10.upper!), `${o} interval: app ${lo}–${hi} vs API ${r10.lower}–${r10.upper}`);
    }
    const hip = tenYear(api.assessment.outcomes.hip.risks);
    const [cRisk, cLo, cHi] = cardHip;
    assert.ok(shows(cRisk!, hip.risk) && shows(cLo!, hip.lower!) && shows(cHi!, hip.upper!), `card ${cardHip.join(' ')} vs API ${hip.risk} ${hip.lower} ${hip.upper}`);
    await screenshot(page, 'ehr-app-in-chart', false);
  });

  test('accepting the FLS referral in the app creates the ServiceRequest in the sandbox FHIR server', async () => {
    const frame = (await (await page.$('#app-panel iframe'))!.contentFrame())!;
    await frame.click('text=Refer to fracture liaison service…');
    await frame.waitForSelector('dialog[open]');
    await frame.click('dialog button[type="submit"]');
    const id = (await (await frame.waitForSelector('[data-testid="created-fls"]', { timeout: 30_000 })).textContent())!;
    const sr = await fhirGet<{ resourceType: string; subject?: { reference?: string }; code?: { coding?: { code?: string }[] } }>(`ServiceRequest/${id}`);
    assert.equal(sr.status, 200);
    assert.equal(sr.body.subject?.reference, 'Patient/demo-a-022');
    assert.ok(sr.body.code?.coding?.some((c) => c.code === 'fls-referral'));
    await screenshot(page, 'ehr-app-fls-referred', false);
    // Closing the app refreshes the chart's orders, as an EHR does.
    await page.click('button[data-action="close-app"]');
    await page.waitForFunction((sid) => !!document.querySelector(`#orders tr[data-order="${sid}"]`), id, { timeout: 30_000 });
  });

  test('signing fires order-sign; the risk the order screen already showed is not shown again, and the order is placed as an active ServiceRequest', async () => {
    await page.click('button[data-action="sign"]');
    await page.waitForSelector('button[data-action="place"]:not([hidden]), #orders .flash', { timeout: 60_000 });
    assert.equal(await page.$('button[data-action="place"]:not([hidden])'), null, 'order-sign answered no second copy of the order-select card');
    const flash = await page.waitForSelector('#orders .flash', { timeout: 30_000 });
    assert.match((await flash.textContent())!, /^Order placed: XR Hip/, 'the order in words, not its FHIR id');
    const ref = /ServiceRequest\/([A-Za-z0-9\-.]+)/.exec((await flash.getAttribute('data-created'))!)![1]!;
    const sr = await fhirGet<{ status: string; code?: { coding?: { code?: string }[] } }>(`ServiceRequest/${ref}`);
    assert.equal(sr.body.status, 'active');
    assert.ok(sr.body.code?.coding?.some((c) => c.code === '26401-0'));
  });

  test('accepting a card suggestion in the EHR creates it and sends feedback; dismissing with a reason sends an override', async () => {
    // demo-a-022 now has the FLS referral made above (its card suggests nothing more): another high-risk patient.
    await openChart(page, 'demo-a-035');
    // An operations endpoint: the sandbox's system-level token is an operator credential.
    const summary = async (): Promise<{ overall: { accepted: number; overridden: number } }> =>
      (await (await fetch(`${base}/api/feedback/summary`, { headers: { Authorization: `Bearer ${await whole.token()}` } })).json()) as { overall: { accepted: number; overridden: number } };
    const before = await summary();
    const card = await page.waitForSelector('.cds__cards article.cds-card', { timeout: 60_000 });
    const suggestion = (await card.$('button[data-action="accept"]'))!;
    await suggestion.click();
    await page.waitForFunction(() => !!document.querySelector('.cds__cards .cds-card__status')?.getAttribute('data-created'), undefined, { timeout: 30_000 });
    const statusText = (await card.$eval('.cds-card__status', (e) => e.textContent))!;
    assert.match(statusText, /created \(draft, to sign\)/);
    assert.doesNotMatch(statusText, /ServiceRequest\/|Patient\//, 'no FHIR ids in what the user reads');
    const ref = /ServiceRequest\/([A-Za-z0-9-]+)/.exec((await card.$eval('.cds-card__status', (e) => e.getAttribute('data-created')))!)![1]!;
    assert.equal((await fhirGet(`ServiceRequest/${ref}`)).status, 200);
    await (await card.$('button[data-action="dismiss"]'))!.click();
    await page.selectOption('.cds__cards form.cds-card__override select', { index: 0 });
    const reasons = await page.$$eval('.cds__cards form.cds-card__override option', (os) => os.map((o) => o.textContent ?? ''));
    assert.ok(reasons.includes('Does not apply to this patient'), reasons.join(' | '));
    assert.ok(reasons.every((r) => !/PC CDS|Recipient disagrees/.test(r)), 'override reasons read as plain sentences');
    await screenshot(page, 'ehr-card-dismiss-reason', false);
    await page.click('.cds__cards form.cds-card__override button[type="submit"]');
    await page.waitForSelector('.cds__dismissed');
    const afterSummary = await summary();
    assert.equal(afterSummary.overall.accepted, before.overall.accepted + 1);
    assert.equal(afterSummary.overall.overridden, before.overall.overridden + 1);
    assert.deepEqual(problems.filter((p) => !/favicon/.test(p)), []);
  });
});

/** The fracture-risk cards a person sees on the page (visible ones only). */
async function visibleRiskCards(page: Page): Promise<{ where: string; summary: string }[]> {
  return page.$$eval('article.cds-card[data-topic*="fracture-risk-10y"]', (as) => as.filter((a) => (a as HTMLElement).offsetParent !== null).map((a) => ({
    where: a.closest('.order__cards') ? 'order' : a.closest('.cds__cards') ? 'sidebar' : 'other',
    summary: a.querySelector('.cds-card__summary')?.textContent ?? '',
  })));
}

for (const width of [1280, 420]) {
  describe(`demo EHR at ${width} px: one fracture-risk card per screen; existing FLS referral`, () => {
    let context: BrowserContext;
    let page: Page;
    let problems: string[];
    before(async () => {
      ({ context, page, problems } = await newPage(browser, { width, height: 900 }));
    });
    after(() => context.close());

    test('the order screen shows exactly one fracture-risk card (the order card replaces the sidebar card); signing adds none', async () => {
      await openChart(page, 'demo-a-009');
      const onChart = await visibleRiskCards(page);
      assert.equal(onChart.length, 1, JSON.stringify(onChart));
      assert.equal(onChart[0]!.where, 'sidebar');
      await orderStudy(page, 'XR Hip - left Single view');
      await page.waitForSelector('.order__cards article.cds-card');
      const onOrder = await visibleRiskCards(page);
      assert.deepEqual(onOrder.map((c) => c.where), ['order'], JSON.stringify(onOrder));
      assert.match((await page.textContent('.cds__cards'))!, /shown with the order/);
      await (await page.$('.order__cards article.cds-card'))!.scrollIntoViewIfNeeded();
      await screenshot(page, `ehr-order-one-card-${width}`, false);
      assert.deepEqual(seriousViolations(await runAxe(page)), []);
      await page.click('button[data-action="sign"]');
      await page.waitForSelector('#orders .flash', { timeout: 60_000 });
      const after = await visibleRiskCards(page);
      assert.deepEqual(after.map((c) => c.where), ['sidebar'], 'after placing the order the chart card is back, alone');
    });

    test('a patient with an active FLS referral: the card does not suggest another and says since when', async () => {
      const patient = 'demo-a-017';
      if (width === 1280) {
        const referral = flsReferral({ patientId: patient, status: 'active', authoredOn: '2026-11-12T09:30:00Z' });
        const res = await fetch(`${base}/sandbox/fhir/ServiceRequest`, { method: 'POST', headers: { Authorization: `Bearer ${await whole.token('system/*.cruds')}`, 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(referral) });
        assert.equal(res.status, 201, await res.text());
      }
      await openChart(page, patient);
      const card = await page.waitForSelector('.cds__cards article.cds-card', { timeout: 60_000 });
      const text = (await card.textContent())!;
      assert.match(text, /FLS referral active since 12 Nov 2026/);
      assert.equal(await card.$('button[data-action="accept"]:has-text("fracture liaison")'), null, 'no second referral suggested');
      assert.equal(await card.getAttribute('class'), 'cds-card cds-card--info');
      assert.doesNotMatch((await page.textContent('main, aside'))!, /Patient\/demo-/, 'no raw patient reference on screen');
      await card.scrollIntoViewIfNeeded();
      await screenshot(page, `ehr-card-fls-active-${width}`, false);
      await orderStudy(page, 'XR Hip - left Single view');
      const order = await page.waitForSelector('.order__cards article.cds-card');
      assert.match((await order.textContent())!, /FLS referral active since 12 Nov 2026/);
      assert.equal(await order.$('button[data-action="accept"]:has-text("fracture liaison")'), null);
      assert.equal((await visibleRiskCards(page)).length, 1);
      assert.deepEqual(problems.filter((p) => !/favicon/.test(p)), []);
    });
  });
}

describe('demo EHR: out-of-distribution patient demo-b-001', () => {
  test('the card warns and gives no image-derived number; the app shows the OOD warning without a heatmap', async () => {
    const { context, page } = await newPage(browser, { width: 1024, height: 768 });
    try {
      await openChart(page, 'demo-b-001');
      // The first order-select may answer within its deadline with "analysis in progress"; a real EHR's user picks
      // again. Pick until the assessed (OOD) card is served from the service's cache.
      let text = '';
      for (let attempt = 0; attempt < 10 && !/unlike the images/i.test(text); attempt++) {
        if (attempt > 0) {
          await page.click('button[data-action="cancel-order"]');
          await new Promise((r) => setTimeout(r, 1000));
        }
        await orderStudy(page, 'XR Hip - left Single view');
        text = (await page.textContent('.order__cards'))!;
      }
      assert.match(text, /unlike the images the model was trained on/);
      const summary = (await page.textContent('.order__cards .cds-card__summary'))!;
      assert.match(summary, /clinical factors only/);
      assert.doesNotMatch(summary, /95% interval/, 'no image-derived interval');
      await screenshot(page, 'ehr-ood-card', false);

      await page.click('button[data-action="open-app"]');
      const frameHandle = await page.waitForSelector('#app-panel iframe');
      await page.waitForFunction(() => /\/app\/index\.html/.test((document.querySelector('#app-panel iframe') as HTMLIFrameElement).contentWindow?.location.href ?? ''), undefined, { timeout: 60_000 });
      const frame = (await frameHandle.contentFrame())!;
      await frame.waitForSelector('[data-testid="risk10-hip"]', { timeout: 60_000 });
      assert.match((await frame.textContent('.warnings'))!, /Outside the model.s training distribution/);
      assert.match((await frame.textContent('[data-testid="interval10-hip"]'))!, /no interval/);
      assert.equal(await frame.$('#heatmap-canvas'), null);
      const api = await apiAssessment(await frameToken(frame), 'demo-b-001');
      assert.equal(api.assessment.mode, 'clinical-only');
      const [shown] = numbers((await frame.textContent('[data-testid="risk10-hip"]'))!);
      assert.ok(shows(shown!, tenYear(api.assessment.outcomes.hip.clinicalOnly.risks).risk));
      await screenshot(page, 'ehr-ood-app', false);
    } finally {
      await context.close();
    }
  });
});
