/**
 * The operator credential of the operations endpoints (`/api/jobs/*`, `/api/events/subscriptions`,
 * `/api/feedback/summary`): queue state, dead letters, subscription heartbeats and card acceptance rates are for
 * whoever runs the service, not for app users or anyone who can reach the port.
 *
 * A request is let through when its RFC 6750 bearer token is
 * - the `OPS_TOKEN` setting (compared in constant time), or
 * - with the embedded sandbox only, an access token of the sandbox's own authorization server that holds a
 *   `system/` read scope and names no patient (a backend client's client_credentials token, e.g. `demo-backend`):
 *   the sandbox then works out of the box without a secret being generated or logged.
 * Anything else answers 401 with `WWW-Authenticate: Bearer` (and no detail of what was wrong); without `OPS_TOKEN`
 * and outside the sandbox, nothing is let through. `/healthz`, `/readyz` and `/metrics` are not behind this guard:
 * they carry no patient data and probes cannot hold a secret; keep `/metrics` off the public network at the proxy.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 * @see https://hl7.org/fhir/smart-app-launch/STU2/backend-services.html
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { AppConfig } from '../config.ts';
import type { Logger } from '../logging.ts';
import { bearerToken } from './require.ts';
import { resourceScopes } from './scopes.ts';
import { sandboxAuthUrls } from './setup.ts';
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess } from './types.ts';
import { JwtAccessTokenVerifier } from './verifier.ts';

export interface OperatorGuardOptions {
  /** `OPS_TOKEN`; undefined: no static operator token is accepted. */
  readonly opsToken: string | undefined;
  /** Verifier of system-level SMART tokens that may act as operators (the sandbox's own); undefined: none. */
  readonly systemTokens?: AccessTokenVerifier;
  readonly logger: Logger;
}

const REALM = 'frcds-operations';

/** SHA-256 of a string: equal-length buffers for {@link timingSafeEqual}, so the token's length leaks nothing either. */
function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Whether a verified token is a backend (system-level) token: a `system/` scope that can read, no patient. */
export function isSystemAccess(access: SmartAccess): boolean {
  return !access.patient && resourceScopes(access.scopes).some((s) => s.context === 'system' && s.permissions.has('r') && s.query === undefined);
}

/** The guard (see file header). On success `res.locals.operator` says which credential was used. */
export function requireOperator(options: OperatorGuardOptions): RequestHandler {
  const expected = options.opsToken ? digest(options.opsToken) : undefined;
  const log = options.logger.child({ component: 'ops-auth' });
  const how = [
    expected ? 'Authorization: Bearer <OPS_TOKEN>' : undefined,
    options.systemTokens ? 'a system-level access token of the sandbox authorization server' : undefined,
  ].filter(Boolean);
  const needs = how.length ? `Operations endpoints need ${how.join(' or ')}` : 'Operations endpoints need an operator credential: set OPS_TOKEN';

  return async (req, res, next) => {
    const refuse = (reason: string): void => {
      log.warn({ method: req.method, reason }, 'operations request refused');
      res.set('WWW-Authenticate', `Bearer realm="${REALM}"`).status(401).json({ error: needs, code: 'OPERATOR_CREDENTIAL_REQUIRED', status: 401 });
    };
    const token = bearerToken(req.get('authorization'));
    if (!token) return refuse('no bearer token');
    if (expected && timingSafeEqual(digest(token), expected)) {
      res.locals['operator'] = 'ops-token';
      return next();
    }
    if (!options.systemTokens) return refuse('wrong token');
    let access: SmartAccess;
    try {
      access = await options.systemTokens.verify(token);
    } catch (err) {
      if (err instanceof AccessTokenError && err.code === 'unavailable') {
        res.set('Retry-After', '5').status(503).json({ error: 'The authorization server could not be reached to verify the token', code: 'TOKEN_UNVERIFIABLE', status: 503 });
        return;
      }
      return refuse('token not verified');
    }
    if (!isSystemAccess(access)) return refuse('not a system-level token');
    res.locals['operator'] = `system-token:${access.clientId ?? access.subject}`;
    next();
  };
}

/**
 * The guard as the configuration asks: `OPS_TOKEN`, plus, when the embedded sandbox runs, tokens of the sandbox
 * authorization server (verified against its keys over loopback, whatever token-verification.json says about the
 * app's tokens: foreign servers' tokens never act as operators).
 */
export function operatorGuard(config: AppConfig, logger: Logger): RequestHandler {
  let systemTokens: AccessTokenVerifier | undefined;
  if (config.fhir.sandbox) {
    const urls = sandboxAuthUrls(config);
    systemTokens = new JwtAccessTokenVerifier({
      issuer: urls.issuer,
      audience: [...new Set([config.fhir.publicBaseUrl, config.fhir.baseUrl])],
      keys: { jwksUri: `${urls.internal}/jwks`, timeoutMs: config.fhir.timeoutMs },
    });
  }
  return requireOperator({ opsToken: config.auth.opsToken, ...(systemTokens ? { systemTokens } : {}), logger });
}
