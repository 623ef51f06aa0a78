/**
 * `POST /sandbox/auth/token` — the token endpoint (form-encoded, RFC 6749 §3.2):
 * - `authorization_code`: single-use code, same client and `redirect_uri` as the authorization, PKCE `code_verifier`
 *   checked against the S256 challenge (RFC 7636 §4.6) — required whenever a challenge was sent, which public
 *   clients must do;
 * - `refresh_token`: issued when `offline_access` or `online_access` was granted; may narrow the scopes;
 * - `client_credentials`: confidential clients only, `system/` scopes (SMART Backend Services with a client secret).
 * The response carries the SMART launch context (`patient`, `encounter`, `need_patient_banner`, `appContext`) and,
 * with `openid fhirUser`, an `id_token`.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#obtain-access-token
 * @see https://hl7.org/fhir/smart-app-launch/STU2/backend-services.html
 */
import { createHash } from 'node:crypto';
import express, { Router, type Request, type Response } from 'express';
import { parseResourceScope, scopeCovers, scopeList } from '../../auth/scopes.ts';
import { authenticateClient } from './client-auth.ts';
import type { CodeGrant, SmartSandboxContext } from './context.ts';
import { CODE_CHALLENGE, grantableScopes } from './authorize.ts';
import { randomHandle } from './store.ts';
import type { GrantContext } from './tokens.ts';

function oauthError(res: Response, status: number, error: string, description: string): void {
  // RFC 6749 §5.2: a 401 for client authentication names the scheme the client should use.
  if (status === 401) res.set('WWW-Authenticate', 'Basic realm="sandbox-auth"');
  res.status(status).json({ error, error_description: description });
}

/** BASE64URL(SHA256(ASCII(verifier))), RFC 7636 §4.6. */
export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

async function tokenResponse(ctx: SmartSandboxContext, grant: GrantContext & { nonce?: string }, withRefresh: boolean): Promise<Record<string, unknown>> {
  const access = await ctx.signer.accessToken(grant, ctx.settings.accessTokenLifetimeSeconds);
  const body: Record<string, unknown> = {
    access_token: access.token,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    scope: grant.scopes.join(' '),
  };
  if (grant.patient) body['patient'] = grant.patient;
  if (grant.encounter) body['encounter'] = grant.encounter;
  if (grant.needPatientBanner !== undefined) body['need_patient_banner'] = grant.needPatientBanner;
  if (grant.appContext !== undefined) body['appContext'] = grant.appContext;
  if (grant.user && grant.scopes.includes('openid') && grant.scopes.includes('fhirUser')) {
    body['id_token'] = await ctx.signer.idToken(grant, ctx.settings.accessTokenLifetimeSeconds, grant.nonce);
  }
  if (withRefresh && (grant.scopes.includes('offline_access') || grant.scopes.includes('online_access'))) {
    const refresh = randomHandle();
    ctx.refreshTokens.set(refresh, grant as CodeGrant, ctx.settings.refreshTokenLifetimeSeconds * 1000);
    body['refresh_token'] = refresh;
  }
  return body;
}

export function tokenRouter(ctx: SmartSandboxContext): Router {
  const r = Router();
  r.options('/token', (_req, res) => {
    res.set({ 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'POST', 'Access-Control-Allow-Headers': 'Authorization, Content-Type', 'Access-Control-Max-Age': '600' }).status(204).end();
  });
  r.post('/token', express.urlencoded({ extended: false, limit: '16kb' }), async (req: Request, res: Response) => {
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache', 'Access-Control-Allow-Origin': '*' });
    if (!req.is('application/x-www-form-urlencoded')) return oauthError(res, 400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
    const form: Record<string, string> = {};
    for (const [k, v] of Object.entries((req.body ?? {}) as Record<string, unknown>)) if (typeof v === 'string') form[k] = v;
    const auth = authenticateClient(ctx.clients, req, form);
    if (!auth.ok) return oauthError(res, auth.status, auth.error, auth.description);
    const client = auth.client;
    const grantType = form['grant_type'];
    if (grantType !== 'authorization_code' && grantType !== 'refresh_token' && grantType !== 'client_credentials') {
      return oauthError(res, 400, 'unsupported_grant_type', 'grant_type must be authorization_code, refresh_token or client_credentials');
    }
    if (!client.grantTypes.includes(grantType)) return oauthError(res, 400, 'unauthorized_client', `this client may not use ${grantType}`);
    const log = ctx.logger.child({ clientId: client.clientId, grantType });

    if (grantType === 'authorization_code') {
      const grant = form['code'] ? ctx.codes.take(form['code']) : undefined;
      if (!grant || grant.clientId !== client.clientId) return oauthError(res, 400, 'invalid_grant', 'the authorization code is unknown, used or expired');
      if (form['redirect_uri'] !== grant.redirectUri) return oauthError(res, 400, 'invalid_grant', 'redirect_uri does not match the authorization request');
      if (grant.codeChallenge) {
        const verifier = form['code_verifier'];
        if (!verifier) return oauthError(res, 400, 'invalid_grant', 'code_verifier is required (PKCE)');
        if (!CODE_CHALLENGE.test(verifier) || s256(verifier) !== grant.codeChallenge) return oauthError(res, 400, 'invalid_grant', 'code_verifier does not match the code_challenge');
      } else if (client.type === 'public') {
        return oauthError(res, 400, 'invalid_grant', 'PKCE is required for public clients');
      }
      const { redirectUri: _r, codeChallenge: _c, ...context } = grant;
      log.info({ withPatient: Boolean(grant.patient) }, 'sandbox access token issued');
      return void res.json(await tokenResponse(ctx, context, true));
    }

    if (grantType === 'refresh_token') {
      const grant = form['refresh_token'] ? ctx.refreshTokens.get(form['refresh_token']) : undefined;
      if (!grant || grant.clientId !== client.clientId) return oauthError(res, 400, 'invalid_grant', 'the refresh token is unknown, revoked or expired');
      let scopes = grant.scopes;
      if (form['scope']) {
        const asked = scopeList(form['scope']);
        if (!asked.every((s) => grant.scopes.some((g) => scopeCovers(g, s)))) return oauthError(res, 400, 'invalid_scope', 'a refresh may only narrow the granted scopes');
        scopes = asked;
      }
      const { redirectUri: _r, codeChallenge: _c, nonce: _n, ...context } = grant;
      log.info('sandbox access token refreshed');
      const body = await tokenResponse(ctx, { ...context, scopes }, false);
      body['refresh_token'] = form['refresh_token'];
      return void res.json(body);
    }

    // client_credentials
    if (!auth.authenticated) return oauthError(res, 401, 'invalid_client', 'client_credentials needs a confidential client');
    const allowedSystem = client.scopes.filter((s) => parseResourceScope(s)?.context === 'system');
    let scopes: string[];
    if (form['scope']) {
      const asked = scopeList(form['scope']);
      if (asked.some((s) => parseResourceScope(s)?.context !== 'system')) return oauthError(res, 400, 'invalid_scope', 'client_credentials grants system/ scopes only');
      scopes = grantableScopes(client, asked);
      if (scopes.length !== asked.length) return oauthError(res, 400, 'invalid_scope', 'some requested scopes are not allowed for this client');
    } else {
      scopes = allowedSystem;
    }
    if (scopes.length === 0) return oauthError(res, 400, 'invalid_scope', 'no system scopes to grant');
    log.info({ scopes: scopes.length }, 'sandbox backend access token issued');
    res.json(await tokenResponse(ctx, { clientId: client.clientId, scopes }, false));
  });
  return r;
}
