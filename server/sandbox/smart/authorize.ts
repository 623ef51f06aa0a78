/**
 * `GET /sandbox/auth/authorize` — the authorization endpoint (SMART App Launch 2, step "obtain authorization code").
 *
 * - An unknown `client_id` or an unregistered `redirect_uri` is answered with an error page, never a redirect
 *   (RFC 6749 §4.1.2.1: redirecting there would make the server an open redirector).
 * - Every other problem is redirected back as `error` / `error_description` / `state`.
 * - PKCE: `code_challenge_method` must be `S256` (`plain` is refused); public clients must send a challenge.
 * - `aud` must be the sandbox FHIR base URL.
 * - EHR launch (`launch` from `POST /sandbox/auth/launch`): the code is issued at once with the launch's patient,
 *   encounter, user, appContext and need_patient_banner.
 * - Standalone launch: the demo user (and, when `launch/patient` or patient-level scopes are asked, the patient) is
 *   chosen on the picker page (pick-patient.ts). Without a patient to choose and with `login_hint` naming a demo user,
 *   the picker is skipped (the FLS coordinator's worklist launch).
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#obtain-authorization-code
 * @see https://www.rfc-editor.org/rfc/rfc7636
 */
import type { Request, RequestHandler, Response } from 'express';
import { parseResourceScope, scopeCovers, scopeList } from '../../auth/scopes.ts';
import type { SmartClient } from './clients.ts';
import { normaliseBase, PENDING_TTL_MS, type CodeGrant, type SmartSandboxContext } from './context.ts';
import { esc, page } from './html.ts';
import { randomHandle } from './store.ts';
import { DEFAULT_USER, DEMO_USERS } from './users.ts';

/** RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters; verifiers are 43–128 unreserved characters. */
export const CODE_CHALLENGE = /^[A-Za-z0-9\-._~]{43,128}$/;

/** Redirects to the client with an OAuth error (RFC 6749 §4.1.2.1). */
export function redirectError(res: Response, redirectUri: string, error: string, description: string, state?: string): void {
  const url = new URL(redirectUri);
  url.searchParams.set('error', error);
  url.searchParams.set('error_description', description);
  if (state !== undefined) url.searchParams.set('state', state);
  res.redirect(302, url.toString());
}

/** Stores a single-use authorization code for `grant` and redirects to the client with it. */
export function issueCode(ctx: SmartSandboxContext, res: Response, grant: CodeGrant, state?: string): void {
  const code = randomHandle();
  ctx.codes.set(code, grant, ctx.settings.authorizationCodeLifetimeSeconds * 1000);
  const url = new URL(grant.redirectUri);
  url.searchParams.set('code', code);
  if (state !== undefined) url.searchParams.set('state', state);
  ctx.logger.info({ clientId: grant.clientId, launch: grant.patient ? 'with-patient' : 'no-patient', scopes: grant.scopes.length }, 'sandbox authorization code issued');
  res.redirect(302, url.toString());
}

/** The requested scopes this client may have (unknown or disallowed scopes are dropped, as SMART allows). */
export function grantableScopes(client: SmartClient, requested: readonly string[]): string[] {
  return [...new Set(requested)].filter((r) => client.scopes.some((a) => scopeCovers(a, r)));
}

function errorPage(res: Response, status: number, message: string): void {
  res
    .status(status)
    .type('html')
    .send(page('Authorization error', `<h1>Authorization request refused</h1><p class="error" role="alert">${esc(message)}</p><p>The app's registration is in <code>smart-config/smart-clients.json</code>.</p>`));
}

function q(req: Request, name: string): string | undefined {
  const v = req.query[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function authorizeHandler(ctx: SmartSandboxContext): RequestHandler {
  return async (req, res) => {
    res.set('Cache-Control', 'no-store');
    const client = ctx.clients.get(q(req, 'client_id'));
    if (!client) return errorPage(res, 400, 'Unknown client_id.');
    const asked = q(req, 'redirect_uri');
    const redirectUri = asked ?? (client.redirectUris.length === 1 ? client.redirectUris[0] : undefined);
    if (!redirectUri || !client.redirectUris.includes(redirectUri)) {
      return errorPage(res, 400, `redirect_uri ${asked ? `"${asked}" ` : ''}is not registered for client "${client.clientId}".`);
    }
    const state = q(req, 'state');
    const fail = (error: string, description: string): void => redirectError(res, redirectUri, error, description, state);

    if (q(req, 'response_type') !== 'code') return fail('unsupported_response_type', 'response_type must be "code"');
    if (!client.grantTypes.includes('authorization_code')) return fail('unauthorized_client', 'this client may not use the authorization code grant');
    const aud = q(req, 'aud');
    if (!aud || !ctx.acceptedAudiences.has(normaliseBase(aud))) return fail('invalid_request', `aud must be the FHIR server base URL (${ctx.fhirBaseUrl})`);

    const challenge = q(req, 'code_challenge');
    const method = q(req, 'code_challenge_method');
    if (challenge || method) {
      if (method !== 'S256') return fail('invalid_request', 'code_challenge_method must be S256 (plain is not supported)');
      if (!challenge || !CODE_CHALLENGE.test(challenge)) return fail('invalid_request', 'code_challenge must be 43-128 characters of base64url');
    } else if (client.type === 'public') {
      return fail('invalid_request', 'PKCE is required: send code_challenge and code_challenge_method=S256');
    }

    const requested = scopeList(q(req, 'scope') ?? '');
    const scopes = grantableScopes(client, requested);
    if (scopes.length === 0) return fail('invalid_scope', 'none of the requested scopes may be granted to this client');
    const nonce = q(req, 'nonce');
    const launchId = q(req, 'launch');

    if (launchId) {
      // EHR launch: the launch context decides patient and user.
      const launch = ctx.launches.get(launchId);
      if (!launch) return fail('invalid_request', 'unknown or expired launch parameter');
      return issueCode(ctx, res, {
        clientId: client.clientId,
        redirectUri,
        scopes,
        user: launch.user ?? DEFAULT_USER,
        patient: launch.patient,
        ...(launch.encounter ? { encounter: launch.encounter } : {}),
        ...(launch.appContext !== undefined ? { appContext: launch.appContext } : {}),
        needPatientBanner: launch.needPatientBanner,
        ...(challenge ? { codeChallenge: challenge } : {}),
        ...(nonce ? { nonce } : {}),
      }, state);
    }
    if (scopes.includes('launch')) return fail('invalid_scope', 'the "launch" scope needs a launch parameter (EHR launch); standalone apps ask for launch/patient');

    // Standalone launch.
    const needsPatient = scopes.includes('launch/patient') || scopes.some((s) => parseResourceScope(s)?.context === 'patient');
    const hint = q(req, 'login_hint');
    const hintedUser = DEMO_USERS.find((u) => u.reference === hint || u.reference.split('/')[1] === hint)?.reference;
    const base = {
      clientId: client.clientId,
      redirectUri,
      scopes,
      ...(challenge ? { codeChallenge: challenge } : {}),
      ...(nonce ? { nonce } : {}),
      ...(state !== undefined ? { state } : {}),
    };
    if (!needsPatient && hintedUser) {
      return issueCode(ctx, res, { ...base, scopes: scopes.filter((s) => s !== 'launch/patient'), user: hintedUser }, state);
    }
    const id = randomHandle(16);
    ctx.pending.set(id, { ...base, needsPatient }, PENDING_TTL_MS);
    res.redirect(302, `${req.baseUrl}/pick-patient?request=${encodeURIComponent(id)}${hintedUser ? `&user=${encodeURIComponent(hintedUser)}` : ''}`);
  };
}
