/**
 * Steps shared by the interoperability suites (test/interop/*.test.ts): start one simulated foreign EHR and the
 * whole service configured for it, get the reference card from the project's own demo EHR, launch the SMART app in
 * Chromium from a card's SMART link through the foreign authorization server, get tokens over plain HTTP, and call
 * `/api/assessments` the way the app does (bearer token + `X-FHIR-Server` + `X-SMART-Patient`).
 */
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Card, HookResponse } from '../../server/cds/types.ts';
import { orderableStudies } from '../../server/sandbox/ehr/router.ts';
import { checkResponse } from '../cds/support.ts';
import { canvasIsDrawn, launchBrowser, newPage, screenshot } from '../support/browser.ts';
import { startForeignEhr, type EhrConvention, type ForeignEhr } from '../support/foreign-ehr/index.ts';
import { writeInteropServiceConfig, type InteropServiceConfig } from '../support/foreign-ehr/service-config.ts';
import { getNoFollow, pkce, postForm } from '../support/oauth.ts';
import { appAccessToken } from '../support/smart-launch.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

/** High-risk demo patient with a hip radiograph (the demo EHR path's patient). */
export const PATIENT = 'demo-a-022';
/** Another demo patient: a token for one must not reach the other. */
export const OTHER_PATIENT = 'demo-a-003';
/** The demo EHR's left-hip X-ray orderable (ValueSet imaging-orders). */
export const LOINC_HIP_XRAY = { system: 'http://loinc.org', code: '26401-0', display: 'XR Hip - left Single view' } as const;

export interface InteropRun {
  readonly ehr: ForeignEhr;
  readonly whole: WholeService;
  readonly base: string;
  readonly config: InteropServiceConfig;
  readonly browser: Browser;
  close(): Promise<void>;
}

/** Starts the EHR, writes the service's configuration for it, starts the service and Chromium. */
export async function startInterop(convention: EhrConvention, o: { siteMaps?: readonly Record<string, unknown>[] } = {}): Promise<InteropRun> {
  const ehr = await startForeignEhr(convention);
  const config = writeInteropServiceConfig([ehr], o);
  let whole: WholeService | undefined;
  try {
    whole = await startWholeService(config.env);
    ehr.connect(whole.base);
    const browser = await launchBrowser();
    const w = whole;
    return {
      ehr,
      whole: w,
      base: w.base,
      config,
      browser,
      close: async () => {
        await browser.close();
        await w.close();
        await ehr.close();
        config.cleanup();
      },
    };
  } catch (err) {
    await whole?.close();
    await ehr.close();
    config.cleanup();
    throw err;
  }
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&#x27;': "'" };
const unescape = (s: string): string => s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (m) => ENTITIES[m] ?? m);

/**
 * The card the project's own demo EHR shows for a left-hip X-ray order (LOINC 26401-0) of `patient`: its
 * order-select endpoint runs the real hook call (its own JWT, prefetch and token) and answers the cards as HTML.
 */
export async function demoEhrOrderSelectCard(base: string, patient: string): Promise<{ summary: string; indicator: string }> {
  const study = orderableStudies().findIndex((s) => s.system === LOINC_HIP_XRAY.system && s.code === LOINC_HIP_XRAY.code);
  assert.ok(study >= 0, 'the demo EHR can order LOINC 26401-0');
  const res = await fetch(`${base}/sandbox/ehr/api/patients/${patient}/order-select`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ study }) });
  assert.equal(res.status, 200, `demo EHR order-select answered ${res.status}`);
  const { html, cards } = (await res.json()) as { html: string; cards: number };
  assert.equal(cards, 1, `the demo EHR shows one card: ${html.slice(0, 300)}`);
  const indicator = /class="cds-card cds-card--(info|warning|critical)"/.exec(html)?.[1];
  const summary = /<h3 class="cds-card__summary"[^>]*>([^<]*)<\/h3>/.exec(html)?.[1];
  assert.ok(indicator && summary !== undefined, `card markup: ${html.slice(0, 300)}`);
  return { summary: unescape(summary), indicator };
}

/** The one card of a hook answer, checked against the CDS Hooks card rules (test/cds/support.ts `checkCard`). */
export function onlyCard(result: { status: number; body: unknown }, base: string): Card {
  assert.equal(result.status, 200, `hook answered ${result.status}: ${JSON.stringify(result.body).slice(0, 400)}`);
  const cards = checkResponse(result.body as HookResponse, base);
  assert.equal(cards.length, 1, `one card: ${JSON.stringify(result.body).slice(0, 400)}`);
  return cards[0]!;
}

/** What a clinician sees of a card, without the per-call ids (uuids, draft order references). */
export function cardFace(card: Card): Record<string, unknown> {
  return {
    summary: card.summary,
    indicator: card.indicator,
    detail: card.detail,
    source: card.source,
    suggestions: (card.suggestions ?? []).map((s) => s.label),
    links: (card.links ?? []).map((l) => ({ label: l.label, type: l.type, url: l.url })),
    overrideReasons: card.overrideReasons,
  };
}

/** The card's SMART link (to `/app/launch.html`, with an `appContext`). */
export function smartLink(card: Card, base: string): { url: string; appContext?: string } {
  const link = card.links?.find((l) => l.type === 'smart');
  assert.ok(link, 'the card has a SMART link');
  assert.equal(link.url, `${base}/app/launch.html`);
  assert.equal(typeof link.appContext, 'string');
  return { url: link.url, ...(link.appContext ? { appContext: link.appContext } : {}) };
}

export interface LaunchedApp {
  readonly context: BrowserContext;
  readonly page: Page;
  readonly problems: string[];
  /** The access token the app got from the foreign authorization server. */
  readonly token: string;
}

/**
 * Opens the card's SMART link as the EHR does (`launch.html?iss=<EHR FHIR base>&launch=<id>`), lets the app go
 * through the EHR's authorization server, and waits until the risk, the survival curve and the heatmap are drawn.
 * A failed launch or an error screen fails with what the app shows and the browser problems seen.
 */
export async function launchFromCard(run: InteropRun, card: Card, o: { tenant?: string; patient?: string; screenshotName: string }): Promise<LaunchedApp> {
  const { context, page, problems } = await newPage(run.browser, { width: 1280, height: 900 });
  const url = run.ehr.ehrLaunchUrl(smartLink(card, run.base), o.patient ?? PATIENT, o.tenant);
  await page.goto(url);
  const first = await page.waitForSelector('[data-testid="risk10-hip"], .error-screen, .launch-error', { timeout: 60_000 }).catch(() => null);
  const shown = first ? await first.evaluate((e) => (e.matches('[data-testid="risk10-hip"]') ? '' : (e.closest('main, body') ?? e).textContent ?? '')) : 'nothing within 60 s';
  if (shown !== '') {
    await screenshot(page, `${o.screenshotName}-failed`);
    assert.fail(`the app did not show the risk (at ${page.url()}): ${shown.slice(0, 500)}\nbrowser problems: ${problems.join('\n')}`);
  }
  assert.match(new URL(page.url()).pathname, /\/app\/index\.html$/);
  await page.waitForSelector('#heatmap-canvas[data-drawn="true"]', { timeout: 60_000 });
  const curve = await canvasIsDrawn(page, '#survival-canvas');
  assert.ok(curve.drawn, `survival curve drawn: ${JSON.stringify(curve)}`);
  const heat = await canvasIsDrawn(page, '#heatmap-canvas', 0.2);
  assert.ok(heat.drawn, `heatmap drawn: ${JSON.stringify(heat)}`);
  await screenshot(page, o.screenshotName, false);
  return { context, page, problems, token: await appAccessToken(page) };
}

/** `POST /api/assessments {patient}` as the app calls it. */
export async function apiAssessment(base: string, token: string, patient: string, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/api/assessments`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
    body: JSON.stringify({ patient }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** The API assessed (201 new, 200 from the service's cache). */
export function assertAssessed(r: { status: number; body: Record<string, unknown> }): void {
  assert.ok(r.status === 200 || r.status === 201, `expected an assessment, got ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
}

/** The headers the app adds for a foreign FHIR server (interface contract: `X-FHIR-Server`, `X-SMART-Patient`). */
export const foreignHeaders = (fhirBase: string, patient?: string): Record<string, string> => ({ 'X-FHIR-Server': fhirBase, ...(patient ? { 'X-SMART-Patient': patient } : {}) });

/**
 * An access token from the EHR's authorization server over plain HTTP, exactly as the app gets one: EHR launch id,
 * authorize (PKCE S256, `aud`) → code → token. Returns the token response.
 */
export async function tokenOverHttp(run: InteropRun, patient: string, tenant?: string): Promise<Record<string, unknown>> {
  const { ehr, base } = run;
  const redirectUri = `${base}/app/index.html`;
  const p = pkce();
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: 'fracture-risk-app',
    redirect_uri: redirectUri,
    // The app's request includes patient/RiskAssessment.rs: /api/assessments refuses a token without it.
    scope: 'launch openid fhirUser patient/Patient.rs patient/Observation.rs patient/ImagingStudy.rs patient/RiskAssessment.rs',
    aud: ehr.fhirBase(tenant),
    state: 'state-1',
    launch: ehr.registerLaunch(patient, undefined, tenant),
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
  });
  const auth = await getNoFollow(`${ehr.authBase(tenant)}/authorize?${q}`);
  assert.equal(auth.status, 302, auth.text);
  const code = auth.location?.searchParams.get('code');
  assert.ok(code, `authorize redirected with a code: ${auth.location?.toString()}`);
  const tok = await postForm(`${ehr.authBase(tenant)}/token`, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: 'fracture-risk-app', code_verifier: p.verifier });
  assert.equal(tok.status, 200, JSON.stringify(tok.body));
  assert.equal(tok.body['patient'], patient);
  return tok.body;
}
