/**
 * The SMART authorization server of a simulated EHR tenant (SMART App Launch 2.x, EHR launch):
 * - `GET authorize` auto-approves (the user is already signed in to the EHR): it checks the client, the exact
 *   redirect URI, `aud` = this tenant's FHIR base, PKCE S256 (required) and the `launch` id, then redirects back with
 *   a one-time code for the launch's patient;
 * - `POST token` (authorization_code, public client) checks the code, redirect URI, client id and the PKCE verifier
 *   and answers `access_token`, `token_type`, `expires_in`, `scope`, `patient`, `need_patient_banner` and the
 *   launch's `appContext` (a CDS card's SMART link);
 * - `GET jwks` publishes the public key of JWT access tokens (when the EHR signs them asymmetrically);
 * - `POST introspect` (RFC 7662) answers what a token grants, to a caller that authenticates the way the tenant is
 *   configured: HTTP Basic, `client_secret_post`, a static bearer credential, the token itself as the bearer
 *   (smart-launcher-v2), or an RFC 7523 `private_key_jwt` client assertion.
 * There is no `id_token`: the app's patient view does not need the user's identity, and no refresh tokens.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html
 * @see https://www.rfc-editor.org/rfc/rfc7636 (PKCE)
 * @see https://www.rfc-editor.org/rfc/rfc7662 (introspection)
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-2.2 (JWT client authentication)
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import express, { Router, type Request } from 'express';
import { importJWK, jwtVerify, type JWK } from 'jose';
import { oauthError } from './http.ts';
import type { EhrTokens } from './tokens.ts';
import type { ClientAuth, Grant, TenantConvention } from './types.ts';

/** The SMART app's client id (client/src/launch-options.ts), registered as a public client. */
export const APP_CLIENT_ID = 'fracture-risk-app';
/** The client id the service presents to the introspection endpoint. */
export const INTROSPECTION_CLIENT_ID = 'frcds-introspection';
/** Access token lifetime, seconds. */
export const TOKEN_LIFETIME_S = 3600;

/** What the EHR knows about one launch (EHR launch `launch` parameter). */
export interface LaunchContext {
  readonly tenant: string;
  readonly patient: string;
  /** `Practitioner/<id>` of the signed-in user. */
  readonly user: string;
  readonly appContext?: string;
}

/** One introspection call (for assertions: which client authentication arrived, and whether it was accepted). */
export interface IntrospectionRecord {
  readonly tenant: string;
  readonly clientAuth: ClientAuth | 'none';
  readonly accepted: boolean;
  readonly active: boolean;
}

export interface AuthServerOptions {
  readonly tenant: TenantConvention;
  /** Public URL of this router (authorization origin + `tenant.authPath`). */
  readonly authBase: string;
  readonly fhirBase: string;
  readonly tokens: EhrTokens;
  /** The app's registered redirect URI; undefined until the EHR is connected to the service. */
  readonly redirectUri: () => string | undefined;
  /** Resolves a `launch` parameter to its context, or undefined when unknown. */
  readonly resolveLaunch: (launch: string) => LaunchContext | undefined;
  /** How the introspection caller must authenticate (absent: no introspection endpoint). */
  readonly introspection?: {
    readonly clientAuth: ClientAuth;
    /** Secret for basic / client_secret_post / bearer. */
    readonly secret: string;
    /** Public JWK of the caller's private_key_jwt key. */
    readonly publicJwk?: JWK;
  };
  readonly introspections: IntrospectionRecord[];
  /** Counts GETs of the JWKS (to see whether the service used pinned keys instead). */
  readonly onJwksFetch: () => void;
}

interface PendingCode {
  readonly launch: LaunchContext;
  readonly scope: string;
  readonly redirectUri: string;
  readonly challenge: string;
  readonly expiresAt: number;
}

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** The scopes granted for a patient-level EHR launch: what was asked, minus user- and system-level scopes. */
export function grantedScopes(requested: string): string {
  return requested.split(/\s+/).filter((s) => s && !/^(user|system)\//.test(s)).join(' ');
}

export function createAuthServer(o: AuthServerOptions): Router {
  const router = Router();
  const codes = new Map<string, PendingCode>();
  const seenAssertions = new Set<string>();
  const now = (): number => Math.floor(Date.now() / 1000);

  router.get('/authorize', (req, res) => {
    const q = req.query as Record<string, string | undefined>;
    const registered = o.redirectUri();
    if (q['client_id'] !== APP_CLIENT_ID) return void res.status(400).type('text').send(`unknown client_id ${JSON.stringify(q['client_id'])}`);
    if (!registered || q['redirect_uri'] !== registered) return void res.status(400).type('text').send(`redirect_uri ${JSON.stringify(q['redirect_uri'])} is not registered for ${APP_CLIENT_ID}`);
    // From here on, errors go back to the app (RFC 6749 §4.1.2.1).
    const back = (params: Record<string, string>): void => {
      const u = new URL(registered);
      for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
      if (q['state']) u.searchParams.set('state', q['state']);
      res.redirect(302, u.toString());
    };
    if (q['response_type'] !== 'code') return back({ error: 'unsupported_response_type', error_description: 'response_type must be code' });
    if ((q['aud'] ?? '').replace(/\/$/, '') !== o.fhirBase) return back({ error: 'invalid_request', error_description: `aud must be ${o.fhirBase}` });
    if (q['code_challenge_method'] !== 'S256' || !q['code_challenge']) return back({ error: 'invalid_request', error_description: 'PKCE with S256 is required' });
    const scope = grantedScopes(q['scope'] ?? '');
    if (!q['launch']) return back({ error: 'invalid_request', error_description: 'this EHR supports EHR launch only: a launch parameter is required' });
    const launch = o.resolveLaunch(q['launch']);
    if (!launch || launch.tenant !== o.tenant.id) return back({ error: 'invalid_request', error_description: 'unknown or expired launch' });
    const code = randomBytes(24).toString('base64url');
    codes.set(code, { launch, scope, redirectUri: registered, challenge: q['code_challenge'], expiresAt: now() + 60 });
    back({ code });
  });

  router.post('/token', express.urlencoded({ extended: false, limit: '16kb' }), async (req, res) => {
    const b = req.body as Record<string, string | undefined>;
    if (b['grant_type'] !== 'authorization_code') return oauthError(res, 400, 'unsupported_grant_type', 'only authorization_code is supported');
    const pending = b['code'] ? codes.get(b['code']) : undefined;
    if (b['code']) codes.delete(b['code']); // one use only, even when the rest of the request is wrong
    if (!pending || pending.expiresAt < now()) return oauthError(res, 400, 'invalid_grant', 'unknown, used or expired code');
    if (b['redirect_uri'] !== pending.redirectUri) return oauthError(res, 400, 'invalid_grant', 'redirect_uri differs from the authorization request');
    if (b['client_id'] !== APP_CLIENT_ID) return oauthError(res, 401, 'invalid_client', 'client_id is required for a public client');
    const verifier = b['code_verifier'] ?? '';
    if (createHash('sha256').update(verifier).digest('base64url') !== pending.challenge) return oauthError(res, 400, 'invalid_grant', 'the PKCE code_verifier does not match');
    const iat = now();
    const userHash = createHash('sha256').update(pending.launch.user).digest('hex').slice(0, 32);
    const grant: Grant = {
      tenant: o.tenant.id,
      sub: userHash,
      clientId: APP_CLIENT_ID,
      scope: pending.scope,
      patient: pending.launch.patient,
      fhirUser: pending.launch.user,
      ...(pending.launch.appContext ? { appContext: pending.launch.appContext } : {}),
      iat,
      exp: iat + TOKEN_LIFETIME_S,
    };
    const accessToken = await o.tokens.issue(grant, { audience: o.fhirBase, context: o.tenant.tokenContext });
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json({
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: TOKEN_LIFETIME_S,
      scope: grant.scope,
      patient: grant.patient,
      need_patient_banner: false,
      ...(grant.appContext ? { appContext: grant.appContext } : {}),
    });
  });

  router.get('/jwks', (_req, res) => {
    o.onJwksFetch();
    res.set('Cache-Control', 'max-age=300').json(o.tokens.jwks());
  });

  if (o.introspection) {
    const intro = o.introspection;
    const introspectUrl = `${o.authBase}/introspect`;
    /** Which client authentication the request carries, and whether it is right. */
    const authenticate = async (req: Request, body: Record<string, string | undefined>): Promise<{ kind: ClientAuth | 'none'; ok: boolean }> => {
      const header = req.get('authorization') ?? '';
      if (body['client_assertion'] !== undefined) {
        if (body['client_assertion_type'] !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' || !intro.publicJwk) return { kind: 'private_key_jwt', ok: false };
        try {
          const key = await importJWK(intro.publicJwk, intro.publicJwk.alg);
          const { payload } = await jwtVerify(body['client_assertion'], key, { issuer: INTROSPECTION_CLIENT_ID, subject: INTROSPECTION_CLIENT_ID, audience: introspectUrl, requiredClaims: ['exp', 'jti'] });
          if (seenAssertions.has(payload.jti!)) return { kind: 'private_key_jwt', ok: false };
          seenAssertions.add(payload.jti!);
          return { kind: 'private_key_jwt', ok: intro.clientAuth === 'private_key_jwt' };
        } catch {
          return { kind: 'private_key_jwt', ok: false };
        }
      }
      if (/^Basic /i.test(header)) {
        const [id, secret] = Buffer.from(header.slice(6), 'base64').toString().split(':');
        return { kind: 'basic', ok: intro.clientAuth === 'basic' && id === INTROSPECTION_CLIENT_ID && sameSecret(secret ?? '', intro.secret) };
      }
      if (/^Bearer /i.test(header)) {
        const credential = header.slice(7).trim();
        if (intro.clientAuth === 'bearer') return { kind: 'bearer', ok: sameSecret(credential, intro.secret) };
        // smart-launcher-v2: any token this server signed authorizes the call.
        return { kind: 'bearer-token', ok: intro.clientAuth === 'bearer-token' && (await o.tokens.verify(credential)) !== undefined };
      }
      if (body['client_secret'] !== undefined) {
        return { kind: 'client_secret_post', ok: intro.clientAuth === 'client_secret_post' && body['client_id'] === INTROSPECTION_CLIENT_ID && sameSecret(body['client_secret'], intro.secret) };
      }
      return { kind: 'none', ok: false };
    };

    router.post('/introspect', express.urlencoded({ extended: false, limit: '16kb' }), async (req, res) => {
      const body = req.body as Record<string, string | undefined>;
      const who = await authenticate(req, body);
      if (!who.ok) {
        o.introspections.push({ tenant: o.tenant.id, clientAuth: who.kind, accepted: false, active: false });
        return oauthError(res, 401, 'invalid_client', `introspection needs ${intro.clientAuth} client authentication`);
      }
      const grant = body['token'] ? await o.tokens.verify(body['token']) : undefined;
      o.introspections.push({ tenant: o.tenant.id, clientAuth: who.kind, accepted: true, active: !!grant && grant.tenant === o.tenant.id });
      if (!grant || grant.tenant !== o.tenant.id) return void res.set('Cache-Control', 'no-store').json({ active: false });
      if (o.tenant.tokenContext === 'launcher-v2') {
        // smart-launcher-v2: the token's own claims with `context` spread to the top level; no `sub`, no `iss`.
        res.set('Cache-Control', 'no-store').json({
          active: true,
          scope: grant.scope,
          client_id: grant.clientId,
          ...(grant.fhirUser ? { fhirUser: grant.fhirUser } : {}),
          ...(grant.patient ? { patient: grant.patient } : {}),
          need_patient_banner: false,
          exp: grant.exp,
        });
        return;
      }
      res.set('Cache-Control', 'no-store').json({
        active: true,
        scope: grant.scope,
        client_id: grant.clientId,
        sub: grant.sub,
        ...(grant.patient ? { patient: grant.patient } : {}),
        ...(grant.fhirUser ? { fhirUser: grant.fhirUser } : {}),
        ...(grant.appContext ? { appContext: grant.appContext } : {}),
        token_type: 'Bearer',
        iss: o.tokens.issuer,
        aud: o.fhirBase,
        iat: grant.iat,
        exp: grant.exp,
      });
    });
  }
  return router;
}
