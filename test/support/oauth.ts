/**
 * OAuth helpers for tests that drive the sandbox authorization server over HTTP the way fhirclient does
 * (authorize redirect → code → token with the PKCE verifier), without a browser.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface Pkce {
  readonly verifier: string;
  readonly challenge: string;
}

/** A fresh RFC 7636 verifier (43 base64url characters) and its S256 challenge. */
export function pkce(): Pkce {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** GET without following redirects; returns status, the Location as a URL (if any) and the body text. */
export async function getNoFollow(url: string): Promise<{ status: number; location: URL | undefined; text: string }> {
  const res = await fetch(url, { redirect: 'manual' });
  const loc = res.headers.get('location');
  return { status: res.status, location: loc ? new URL(loc, url) : undefined, text: await res.text() };
}

/** POSTs a form to the token (or introspection) endpoint. */
export async function postForm(url: string, form: Record<string, string>, basic?: { id: string; secret: string }): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded' };
  if (basic) headers['Authorization'] = `Basic ${Buffer.from(`${basic.id}:${basic.secret}`).toString('base64')}`;
  const res = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(form).toString(), redirect: 'manual' });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}

/** The sandbox's registered demo secrets (smart-config/smart-clients.json; sandbox only). */
export const DEMO_BACKEND = { id: 'demo-backend', secret: 'sandbox-only-demo-backend-secret' } as const;
export const SERVICE_CLIENT = { id: 'frcds-service', secret: 'sandbox-only-frcds-service-secret' } as const;
