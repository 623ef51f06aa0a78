/**
 * Authentication of incoming subscription notifications, configurable (`EVENTS_AUTH`):
 * - `secret` (default): the FHIR server sends a shared secret in a header (`EVENTS_SECRET_HEADER`, default
 *   `X-Subscription-Secret`), which it learned from the Subscription's `channel.header`. Compared in constant time.
 * - `jwt`: the FHIR server signs a short-lived JWT for each notification, sent as `Authorization: Bearer`; checked by
 *   {@link NotificationJwtVerifier} (jwt.ts). No secret is then stored in any Subscription.
 * Secrets and tokens are never logged, and never put in an error message.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import { StateUnavailableError } from '../state/types.ts';
import { NotificationAuthError, type NotificationJwtVerifier } from './jwt.ts';

export type EventsAuthConfig =
  | { readonly type: 'secret'; readonly header: string; readonly secret: string | undefined }
  | { readonly type: 'jwt'; readonly verifier: NotificationJwtVerifier };

/**
 * `detail` (jwt mode) says which check failed, for logs only: the HTTP answer is a bare 401 either way. `unavailable`
 * (jwt mode): the token is good but the shared replay cache cannot be reached, so it cannot be checked for replay —
 * the service's fault, answered 503 (the FHIR server retries; nothing is lost), not 401.
 */
export type AuthResult = { ok: true } | { ok: false; reason: 'missing' | 'invalid' | 'not-configured' | 'unavailable'; detail?: string };

export interface NotificationAuthenticator {
  /** What the authenticator needs to be configured (named in the `not-configured` log line). */
  readonly needs: string;
  check(req: Request): Promise<AuthResult>;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time comparison of two strings (hashed first, so lengths leak nothing either). */
export function secretsMatch(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

export function createAuthenticator(config: EventsAuthConfig): NotificationAuthenticator {
  if (config.type === 'secret') {
    return {
      needs: 'EVENTS_SECRET',
      async check(req) {
        if (!config.secret) return { ok: false, reason: 'not-configured' };
        const given = req.get(config.header);
        if (!given) return { ok: false, reason: 'missing' };
        return secretsMatch(given.replace(/^Bearer\s+/i, ''), config.secret) ? { ok: true } : { ok: false, reason: 'invalid' };
      },
    };
  }
  return {
    needs: 'the notification signer\'s keys (EVENTS_JWKS_URL, or the sandbox\'s once it has started)',
    async check(req) {
      try {
        await config.verifier.verify(req.get('authorization'));
        return { ok: true };
      } catch (err) {
        if (err instanceof StateUnavailableError) return { ok: false, reason: 'unavailable', detail: err.message };
        // Anything unexpected is a refusal too: a notification must never get past the check by breaking it.
        if (!(err instanceof NotificationAuthError)) return { ok: false, reason: 'invalid', detail: 'error' };
        if (err.reason === 'not-configured') return { ok: false, reason: 'not-configured' };
        return { ok: false, reason: err.reason === 'missing' ? 'missing' : 'invalid', detail: err.reason };
      }
    },
  };
}
