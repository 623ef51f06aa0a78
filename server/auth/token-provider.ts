/**
 * Bearer tokens for the service's own calls to a FHIR server: a fixed token, or OAuth 2.0 client_credentials
 * (SMART Backend Services with a client secret, `client_secret_basic`) refreshed before it expires.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4
 * @see https://hl7.org/fhir/smart-app-launch/STU2/client-confidential-symmetric.html
 */

/** Gives the current bearer token; `invalidate` drops a token the server refused so the next call fetches a new one. */
export interface BearerTokenProvider {
  token(signal?: AbortSignal): Promise<string>;
  invalidate?(): void;
}

/** A token could not be obtained. The message never contains credentials. */
export class TokenProviderError extends Error {
  override readonly name = 'TokenProviderError';
  constructor(
    message: string,
    /** Whether trying again later can help (network trouble, 5xx). */
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export class StaticTokenProvider implements BearerTokenProvider {
  readonly #token: string;
  constructor(token: string) {
    this.#token = token;
  }
  token(): Promise<string> {
    return Promise.resolve(this.#token);
  }
}

export interface ClientCredentialsOptions {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Space-separated scopes to ask for (absent: the server's default for the client). */
  readonly scope?: string;
  readonly timeoutMs?: number;
  /** A token is renewed this many seconds before it expires (default 60, at most half its lifetime). */
  readonly refreshBeforeSeconds?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

export class ClientCredentialsTokenProvider implements BearerTokenProvider {
  readonly #o: ClientCredentialsOptions;
  #current: { token: string; renewAt: number } | undefined;
  #pending: Promise<string> | undefined;
  /** Number of token requests made (for tests and metrics). */
  requests = 0;

  constructor(options: ClientCredentialsOptions) {
    this.#o = options;
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  invalidate(): void {
    this.#current = undefined;
  }

  async token(signal?: AbortSignal): Promise<string> {
    if (this.#current && this.#current.renewAt > this.#now()) return this.#current.token;
    // One request at a time: concurrent callers share it.
    this.#pending ??= this.#fetch(signal).finally(() => (this.#pending = undefined));
    return this.#pending;
  }

  async #fetch(signal?: AbortSignal): Promise<string> {
    this.requests++;
    const timeout = AbortSignal.timeout(this.#o.timeoutMs ?? 5000);
    const body = new URLSearchParams({ grant_type: 'client_credentials' });
    if (this.#o.scope) body.set('scope', this.#o.scope);
    let res: Response;
    let json: Record<string, unknown>;
    try {
      res = await fetch(this.#o.tokenUrl, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Accept: 'application/json',
          Authorization: `Basic ${Buffer.from(`${encodeURIComponent(this.#o.clientId)}:${encodeURIComponent(this.#o.clientSecret)}`).toString('base64')}`,
        },
        body: body.toString(),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new TokenProviderError(`token request to ${this.#o.tokenUrl} failed: ${timeout.aborted ? 'timed out' : (err as Error).message}`, true);
    }
    if (!res.ok) {
      const error = typeof json['error'] === 'string' ? json['error'] : `HTTP ${res.status}`;
      throw new TokenProviderError(`token request to ${this.#o.tokenUrl} was refused: ${error}`, res.status >= 500 || res.status === 429);
    }
    const token = json['access_token'];
    if (typeof token !== 'string' || !token) throw new TokenProviderError(`token response from ${this.#o.tokenUrl} has no access_token`, false);
    const lifetime = typeof json['expires_in'] === 'number' && json['expires_in'] > 0 ? json['expires_in'] : 300;
    const early = Math.min(this.#o.refreshBeforeSeconds ?? 60, lifetime / 2);
    this.#current = { token, renewAt: this.#now() + (lifetime - early) * 1000 };
    return token;
  }
}
