/**
 * `GET /sandbox/auth/jwks` — the public key(s) that verify the sandbox's access tokens and id_tokens (RFC 7517 JWK
 * Set). Resource servers (the sandbox FHIR server, the service's `/api/assessments`) fetch it and cache it.
 * @see https://www.rfc-editor.org/rfc/rfc7517#section-5
 */
import type { RequestHandler } from 'express';
import type { SmartSandboxContext } from './context.ts';

export function jwksHandler(ctx: SmartSandboxContext): RequestHandler {
  return (_req, res) => {
    res.set({ 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'public, max-age=300' }).type('application/jwk-set+json').send(JSON.stringify(ctx.signer.jwks()));
  };
}
