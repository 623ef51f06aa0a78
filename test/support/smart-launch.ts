/**
 * Drives the sandbox SMART authorization server's standalone launch in a browser (issue 7): open the app's
 * `launch.html`, sign in as a demo user and pick the patient on `/sandbox/auth/pick-patient`, and wait for the app
 * to be back on `index.html` with a token. Shared by the app's browser test, bench/app.ts and the end-to-end suite.
 */
import type { Page } from 'playwright-core';

export interface StandaloneLaunchOptions {
  /** Patient to pick (patient-level launch); omit for the user-level FLS worklist launch. */
  patientId?: string;
  /** `Practitioner/…` demo user to sign in as (default: the picker's default). */
  user?: string;
  /** Extra query for launch.html, e.g. `mode=worklist`. */
  query?: string;
  timeoutMs?: number;
}

/** Performs the launch; resolves when the app page (`/app/index.html`) has loaded after the redirect. */
export async function standaloneLaunch(page: Page, base: string, opts: StandaloneLaunchOptions = {}): Promise<void> {
  const timeout = opts.timeoutMs ?? 30_000;
  await page.goto(`${base}/app/launch.html${opts.query ? `?${opts.query}` : ''}`);
  await page.waitForURL(/\/sandbox\/auth\//, { timeout });
  if (opts.user) await page.check(`input[name="user"][value="${opts.user}"]`);
  if (opts.patientId) await page.check(`input[name="patient"][value="${opts.patientId}"]`);
  await Promise.all([page.waitForURL(/\/app\/index\.html/, { timeout }), page.click('button[name="decision"][value="allow"]')]);
}

/** The SMART access token fhirclient keeps in the app's sessionStorage (to call the API as the app does). */
export async function appAccessToken(page: Page): Promise<string> {
  return page.evaluate(() => {
    const key = JSON.parse(sessionStorage.getItem('SMART_KEY') ?? 'null') as string | null;
    const state = key ? (JSON.parse(sessionStorage.getItem(key) ?? '{}') as { tokenResponse?: { access_token?: string } }) : {};
    const token = state.tokenResponse?.access_token;
    if (!token) throw new Error('no SMART access token in sessionStorage');
    return token;
  });
}

/**
 * A system-level access token of the sandbox's developer client `demo-backend` (client_credentials; its
 * sandbox-only secret is read from smart-config/smart-clients.json) — to check from a test what the app wrote.
 */
export async function sandboxSystemToken(base: string, scope = 'system/*.rs'): Promise<string> {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { REPO_ROOT } = await import('../../server/config.ts');
  const file = JSON.parse(readFileSync(join(REPO_ROOT, 'smart-config/smart-clients.json'), 'utf8')) as { clients: { clientId: string; clientSecret?: string }[] };
  const secret = file.clients.find((c) => c.clientId === 'demo-backend')?.clientSecret;
  if (!secret) throw new Error('smart-config/smart-clients.json has no demo-backend client');
  const res = await fetch(`${base}/sandbox/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${Buffer.from(`demo-backend:${secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString(),
  });
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}
