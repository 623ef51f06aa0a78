/**
 * `index.html`: the SMART redirect target. `FHIR.oauth2.ready()` exchanges the authorization code (PKCE) for the
 * token response; from then on the app renders from the session alone. Performance marks (User Timing):
 * `frcds:token` (token response in hand), `frcds:assessment` (assessment JSON received), `frcds:curve` (survival
 * curve drawn) — bench/app.ts reads them. A connection the app's Content-Security-Policy blocks (token endpoint or
 * FHIR server of a server the service does not allow) stops the app with a screen naming the blocked origin.
 */
import FHIR from 'fhirclient/lib/entry/browser.js';
import { render, type ComponentChild } from 'preact';
import './styles.css';
import { sessionFromClient } from './session.ts';
import { App } from './views/app.tsx';
import { ErrorScreen } from './views/error-screen.tsx';
import { blockedConnectionMessage } from './connect-policy.ts';

const root = document.getElementById('root')!;
// Replace the static "Completing sign-in…" placeholder (render() would add next to it).
const mount = (vnode: ComponentChild): void => {
  root.textContent = '';
  render(vnode, root);
};

/** Set once the CSP blocked a connection: that explanation wins over the error the blocked request causes. */
let blocked: string | null = null;
document.addEventListener('securitypolicyviolation', (e) => {
  const message = blockedConnectionMessage(e);
  if (!message || blocked) return;
  blocked = message;
  mount(<ErrorScreen kind="blocked" detail={message} />);
});

FHIR.oauth2
  .ready()
  .then((client) => {
    if (blocked) return;
    performance.mark('frcds:token');
    mount(<App session={sessionFromClient(client, location.href)} />);
  })
  .catch((err: unknown) => {
    if (blocked) return;
    mount(<ErrorScreen kind="launch" detail={(err as Error).message} />);
  });
