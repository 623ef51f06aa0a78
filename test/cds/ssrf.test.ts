/**
 * The hook's `fhirServer` cannot be used to make the service connect where the client likes (server-side request
 * forgery): signed hook calls through the CDS router, against the embedded FHIR sandbox and DICOMweb server with the
 * demo cohort and the real hip-xray-v1 model. Loopback servers that count every TCP connection stand in for the
 * internal services an attacker would probe; a resolver the test controls stands in for DNS.
 *
 * Every refused `fhirServer` — a closed port, an open port, cloud metadata, a private address, an unknown public
 * name, a listed name that resolves to loopback, a listed server that redirects — gets the same 412 and the same body,
 * and the counting servers see no connection. A listed server works; full prefetch with a refused server works.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express, { type Express } from 'express';
import pino from 'pino';
import request from 'supertest';
import type { Resource } from '@medplum/fhirtypes';
import { parseCdsClients } from '../../server/cds/clients.ts';
import { FHIR_SERVER_REFUSED_TEXT } from '../../server/cds/fhir-source.ts';
import { CdsJwtVerifier } from '../../server/cds/jwt.ts';
import { createCdsRouter } from '../../server/cds/router.ts';
import { CdsStore } from '../../server/cds/store.ts';
import type { HookResponse } from '../../server/cds/types.ts';
import { REPO_ROOT } from '../../server/config.ts';
import { HttpFhirClient } from '../../server/fhir/client.ts';
import type { HostLookup } from '../../server/fhir/outbound.ts';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { ModelRegistry } from '../../server/inference/registry.ts';
import { RiskService } from '../../server/risk/service.ts';
import { DEMO_DIR, startDemoStack, type DemoStack } from '../support/demo-stack.ts';
import { freePort } from '../support/net.ts';
import { buildPrefetch, checkResponse, closeServer, jwksServer, mint, signingKey, type SigningKey } from './support.ts';

const BASE = 'https://cds.example.test';
const ISS = 'https://ehr.example.test';
const SERVICE = 'fracture-risk-patient-view';
const PATIENT = 'demo-a-022';
const REBIND_HOST = 'fhir.rebind.example';

let stack: DemoStack;
let registry: ModelRegistry;
let key: SigningKey;
let jwks: Awaited<ReturnType<typeof jwksServer>>;
let tmp: string;
const closers: (() => Promise<void> | void)[] = [];

/** A loopback TCP server that counts connections and never answers: an internal service an attacker would probe. */
async function countingPort(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createTcpServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** An HTTP server on loopback: `redirectTo` → 302 there; otherwise a proxy to the sandbox counting requests in flight. */
async function fhirFront(o: { redirectTo?: string; delayMs?: number }): Promise<{ base: string; requests: () => number; peak: () => number; close(): Promise<void> }> {
  let requests = 0;
  let active = 0;
  let peak = 0;
  const server: Server = createHttpServer((req, res) => {
    requests++;
    if (o.redirectTo) return void res.writeHead(302, { Location: `${o.redirectTo}${req.url ?? ''}` }).end();
    active++;
    peak = Math.max(peak, active);
    res.on('close', () => active--);
    setTimeout(async () => {
      try {
        const up = await fetch(`${stack.base}${req.url ?? ''}`, { headers: { accept: req.headers.accept ?? 'application/fhir+json' } });
        res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/fhir+json' }).end(Buffer.from(await up.arrayBuffer()));
      } catch {
        if (!res.headersSent) res.writeHead(502).end();
      }
    }, o.delayMs ?? 0);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { base: `http://127.0.0.1:${port}/sandbox/fhir`, requests: () => requests, peak: () => peak, close: () => closeServer(server) };
}

interface Harness {
  app: Express;
  logs: Record<string, unknown>[];
  lookups: string[];
}

/** The CDS router with one trusted client whose fhirServerAllowlist is `allowlist`; DNS answers from `dns`. */
function harness(allowlist: string[], dns: Record<string, string[]> = {}): Harness {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  const lookups: string[] = [];
  const lookup: HostLookup = async (h) => {
    lookups.push(h);
    const a = dns[h];
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${h}`), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  const risk = new RiskService({
    deps: {
      fhir: new HttpFhirClient({ baseUrl: stack.fhirBaseUrl, timeoutMs: 10_000 }),
      dicomweb: new DicomWebClient({ baseUrl: stack.dicomWebBaseUrl, timeoutMs: 20_000, retries: 0 }),
      registry,
      settings: { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 } },
      logger: stack.logger,
    },
    cacheSize: 100,
    writeBack: false,
    logger: stack.logger,
  });
  const clients = parseCdsClients({ clients: [{ id: 'test-ehr', label: 'test EHR', enabled: true, iss: ISS, jwksUrl: jwks.url, algorithms: ['ES384'], fhirServerAllowlist: allowlist }] }, BASE);
  const store = new CdsStore(join(tmp, `cds-${Math.random().toString(36).slice(2)}.sqlite`));
  closers.push(() => store.close());
  const app = express();
  app.use('/cds-services', createCdsRouter({
    risk,
    verifier: new CdsJwtVerifier({ clients, jtiTtlS: 3600, clockSkewS: 60 }),
    store,
    logger,
    lookup,
    settings: { publicBaseUrl: BASE, deadlineMs: 60_000, orderMinTier: 'low', patientViewMinTier: 'low', fhirTimeoutMs: 10_000 },
  }));
  return { app, logs, lookups };
}

async function hook(h: Harness, extra: Record<string, unknown>): Promise<request.Response> {
  const body = { hook: 'patient-view', hookInstance: crypto.randomUUID(), context: { userId: 'Practitioner/demo-clinician', patientId: PATIENT }, ...extra };
  const auth = `Bearer ${await mint({ iss: ISS, aud: `${BASE}/cds-services/${SERVICE}`, key })}`;
  return request(h.app).post(`/cds-services/${SERVICE}`).set('Authorization', auth).send(body);
}

const fhirAuthorization = { access_token: 'a-token-for-the-ehr-fhir-server', token_type: 'Bearer', expires_in: 300, scope: 'patient/*.rs', subject: 'frcds', patient: PATIENT };

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'frcds-ssrf-'));
  stack = await startDemoStack(DEMO_DIR, { smart: false });
  registry = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  key = await signingKey('ES384');
  jwks = await jwksServer([key.jwk]);
});

after(async () => {
  for (const c of closers) await c();
  await jwks?.close();
  await registry?.close();
  await stack?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('fhirServer the client chose: refused without a trace of what listens where', () => {
  let probe: Awaited<ReturnType<typeof countingPort>>;
  let redirector: Awaited<ReturnType<typeof fhirFront>>;
  let h: Harness;
  let closed: number;
  before(async () => {
    probe = await countingPort();
    closed = await freePort();
    redirector = await fhirFront({ redirectTo: `http://127.0.0.1:${probe.port}` });
    h = harness([stack.fhirBaseUrl, redirector.base, `http://${REBIND_HOST}:${probe.port}/fhir`], { [REBIND_HOST]: ['127.0.0.1'] });
  });
  after(async () => {
    await redirector.close();
    await probe.close();
  });

  test('closed port, open port, cloud metadata, private address, unknown public name, listed name on loopback, redirect: one answer, no connection', async () => {
    const targets: [string, string][] = [
      ['closed loopback port', `http://127.0.0.1:${closed}/fhir`],
      ['open loopback port (the counting server)', `http://127.0.0.1:${probe.port}/fhir`],
      ['the listed sandbox FHIR server on another port', stack.fhirBaseUrl.replace(/:(\d+)\//, (_m, p: string) => `:${Number(p) + 1}/`)],
      ['cloud metadata', 'http://169.254.169.254/latest/meta-data/iam/security-credentials'],
      ['a private address', 'http://10.0.0.1/fhir'],
      ['IPv6 loopback', `http://[::1]:${probe.port}/fhir`],
      ['a public-looking name not on the list', 'https://fhir.hospital-not-listed.example.com/api/FHIR/R4'],
      ['a listed name that resolves to loopback', `http://${REBIND_HOST}:${probe.port}/fhir`],
      ['a listed server that redirects to the counting server', redirector.base],
    ];
    const answers: { what: string; status: number; type: string | undefined; text: string }[] = [];
    for (const [what, fhirServer] of targets) {
      const t0 = performance.now();
      const res = await hook(h, { fhirServer, fhirAuthorization });
      answers.push({ what, status: res.status, type: res.headers['content-type'], text: res.text });
      assert.ok(performance.now() - t0 < 5000, `${what}: answered without waiting on a connection`);
    }
    for (const a of answers) {
      assert.equal(a.status, 412, `${a.what}: ${a.text}`);
      assert.deepEqual({ type: a.type, text: a.text }, { type: answers[0]!.type, text: answers[0]!.text }, `${a.what}: the same answer as the others`);
    }
    const body = JSON.parse(answers[0]!.text) as { resourceType: string; issue: { code: string; diagnostics?: string; details?: { text?: string } }[] };
    assert.equal(body.resourceType, 'OperationOutcome');
    assert.ok(answers[0]!.text.includes(FHIR_SERVER_REFUSED_TEXT));
    assert.doesNotMatch(answers[0]!.text, /127\.0\.0\.1|169\.254|10\.0\.0\.1|ECONNREFUSED|refused address|redirect/i, 'nothing about the target in the body');
    assert.equal(probe.connections(), 0, 'the counting server was never connected to');
    // Requests already in flight when the first 302 comes back also get one; none is followed, none is sent after.
    assert.ok(redirector.requests() >= 1 && redirector.requests() <= 4, `the listed redirecting server was asked ${redirector.requests()} times`);
    assert.deepEqual(h.lookups, [REBIND_HOST], 'only the listed name was resolved; names not on the list are never looked up');
  });

  test('each refusal is logged with the client and the server it named, without patient data', async () => {
    const lines = h.logs.filter((l) => l['msg'] === 'cds: fhirServer not contacted');
    assert.ok(lines.length >= 9, `one line per refused call (${lines.length})`);
    for (const l of lines) {
      assert.equal(l['client'], 'test-ehr');
      assert.equal(typeof l['fhirServer'], 'string');
      assert.ok(['not-allowlisted', 'address', 'redirect', 'connected-address'].includes(String(l['reason'])));
      assert.doesNotMatch(JSON.stringify(l), new RegExp(PATIENT), 'the patient id is hashed');
      assert.doesNotMatch(JSON.stringify(l), /a-token-for-the-ehr-fhir-server/);
    }
    assert.ok(lines.some((l) => l['reason'] === 'not-allowlisted' && l['fhirServer'] === 'http://169.254.169.254/latest/meta-data/iam/security-credentials'));
    assert.ok(lines.some((l) => l['reason'] === 'address' && l['addressClass'] === 'loopback' && l['hostKind'] === 'name'));
    assert.ok(lines.some((l) => l['reason'] === 'redirect' && l['status'] === 302));
  });

  test('full prefetch with a refused fhirServer: answered from the prefetch, the server never contacted', async () => {
    const prefetch: Record<string, Resource | null> = await buildPrefetch(stack.fhirBaseUrl, PATIENT);
    const before = probe.connections();
    const res = await hook(h, { fhirServer: `http://127.0.0.1:${probe.port}/fhir`, fhirAuthorization, prefetch });
    assert.equal(res.status, 200, res.text);
    assert.equal(checkResponse(res.body as HookResponse, BASE).length, 1);
    assert.equal(probe.connections(), before);
  });

  test('the listed server works, also written with a trailing slash', async () => {
    const ok = await hook(h, { fhirServer: stack.fhirBaseUrl, fhirAuthorization });
    assert.equal(ok.status, 200, ok.text);
    const [card] = checkResponse(ok.body as HookResponse, BASE);
    assert.match(card!.summary, /^(High|Moderate|Low) fracture risk — 10-year hip \d/);
    const variant = await hook(harness([stack.fhirBaseUrl]), { fhirServer: `${stack.fhirBaseUrl}/` });
    assert.equal(variant.status, 200, variant.text);
  });
});

describe('outbound concurrency', () => {
  test('one hook call has at most 4 requests in flight to the client FHIR server', async () => {
    const front = await fhirFront({ delayMs: 40 });
    try {
      const h = harness([front.base]);
      const res = await hook(h, { fhirServer: front.base });
      assert.equal(res.status, 200, res.text);
      assert.ok(front.requests() >= 7, `the chart was read through the server (${front.requests()} requests)`);
      assert.ok(front.peak() <= 4, `peak in flight ${front.peak()}`);
      assert.ok(front.peak() >= 2, 'reads still overlap');
    } finally {
      await front.close();
    }
  });
});
