/**
 * A configurable simulated EHR on its own loopback port(s), for the interoperability suite (test/interop/): per
 * tenant a FHIR endpoint (fhir-proxy.ts) and a SMART authorization server (auth-server.ts), plus a CDS Hooks client
 * (cds-client.ts) — all following one {@link EhrConvention} (epic-like.ts, oracle-like.ts, launcher-like.ts).
 *
 * Start it before the service (the service's configuration names its URLs and keys: {@link ForeignEhr.cdsClientEntry},
 * {@link ForeignEhr.tokenServers}, {@link ForeignEhr.secrets}), then {@link ForeignEhr.connect} it to the service's
 * base URL (its FHIR answers come from the service's sandbox FHIR server, started with `SANDBOX_FHIR_OPEN=true`).
 */
import { randomBytes } from 'node:crypto';
import express from 'express';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Coding, Resource } from '@medplum/fhirtypes';
import { APP_CLIENT_ID, createAuthServer, INTROSPECTION_CLIENT_ID, type IntrospectionRecord, type LaunchContext } from './auth-server.ts';
import { createCdsSigner, draftOrder, fillTemplate, hookRequest, PARTIAL_PREFETCH_KEYS, type CdsSigner, type DiscoveredService, type FhirAuthorization } from './cds-client.ts';
import { createFhirProxy, type FhirRequestRecord } from './fhir-proxy.ts';
import { cors, listen, type Listening } from './http.ts';
import { freePort } from '../net.ts';
import { EhrTokens } from './tokens.ts';
import type { EhrConvention, TenantConvention, TokenContext } from './types.ts';

export type { EhrConvention, TenantConvention } from './types.ts';
export { APP_CLIENT_ID, INTROSPECTION_CLIENT_ID } from './auth-server.ts';

/** The EHR user every launch and hook call is made for (a demo user of the sandbox). */
export const EHR_USER = 'Practitioner/demo-clinician';

/** Answer of one CDS call. */
export interface CdsCallResult {
  readonly status: number;
  readonly body: unknown;
  /** The request body sent (hook calls). */
  readonly request?: Record<string, unknown>;
}

export interface HookCallOptions {
  readonly tenant?: string;
  /** The order to put in `draftOrders` (default: the convention's hip X-ray orderable). */
  readonly order?: Coding;
  /** Override the convention's prefetch. */
  readonly prefetch?: EhrConvention['cds']['prefetch'];
}

interface TenantRuntime {
  readonly convention: TenantConvention;
  readonly tokens: EhrTokens;
  readonly fhirBase: string;
  readonly authBase: string;
  jwksFetches: number;
  readonly introspection?: { readonly secret: string; readonly privateJwk?: JWK; readonly publicJwk?: JWK };
}

/** Env var name part for a tenant: `INTEROP_<EHR>_<TENANT>`. */
const envPrefix = (ehr: string, tenant: string): string => `INTEROP_${ehr}_${tenant}`.toUpperCase().replace(/[^A-Z0-9]+/g, '_');

export class ForeignEhr {
  readonly convention: EhrConvention;
  readonly fhirOrigin: string;
  readonly authOrigin: string;
  /** `iss` of the CDS JWTs. */
  readonly cdsIssuer: string;
  /** Where the CDS JWKS is served. */
  readonly cdsJwksUrl: string;
  /** The `jku` the CDS JWTs name, if any (a closed port under `jku-unreachable-pinned`). */
  readonly cdsJku: string | undefined;
  readonly fhirLog: FhirRequestRecord[] = [];
  readonly introspections: IntrospectionRecord[] = [];
  /** Every CDS response seen (status and body), newest last. */
  readonly cdsLog: CdsCallResult[] = [];
  readonly #tenants = new Map<string, TenantRuntime>();
  readonly #launches = new Map<string, LaunchContext>();
  readonly #signer: CdsSigner;
  readonly #servers: Listening[];
  #serviceBase: string | undefined;

  private constructor(o: { convention: EhrConvention; fhirOrigin: string; authOrigin: string; signer: CdsSigner; jku: string | undefined; tenants: TenantRuntime[]; servers: Listening[] }) {
    this.convention = o.convention;
    this.fhirOrigin = o.fhirOrigin;
    this.authOrigin = o.authOrigin;
    this.#signer = o.signer;
    this.cdsJku = o.jku;
    this.cdsJwksUrl = `${o.fhirOrigin}${o.convention.cds.jwksPath}`;
    this.cdsIssuer = o.convention.cds.issuer === 'fhir-base' ? o.tenants[0]!.fhirBase : o.fhirOrigin;
    for (const t of o.tenants) this.#tenants.set(t.convention.id, t);
    this.#servers = o.servers;
  }

  /** Starts the EHR's HTTP servers (FHIR origin, and a separate authorization origin when the convention says). */
  static async start(convention: EhrConvention): Promise<ForeignEhr> {
    const fhirApp = express();
    fhirApp.disable('x-powered-by');
    fhirApp.use(cors);
    const fhirListening = await listen(fhirApp);
    const servers = [fhirListening];
    let authApp = fhirApp;
    let authOrigin = fhirListening.origin;
    if (convention.separateAuthOrigin) {
      authApp = express();
      authApp.disable('x-powered-by');
      authApp.use(cors);
      const authListening = await listen(authApp);
      servers.push(authListening);
      authOrigin = authListening.origin;
    }
    const signing = convention.cds.signing;
    // Nobody listens on this port: the key must come from the service's pinned copy.
    const jku = signing.keySource === 'jku-served' ? `${fhirListening.origin}${convention.cds.jwksPath}` : signing.keySource === 'jku-unreachable-pinned' ? `http://127.0.0.1:${await freePort()}/cds/jwks.json` : undefined;
    const firstFhirBase = `${fhirListening.origin}${convention.tenants[0]!.fhirPath}`;
    const signer = await createCdsSigner({ signing, issuer: convention.cds.issuer === 'fhir-base' ? firstFhirBase : fhirListening.origin, subject: convention.cds.clientId, ...(jku ? { jku } : {}) });

    const tenants: TenantRuntime[] = [];
    for (const t of convention.tenants) {
      const fhirBase = `${fhirListening.origin}${t.fhirPath}`;
      const authBase = `${authOrigin}${t.authPath}`;
      let introspection: TenantRuntime['introspection'];
      if (t.verification.mode === 'introspection') {
        const secret = randomBytes(24).toString('base64url');
        if (t.verification.clientAuth === 'private_key_jwt') {
          const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
          const kid = `frcds-${randomBytes(4).toString('hex')}`;
          introspection = { secret, privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES384' }, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' } };
        } else {
          introspection = { secret };
        }
      }
      tenants.push({ convention: t, tokens: await EhrTokens.create(convention.accessTokens, authBase), fhirBase, authBase, jwksFetches: 0, ...(introspection ? { introspection } : {}) });
    }
    const ehr = new ForeignEhr({ convention, fhirOrigin: fhirListening.origin, authOrigin, signer, jku, tenants, servers });

    fhirApp.get(convention.cds.jwksPath, (_req, res) => void res.json({ keys: [signer.publicJwk] }));
    for (const t of tenants) {
      fhirApp.use(
        t.convention.fhirPath,
        createFhirProxy({
          tenant: t.convention,
          fhirBase: t.fhirBase,
          mediaType: convention.fhirMediaType,
          tokens: t.tokens,
          upstream: () => (ehr.#serviceBase ? `${ehr.#serviceBase}/sandbox/fhir` : undefined),
          smartConfiguration: () => ehr.smartConfiguration(t),
          capabilityStatement: () => ehr.capabilityStatement(t),
          log: ehr.fhirLog,
        }),
      );
      authApp.use(
        t.convention.authPath,
        createAuthServer({
          tenant: t.convention,
          authBase: t.authBase,
          fhirBase: t.fhirBase,
          tokens: t.tokens,
          redirectUri: () => (ehr.#serviceBase ? `${ehr.#serviceBase}/app/index.html` : undefined),
          resolveLaunch: (launch) => ehr.#resolveLaunch(launch),
          ...(t.introspection && t.convention.verification.mode === 'introspection'
            ? { introspection: { clientAuth: t.convention.verification.clientAuth, secret: t.introspection.secret, ...(t.introspection.publicJwk ? { publicJwk: t.introspection.publicJwk } : {}) } }
            : {}),
          introspections: ehr.introspections,
          onJwksFetch: () => void t.jwksFetches++,
        }),
      );
    }
    return ehr;
  }

  #tenant(id?: string): TenantRuntime {
    const t = id === undefined ? this.#tenants.values().next().value : this.#tenants.get(id);
    if (!t) throw new Error(`${this.convention.id} has no tenant ${id}`);
    return t;
  }

  get tenantIds(): string[] {
    return [...this.#tenants.keys()];
  }

  fhirBase(tenant?: string): string {
    return this.#tenant(tenant).fhirBase;
  }

  authBase(tenant?: string): string {
    return this.#tenant(tenant).authBase;
  }

  /** The service's `servers[].id` of a tenant. */
  serverId(tenant?: string): string {
    return `${this.convention.id}-${this.#tenant(tenant).convention.id}`;
  }

  /** How many times the tenant's access-token JWKS was fetched (by the service: the browser never fetches it). */
  jwksFetches(tenant?: string): number {
    return this.#tenant(tenant).jwksFetches;
  }

  /** Points the EHR at the running service: FHIR answers, the app's redirect URI and the CDS services URL. */
  connect(serviceBase: string): void {
    this.#serviceBase = serviceBase.replace(/\/+$/, '');
  }

  #service(): string {
    if (!this.#serviceBase) throw new Error('connect() the EHR to the service first');
    return this.#serviceBase;
  }

  smartConfiguration(t: TenantRuntime): Record<string, unknown> {
    const c = this.convention;
    return {
      issuer: t.tokens.issuer,
      authorization_endpoint: `${t.authBase}/authorize`,
      token_endpoint: `${t.authBase}/token`,
      ...(c.accessTokens === 'jwt-es384' ? { jwks_uri: `${t.authBase}/jwks` } : {}),
      ...(t.introspection ? { introspection_endpoint: `${t.authBase}/introspect` } : {}),
      grant_types_supported: ['authorization_code'],
      response_types_supported: ['code'],
      token_endpoint_auth_methods_supported: ['none'],
      code_challenge_methods_supported: ['S256'],
      scopes_supported: ['launch', 'openid', 'fhirUser', 'patient/*.rs', 'patient/*.read'],
      capabilities: ['launch-ehr', 'client-public', 'context-ehr-patient', 'context-banner', 'permission-patient', 'permission-v1', 'permission-v2'],
    };
  }

  capabilityStatement(t: TenantRuntime): Record<string, unknown> {
    const oauth = [
      { url: 'authorize', valueUri: `${t.authBase}/authorize` },
      { url: 'token', valueUri: `${t.authBase}/token` },
      ...(t.introspection ? [{ url: 'introspect', valueUri: `${t.authBase}/introspect` }] : []),
    ];
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: '2026-01-01',
      kind: 'instance',
      fhirVersion: '4.0.1',
      format: ['json', this.convention.fhirMediaType],
      implementation: { description: `${this.convention.label} (simulated, tenant ${t.convention.id})`, url: t.fhirBase },
      rest: [
        {
          mode: 'server',
          security: {
            cors: true,
            service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
            extension: [{ url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris', extension: oauth }],
          },
          resource: ['Patient', 'Observation', 'Condition', 'MedicationRequest', 'MedicationStatement', 'FamilyMemberHistory', 'ImagingStudy'].map((type) => ({
            type,
            interaction: [{ code: 'read' }, { code: 'search-type' }],
          })),
        },
      ],
    };
  }

  // --- launches and tokens ---------------------------------------------------------------------------------------

  /** Registers an EHR launch for `patient` (with a CDS link's `appContext`) and returns the `launch` id. */
  registerLaunch(patient: string, appContext?: string, tenant?: string): string {
    const ctx: LaunchContext = { tenant: this.#tenant(tenant).convention.id, patient, user: EHR_USER, ...(appContext ? { appContext } : {}) };
    if (this.convention.launchIds === 'encoded') return Buffer.from(JSON.stringify(ctx)).toString('base64url');
    const id = randomBytes(12).toString('hex');
    this.#launches.set(id, ctx);
    return id;
  }

  #resolveLaunch(launch: string): LaunchContext | undefined {
    if (this.convention.launchIds === 'opaque') return this.#launches.get(launch);
    try {
      const ctx = JSON.parse(Buffer.from(launch, 'base64url').toString()) as Partial<LaunchContext>;
      return typeof ctx.tenant === 'string' && typeof ctx.patient === 'string' && typeof ctx.user === 'string' ? (ctx as LaunchContext) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The URL the EHR opens for a card's SMART link: `{link.url}?iss={FHIR base}&launch={launch}`. */
  ehrLaunchUrl(link: { url: string; appContext?: string }, patient: string, tenant?: string): string {
    const u = new URL(link.url);
    u.searchParams.set('iss', this.fhirBase(tenant));
    u.searchParams.set('launch', this.registerLaunch(patient, link.appContext, tenant));
    return u.toString();
  }

  /**
   * An access token of this EHR for `patient` (patient-limited), as its authorization server issues them: for the
   * CDS `fhirAuthorization`, or for tests that need a token for another patient. `context` overrides the tenant's.
   */
  async issueToken(patient: string, o: { tenant?: string; scope?: string; clientId?: string; sub?: string; context?: TokenContext; lifetimeS?: number } = {}): Promise<string> {
    const t = this.#tenant(o.tenant);
    const iat = Math.floor(Date.now() / 1000);
    return t.tokens.issue(
      { tenant: t.convention.id, sub: o.sub ?? o.clientId ?? APP_CLIENT_ID, clientId: o.clientId ?? APP_CLIENT_ID, scope: o.scope ?? 'launch openid fhirUser patient/*.rs', patient, fhirUser: EHR_USER, iat, exp: iat + (o.lifetimeS ?? 600) },
      { audience: t.fhirBase, context: o.context ?? t.convention.tokenContext },
    );
  }

  // --- CDS Hooks client -------------------------------------------------------------------------------------------

  async #signedFetch(url: string, init: RequestInit = {}): Promise<CdsCallResult> {
    const jwt = await this.#signer.sign(url);
    const res = await fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${jwt}`, Accept: 'application/json' }, signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: kept as text for the assertion message
    }
    const out = { status: res.status, body };
    this.cdsLog.push(out);
    return out;
  }

  /** A CDS JWT of this EHR for one call to `audience` (what every call carries; for tests that inspect it). */
  cdsJwt(audience: string): Promise<string> {
    return this.#signer.sign(audience);
  }

  /** `GET {service}/cds-services`, signed. */
  async discover(): Promise<{ status: number; services: DiscoveredService[] }> {
    const r = await this.#signedFetch(`${this.#service()}/cds-services`);
    const services = (r.body as { services?: DiscoveredService[] } | undefined)?.services ?? [];
    return { status: r.status, services };
  }

  /** The `fhirAuthorization` the EHR hands the service: its own token, limited to the patient, short-lived. */
  async fhirAuthorization(patient: string, tenant?: string): Promise<FhirAuthorization> {
    const scope = this.convention.cds.fhirAuthorizationScope;
    const clientId = this.convention.cds.clientId;
    const access_token = await this.issueToken(patient, { ...(tenant ? { tenant } : {}), scope, clientId, sub: clientId, context: 'claims', lifetimeS: 300 });
    return { access_token, token_type: 'Bearer', expires_in: 300, scope, subject: clientId, patient };
  }

  async #prefetch(service: DiscoveredService, patient: string, auth: FhirAuthorization, kind: EhrConvention['cds']['prefetch'], tenant?: string): Promise<Record<string, Resource | null> | undefined> {
    if (kind === 'none') return undefined;
    const out: Record<string, Resource | null> = {};
    for (const [key, template] of Object.entries(service.prefetch ?? {})) {
      if (kind === 'partial' && !(PARTIAL_PREFETCH_KEYS as readonly string[]).includes(key)) continue;
      const query = fillTemplate(template, patient, EHR_USER);
      if (query === undefined) continue;
      const res = await fetch(`${this.fhirBase(tenant)}/${query}`, { headers: { Accept: this.convention.fhirMediaType, Authorization: `Bearer ${auth.access_token}` } });
      if (res.status === 404) out[key] = null;
      else if (res.ok) out[key] = (await res.json()) as Resource;
      // Anything else: the key is left out and the service fetches it (CDS Hooks 2.0 §Prefetch).
    }
    return out;
  }

  /** Discovery, then one signed hook call to the service listening to `hook` (order-select / order-sign). */
  async callHook(hook: 'order-select' | 'order-sign', patient: string, o: HookCallOptions = {}): Promise<CdsCallResult> {
    const { status, services } = await this.discover();
    if (status !== 200) return { status, body: `discovery answered ${status}` };
    const service = services.find((s) => s.hook === hook);
    if (!service) return { status: 404, body: `no service for ${hook}` };
    const fhirAuthorization = await this.fhirAuthorization(patient, o.tenant);
    const prefetch = await this.#prefetch(service, patient, fhirAuthorization, o.prefetch ?? this.convention.cds.prefetch, o.tenant);
    const request = hookRequest({
      hook,
      patientId: patient,
      user: EHR_USER,
      fhirServer: this.fhirBase(o.tenant),
      fhirAuthorization,
      orders: [o.order ? draftOrder(patient, o.order, EHR_USER) : draftOrder(patient, this.convention.cds.hipXrayOrder, EHR_USER, this.convention.cds.hipXrayOrderText)],
      ...(prefetch ? { prefetch } : {}),
    });
    const r = await this.#signedFetch(`${this.#service()}/cds-services/${encodeURIComponent(service.id)}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(request) });
    return { ...r, request };
  }

  // --- the service's configuration ---------------------------------------------------------------------------------

  /** This EHR's entry for `smart-config/cds-clients.json`. */
  cdsClientEntry(): Record<string, unknown> {
    const s = this.convention.cds.signing;
    return {
      id: `interop-${this.convention.id}`,
      label: `${this.convention.label} (interoperability suite)`,
      enabled: true,
      iss: this.cdsIssuer,
      ...(s.keySource === 'jwks-url' || s.keySource === 'jku-served' ? { jwksUrl: this.cdsJwksUrl } : {}),
      ...(s.keySource === 'jku-unreachable-pinned' ? { jwks: { keys: [this.#signer.publicJwk] } } : {}),
      ...(this.cdsJku ? { jkuAllowlist: [this.cdsJku] } : {}),
      algorithms: [s.alg],
    };
  }

  /** This EHR's entries for `smart-config/token-verification.json` `servers` (one per tenant). */
  tokenServers(): Record<string, unknown>[] {
    return [...this.#tenants.values()].map((t) => {
      const v = t.convention.verification;
      const prefix = envPrefix(this.convention.id, t.convention.id);
      const entry: Record<string, unknown> = { id: this.serverId(t.convention.id), fhirBaseUrl: t.fhirBase, mode: v.mode };
      if (this.authOrigin !== this.fhirOrigin) entry['connectSrc'] = [this.authOrigin];
      if (v.mode === 'jwks') {
        entry['jwksUri'] = `${t.authBase}/jwks`;
        if (v.pinned) entry['jwks'] = t.tokens.jwks();
        if (v.checkIssuer) entry['issuer'] = t.tokens.issuer;
      } else if (v.mode === 'introspection') {
        entry['introspectionUrl'] = `${t.authBase}/introspect`;
        entry['clientAuth'] = v.clientAuth;
        if (v.clientAuth !== 'bearer-token') entry['clientId'] = INTROSPECTION_CLIENT_ID;
        if (v.clientAuth === 'private_key_jwt') entry['privateKeyEnv'] = `${prefix}_INTROSPECTION_KEY`;
        else if (v.clientAuth !== 'bearer-token') entry['secretEnv'] = `${prefix}_INTROSPECTION_SECRET`;
      } else if (v.mode === 'hs256') {
        entry['secretEnv'] = `${prefix}_HS256_SECRET`;
      }
      return entry;
    });
  }

  /** The environment variables the service needs for this EHR's secrets (named by {@link tokenServers}). */
  secrets(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const t of this.#tenants.values()) {
      const v = t.convention.verification;
      const prefix = envPrefix(this.convention.id, t.convention.id);
      if (v.mode === 'introspection' && v.clientAuth === 'private_key_jwt') out[`${prefix}_INTROSPECTION_KEY`] = JSON.stringify(t.introspection!.privateJwk);
      else if (v.mode === 'introspection' && v.clientAuth !== 'bearer-token') out[`${prefix}_INTROSPECTION_SECRET`] = t.introspection!.secret;
      else if (v.mode === 'hs256') out[`${prefix}_HS256_SECRET`] = t.tokens.hs256Secret();
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.#servers.map((s) => s.close()));
  }
}

export function startForeignEhr(convention: EhrConvention): Promise<ForeignEhr> {
  return ForeignEhr.start(convention);
}
