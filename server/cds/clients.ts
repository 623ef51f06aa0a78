/**
 * Trusted CDS clients (`smart-config/cds-clients.json`, schema `smart-config/schema/cds-clients.schema.json`):
 * the issuers whose JWTs the CDS Hooks service accepts and where their public keys come from.
 * `{PUBLIC_BASE_URL}` in `iss`, `jwksUrl`, `jkuAllowlist` and `fhirServerAllowlist` is replaced by the configured public base URL, so the
 * demo EHR (served by this process at `/sandbox/ehr`) is trusted wherever the service is deployed.
 *
 * `fhirServerAllowlist` lists the FHIR bases the client may name as a hook's `fhirServer` (the only servers the
 * service reads from on its behalf; rules in `ssrf.ts`). Without it, the client's hooks are answered from the prefetch
 * only.
 *
 * An inline `jwks` pins the client's public keys: they are used first and nothing is fetched for a token they verify
 * (the rules are on `CdsJwtVerifier.verify` in `jwt.ts`), so a service without egress can trust a client.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
import { createPublicKey, type JsonWebKeyInput } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { fhirServerRule, FhirServerRuleError, type FhirServerRule } from './ssrf.ts';

/** Signature algorithms CDS Hooks allows: asymmetric only (`none` and HS* are refused). */
export const ASYMMETRIC_ALGS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'] as const;
export type AsymmetricAlg = (typeof ASYMMETRIC_ALGS)[number];

export interface CdsClient {
  readonly id: string;
  readonly label: string;
  readonly iss: string;
  readonly jwksUrl?: string;
  readonly jwks?: JSONWebKeySet;
  readonly jkuAllowlist: readonly string[];
  readonly tenants?: readonly string[];
  readonly algorithms: readonly AsymmetricAlg[];
  /** The FHIR bases this client may name as `fhirServer` (empty: none, prefetch only). */
  readonly fhirServerAllowlist: readonly FhirServerRule[];
}

interface ClientJson {
  id: string;
  label: string;
  enabled: boolean;
  iss: string;
  jwksUrl?: string;
  jwks?: JSONWebKeySet;
  jkuAllowlist?: string[];
  tenants?: string[];
  algorithms?: AsymmetricAlg[];
  fhirServerAllowlist?: string[];
  fhirServerPrivateNetwork?: boolean;
}

export class CdsClientsError extends Error {
  override readonly name = 'CdsClientsError';
}

const expand = (s: string, base: string): string => s.replaceAll('{PUBLIC_BASE_URL}', base);

/**
 * A pasted JWKS is checked at start-up, so a truncated key or a duplicated `kid` is a clear configuration error
 * instead of a 401 on every call. `kid` must be unique within the set (CDS Hooks 2.0 §JSON Web Token: it names one
 * key of the client): with two keys under one `kid`, a failed signature could not be told from the wrong key.
 * Each key is imported once with node:crypto, which knows the JWK key types jose accepts (EC, RSA, OKP).
 */
function checkPinnedKeys(id: string, jwks: JSONWebKeySet): void {
  const kids = new Set<string>();
  for (const [i, k] of jwks.keys.entries()) {
    const name = `client "${id}" jwks key ${k.kid === undefined ? `#${i + 1}` : `"${k.kid}"`}`;
    if (k.kid !== undefined) {
      if (kids.has(k.kid)) throw new CdsClientsError(`smart-config/cds-clients.json: ${name} is listed twice (kid must be unique)`);
      kids.add(k.kid);
    }
    if (k.use !== undefined && k.use !== 'sig') continue; // not a signature key: never selected, not checked
    try {
      createPublicKey({ key: k, format: 'jwk' } as JsonWebKeyInput);
    } catch (err) {
      throw new CdsClientsError(`smart-config/cds-clients.json: ${name} is not a usable public key (${(err as Error).message})`);
    }
  }
}

/**
 * The enabled clients of a parsed `cds-clients.json` (already schema-checked by `server/config.ts` at start-up),
 * with `{PUBLIC_BASE_URL}` expanded. Throws when an entry has no key source, an inline key with a private part, or a
 * `fhirServerAllowlist` entry that is not a usable base URL.
 */
export function parseCdsClients(json: { clients: ClientJson[] }, publicBaseUrl: string): CdsClient[] {
  const out: CdsClient[] = [];
  const seen = new Set<string>();
  for (const c of json.clients) {
    if (!c.enabled) continue;
    if (!c.jwksUrl && !c.jwks && !(c.jkuAllowlist && c.jkuAllowlist.length > 0)) {
      throw new CdsClientsError(`smart-config/cds-clients.json: client "${c.id}" needs jwksUrl, jwks or jkuAllowlist`);
    }
    if (c.jwks?.keys.some((k) => 'd' in k || 'k' in k)) {
      throw new CdsClientsError(`smart-config/cds-clients.json: client "${c.id}" jwks holds a private or symmetric key`);
    }
    if (c.jwks) checkPinnedKeys(c.id, c.jwks);
    const iss = expand(c.iss, publicBaseUrl);
    if (seen.has(iss)) throw new CdsClientsError(`smart-config/cds-clients.json: issuer ${iss} is listed twice`);
    seen.add(iss);
    const fhirServerAllowlist = (c.fhirServerAllowlist ?? []).map((u) => {
      try {
        return fhirServerRule(expand(u, publicBaseUrl), c.fhirServerPrivateNetwork === true);
      } catch (err) {
        if (err instanceof FhirServerRuleError) throw new CdsClientsError(`smart-config/cds-clients.json: client "${c.id}" fhirServerAllowlist: ${err.message}`);
        throw err;
      }
    });
    out.push({
      id: c.id,
      label: c.label,
      iss,
      ...(c.jwksUrl ? { jwksUrl: expand(c.jwksUrl, publicBaseUrl) } : {}),
      ...(c.jwks ? { jwks: c.jwks } : {}),
      jkuAllowlist: (c.jkuAllowlist ?? []).map((u) => expand(u, publicBaseUrl)),
      ...(c.tenants ? { tenants: c.tenants } : {}),
      algorithms: c.algorithms && c.algorithms.length > 0 ? c.algorithms : [...ASYMMETRIC_ALGS],
      fhirServerAllowlist,
    });
  }
  return out;
}

/** Reads `<smartConfigDir>/cds-clients.json`; no file → no trusted client (every call is then a 401). */
export function loadCdsClients(smartConfigDir: string, publicBaseUrl: string): CdsClient[] {
  let text: string;
  try {
    text = readFileSync(join(smartConfigDir, 'cds-clients.json'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseCdsClients(JSON.parse(text) as { clients: ClientJson[] }, publicBaseUrl);
}
