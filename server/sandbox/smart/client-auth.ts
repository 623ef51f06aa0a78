/**
 * Client authentication at the token and introspection endpoints: HTTP Basic (`client_secret_basic`, RFC 6749
 * §2.3.1) or `client_secret_post`; public clients identify themselves with `client_id` only.
 */
import type { Request } from 'express';
import { ClientRegistry, type SmartClient } from './clients.ts';

export type ClientAuthResult =
  | { readonly ok: true; readonly client: SmartClient; readonly authenticated: boolean }
  | { readonly ok: false; readonly status: 400 | 401; readonly error: 'invalid_client' | 'invalid_request'; readonly description: string; readonly basic: boolean };

export function authenticateClient(registry: ClientRegistry, req: Request, form: Record<string, string>): ClientAuthResult {
  const header = req.get('authorization') ?? '';
  let id: string | undefined;
  let secret: string | undefined;
  const basic = /^Basic\s+/i.test(header);
  if (basic) {
    const decoded = Buffer.from(header.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) return { ok: false, status: 401, error: 'invalid_client', description: 'malformed Basic credentials', basic };
    try {
      id = decodeURIComponent(decoded.slice(0, i));
      secret = decodeURIComponent(decoded.slice(i + 1));
    } catch {
      return { ok: false, status: 401, error: 'invalid_client', description: 'malformed Basic credentials', basic };
    }
    if (form['client_id'] && form['client_id'] !== id) return { ok: false, status: 400, error: 'invalid_request', description: 'client_id differs from the authenticated client', basic };
  } else {
    id = form['client_id'];
    secret = form['client_secret'];
  }
  const client = registry.get(id);
  if (!client) return { ok: false, status: 401, error: 'invalid_client', description: 'unknown client', basic };
  if (client.type === 'confidential-symmetric') {
    if (!ClientRegistry.secretMatches(client, secret)) return { ok: false, status: 401, error: 'invalid_client', description: 'client authentication failed', basic };
    return { ok: true, client, authenticated: true };
  }
  if (secret !== undefined) return { ok: false, status: 401, error: 'invalid_client', description: 'public clients have no secret', basic };
  return { ok: true, client, authenticated: false };
}
