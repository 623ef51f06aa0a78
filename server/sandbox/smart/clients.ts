/**
 * Registered OAuth clients of the sandbox authorization server, from `smart-config/smart-clients.json` (schema
 * `smart-config/schema/smart-clients.schema.json`). `{PUBLIC_BASE_URL}` in a redirect URI is expanded to the
 * deployment's public base URL, so the same file works on any host and port.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#register-app-with-ehr
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** One client as written in the file. */
export interface SmartClientRegistration {
  readonly clientId: string;
  readonly name: string;
  /** `public` (browser app: PKCE S256 required, no secret) or `confidential-symmetric` (client secret, HTTP Basic). */
  readonly type: 'public' | 'confidential-symmetric';
  /** Exact redirect URIs (authorization-code clients); `{PUBLIC_BASE_URL}` is expanded. */
  readonly redirectUris?: readonly string[];
  /** Client secret (confidential clients). Demo only: a real deployment keeps secrets out of files in the repository. */
  readonly clientSecret?: string;
  /** The most this client may be granted; requested scopes outside these are dropped. */
  readonly scopes: readonly string[];
  /** Grant types the client may use. */
  readonly grantTypes: readonly ('authorization_code' | 'refresh_token' | 'client_credentials')[];
}

/** `smart-config/smart-clients.json`. */
export interface SmartClientsFile {
  /** Lifetime of access tokens, seconds. */
  readonly accessTokenLifetimeSeconds: number;
  /** Lifetime of refresh tokens, seconds. */
  readonly refreshTokenLifetimeSeconds: number;
  /** Lifetime of authorization codes, seconds. */
  readonly authorizationCodeLifetimeSeconds: number;
  readonly clients: readonly SmartClientRegistration[];
}

/** A registered client with its redirect URIs expanded. */
export interface SmartClient extends SmartClientRegistration {
  readonly redirectUris: readonly string[];
}

export const PUBLIC_BASE_URL_TOKEN = '{PUBLIC_BASE_URL}';

export class ClientRegistry {
  readonly #clients = new Map<string, SmartClient>();

  constructor(file: SmartClientsFile, publicBaseUrl: string) {
    const base = publicBaseUrl.replace(/\/+$/, '');
    for (const c of file.clients) {
      this.#clients.set(c.clientId, { ...c, redirectUris: (c.redirectUris ?? []).map((u) => u.split(PUBLIC_BASE_URL_TOKEN).join(base)) });
    }
  }

  get(clientId: string | undefined): SmartClient | undefined {
    return clientId ? this.#clients.get(clientId) : undefined;
  }

  all(): SmartClient[] {
    return [...this.#clients.values()];
  }

  /** Checks a confidential client's secret in constant time. */
  static secretMatches(client: SmartClient, secret: string | undefined): boolean {
    if (client.type !== 'confidential-symmetric' || !client.clientSecret || secret === undefined) return false;
    const a = createHash('sha256').update(client.clientSecret).digest();
    const b = createHash('sha256').update(secret).digest();
    return timingSafeEqual(a, b);
  }
}
