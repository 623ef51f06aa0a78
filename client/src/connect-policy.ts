/**
 * Which servers the app may reach (its Content-Security-Policy `connect-src`, served as `connectSrc` in
 * `/app/config.json`) and the messages that say what to change when one is not allowed. Pure, for the unit tests.
 *
 * A launch whose `iss` the CSP would block cannot work (fhirclient's first request, the SMART configuration, would be
 * refused), so `launch.html` checks it before starting; any request the CSP blocks later raises a
 * `securitypolicyviolation` event whose `blockedURI` names the server.
 * @see https://www.w3.org/TR/CSP3/#directive-connect-src
 * @see https://www.w3.org/TR/CSP3/#violation-events
 */

/** The settings an operator changes to allow a server. */
export const CONNECT_SETTINGS_ADVICE = 'add the FHIR server to smart-config/token-verification.json ("servers"), or its origin to APP_CONNECT_SRC, and restart the service';

const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' };

/**
 * Whether one CSP source expression allows `url`, at origin level: `'self'`, a scheme (`https:`), or
 * `scheme://host[:port][/path]` with an optional `*.` host wildcard and `*` port. Paths in a source are ignored (the
 * check is about which server, not which resource); keywords other than `'self'` allow nothing here.
 */
export function sourceAllows(source: string, url: URL, selfOrigin: string): boolean {
  if (source === "'self'") return url.origin === selfOrigin;
  if (source === '*') return url.protocol === 'http:' || url.protocol === 'https:';
  if (/^[a-z][a-z0-9+.-]*:$/i.test(source)) return url.protocol === source.toLowerCase();
  const m = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?([^/:]+)(?::(\d+|\*))?(?:\/.*)?$/i.exec(source);
  if (!m) return false;
  const [, scheme, wildcard, host, port] = m;
  if (url.protocol !== `${scheme!.toLowerCase()}:`) return false;
  const h = host!.toLowerCase();
  const hostOk = wildcard ? url.hostname.endsWith(`.${h}`) : url.hostname === h;
  const urlPort = url.port || DEFAULT_PORT[url.protocol] || '';
  const portOk = port === '*' || (port ?? DEFAULT_PORT[url.protocol]) === urlPort;
  return hostOk && portOk;
}

/** Whether any of the `connectSrc` sources allows `url` (false for a string that is not an absolute URL). */
export function connectAllowed(url: string, connectSrc: readonly string[], selfOrigin: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  return connectSrc.some((s) => sourceAllows(s, u, selfOrigin));
}

/** The origin of a URL, or the string itself when it is not one. */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/** Launch page: the `iss` is not among the servers the app may reach. */
export function launchNotAllowedMessage(iss: string): string {
  return `The FHIR server ${originOf(iss)} is not allowed by this service's settings, so the app cannot reach it. To allow it, ${CONNECT_SETTINGS_ADVICE}.`;
}

/**
 * The message for a `securitypolicyviolation` event that blocked a connection, naming the blocked origin; null for
 * other violations (inline script or style, `eval`: not a server to allow).
 */
export function blockedConnectionMessage(event: { readonly blockedURI: string; readonly effectiveDirective?: string }): string | null {
  if (event.effectiveDirective && event.effectiveDirective !== 'connect-src') return null;
  if (!/^https?:\/\//i.test(event.blockedURI)) return null;
  return `The browser blocked a connection to ${originOf(event.blockedURI)} (Content-Security-Policy connect-src of this app). To allow it, ${CONNECT_SETTINGS_ADVICE}.`;
}
