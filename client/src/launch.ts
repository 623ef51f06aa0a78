/**
 * `launch.html`: starts the SMART authorization (SMART App Launch 2.x: EHR launch with `iss` + `launch`,
 * standalone launch with `iss` alone, or the FLS worklist with `mode=worklist`) — PKCE S256 required. Without an
 * `iss`, the FHIR server the service is configured with (`config.json`) is used, so the bare URL is a standalone
 * launch of the demo. Before anything leaves the page, the `iss` is checked against the servers the app may reach
 * (`config.json` `connectSrc`, the CSP's connect-src): a server the CSP would block gets a message naming it and
 * the setting to change, instead of fhirclient's bare "Failed to fetch the conformance statement".
 */
import FHIR from 'fhirclient/lib/entry/browser.js';
import { blockedConnectionMessage, connectAllowed, launchNotAllowedMessage } from './connect-policy.ts';
import { LaunchError, planLaunch } from './launch-options.ts';

/** sessionStorage key remembering the kind of launch across the authorization redirect. */
export const MODE_KEY = 'frcds:launch-mode';

/** What the launch page reads from `/app/config.json`. */
interface AppConfigJson {
  fhirBaseUrl?: string;
  connectSrc?: string[];
}

/** Set once the CSP blocked a connection: that explanation wins over the error the blocked request causes. */
let blocked: string | null = null;

function show(message: string): void {
  const el = document.getElementById('launch-status');
  if (el) {
    el.textContent = message;
    el.setAttribute('role', 'alert');
    el.className = 'launch-error';
  }
}

document.addEventListener('securitypolicyviolation', (e) => {
  const message = blockedConnectionMessage(e);
  if (!message) return;
  blocked = message;
  show(message);
});

async function readConfig(): Promise<AppConfigJson> {
  try {
    const res = await fetch('config.json', { headers: { Accept: 'application/json' } });
    return res.ok ? ((await res.json()) as AppConfigJson) : {};
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const query = new URLSearchParams(location.search);
  const config = await readConfig();
  const plan = planLaunch(query, config.fhirBaseUrl ?? null);
  // A service without `connectSrc` in config.json (older) is not checked here; the CSP event still explains.
  if (Array.isArray(config.connectSrc) && !connectAllowed(plan.iss, config.connectSrc, location.origin)) {
    throw new LaunchError(launchNotAllowedMessage(plan.iss));
  }
  sessionStorage.setItem(MODE_KEY, plan.mode);
  await FHIR.oauth2.authorize(plan.options);
}

main().catch((err: unknown) => {
  show(blocked ?? (err instanceof LaunchError ? err.message : `The launch failed: ${(err as Error).message}`));
});
