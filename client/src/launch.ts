/**
 * `launch.html`: starts the SMART authorization (SMART App Launch 2.x: EHR launch with `iss` + `launch`,
 * standalone launch with `iss` alone, or the FLS worklist with `mode=worklist`) — PKCE S256 required. Without an
 * `iss`, the FHIR server the service is configured with (`config.json`) is used, so the bare URL is a standalone
 * launch of the demo.
 */
import FHIR from 'fhirclient/lib/entry/browser.js';
import { LaunchError, planLaunch } from './launch-options.ts';

/** sessionStorage key remembering the kind of launch across the authorization redirect. */
export const MODE_KEY = 'frcds:launch-mode';

function show(message: string): void {
  const el = document.getElementById('launch-status');
  if (el) {
    el.textContent = message;
    el.setAttribute('role', 'alert');
    el.className = 'launch-error';
  }
}

async function main(): Promise<void> {
  const query = new URLSearchParams(location.search);
  let defaultIss: string | null = null;
  if (!query.get('iss')) {
    try {
      const res = await fetch('config.json', { headers: { Accept: 'application/json' } });
      if (res.ok) defaultIss = ((await res.json()) as { fhirBaseUrl?: string }).fhirBaseUrl ?? null;
    } catch {
      defaultIss = null;
    }
  }
  const plan = planLaunch(query, defaultIss);
  sessionStorage.setItem(MODE_KEY, plan.mode);
  await FHIR.oauth2.authorize(plan.options);
}

main().catch((err: unknown) => {
  show(err instanceof LaunchError ? err.message : `The launch failed: ${(err as Error).message}`);
});
