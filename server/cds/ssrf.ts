/**
 * Which `fhirServer` a CDS client may make this service read from: the client's `fhirServerAllowlist` in
 * `smart-config/cds-clients.json`, and the address rules of `server/fhir/outbound.ts` for each entry.
 *
 * A hook request names the FHIR server the service should read missing data from (CDS Hooks 2.0 §Prefetch, "FHIR
 * Resource Access"). Without a list, any trusted client could make the service open connections to any URL it likes
 * (loopback services, cloud metadata at 169.254.169.254, ports of the internal network), and learn from the answer
 * whether a port is open. So:
 * 1. **Allowlist.** `fhirServer` must equal one of the client's entries after normalising: scheme and host are
 *    compared case-insensitively, a default port (`:443` for https, `:80` for http) is the same as none, and one
 *    trailing slash of the path is ignored; the path is otherwise compared exactly. A URL with user info, a query or a
 *    fragment never matches. No match → the server is never contacted (no DNS lookup, no connection).
 * 2. **Addresses**, for a listed entry, by how its host is written:
 *    - an IP literal (`http://10.1.2.3:8080/fhir`, `http://[fd00::5]/fhir`): that address, whatever its class — the
 *      operator named it. `0.0.0.0` and `::` are refused at start-up (they are not a destination);
 *    - `localhost`: loopback addresses only;
 *    - any other name: public addresses only, plus private ones (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7)
 *      when the client sets `fhirServerPrivateNetwork`. Loopback, link-local and unspecified addresses are always
 *      refused for a name. Every address the name resolves to must pass, and so must the address each request is
 *      actually sent on (a name that resolves differently the second time, DNS rebinding, gains nothing).
 * @see https://cds-hooks.hl7.org/2.0/#fhir-resource-access
 * @see https://cds-hooks.hl7.org/2.0/#prefetch-template
 */
import { bareIp, classifyAddress, type AddressClass, type AddressPolicy } from '../fhir/outbound.ts';

/** One entry of a client's `fhirServerAllowlist`, ready for matching. */
export interface FhirServerRule {
  /** The normalised base URL (what is matched, and what requests are built from). */
  readonly base: string;
  /** Host name or IP address, without brackets. */
  readonly hostname: string;
  /** How the entry names its host (decides the address rule). */
  readonly hostKind: 'ip' | 'localhost' | 'name';
  readonly policy: AddressPolicy;
}

/** An allowlist entry that cannot be used (not an http(s) base URL, or an unspecified address). */
export class FhirServerRuleError extends Error {
  override readonly name = 'FhirServerRuleError';
}

/**
 * The base URL in its normalised form (`https://fhir.example.org/r4`), or undefined when it is not an http(s) URL
 * that can name a FHIR base (user info, a query or a fragment make it unusable).
 */
export function normaliseFhirBase(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  if (u.username || u.password || u.search || u.hash || url.includes('?') || url.includes('#')) return undefined;
  // WHATWG URL lower-cases scheme and host, drops a default port and canonicalises IP literals (0x7f.1 → 127.0.0.1).
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/$/, '')}`;
}

/** Private addresses a named host may resolve to when the client opts in (`fhirServerPrivateNetwork`). */
const NAME_CLASSES: readonly AddressClass[] = ['public'];
const NAME_CLASSES_PRIVATE: readonly AddressClass[] = ['public', 'private'];

/** Builds the rule of one allowlist entry (already `{PUBLIC_BASE_URL}`-expanded); throws {@link FhirServerRuleError}. */
export function fhirServerRule(entry: string, privateNetwork: boolean): FhirServerRule {
  const base = normaliseFhirBase(entry);
  if (!base) throw new FhirServerRuleError(`${entry} is not an http(s) base URL without user info, query or fragment`);
  const hostname = new URL(base).hostname;
  const ip = bareIp(hostname);
  if (ip !== undefined) {
    if (classifyAddress(ip) === 'unspecified') throw new FhirServerRuleError(`${entry} names an unspecified address (${ip}), which is not a server`);
    return { base, hostname: ip, hostKind: 'ip', policy: { allow: new Set(), exactly: ip } };
  }
  if (hostname === 'localhost') return { base, hostname, hostKind: 'localhost', policy: { allow: new Set(['loopback']) } };
  return { base, hostname, hostKind: 'name', policy: { allow: new Set(privateNetwork ? NAME_CLASSES_PRIVATE : NAME_CLASSES) } };
}

/** The rule of `fhirServer` among `rules`, or undefined when it is not on the list (then it must not be contacted). */
export function matchFhirServer(rules: readonly FhirServerRule[], fhirServer: string): FhirServerRule | undefined {
  const base = normaliseFhirBase(fhirServer);
  return base === undefined ? undefined : rules.find((r) => r.base === base);
}

/** Why a hook's `fhirServer` was not read from (for logs; never in the answer, which is the same for all). */
export type FhirServerRefusal =
  | { reason: 'not-allowlisted' }
  | { reason: 'address'; hostKind: FhirServerRule['hostKind']; addressClass: AddressClass | 'unknown' }
  | { reason: 'connected-address'; hostKind: FhirServerRule['hostKind']; addressClass: AddressClass | 'unknown' }
  | { reason: 'redirect'; status: number };

/**
 * What may be logged about a `fhirServer` a client named: scheme, host, port and path (no user info, query or
 * fragment), cut to 200 characters. A base URL carries no patient data, but the value comes from the caller.
 */
export function fhirServerForLog(fhirServer: string): string {
  let s: string;
  try {
    const u = new URL(fhirServer);
    s = `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    s = 'not a URL';
  }
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
