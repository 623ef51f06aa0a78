/**
 * `index.html`: the SMART redirect target. `FHIR.oauth2.ready()` exchanges the authorization code (PKCE) for the
 * token response; from then on the app renders from the session alone. Performance marks (User Timing):
 * `frcds:token` (token response in hand), `frcds:assessment` (assessment JSON received), `frcds:curve` (survival
 * curve drawn) — bench/app.ts reads them.
 */
import FHIR from 'fhirclient/lib/entry/browser.js';
import { render, type ComponentChild } from 'preact';
import './styles.css';
import { sessionFromClient } from './session.ts';
import { App } from './views/app.tsx';
import { ErrorScreen } from './views/error-screen.tsx';

const root = document.getElementById('root')!;
// Replace the static "Completing sign-in…" placeholder (render() would add next to it).
const mount = (vnode: ComponentChild): void => {
  root.textContent = '';
  render(vnode, root);
};

FHIR.oauth2
  .ready()
  .then((client) => {
    performance.mark('frcds:token');
    mount(<App session={sessionFromClient(client, location.href)} />);
  })
  .catch((err: unknown) => {
    mount(<ErrorScreen kind="launch" detail={(err as Error).message} />);
  });
