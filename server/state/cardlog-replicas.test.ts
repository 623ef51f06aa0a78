/**
 * Two CDS service instances in one process, each with its own risk service, JWT verifier and PostgreSQL pool, sharing
 * one real PostgreSQL card log (as two replicas behind a load balancer do): an order-select card shown by one is
 * known to the other (order-sign there stays silent for the same user), feedback sent to either lands in one log
 * (a retried entry stored once), and both summaries agree. Demo cohort sandbox and the real model, as in
 * test/cds/conformance.test.ts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import express, { type Express } from 'express';
import request from 'supertest';
import type { Resource } from '@medplum/fhirtypes';
import { parseCdsClients } from '../cds/clients.ts';
import { CdsJwtVerifier } from '../cds/jwt.ts';
import { createCdsRouter, createFeedbackSummaryRouter } from '../cds/router.ts';
import type { FeedbackSummary } from '../cds/store.ts';
import type { Card, HookResponse } from '../cds/types.ts';
import { REPO_ROOT } from '../config.ts';
import { HttpFhirClient } from '../fhir/client.ts';
import { DicomWebClient } from '../imaging/dicomweb-client.ts';
import { ModelRegistry } from '../inference/registry.ts';
import { RiskService } from '../risk/service.ts';
import { buildPrefetch, checkResponse, jwksServer, mint, signingKey, type SigningKey } from '../../test/cds/support.ts';
import { DEMO_DIR, startDemoStack, type DemoStack } from '../../test/support/demo-stack.ts';
import { postgresOrSkip, type PostgresHandle } from '../../test/support/postgres.ts';
import { PostgresCardLog } from './cardlog-postgres.ts';
import { createPgPool, migrate, type PgPool } from './postgres.ts';

const BASE = 'https://cds.example.test';
const EHR_ISS = 'https://ehr.example.test';
const HIGH = 'demo-a-022';

let pg: PostgresHandle | undefined;
let stack: DemoStack;
let registry: ModelRegistry;
let key: SigningKey;
let jwks: Awaited<ReturnType<typeof jwksServer>>;
const pools: PgPool[] = [];

/** One service instance on its own pool of the shared database. */
function instance(url: string): Express {
  const pool = createPgPool(url, { connectionTimeoutMs: 1000 });
  pools.push(pool);
  const risk = new RiskService({
    deps: {
      fhir: new HttpFhirClient({ baseUrl: stack.fhirBaseUrl, timeoutMs: 20_000 }),
      dicomweb: new DicomWebClient({ baseUrl: stack.dicomWebBaseUrl, timeoutMs: 30_000, retries: 0 }),
      registry,
      settings: { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 } },
      logger: stack.logger,
    },
    cacheSize: 100,
    writeBack: false,
    logger: stack.logger,
  });
  const clients = parseCdsClients({ clients: [{ id: 'test-ehr', label: 'test EHR', enabled: true, iss: EHR_ISS, jwksUrl: jwks.url, algorithms: ['ES384'], fhirServerAllowlist: [stack.fhirBaseUrl] }] }, BASE);
  const store = new PostgresCardLog(pool);
  const app = express();
  app.use('/cds-services', createCdsRouter({
    risk,
    verifier: new CdsJwtVerifier({ clients, jtiTtlS: 3600, clockSkewS: 60 }),
    store,
    logger: stack.logger,
    settings: { publicBaseUrl: BASE, deadlineMs: 120_000, orderMinTier: 'low', patientViewMinTier: 'low', fhirTimeoutMs: 20_000 },
  }));
  app.use('/api/feedback', createFeedbackSummaryRouter(store));
  return app;
}

const bearer = async (id: string, suffix = ''): Promise<string> => `Bearer ${await mint({ iss: EHR_ISS, aud: `${BASE}/cds-services/${id}${suffix}`, key })}`;

const xrayOrder = (patientId: string): Resource => ({
  resourceType: 'ServiceRequest', id: 'sr-xr', status: 'draft', intent: 'order', subject: { reference: `Patient/${patientId}` },
  code: { coding: [{ system: 'http://loinc.org', code: '26401-0', display: 'XR Hip - left Single view' }] },
} as Resource);

function orderHook(hook: 'order-select' | 'order-sign', patientId: string, userId: string, prefetch: Record<string, unknown>): Record<string, unknown> {
  const order = xrayOrder(patientId);
  const context: Record<string, unknown> = { userId, patientId, draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: order }] } };
  if (hook === 'order-select') context['selections'] = ['ServiceRequest/sr-xr'];
  return { hook, hookInstance: crypto.randomUUID(), context, prefetch };
}

async function hook(app: Express, id: string, body: Record<string, unknown>): Promise<Card[]> {
  const res = await request(app).post(`/cds-services/${id}`).set('Authorization', await bearer(id)).send(body);
  assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 300));
  return checkResponse(res.body as HookResponse, BASE);
}

before(async () => {
  pg = await postgresOrSkip();
  if (!pg) return;
  stack = await startDemoStack(DEMO_DIR, { smart: false });
  registry = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  key = await signingKey('ES384');
  jwks = await jwksServer([key.jwk]);
});

after(async () => {
  for (const p of pools) await p.end();
  await jwks?.close();
  await registry?.close();
  await stack?.close();
  await pg?.stop();
});

describe('two CDS service instances sharing one PostgreSQL card log', () => {
  it('one order screen, one card; feedback from either instance in one log', async (t) => {
    if (!pg) return t.skip('PostgreSQL is not installed');
    const url = await pg.createDatabase('cardlog_replicas');
    const migrator = createPgPool(url);
    pools.push(migrator);
    await migrate(migrator);
    const a = instance(url);
    const b = instance(url);
    const prefetch = await buildPrefetch(stack.fhirBaseUrl, HIGH);
    const user = 'Practitioner/demo-clinician';

    const [card] = await hook(a, 'fracture-risk-order-select', orderHook('order-select', HIGH, user, prefetch));
    assert.ok(card, 'instance A shows the order-select card');
    // The same user signs the same order through the other instance: the card was already on this order screen.
    assert.deepEqual(await hook(b, 'fracture-risk-order-sign', orderHook('order-sign', HIGH, user, prefetch)), [], 'instance B knows A showed it');
    // Another user signing through B has not seen it: B speaks.
    const [other] = await hook(b, 'fracture-risk-order-sign', orderHook('order-sign', HIGH, 'Practitioner/another', prefetch));
    assert.ok(other, 'a card for a user who did not see one');

    const id = 'fracture-risk-order-select';
    const ts = new Date().toISOString();
    const accepted = { feedback: [{ card: card.uuid, outcome: 'accepted', acceptedSuggestions: [{ id: card.suggestions![0]!.uuid }], outcomeTimestamp: ts }] };
    await request(b).post(`/cds-services/${id}/feedback`).set('Authorization', await bearer(id, '/feedback')).send(accepted).expect(200);
    // The EHR did not get the answer and sends the same entry to the other instance: stored once.
    await request(a).post(`/cds-services/${id}/feedback`).set('Authorization', await bearer(id, '/feedback')).send(accepted).expect(200);
    await request(a).post(`/cds-services/fracture-risk-order-sign/feedback`).set('Authorization', await bearer('fracture-risk-order-sign', '/feedback'))
      .send({ feedback: [{ card: other.uuid, outcome: 'overridden', overrideReason: { reason: { system: 'urn:reasons', code: 'patient-declined', display: 'Patient declined' }, userComment: 'not kept' }, outcomeTimestamp: ts }] }).expect(200);

    const sa = (await request(a).get('/api/feedback/summary').expect(200)).body as FeedbackSummary;
    const sb = (await request(b).get('/api/feedback/summary').expect(200)).body as FeedbackSummary;
    assert.deepEqual(sa, sb, 'both instances read one log');
    assert.equal(sa.cards, 2, 'the order-select card (A) and the other user\'s order-sign card (B)');
    assert.equal(sa.feedback, 2);
    assert.equal(sa.overall.accepted, 1);
    assert.equal(sa.overall.overridden, 1);
    assert.equal(sa.acceptedSuggestions.fls + sa.acceptedSuggestions.dxa, 1);
    assert.equal(sa.byTier['unknown'], undefined, 'every card with feedback is known to the log, whichever instance showed it');
    assert.deepEqual(sa.byReason.map((r) => r.code), ['patient-declined']);
    assert.equal(JSON.stringify(sa).includes('not kept'), false);
  });

  it('without the card log: the hook and the feedback answer 503, nothing is kept per process', async (t) => {
    if (!pg) return t.skip('PostgreSQL is not installed');
    const down = instance('postgres://frcds@127.0.0.1:1/none');
    const prefetch = await buildPrefetch(stack.fhirBaseUrl, HIGH);
    const res = await request(down).post('/cds-services/fracture-risk-order-select').set('Authorization', await bearer('fracture-risk-order-select'))
      .send(orderHook('order-select', HIGH, 'Practitioner/demo-clinician', prefetch));
    assert.equal(res.status, 503);
    assert.equal((res.body as { resourceType?: string }).resourceType, 'OperationOutcome');
    const fb = await request(down).post('/cds-services/fracture-risk-order-select/feedback').set('Authorization', await bearer('fracture-risk-order-select', '/feedback'))
      .send({ feedback: [{ card: crypto.randomUUID(), outcome: 'accepted', outcomeTimestamp: new Date().toISOString() }] });
    assert.equal(fb.status, 503, 'the EHR is told to send it again');
    assert.equal((await request(down).get('/api/feedback/summary')).status, 500);
  });
});
