/**
 * The CDS Hooks client of a simulated EHR: discovery, then `order-select` / `order-sign` calls, each with a fresh
 * JWT signed the way the EHR's convention says (algorithm, `kid`, optional `jku`, optional `sub`/`nbf`), with
 * `fhirServer` = the tenant's FHIR base and `fhirAuthorization` = a patient-limited access token of the EHR itself,
 * and with all, some or none of the prefetch templates filled from the EHR's own FHIR endpoint.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 * @see https://cds-hooks.hl7.org/2.0/#passing-the-access-token-to-the-cds-service
 * @see https://cds-hooks.hl7.org/hooks/order-select/ and https://cds-hooks.hl7.org/hooks/order-sign/
 */
import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { Bundle, Coding, Resource, ServiceRequest } from '@medplum/fhirtypes';
import type { CdsSigning } from './types.ts';

/** Keys of the discovery prefetch the EHR fills under the `partial` convention (the service fetches the rest). */
export const PARTIAL_PREFETCH_KEYS = ['patient', 'conditions'] as const;

export interface CdsSigner {
  readonly kid: string;
  readonly alg: CdsSigning['alg'];
  readonly publicJwk: JWK;
  /** A JWT for one call to `audience` (the exact URL called). */
  sign(audience: string): Promise<string>;
}

export interface CdsSignerOptions {
  readonly signing: CdsSigning;
  readonly issuer: string;
  /** `jku` header value, when the convention names one. */
  readonly jku?: string;
  /** `sub` claim (the CDS client id) when the convention sends it. */
  readonly subject: string;
}

export async function createCdsSigner(o: CdsSignerOptions): Promise<CdsSigner> {
  const { privateKey, publicKey } = await generateKeyPair(o.signing.alg, { extractable: true, ...(o.signing.alg === 'RS384' ? { modulusLength: 2048 } : {}) });
  const pub = await exportJWK(publicKey);
  // Epic shows base64 (not base64url) key ids; a thumbprint is a stable, unique choice either way.
  const kid = Buffer.from(await calculateJwkThumbprint(pub, 'sha256'), 'base64url').toString('base64');
  const publicJwk: JWK = { ...pub, kid, alg: o.signing.alg, use: 'sig' };
  const key: CryptoKey = privateKey;
  return {
    kid,
    alg: o.signing.alg,
    publicJwk,
    sign: async (audience) => {
      const iat = Math.floor(Date.now() / 1000);
      const claims = o.signing.subAndNbf ? { sub: o.subject, nbf: iat - 300 } : {};
      return new SignJWT(claims)
        .setProtectedHeader({ alg: o.signing.alg, typ: 'JWT', kid, ...(o.jku ? { jku: o.jku } : {}) })
        .setIssuer(o.issuer)
        .setAudience(audience)
        .setIssuedAt(iat)
        .setExpirationTime(iat + 300)
        .setJti(randomUUID())
        .sign(key);
    },
  };
}

/** `fhirAuthorization` of a hook request (CDS Hooks 2.0). */
export interface FhirAuthorization {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  subject: string;
  patient?: string;
}

export interface DiscoveredService {
  id: string;
  hook: string;
  prefetch?: Record<string, string>;
}

/** A draft imaging ServiceRequest for `order` (named `text` in the EHR) as an EHR puts it in `draftOrders`. */
export function draftOrder(patientId: string, order: Coding, requester: string, text = order.display): ServiceRequest & { id: string } {
  return {
    resourceType: 'ServiceRequest',
    id: randomUUID(),
    status: 'draft',
    intent: 'order',
    category: [{ coding: [{ system: 'http://snomed.info/sct', code: '363679005', display: 'Imaging' }] }],
    code: { coding: [order], ...(text ? { text } : {}) },
    subject: { reference: `Patient/${patientId}` },
    requester: { reference: requester },
    authoredOn: new Date().toISOString(),
  };
}

/** Fills a 2.0 prefetch template (`{{context.patientId}}`, `{{userPractitionerId}}`); undefined when it cannot. */
export function fillTemplate(template: string, patientId: string, user: string): string | undefined {
  let ok = true;
  const out = template.replace(/\{\{\s*([A-Za-z.]+)\s*\}\}/g, (_m, name: string) => {
    if (name === 'context.patientId') return encodeURIComponent(patientId);
    if (name === 'userPractitionerId' && user.startsWith('Practitioner/')) return encodeURIComponent(user.slice('Practitioner/'.length));
    ok = false;
    return '';
  });
  return ok ? out : undefined;
}

/** Builds the hook request body (the caller signs and sends it). */
export function hookRequest(o: {
  hook: 'order-select' | 'order-sign' | 'patient-view';
  patientId: string;
  user: string;
  fhirServer: string;
  fhirAuthorization?: FhirAuthorization;
  orders: readonly (ServiceRequest & { id: string })[];
  prefetch?: Record<string, Resource | null>;
}): Record<string, unknown> {
  const context: Record<string, unknown> = { userId: o.user, patientId: o.patientId };
  if (o.hook !== 'patient-view') {
    const bundle: Bundle = { resourceType: 'Bundle', type: 'collection', entry: o.orders.map((resource) => ({ resource })) };
    context['draftOrders'] = bundle;
  }
  if (o.hook === 'order-select') context['selections'] = o.orders.map((r) => `ServiceRequest/${r.id}`);
  return {
    hook: o.hook,
    hookInstance: randomUUID(),
    fhirServer: o.fhirServer,
    ...(o.fhirAuthorization ? { fhirAuthorization: o.fhirAuthorization } : {}),
    context,
    ...(o.prefetch ? { prefetch: o.prefetch } : {}),
  };
}
