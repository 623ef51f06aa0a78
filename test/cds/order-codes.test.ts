/**
 * Imaging orders coded the way EHRs code them, over real HTTP (supertest) with signed client JWTs, against the
 * embedded FHIR sandbox and DICOMweb server seeded with the demo cohort and the real hip-xray-v1 model:
 * - a draft ServiceRequest coded only in CPT gets the same card as the same study coded in LOINC;
 * - a site's local code works once a ConceptMap file is dropped into the folder named by ORDER_CODE_MAPS_DIR,
 *   through the configuration and the CDS mount as `npm start` wires them (no code change);
 * - an imaging order named only in free text gets no card and is logged as uncoded, without its text.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import express, { type Express } from 'express';
import request from 'supertest';
import type { Resource, ServiceRequest } from '@medplum/fhirtypes';
import { parseCdsClients } from '../../server/cds/clients.ts';
import { orderFacts } from '../../server/cds/hooks.ts';
import { CdsJwtVerifier } from '../../server/cds/jwt.ts';
import { createCds } from '../../server/cds/mount.ts';
import { createCdsRouter } from '../../server/cds/router.ts';
import { CdsStore } from '../../server/cds/store.ts';
import type { Card, HookRequest, HookResponse } from '../../server/cds/types.ts';
import { loadConfig, REPO_ROOT } from '../../server/config.ts';
import { CPT, LOINC, loadOrderCodeMaps } from '../../server/fhir/conceptmaps.ts';
import { HttpFhirClient } from '../../server/fhir/client.ts';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { ModelRegistry } from '../../server/inference/registry.ts';
import { createLogger, type Logger } from '../../server/logging.ts';
import { RiskService } from '../../server/risk/service.ts';
import { DEMO_DIR, startDemoStack, type DemoStack } from '../support/demo-stack.ts';
import { buildPrefetch, checkResponse, jwksServer, mint, signingKey, type SigningKey } from './support.ts';

const BASE = 'https://cds.example.test';
const EHR_ISS = 'https://ehr.example.test';
const HIGH = 'demo-a-022';
const LOCAL = 'urn:example:local-procedure-codes';
const SELECT = 'fracture-risk-order-select';

let stack: DemoStack;
let registry: ModelRegistry;
let key: SigningKey;
let jwks: Awaited<ReturnType<typeof jwksServer>>;
let tmp: string;
let risk: RiskService;
let prefetch: Record<string, Resource | null>;
const closers: (() => void)[] = [];

/** Log lines the router wrote (JSON), to check what is logged about uncoded orders. */
const logLines: string[] = [];
const capturingLogger = (): Logger => createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => void (logLines.push(c.toString()), cb()) }) });

const order = (code: ServiceRequest['code'], id = 'sr-1', extra: Partial<ServiceRequest> = {}): ServiceRequest => ({
  resourceType: 'ServiceRequest', id, status: 'draft', intent: 'order', subject: { reference: `Patient/${HIGH}` }, code, ...extra,
});

/** `userId` varies where an order-sign must not count as the same order screen as an earlier order-select. */
function hookBody(hook: 'order-select' | 'order-sign', orders: ServiceRequest[], selected = orders, userId = 'Practitioner/demo-clinician'): Record<string, unknown> {
  const context: Record<string, unknown> = {
    userId,
    patientId: HIGH,
    draftOrders: { resourceType: 'Bundle', type: 'collection', entry: orders.map((resource) => ({ resource })) },
  };
  if (hook === 'order-select') context['selections'] = selected.map((o) => `ServiceRequest/${o.id}`);
  return { hook, hookInstance: crypto.randomUUID(), context, prefetch };
}

async function call(app: Express, id: string, body: unknown): Promise<HookResponse> {
  const auth = `Bearer ${await mint({ iss: EHR_ISS, aud: `${BASE}/cds-services/${id}`, key })}`;
  const res = await request(app).post(`/cds-services/${id}`).set('Authorization', auth).send(body as object);
  assert.equal(res.status, 200, `status ${res.status}: ${JSON.stringify(res.body).slice(0, 400)}`);
  checkResponse(res.body as HookResponse, BASE);
  return res.body as HookResponse;
}

/** The router as the conformance suite builds it: shipped maps only (the router's default). */
function plainApp(logger: Logger = stack.logger): Express {
  const clients = parseCdsClients({ clients: [{ id: 'test-ehr', label: 'test EHR', enabled: true, iss: EHR_ISS, jwksUrl: jwks.url, algorithms: ['ES384'] }] }, BASE);
  const store = new CdsStore(join(tmp, `cds-${Math.random().toString(36).slice(2)}.sqlite`));
  closers.push(() => store.close());
  const app = express();
  app.use('/cds-services', createCdsRouter({
    risk, store, logger,
    verifier: new CdsJwtVerifier({ clients, jtiTtlS: 3600, clockSkewS: 60 }),
    settings: { publicBaseUrl: BASE, deadlineMs: 60_000, orderMinTier: 'low', patientViewMinTier: 'low', fhirTimeoutMs: 10_000 },
  }));
  return app;
}

/** What makes two cards "the same card": everything but the per-card uuids. */
function comparable(card: Card): unknown {
  return {
    summary: card.summary,
    indicator: card.indicator,
    detail: card.detail,
    suggestions: (card.suggestions ?? []).map((s) => ({
      label: s.label,
      isRecommended: s.isRecommended,
      actions: (s.actions ?? []).map((a) => ({ type: a.type, description: a.description, code: (a.resource as ServiceRequest | undefined)?.code })),
    })),
  };
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'frcds-order-codes-'));
  stack = await startDemoStack(DEMO_DIR, { smart: false });
  registry = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  key = await signingKey('ES384');
  jwks = await jwksServer([key.jwk]);
  risk = new RiskService({
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
  prefetch = await buildPrefetch(stack.fhirBaseUrl, HIGH);
});

after(async () => {
  for (const c of closers) c();
  await jwks?.close();
  await registry?.close();
  await stack?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('order codes over HTTP', () => {
  test('order-select of a draft coded only as CPT 73502 gives the same card as LOINC 26401-0', async () => {
    const app = plainApp();
    const loinc = await call(app, SELECT, hookBody('order-select', [order({ coding: [{ system: LOINC, code: '26401-0', display: 'XR Hip - left Single view' }] })]));
    const cpt = await call(app, SELECT, hookBody('order-select', [order({ coding: [{ system: CPT, code: '73502' }] })]));
    assert.equal(loinc.cards.length, 1);
    assert.equal(cpt.cards.length, 1, 'a CPT-coded hip radiograph gets a card');
    assert.deepEqual(comparable(cpt.cards[0]!), comparable(loinc.cards[0]!));
    assert.match(cpt.cards[0]!.summary, /^(High|Moderate|Low) fracture risk — 10-year hip \d/);
  });

  test('any coding counts: an unknown local code next to CPT; a CPT DXA among the drafts drops the DXA suggestion; a CPT office visit is not imaging', async () => {
    const app = plainApp();
    const both = await call(app, SELECT, hookBody('order-select', [order({ coding: [{ system: 'urn:epic:proc', code: 'IMG44' }, { system: CPT, code: '72170' }] })]));
    assert.equal(both.cards.length, 1);
    const drafts = [order({ coding: [{ system: CPT, code: '71250' }] }, 'sr-ct'), order({ coding: [{ system: CPT, code: '77080' }] }, 'sr-dxa')];
    const withDxa = await call(app, 'fracture-risk-order-sign', hookBody('order-sign', drafts, drafts, 'Practitioner/signs-with-dxa'));
    assert.ok(!withDxa.cards[0]!.suggestions?.some((s) => s.label === 'Order DXA'));
    assert.match(withDxa.cards[0]!.detail!, /A DXA is among the orders being placed/);
    const visit = await call(app, SELECT, hookBody('order-select', [order({ coding: [{ system: CPT, code: '99213' }] })]));
    assert.deepEqual(visit.cards, []);
  });

  test('a site code works once a ConceptMap is dropped into ORDER_CODE_MAPS_DIR — through loadConfig and the CDS mount', async () => {
    const local = order({ coding: [{ system: LOCAL, code: 'XR-HIP-2V', display: 'XR hip 2 views (local)' }] });
    // Without the site map: the shipped maps do not know the code.
    assert.deepEqual((await call(plainApp(), SELECT, hookBody('order-select', [local]))).cards, []);

    // The site's folder: the example map shipped in fhir-profiles/conceptmaps/examples/, copied as a site would.
    const maps = join(tmp, 'site-maps');
    mkdirSync(maps);
    cpSync(join(REPO_ROOT, 'fhir-profiles/conceptmaps/examples/site-local.json'), join(maps, 'local-procedure-codes.json'));
    // A trusted-clients file naming this test's EHR, in a copy of smart-config.
    const smartConfig = join(tmp, 'smart-config');
    cpSync(join(REPO_ROOT, 'smart-config'), smartConfig, { recursive: true });
    writeFileSync(join(smartConfig, 'cds-clients.json'), JSON.stringify({ clients: [{ id: 'test-ehr', label: 'test EHR', enabled: true, iss: EHR_ISS, jwksUrl: jwks.url, algorithms: ['ES384'] }] }));
    const config = loadConfig({ ORDER_CODE_MAPS_DIR: maps, SMART_CONFIG_DIR: smartConfig, PUBLIC_BASE_URL: BASE, CDS_FEEDBACK_DB: join(tmp, 'mounted.sqlite'), CDS_ORDER_MIN_TIER: 'low' });
    const cds = createCds(config, stack.logger, risk);
    closers.push(() => cds.store.close());
    const app = express();
    app.use('/cds-services', cds.cds);

    const site = await call(app, SELECT, hookBody('order-select', [local]));
    const loinc = await call(app, SELECT, hookBody('order-select', [order({ coding: [{ system: LOINC, code: '26401-0' }] })]));
    assert.equal(site.cards.length, 1, 'the local code gets a card');
    assert.deepEqual(comparable(site.cards[0]!), comparable(loinc.cards[0]!), 'the same card as the LOINC-coded study');
  });

  test('a code.text-only imaging order gets no card and is logged as uncoded (count only, not the text)', async () => {
    logLines.length = 0;
    const app = plainApp(capturingLogger());
    const text = 'XR hip left 2 views';
    const res = await call(app, SELECT, hookBody('order-select', [order({ text })]));
    assert.deepEqual(res.cards, []);
    const logged = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const warn = logged.find((l) => l['uncoded'] !== undefined);
    assert.ok(warn, `an uncoded-order log line: ${logLines.join('')}`);
    assert.equal(warn['uncoded'], 1);
    assert.equal(warn['hook'], 'order-select');
    assert.equal(warn['service'], SELECT);
    assert.equal(warn['level'], 'warn');
    assert.ok(logged.some((l) => l['outcome'] === 'uncoded-imaging-order'), 'the answer line says why there is no card');
    assert.ok(!logLines.join('').includes(text), 'the order text is not logged');
    assert.ok(!logLines.join('').includes(HIGH), 'the patient id is not logged');
  });
});

describe('orderFacts', () => {
  const codes = loadOrderCodeMaps();
  const req = (hook: 'order-select' | 'order-sign', orders: ServiceRequest[], selected = orders): HookRequest =>
    ({ hook, hookInstance: 'x', context: { userId: 'Practitioner/1', patientId: HIGH, draftOrders: { resourceType: 'Bundle', entry: orders.map((resource) => ({ resource })) }, ...(hook === 'order-select' ? { selections: selected.map((o) => `ServiceRequest/${o.id}`) } : {}) } }) as HookRequest;

  test('categories from any coding; hipXray only for hip and pelvis radiographs; CPT DXA/VFA and SNOMED DXA count as a DXA draft', () => {
    const f = orderFacts(req('order-sign', [order({ coding: [{ system: CPT, code: '73551' }] }, 'a'), order({ coding: [{ system: CPT, code: '77086' }] }, 'b')]), codes);
    assert.deepEqual(f.categories.sort(), ['femur-xray', 'vfa']);
    assert.equal(f.hipXray, false, 'the hip model does not read a femur radiograph');
    assert.equal(f.dxa, true);
    assert.equal(orderFacts(req('order-sign', [order({ coding: [{ system: CPT, code: '72190' }] })]), codes).hipXray, true);
    assert.equal(orderFacts(req('order-sign', [order({ coding: [{ system: 'http://snomed.info/sct', code: '312681000' }] })]), codes).dxa, true);
    assert.equal(orderFacts(req('order-sign', [order({ coding: [{ system: CPT, code: '71250' }] })]), codes).dxa, false);
  });

  test('order-select: only the selected drafts decide; a DXA among the unselected drafts still counts', () => {
    const xr = order({ coding: [{ system: CPT, code: '73502' }] }, 'xr');
    const dxa = order({ coding: [{ system: CPT, code: '77080' }] }, 'dxa');
    const f = orderFacts(req('order-select', [xr, dxa], [xr]), codes);
    assert.deepEqual(f.imaging.map((r) => r.id), ['xr']);
    assert.equal(f.dxa, true);
  });

  test('uncoded: free text that reads as imaging, or an Imaging category; not other free text, not coded orders', () => {
    const imagingCategory = { category: [{ coding: [{ system: 'http://snomed.info/sct', code: '363679005' }] }] };
    const count = (o: ServiceRequest): number => orderFacts(req('order-sign', [o]), codes).uncoded;
    assert.equal(count(order({ text: 'CT abdomen/pelvis with contrast' })), 1);
    assert.equal(count(order({ text: 'DEXA scan' })), 1);
    assert.equal(count(order({ text: 'Hip films' }, 'x', imagingCategory)), 1);
    assert.equal(count(order({ text: 'Physiotherapy referral' })), 0);
    assert.equal(count(order({ text: 'XR hip', coding: [{ system: CPT, code: '73502' }] })), 0);
    assert.equal(count(order({ text: 'XR hip', coding: [{ system: LOCAL, code: 'unmapped' }] })), 0, 'coded but unmapped is not "uncoded"');
  });
});
