/**
 * The foreign authorization servers of `smart-config/token-verification.json` (`servers`): checked and resolved at
 * start-up ({@link resolveTokenServers}, called by `loadConfig`) and turned into verifiers
 * ({@link createServerVerifier}). Resolving expands `{PUBLIC_BASE_URL}`, reads the secrets from the environment
 * variables the entries name (the file holds names, never secrets), and refuses, with the offending setting named:
 * a variable that is not set, a private key that cannot sign, a pinned private key, an `hs256` entry without
 * `API_TOKEN_ALLOW_HS256=true`, a duplicate `id` or `fhirBaseUrl`, a URL that is not http(s).
 */
import type { JSONWebKeySet, JWK } from 'jose';
import type { TokenServerFileEntry } from '../config.ts';
import { assertionAlgorithm, type IntrospectionClientAuth } from './client-auth.ts';
import { normalizeFhirBase } from './dispatch.ts';
import { FhirDelegatedVerifier } from './fhir-delegated.ts';
import { Hs256AccessTokenVerifier } from './hs256.ts';
import { IntrospectionAccessTokenVerifier } from './introspection.ts';
import type { AccessTokenVerifier } from './types.ts';
import { JwtAccessTokenVerifier } from './verifier.ts';

/** One allowlisted foreign FHIR server, resolved: URLs expanded, secrets read. Holds secrets: never log it whole. */
export type TokenServer = {
  readonly id: string;
  /** The launch `iss`, `{PUBLIC_BASE_URL}` expanded, without query and trailing slash. */
  readonly fhirBaseUrl: string;
  /** Origins the browser reaches for this server besides the fhirBaseUrl origin. */
  readonly connectSrc: readonly string[];
} & (
  | { readonly mode: 'jwks'; readonly jwks?: JSONWebKeySet; readonly jwksUri?: string; readonly issuer?: string; readonly audience?: readonly string[] }
  | { readonly mode: 'introspection'; readonly introspectionUrl: string; readonly clientAuth: IntrospectionClientAuth; readonly issuer?: string }
  | { readonly mode: 'fhir-delegated'; readonly cacheSeconds: number }
  | { readonly mode: 'hs256'; readonly secret: string; readonly issuer?: string; readonly audience?: readonly string[] }
);

/** The text replaced by `PUBLIC_BASE_URL` in the URLs of an entry. */
export const PUBLIC_BASE_URL_PLACEHOLDER = '{PUBLIC_BASE_URL}';

const FILE = 'smart-config/token-verification.json';

export interface ResolveInput {
  readonly entries: readonly TokenServerFileEntry[];
  /** The environment the secrets are read from (that of `loadConfig`). */
  readonly env: NodeJS.ProcessEnv;
  /** `PUBLIC_BASE_URL` (no trailing slash). */
  readonly publicBaseUrl: string;
  /** `API_TOKEN_ALLOW_HS256=true`. */
  readonly allowHs256: boolean;
}

export interface ResolveResult {
  readonly servers: TokenServer[];
  /** Operator-facing sentences, one per problem (never quoting a secret). */
  readonly problems: string[];
  /** The offending settings (`smart-config/token-verification.json#/servers/<i>/<field>` or an environment variable). */
  readonly bad: string[];
}

/** Checks and resolves the `servers` entries (see the module comment). */
export function resolveTokenServers(input: ResolveInput): ResolveResult {
  const problems: string[] = [];
  const bad: string[] = [];
  const servers: TokenServer[] = [];
  const ids = new Map<string, number>();
  const bases = new Map<string, number>();
  const expand = (s: string): string => s.split(PUBLIC_BASE_URL_PLACEHOLDER).join(input.publicBaseUrl);

  input.entries.forEach((e, i) => {
    const at = (field?: string): string => `${FILE}#/servers/${i}${field ? `/${field}` : ''}`;
    const fail = (field: string | undefined, message: string, setting = at(field)): void => {
      problems.push(`${at(field)} ${message}`);
      bad.push(setting);
    };
    const httpUrl = (field: string, value: string | undefined): string | undefined => {
      if (value === undefined) return undefined;
      const url = expand(value);
      if (normalizeFhirBase(url) === undefined) {
        fail(field, `must be an absolute http(s) URL (after expanding ${PUBLIC_BASE_URL_PLACEHOLDER}), got ${JSON.stringify(url)}`);
        return undefined;
      }
      return url;
    };
    const secretFrom = (field: 'secretEnv' | 'privateKeyEnv'): string | undefined => {
      const name = e[field];
      if (!name) {
        fail(field, `is required for "mode": "${e.mode}"${e.clientAuth ? ` with "clientAuth": "${e.clientAuth}"` : ''}`);
        return undefined;
      }
      const value = input.env[name];
      if (value === undefined || value === '') {
        problems.push(`${name} is not set (named by ${at(field)}, server "${e.id}")`);
        bad.push(name);
        return undefined;
      }
      return value;
    };
    const needClientId = (): string | undefined => {
      if (!e.clientId) fail('clientId', `is required with "clientAuth": "${e.clientAuth}"`);
      return e.clientId;
    };

    const firstId = ids.get(e.id);
    if (firstId !== undefined) fail('id', `"${e.id}" is also the id of #/servers/${firstId}`);
    else ids.set(e.id, i);

    const fhirBaseUrl = httpUrl('fhirBaseUrl', e.fhirBaseUrl);
    const base = fhirBaseUrl === undefined ? undefined : normalizeFhirBase(fhirBaseUrl);
    if (base !== undefined) {
      const first = bases.get(base);
      if (first !== undefined) fail('fhirBaseUrl', `${base} is also the fhirBaseUrl of #/servers/${first}: one entry per FHIR server`);
      else bases.set(base, i);
    }
    const connectSrc: string[] = [];
    (e.connectSrc ?? []).forEach((c, j) => {
      const url = httpUrl(`connectSrc/${j}`, c);
      if (url) connectSrc.push(new URL(url).origin);
    });
    const issuer = e.issuer === undefined ? undefined : expand(e.issuer);
    const audience = e.audience?.map(expand);
    const common = { id: e.id, fhirBaseUrl: base ?? '', connectSrc };
    const optional = { ...(issuer ? { issuer } : {}), ...(audience?.length ? { audience } : {}) };
    const before = problems.length;

    switch (e.mode) {
      case 'jwks': {
        const jwksUri = httpUrl('jwksUri', e.jwksUri);
        if (!e.jwks && e.jwksUri === undefined) fail('jwksUri', 'or #/jwks is required for "mode": "jwks"');
        (e.jwks?.keys ?? []).forEach((k, j) => {
          if ('d' in k || 'k' in k) fail(`jwks/keys/${j}`, 'is a private or symmetric key: pin only public keys (a private key does not belong in this file)');
        });
        if (problems.length === before) {
          servers.push({ ...common, mode: 'jwks', ...(e.jwks ? { jwks: e.jwks as JSONWebKeySet } : {}), ...(jwksUri ? { jwksUri } : {}), ...optional });
        }
        break;
      }
      case 'introspection': {
        const introspectionUrl = httpUrl('introspectionUrl', e.introspectionUrl);
        if (e.introspectionUrl === undefined) fail('introspectionUrl', 'is required for "mode": "introspection"');
        let clientAuth: IntrospectionClientAuth | undefined;
        switch (e.clientAuth) {
          case 'basic':
          case 'client_secret_post': {
            const clientId = needClientId();
            const clientSecret = secretFrom('secretEnv');
            if (clientId && clientSecret) clientAuth = { type: e.clientAuth, clientId, clientSecret };
            break;
          }
          case 'bearer': {
            const credential = secretFrom('secretEnv');
            if (credential) clientAuth = { type: 'bearer', credential };
            break;
          }
          case 'bearer-token':
            clientAuth = { type: 'bearer-token' };
            break;
          case 'private_key_jwt': {
            const clientId = needClientId();
            const raw = secretFrom('privateKeyEnv');
            const key = raw === undefined ? undefined : privateJwk(raw);
            if (typeof key === 'string') {
              problems.push(`${e.privateKeyEnv} (named by ${at('privateKeyEnv')}) ${key}`);
              bad.push(e.privateKeyEnv!);
            } else if (clientId && key) clientAuth = { type: 'private_key_jwt', clientId, privateKey: key };
            break;
          }
          default:
            fail('clientAuth', 'is required for "mode": "introspection"');
        }
        if (problems.length === before && introspectionUrl && clientAuth) {
          servers.push({ ...common, mode: 'introspection', introspectionUrl, clientAuth, ...(issuer ? { issuer } : {}) });
        }
        break;
      }
      case 'fhir-delegated':
        if (problems.length === before) servers.push({ ...common, mode: 'fhir-delegated', cacheSeconds: Math.min(e.cacheSeconds ?? 60, 60) });
        break;
      case 'hs256': {
        if (!input.allowHs256) {
          fail(undefined, `("${e.id}") has "mode": "hs256", which is refused unless API_TOKEN_ALLOW_HS256=true: a shared secret lets whoever holds it mint tokens for any patient (development launchers only)`);
        }
        const secret = secretFrom('secretEnv');
        if (problems.length === before && secret) servers.push({ ...common, mode: 'hs256', secret, ...optional });
        break;
      }
    }
  });
  return { servers, problems, bad };
}

/** Parses a private JWK from an environment variable; a string says what is wrong (never quoting the key). */
function privateJwk(raw: string): JWK | string {
  let key: unknown;
  try {
    key = JSON.parse(raw);
  } catch {
    return 'must hold a private JWK as JSON (it is not valid JSON)';
  }
  if (!key || typeof key !== 'object' || Array.isArray(key)) return 'must hold a private JWK as a JSON object';
  const jwk = key as JWK;
  if (typeof jwk.d !== 'string') return 'must hold a private JWK (the key has no "d")';
  if (!assertionAlgorithm(jwk)) return 'must hold an RSA, EC (P-256/P-384/P-521) or Ed25519 private JWK whose "alg", if any, is an asymmetric signature algorithm';
  return jwk;
}

export interface ServerVerifierOptions {
  /** Time-out of calls to the server (JWKS, introspection, FHIR read), in ms. */
  readonly timeoutMs: number;
}

/** The verifier of one resolved server entry. */
export function createServerVerifier(s: TokenServer, o: ServerVerifierOptions): AccessTokenVerifier {
  switch (s.mode) {
    case 'jwks':
      return new JwtAccessTokenVerifier({
        ...(s.issuer ? { issuer: s.issuer } : {}),
        ...(s.audience ? { audience: s.audience } : {}),
        keys: { ...(s.jwks ? { jwks: s.jwks } : {}), ...(s.jwksUri ? { jwksUri: s.jwksUri } : {}), timeoutMs: o.timeoutMs },
        requiredClaims: ['exp'],
      });
    case 'introspection':
      return new IntrospectionAccessTokenVerifier({ introspectionUrl: s.introspectionUrl, clientAuth: s.clientAuth, timeoutMs: o.timeoutMs, ...(s.issuer ? { issuer: s.issuer } : {}) });
    case 'fhir-delegated':
      return new FhirDelegatedVerifier({ fhirBaseUrl: s.fhirBaseUrl, serverId: s.id, cacheSeconds: s.cacheSeconds, timeoutMs: o.timeoutMs });
    case 'hs256':
      return new Hs256AccessTokenVerifier({ secret: s.secret, ...(s.issuer ? { issuer: s.issuer } : {}), ...(s.audience ? { audience: s.audience } : {}) });
  }
}
