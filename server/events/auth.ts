/**
 * Authentication of incoming subscription notifications (issue 8, item 1), configurable:
 * - `secret` (default): the FHIR server sends a shared secret in a header (`EVENTS_SECRET_HEADER`, default
 *   `X-Subscription-Secret`), which it learned from the Subscription's `channel.header`. Compared in constant time.
 * - `jwt`: the sender signs a JWT (ES256/ES384/RS256/RS384) sent as `Authorization: Bearer`; verified against a
 *   JWKS (`EVENTS_JWKS_URL`), issuer (`EVENTS_JWT_ISSUER`) and audience = the notification endpoint URL.
 * Secrets and tokens are never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import { createRemoteJWKSet, jwtVerify } from 'jose';

export type EventsAuthConfig =
  | { readonly type: 'secret'; readonly header: string; readonly secret: string | undefined }
  | { readonly type: 'jwt'; readonly jwksUrl: string; readonly issuer: string; readonly audience: string };

export type AuthResult = { ok: true } | { ok: false; reason: 'missing' | 'invalid' | 'not-configured' };

export interface NotificationAuthenticator {
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
      async check(req) {
        if (!config.secret) return { ok: false, reason: 'not-configured' };
        const given = req.get(config.header);
        if (!given) return { ok: false, reason: 'missing' };
        return secretsMatch(given.replace(/^Bearer\s+/i, ''), config.secret) ? { ok: true } : { ok: false, reason: 'invalid' };
      },
    };
  }
  const jwks = createRemoteJWKSet(new URL(config.jwksUrl));
  return {
    async check(req) {
      const m = /^Bearer\s+([A-Za-z0-9\-_.]+)$/.exec(req.get('authorization') ?? '');
      if (!m) return { ok: false, reason: 'missing' };
      try {
        await jwtVerify(m[1]!, jwks, { issuer: config.issuer, audience: config.audience, algorithms: ['ES256', 'ES384', 'RS256', 'RS384'], maxTokenAge: '1h' });
        return { ok: true };
      } catch {
        return { ok: false, reason: 'invalid' };
      }
    },
  };
}
