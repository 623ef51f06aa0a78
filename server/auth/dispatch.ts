/**
 * {@link DispatchingVerifier}: picks how a token is verified by the FHIR server the SMART app was launched against,
 * which the app names in the `X-FHIR-Server` header:
 * - absent → the service's own verifier (tokens for its FHIR server: the sandbox or `FHIR_BASE_URL`);
 * - equal to a `servers[].fhirBaseUrl` of `smart-config/token-verification.json` → that entry's verifier (an
 *   explicit entry wins, even for the service's own FHIR base URL);
 * - equal to the service's own FHIR base URL → the service's own verifier;
 * - anything else → refused (401): the server is not allowlisted.
 * The header only chooses among configured verifiers; it never makes a token acceptable by itself.
 */
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess, type VerifyContext } from './types.ts';

/**
 * The comparable form of a FHIR base URL: parsed (so scheme and host case and a default port do not matter), without
 * query or fragment, one trailing slash removed. Undefined when it is not an http(s) URL.
 */
export function normalizeFhirBase(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  const path = u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : u.pathname;
  return `${u.origin}${path}`;
}

/** A named verifier for one allowlisted FHIR server. */
export interface ServerVerifier {
  readonly id: string;
  readonly fhirBaseUrl: string;
  readonly verifier: AccessTokenVerifier;
}

export class DispatchingVerifier implements AccessTokenVerifier {
  readonly #own: AccessTokenVerifier;
  readonly #ownBases: ReadonlySet<string>;
  readonly #servers = new Map<string, ServerVerifier>();

  /**
   * @param own the verifier of the service's own FHIR server's tokens
   * @param ownFhirBaseUrls the URLs the app may name for that server (its public base URL, and the one the service
   *   calls when they differ)
   */
  constructor(own: AccessTokenVerifier, ownFhirBaseUrls: readonly string[], servers: readonly ServerVerifier[] = []) {
    this.#own = own;
    this.#ownBases = new Set(ownFhirBaseUrls.map(normalizeFhirBase).filter((u): u is string => u !== undefined));
    for (const s of servers) {
      const base = normalizeFhirBase(s.fhirBaseUrl);
      if (!base) throw new Error(`server ${s.id}: fhirBaseUrl is not an http(s) URL`);
      if (this.#servers.has(base)) throw new Error(`server ${s.id}: fhirBaseUrl ${base} is configured twice`);
      this.#servers.set(base, s);
    }
  }

  async verify(token: string, context?: VerifyContext): Promise<SmartAccess> {
    const named = context?.fhirServer?.trim() || undefined;
    if (!named) return this.#own.verify(token, context);
    const base = normalizeFhirBase(named);
    const entry = base === undefined ? undefined : this.#servers.get(base);
    if (entry) return entry.verifier.verify(token, context);
    if (base !== undefined && this.#ownBases.has(base)) return this.#own.verify(token, context);
    throw new AccessTokenError('invalid', `the FHIR server ${printable(named)} is not allowlisted (smart-config/token-verification.json "servers")`);
  }
}

/** A request header value made safe to repeat in a message and a `WWW-Authenticate` header. */
function printable(value: string): string {
  const s = value.replace(/[^\x20-\x7e]/g, '?');
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}
