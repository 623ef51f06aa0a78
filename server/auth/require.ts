/**
 * Express guard for the service's own APIs: {@link requireSmartAccess} demands a verified SMART access token
 * (RFC 6750 bearer), and {@link patientAllowed} applies the token's patient restriction. The request's
 * `X-FHIR-Server` and `X-SMART-Patient` headers are passed to the verifier as its context.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
import type { RequestHandler, Response } from 'express';
import { holdsScope } from './scopes.ts';
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess } from './types.ts';

export interface RequireSmartAccessOptions {
  /** The token must hold a scope covering at least one of these (e.g. `patient/RiskAssessment.r`); absent: any valid token. */
  readonly anyScope?: readonly string[];
  /** Realm named in `WWW-Authenticate`. */
  readonly realm?: string;
}

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer[ ]+([\x21-\x7e]+)\s*$/i.exec(header ?? '');
  return m ? m[1] : undefined;
}

function challenge(realm: string, error?: string, description?: string, scope?: string): string {
  const parts = [`realm="${realm}"`];
  if (error) parts.push(`error="${error}"`);
  if (description) parts.push(`error_description="${description.replace(/["\\]/g, '')}"`);
  if (scope) parts.push(`scope="${scope}"`);
  return `Bearer ${parts.join(', ')}`;
}

/**
 * 401 with `WWW-Authenticate: Bearer` when the token is missing, invalid or expired; 403 (`insufficient_scope`) when
 * it lacks every scope in `anyScope`; 503 when the authorization server cannot be reached. On success the
 * {@link SmartAccess} is in `res.locals.smartAccess`.
 */
export function requireSmartAccess(verifier: AccessTokenVerifier, options: RequireSmartAccessOptions = {}): RequestHandler {
  const realm = options.realm ?? 'fracture-risk-cds';
  return async (req, res, next) => {
    const token = bearerToken(req.get('authorization'));
    if (!token) {
      res.set('WWW-Authenticate', challenge(realm)).status(401).json({ error: 'A SMART access token is required (Authorization: Bearer <token>)', code: 'TOKEN_MISSING', status: 401 });
      return;
    }
    let access: SmartAccess;
    try {
      // Which FHIR server the app was launched against picks the verifier; the launch patient is what a
      // FHIR-delegated check reads (server/auth/dispatch.ts). Neither widens what the token's claims grant.
      const fhirServer = req.get('x-fhir-server');
      const patient = req.get('x-smart-patient');
      access = await verifier.verify(token, { ...(fhirServer ? { fhirServer } : {}), ...(patient ? { patient } : {}) });
    } catch (err) {
      const e = err instanceof AccessTokenError ? err : new AccessTokenError('invalid', 'the access token could not be verified');
      if (e.code === 'unavailable') {
        res.set('Retry-After', '5').status(503).json({ error: 'The authorization server could not be reached to verify the token', code: 'TOKEN_UNVERIFIABLE', status: 503 });
        return;
      }
      res.set('WWW-Authenticate', challenge(realm, 'invalid_token', e.message)).status(401).json({ error: e.message, code: 'TOKEN_INVALID', status: 401 });
      return;
    }
    if (options.anyScope?.length && !options.anyScope.some((s) => holdsScope(access.scopes, s))) {
      res
        .set('WWW-Authenticate', challenge(realm, 'insufficient_scope', 'the token lacks the scope this API needs', options.anyScope.join(' ')))
        .status(403)
        .json({ error: `The access token needs one of these scopes: ${options.anyScope.join(', ')}`, code: 'INSUFFICIENT_SCOPE', status: 403 });
      return;
    }
    res.locals['smartAccess'] = access;
    next();
  };
}

/** The verified access of this request (set by {@link requireSmartAccess}), if any. */
export function smartAccessOf(res: Response): SmartAccess | undefined {
  return res.locals['smartAccess'] as SmartAccess | undefined;
}

/**
 * Whether the request may touch `patientId`: always without a token (the guard is configured off), always for tokens
 * without a `patient` claim (user/system level), otherwise only for the token's own patient.
 */
export function patientAllowed(res: Response, patientId: string): boolean {
  const access = smartAccessOf(res);
  return !access?.patient || access.patient === patientId;
}
