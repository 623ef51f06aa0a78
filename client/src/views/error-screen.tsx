/**
 * Full-screen explanation of why the app cannot show anything: launch failure, access refused, service error, or a
 * server the app's Content-Security-Policy does not let it reach (`blocked`: the detail names the origin).
 */
import { ApiError } from '../api.ts';

export type ErrorKind = 'launch' | 'access' | 'server' | 'not-found' | 'blocked' | 'other';

/** Which screen an error calls for. */
export function errorKind(err: unknown): ErrorKind {
  if (err instanceof ApiError) {
    if (err.status === 401 || err.status === 403) return 'access';
    if (err.status === 404) return 'not-found';
    if (err.status === 0 || err.status >= 500) return 'server';
  }
  return 'other';
}

const TITLES: Record<ErrorKind, string> = {
  launch: 'The app could not be launched',
  access: 'Access refused',
  server: 'The fracture-risk service is not answering',
  'not-found': 'Nothing to show for this patient',
  blocked: 'A server the app needs is not allowed',
  other: 'Something went wrong',
};

const ADVICE: Record<ErrorKind, string> = {
  launch: 'The sign-in with the EHR did not complete. Close this window and open the app again from the patient’s chart or the CDS card. If it keeps failing, tell your system administrator.',
  access: 'Your sign-in does not allow this (it may have expired, or not include this patient). Open the app again from the EHR.',
  server: 'Try again in a minute. If the problem persists, tell your system administrator; no result is shown rather than a possibly wrong one.',
  'not-found': 'The service found no patient, study or assessment for this launch.',
  blocked: 'This service’s settings do not let the app contact the server named below, so it stopped. Tell your system administrator: the server must be added to the service’s configuration.',
  other: 'The app stopped rather than show a possibly wrong result.',
};

export function ErrorScreen(props: { kind: ErrorKind; detail?: string; status?: number; onRetry?: () => void }) {
  return (
    <main class="error-screen" aria-labelledby="error-title">
      <div class="error-box" role="alert">
        <h1 id="error-title">{TITLES[props.kind]}</h1>
        <p>{ADVICE[props.kind]}</p>
        {props.detail && (
          <p class="error-detail">
            Details{props.status ? ` (HTTP ${props.status})` : ''}: {props.detail}
          </p>
        )}
        {props.onRetry && (
          <button type="button" class="btn" onClick={props.onRetry}>
            Try again
          </button>
        )}
      </div>
      <p class="research-notice">
        <strong>Research use — trained on synthetic data.</strong> Not for clinical decisions.
      </p>
    </main>
  );
}
