/**
 * `POST /sandbox/auth/introspect` — RFC 7662 token introspection, for resource servers that prefer asking to
 * verifying JWTs. The caller authenticates as a confidential client (the endpoint is protected, §2.1); an invalid,
 * expired or foreign token is simply `{"active": false}`.
 * @see https://www.rfc-editor.org/rfc/rfc7662
 */
import express, { Router, type Request, type Response } from 'express';
import { authenticateClient } from './client-auth.ts';
import type { SmartSandboxContext } from './context.ts';
import type { AccessTokenVerifier } from '../../auth/types.ts';
import { decodeJwt } from 'jose';

export function introspectRouter(ctx: SmartSandboxContext, verifier: AccessTokenVerifier): Router {
  const r = Router();
  r.post('/introspect', express.urlencoded({ extended: false, limit: '16kb' }), async (req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store');
    const form: Record<string, string> = {};
    for (const [k, v] of Object.entries((req.body ?? {}) as Record<string, unknown>)) if (typeof v === 'string') form[k] = v;
    const auth = authenticateClient(ctx.clients, req, form);
    if (!auth.ok || !auth.authenticated) {
      res.set('WWW-Authenticate', 'Basic realm="sandbox-auth"').status(401).json({ error: 'invalid_client', error_description: 'introspection needs a confidential client' });
      return;
    }
    const token = form['token'];
    if (!token) return void res.status(400).json({ error: 'invalid_request', error_description: 'token is required' });
    try {
      await verifier.verify(token);
    } catch {
      return void res.json({ active: false });
    }
    // Verified: report its claims (RFC 7662 §2.2 names plus the SMART context).
    const c = decodeJwt(token);
    const out: Record<string, unknown> = { active: true, token_type: 'Bearer' };
    for (const k of ['scope', 'client_id', 'sub', 'exp', 'iat', 'iss', 'aud', 'jti', 'patient', 'encounter', 'fhirUser', 'appContext', 'need_patient_banner']) {
      if (c[k] !== undefined) out[k] = c[k];
    }
    ctx.logger.info({ clientId: auth.client.clientId }, 'sandbox token introspected');
    res.json(out);
  });
  return r;
}
