/**
 * The SMART app in a real browser (Debian Chromium via playwright-core) against the real service (`npm start` as a
 * child process: sandbox FHIR + SMART authorization server, DICOMweb, hip-xray-v1): a standalone launch with PKCE
 * through `/sandbox/auth`, then the app at 1024×768 — curve and heatmap canvases drawn, the numbers on screen equal
 * the API's, no serious/critical axe-core violations, no CSP violation — the OOD fail-safe, the error screens and
 * the FLS worklist launch. Screenshots go to test/artifacts/app-*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { canvasIsDrawn, launchBrowser, newPage, runAxe, screenshot, seriousViolations } from '../support/browser.ts';
import { startAppService, type AppService } from '../support/app-service.ts';
import { appAccessToken, sandboxSystemToken, standaloneLaunch } from '../support/smart-launch.ts';
import type { AssessmentResponse } from '../../client/src/types.ts';

let svc: AppService;
let browser: Browser;

before(async () => {
  svc = await startAppService();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await svc?.stop();
});

/** The number in a percentage text such as "36 %" or "2.1–100 %". */
const numbers = (text: string): number[] => [...text.matchAll(/\d+(?:\.\d+)?/g)].map((m) => Number(m[0]));
/** True when `shown` is `value` (a fraction) rounded as the app rounds: 1 decimal below 10 %, else none. */
const shows = (shown: number, fraction: number): boolean => Math.abs(shown - fraction * 100) <= (fraction * 100 < 10 ? 0.05 : 0.5) + 1e-9;

async function apiAssessment(token: string, patient: string): Promise<AssessmentResponse> {
  const res = await fetch(`${svc.base}/api/assessments`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ patient }) });
  assert.ok(res.ok, `API answered ${res.status}`);
  return (await res.json()) as AssessmentResponse;
}

async function launchPatient(patientId: string): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
  const { context, page, problems } = await newPage(browser, { width: 1024, height: 768 });
  await standaloneLaunch(page, svc.base, { patientId });
  await page.waitForSelector('[data-testid="risk10-hip"]', { timeout: 30_000 });
  return { page, problems, close: () => context.close() };
}

describe('SMART app: standalone launch of a high-risk patient with an image (demo-a-022)', () => {
  let page: Page;
  let problems: string[];
  let close: () => Promise<void>;
  before(async () => {
    ({ page, problems, close } = await launchPatient('demo-a-022'));
    await page.waitForSelector('#heatmap-canvas[data-drawn="true"]', { timeout: 30_000 });
  });
  after(() => close());

  test('the survival curve and the heatmap are drawn (canvases not blank)', async () => {
    const curve = await canvasIsDrawn(page, '#survival-canvas');
    assert.ok(curve.drawn, `curve canvas ${JSON.stringify(curve)}`);
    const heat = await canvasIsDrawn(page, '#heatmap-canvas', 0.2);
    assert.ok(heat.drawn, `heatmap canvas ${JSON.stringify(heat)}`);
    assert.equal(heat.width, 512);
    const factors = await canvasIsDrawn(page, '#factors-canvas');
    assert.ok(factors.drawn);
    await screenshot(page, 'app-demo-a-022-1024x768', false);
    await screenshot(page, 'app-demo-a-022-full');
  });

  test('the numbers on screen equal the API’s (same token, same patient)', async () => {
    const api = await apiAssessment(await appAccessToken(page), 'demo-a-022');
    assert.equal(api.assessment.mode, 'image-and-clinical');
    for (const o of ['hip', 'mof'] as const) {
      const r10 = api.assessment.outcomes[o].risks.find((r) => r.years === 10)!;
      const [shown] = numbers(await page.textContent(`[data-testid="risk10-${o}"]`) ?? '');
      assert.ok(shows(shown!, r10.risk), `${o}: screen ${shown} vs API ${r10.risk}`);
      const [lo, hi] = numbers((await page.textContent(`[data-testid="interval10-${o}"]`))!.replace('95 %', ''));
      assert.ok(shows(lo!, r10.lower!) && shows(hi!, r10.upper!), `${o} interval: screen ${lo}–${hi} vs API ${r10.lower}–${r10.upper}`);
    }
    const tier = await page.textContent('.summary .tier');
    assert.match(tier ?? '', new RegExp(api.assessment.tier.tier, 'i'));
    // Every warning of the assessment is on screen.
    for (const w of api.assessment.warnings) assert.ok((await page.textContent('.warnings'))!.includes(w), `warning shown: ${w}`);
  });

  test('the research-use notice and the model facts are shown', async () => {
    assert.match((await page.textContent('.app-bar'))!, /Research use — trained on synthetic data/);
    await page.waitForSelector('.facts .metric');
    assert.match((await page.textContent('.facts'))!, /hip-xray-v1 v1\.0\.0[\s\S]*C-index 0\.\d\d/);
    const card = await page.getAttribute('.facts a', 'href');
    const res = await fetch(new URL(card!, `${svc.base}/app/index.html`));
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<h1[^>]*>.*hip-xray-v1|Model card/i);
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
    // A narrow window (width 32) pushes most grey levels to black or white.
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
    // Poll for the redraw (up to 5 s); the assertion reports the fraction finally reached.
    let extremes = await extremesFraction();
    for (let i = 0; i < 50 && extremes <= 0.8; i++) {
      await new Promise((r) => setTimeout(r, 100));
      extremes = await extremesFraction();
    }
    assert.ok(extremes > 0.8, `narrow window: ${extremes} of pixels at black or white`);
    await page.click('text=Reset view');
  });

  test('no serious or critical accessibility violations (axe-core); no CSP violation or page error', async () => {
    const v = await runAxe(page);
    assert.deepEqual(seriousViolations(v), []);
    assert.deepEqual(problems, []);
  });

  test('refer to FLS: confirm dialog, then the ServiceRequest exists on the FHIR server', async () => {
    await page.click('text=Refer to fracture liaison service…');
    await page.waitForSelector('dialog[open]');
    await screenshot(page, 'app-confirm-dialog', false);
    assert.match((await page.textContent('dialog'))!, /Patient\/demo-a-022/);
    await page.click('dialog button[type="submit"]');
    const id = (await page.waitForSelector('[data-testid="created-fls"]', { timeout: 15_000 })).textContent();
    // The app's token may only create ServiceRequests (patient/ServiceRequest.c): read it back as the backend.
    const token = await sandboxSystemToken(svc.base);
    const res = await fetch(`${svc.base}/sandbox/fhir/ServiceRequest/${await id}`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const sr = (await res.json()) as { subject?: { reference?: string }; meta?: { profile?: string[] } };
    assert.equal(sr.subject?.reference, 'Patient/demo-a-022');
    assert.ok(sr.meta?.profile?.some((p) => p.endsWith('frcds-fls-referral')));
  });
});

describe('SMART app: out-of-distribution image (demo-b-001)', () => {
  test('the OOD warning is at the top, no image-derived number, no heatmap', async () => {
    const { page, close } = await launchPatient('demo-b-001');
    try {
      const warn = await page.textContent('.warnings');
      assert.match(warn ?? '', /Outside the model's training distribution/);
      const box = await page.$eval('.warnings', (e) => e.getBoundingClientRect().top);
      assert.ok(box < 120, `warnings at the top (y=${box})`);
      assert.match((await page.textContent('[data-testid="interval10-hip"]'))!, /no interval/);
      assert.equal(await page.$('#heatmap-canvas'), null);
      assert.match((await page.textContent('.summary'))!, /Clinical factors only/);
      const api = await apiAssessment(await appAccessToken(page), 'demo-b-001');
      assert.equal(api.assessment.mode, 'clinical-only');
      const [shown] = numbers((await page.textContent('[data-testid="risk10-hip"]'))!);
      assert.ok(shows(shown!, api.assessment.outcomes.hip.clinicalOnly.risks.find((r) => r.years === 10)!.risk));
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
