/**
 * {@link FhirDelegatedVerifier}: for EHRs whose access tokens are opaque to third parties (Epic, Oracle Health: no
 * published keys for them, no introspection for apps' tokens), the FHIR server itself is asked whether the token
 * reads the launch patient: `GET {fhirBaseUrl}/Patient/{X-SMART-Patient}` with `Authorization: Bearer <token>`.
 * Accepted only on `200` with a Patient whose `id` is the one asked for; the access is then limited to that patient
 * (scopes `patient/*.rs`), so the API's patient check refuses any other.
 *
 * Safe because the token only ever goes to the FHIR base URL the operator allowlisted for it (the same server the
 * app already sends it to): the URL is fixed by configuration, the patient id is checked against the FHIR id
 * grammar before it is put in the path, and redirects are not followed. Answers are size-capped and time-limited.
 * Successes are cached per (token, patient) for at most `cacheSeconds` (≤ 60) and never beyond a JWT token's
 * `exp`; refusals are not cached.
 * @see https://hl7.org/fhir/R4/http.html#read
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#step-6-app-accesses-clinical-data-via-fhir-api
 */
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { FHIR_JSON_ACCEPT } from '../fhir/media-type.ts';
import { readCappedBody } from '../http-body.ts';
import { tokenDigest } from './introspection.ts';
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess, type VerifyContext } from './types.ts';

/** FHIR R4 `id` grammar: checked before the id is put in a URL path. */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
/** Longest cache time of a success, whatever the configuration says. */
export const DELEGATED_CACHE_MAX_SECONDS = 60;

export interface FhirDelegatedOptions {
  /** The allowlisted FHIR base URL (no trailing slash). */
  readonly fhirBaseUrl: string;
  /** Name of the configured server, for the SmartAccess subject (logs). */
  readonly serverId: string;
  /** Seconds a success is reused (default and maximum 60). */
  readonly cacheSeconds?: number;
  /** Time-out of the FHIR read in ms (default 5000). */
  readonly timeoutMs?: number;
  /** Largest accepted answer in bytes (default 1 MiB). */
  readonly maxResponseBytes?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

export class FhirDelegatedVerifier implements AccessTokenVerifier {
  readonly #o: FhirDelegatedOptions;
  readonly #cache = new Map<string, { access: SmartAccess; until: number }>();
  /** Checks in progress, shared by concurrent requests of one page (the assessment and its images). */
  readonly #pending = new Map<string, Promise<SmartAccess>>();
  /** FHIR reads made (for tests and metrics). */
  reads = 0;
  /** Until when the server is known to refuse a made-up token (ms); see {@link FhirDelegatedVerifier.#refusesStrangers}. */
  #canaryUntil = 0;

  constructor(options: FhirDelegatedOptions) {
    this.#o = options;
  }

  async verify(token: string, context?: VerifyContext): Promise<SmartAccess> {
    if (!token) throw new AccessTokenError('missing', 'no bearer token');
    const patient = context?.patient;
    if (!patient) throw new AccessTokenError('invalid', `tokens of ${this.#o.serverId} are checked against the launch patient: the X-SMART-Patient header is required`);
    if (!FHIR_ID.test(patient)) throw new AccessTokenError('malformed', 'the X-SMART-Patient header is not a FHIR id');
    const key = `${tokenDigest(token)} ${patient}`;
    const now = (this.#o.now ?? Date.now)();
    const hit = this.#cache.get(key);
    if (hit && hit.until > now) return hit.access;
    this.#cache.delete(key);
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#check(token, patient).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    const access = await pending;
    await this.#refusesStrangers(patient);
    const ttl = Math.min(this.#o.cacheSeconds ?? DELEGATED_CACHE_MAX_SECONDS, DELEGATED_CACHE_MAX_SECONDS) * 1000;
    const until = Math.min(now + ttl, access.expiresAt !== undefined ? access.expiresAt * 1000 : Number.POSITIVE_INFINITY);
    if (until > now) {
      if (this.#cache.size > 10_000) this.#cache.clear();
      this.#cache.set(key, { access, until });
    }
    return access;
  }

  /**
   * A "yes" from a FHIR server that answers everyone proves nothing (a sandbox left open, a misconfigured proxy), so
   * before a success counts, the same read with a made-up token must be refused (401/403). Checked again every ten
   * minutes; until it holds, delegated tokens are refused as unverifiable (503), never accepted.
   */
  async #refusesStrangers(patient: string): Promise<void> {
    const now = (this.#o.now ?? Date.now)();
    if (this.#canaryUntil > now) return;
    let status: number;
    try {
      const res = await fetch(`${this.#o.fhirBaseUrl}/Patient/${encodeURIComponent(patient)}`, {
        headers: { Authorization: `Bearer frcds-canary-${randomBytes(16).toString('hex')}`, Accept: FHIR_JSON_ACCEPT },
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5000),
      });
      status = res.status;
      await res.body?.cancel().catch(() => undefined);
    } catch (err) {
      throw new AccessTokenError('unavailable', `the FHIR server ${this.#o.serverId} did not answer (${(err as Error).message})`);
    }
    if (status !== 401 && status !== 403) {
      throw new AccessTokenError('unavailable', `the FHIR server ${this.#o.serverId} does not refuse a made-up token (HTTP ${status}), so it cannot vouch for one: use another verification mode`);
    }
    this.#canaryUntil = now + 10 * 60_000;
  }

  async #check(token: string, patient: string): Promise<SmartAccess> {
    const exp = jwtExpiry(token);
    const now = (this.#o.now ?? Date.now)();
    if (exp !== undefined && exp * 1000 <= now) throw new AccessTokenError('expired', 'the access token has expired');
    const url = `${this.#o.fhirBaseUrl}/Patient/${encodeURIComponent(patient)}`;
    this.reads++;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        headers: { Authorization: `Bearer ${token}`, Accept: FHIR_JSON_ACCEPT },
        // Not followed: the token must reach the allowlisted base URL and nothing else.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5000),
      });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        throw new AccessTokenError('unavailable', `the FHIR server ${this.#o.serverId} answered a redirect (${res.status}), which is not followed`);
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        if (res.status === 429 || res.status >= 500) throw new AccessTokenError('unavailable', `the FHIR server ${this.#o.serverId} answered HTTP ${res.status}`);
        throw new AccessTokenError('invalid', `the FHIR server ${this.#o.serverId} refused the access token for the launch patient (HTTP ${res.status})`);
      }
      const max = this.#o.maxResponseBytes ?? 1 << 20;
      text = Buffer.from(await readCappedBody(res, max, () => new AccessTokenError('unavailable', `the FHIR server's answer exceeds ${max} bytes`))).toString('utf8');
    } catch (err) {
      if (err instanceof AccessTokenError) throw err;
      const e = err as Error;
      throw new AccessTokenError('unavailable', `the FHIR server ${this.#o.serverId} did not answer (${e.name === 'TimeoutError' ? 'timed out' : e.message})`);
    }
    let resource: { resourceType?: unknown; id?: unknown };
    try {
      resource = JSON.parse(text) as typeof resource;
    } catch {
      throw new AccessTokenError('invalid', `the FHIR server ${this.#o.serverId} did not answer with a Patient`);
    }
    if (resource?.resourceType !== 'Patient' || resource.id !== patient) {
      throw new AccessTokenError('invalid', `the FHIR server ${this.#o.serverId} did not answer with the launch patient`);
    }
    return {
      subject: `fhir-delegated:${this.#o.serverId}`,
      scopes: ['patient/*.rs'],
      patient,
      ...(exp !== undefined ? { expiresAt: exp } : {}),
    };
  }
}

/** `exp` of a token that happens to be a JWT (read without verification: only ever used to shorten the cache). */
function jwtExpiry(token: string): number | undefined {
  if (token.split('.').length !== 3) return undefined;
  try {
    const exp = decodeJwt(token).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}
