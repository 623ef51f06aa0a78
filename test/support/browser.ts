/**
 * Browser helpers for tests and benchmarks: Debian's Chromium driven by playwright-core (never a downloaded
 * browser), screenshots under `test/artifacts/` (git-ignored) and axe-core accessibility checks.
 *
 * Chromium is started with the flags that keep it off the network (`--disable-background-networking` and friends):
 * a test must not depend on, or leak to, anything outside the loopback servers it starts.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { REPO_ROOT } from '../../server/config.ts';

/** Where Debian's `chromium` package installs the browser (`.ci/setup` installs it). Override with `CHROMIUM_PATH`. */
export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** Folder for screenshots and other test artefacts (git-ignored). */
export const ARTIFACTS_DIR = join(REPO_ROOT, 'test/artifacts');

/** Chromium flags: no background traffic, no first-run UI, works as root in a container. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-sync',
  '--metrics-recording-only',
  '--no-first-run',
  '--no-default-browser-check',
  '--no-sandbox',
  '--disable-dev-shm-usage',
];

/** Starts headless Chromium. Close it with `browser.close()` in an `after` hook. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS] });
}

/**
 * A new context at the given viewport (default 1280×900) that records console errors (CSP violations included),
 * page errors and HTTP responses ≥ 400 in `problems` (tests that expect an error response filter it out).
 */
export async function newPage(browser: Browser, viewport = { width: 1280, height: 900 }): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    // Failed loads are reported below with their URL.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`http ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  return { context, page, problems };
}

/** Saves a full-page screenshot as `test/artifacts/<name>.png` and returns its path. */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}

/** One axe-core violation, trimmed to what a test message needs. */
export interface AxeViolation {
  id: string;
  impact: 'minor' | 'moderate' | 'serious' | 'critical' | null;
  help: string;
  nodes: string[];
}

/**
 * Runs axe-core (from node_modules, injected into the page — no network) on the page or on the frame given, and
 * returns its violations. Tests assert that none is `serious` or `critical`.
 */
export async function runAxe(target: Page | import('playwright-core').Frame): Promise<AxeViolation[]> {
  const source = readFileSync(join(REPO_ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');
  await target.evaluate(source);
  return target.evaluate(async () => {
    const w = window as unknown as { axe: { run: (ctx: Document, opts: object) => Promise<{ violations: { id: string; impact: AxeViolation['impact']; help: string; nodes: { target: unknown[] }[] }[] }> } };
    const r = await w.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => JSON.stringify(n.target)) }));
  });
}

/** The serious and critical violations only, formatted for an assertion message. */
export function seriousViolations(violations: readonly AxeViolation[]): string[] {
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(', ')}`);
}

/**
 * True when a canvas has drawn content: more than `minFraction` of its pixels differ from its top-left pixel
 * (a blank or single-colour canvas fails).
 */
export async function canvasIsDrawn(target: Page | import('playwright-core').Frame, selector: string, minFraction = 0.01): Promise<{ drawn: boolean; fraction: number; width: number; height: number }> {
  return target.$eval(selector, (el, min) => {
    const c = el as HTMLCanvasElement;
    const ctx = c.getContext('2d');
    if (!ctx || c.width === 0 || c.height === 0) return { drawn: false, fraction: 0, width: c.width, height: c.height };
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let differ = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2] || d[i + 3] !== d[3]) differ++;
    }
    const fraction = differ / (d.length / 4);
    return { drawn: fraction > min, fraction, width: c.width, height: c.height };
  }, minFraction);
}
