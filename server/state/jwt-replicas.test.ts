/**
 * A token used on one service instance and replayed to another is refused when the instances share a replay cache:
 * two CDS JWT verifiers and two notification JWT verifiers, in-process, each with its own connection to one Redis
 * (and the same with PostgreSQL and with the host's SQLite state file). Without a shared cache (the in-memory
 * default) the second instance would accept it — checked too, so the test shows what sharing changes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from 'jose';
import request from 'supertest';
import { mint, signingKey, type SigningKey } from '../../test/cds/support.ts';
import { postgresInstalled, startPostgres, type PostgresHandle } from '../../test/support/postgres.ts';
import { redisServerInstalled, startRedis, type RedisHandle } from '../../test/support/redis.ts';
import { parseCdsClients } from '../cds/clients.ts';
import { CdsAuthError, CdsJwtVerifier } from '../cds/jwt.ts';
import { createCdsRouter } from '../cds/router.ts';
import { CdsStore } from '../cds/store.ts';
import { silentLogger } from '../../test/support/demo-stack.ts';
import type { RiskService } from '../risk/service.ts';
import { NotificationAuthError, NotificationJwtVerifier } from '../events/jwt.ts';
import { openStateStores, type StateSettings, type StateStores } from './stores.ts';
import type { CardLogStore, ReplayCache } from './types.ts';

const ISS = 'https://ehr.example.test';
const AUD = 'https://frcds.example.test/cds-services/fracture-risk-patient-view';
const EV_ISS = 'https://fhir.example.test/auth';
const EV_AUD = 'https://frcds.example.test/api/events/notifications';
const inCi = process.env['CI'] === 'true';

let redis: RedisHandle | undefined;
let pg: PostgresHandle | undefined;
let dir: string;
let cdsKey: SigningKey;
let evKey: { privateKey: CryptoKey; jwk: Record<string, unknown> };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'frcds-jti-'));
  if (redisServerInstalled()) redis = await startRedis();
  else if (inCi) throw new Error('CI=true but redis-server is not installed');
  if (postgresInstalled()) pg = await startPostgres();
  else if (inCi) throw new Error('CI=true but PostgreSQL is not installed');
  cdsKey = await signingKey('ES384');
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  evKey = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: 'ev-1', alg: 'ES256', use: 'sig' } };
});
after(async () => {
  await redis?.stop();
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const cdsVerifier = (replay?: ReplayCache): CdsJwtVerifier => {
  const clients = parseCdsClients({ clients: [{ id: 'ehr', label: 'EHR', enabled: true, iss: ISS, algorithms: ['ES384'], jwks: { keys: [cdsKey.jwk] } }] as never }, 'https://frcds.example.test');
  return new CdsJwtVerifier({ clients, jtiTtlS: 3600, clockSkewS: 60, ...(replay ? { replay } : {}) });
};
const eventsVerifier = (replay?: ReplayCache): NotificationJwtVerifier =>
  new NotificationJwtVerifier({ issuer: EV_ISS, audience: EV_AUD, keys: () => createLocalJWKSet({ keys: [evKey.jwk] }), ...(replay ? { replay } : {}) });
let n = 0;
const notificationToken = (): Promise<string> => {
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: EV_ISS, aud: EV_AUD, iat, exp: iat + 60, jti: `ev-${++n}-${Date.now()}` }).setProtectedHeader({ alg: 'ES256', kid: 'ev-1', typ: 'JWT' }).sign(evKey.privateKey);
};

it('without a shared cache, a second instance would accept the replay (what sharing prevents)', async () => {
  const token = `Bearer ${await mint({ iss: ISS, aud: AUD, key: cdsKey })}`;
  await cdsVerifier().verify(token, AUD);
  assert.ok(await cdsVerifier().verify(token, AUD), 'per-process memory: the other instance does not know the jti');
});

let db = 0;
const shared: { name: string; settings: () => Promise<StateSettings | undefined> }[] = [
  { name: 'Redis', settings: async () => (redis ? { redisUrl: redis.url, databaseUrl: undefined, dbPath: ':memory:' } : undefined) },
  { name: 'PostgreSQL', settings: async () => (pg ? { redisUrl: undefined, databaseUrl: await pg.createDatabase(`jti_${++db}`), dbPath: ':memory:' } : undefined) },
  { name: 'the SQLite state file (processes of one host)', settings: async () => ({ redisUrl: undefined, databaseUrl: undefined, dbPath: join(dir, `state-${++db}.sqlite`) }) },
];

for (const s of shared) {
  describe(`jti replay across two instances sharing ${s.name}`, () => {
    let one: StateStores | undefined;
    let two: StateStores | undefined;
    before(async () => {
      const settings = await s.settings();
      if (!settings) return;
      one = await openStateStores(settings);
      two = await openStateStores(settings);
    });
    after(async () => {
      await one?.close();
      await two?.close();
    });

    it('a CDS client JWT used on instance 1 is refused on instance 2 (and again on 1)', async (t) => {
      if (!one || !two) return t.skip(`${s.name} is not installed`);
      const a = cdsVerifier(one.replay);
      const b = cdsVerifier(two.replay);
      const token = `Bearer ${await mint({ iss: ISS, aud: AUD, key: cdsKey })}`;
      assert.equal((await a.verify(token, AUD)).iss, ISS);
      await assert.rejects(b.verify(token, AUD), (e: unknown) => e instanceof CdsAuthError && e.reason === 'replay');
      await assert.rejects(a.verify(token, AUD), (e: unknown) => e instanceof CdsAuthError && e.reason === 'replay');
      // A fresh token still works on either instance.
      assert.ok(await b.verify(`Bearer ${await mint({ iss: ISS, aud: AUD, key: cdsKey })}`, AUD));
    });

    it('the same token sent to both instances at once is accepted by exactly one', async (t) => {
      if (!one || !two) return t.skip(`${s.name} is not installed`);
      const a = cdsVerifier(one.replay);
      const b = cdsVerifier(two.replay);
      const token = `Bearer ${await mint({ iss: ISS, aud: AUD, key: cdsKey })}`;
      const results = await Promise.allSettled([a.verify(token, AUD), b.verify(token, AUD), a.verify(token, AUD), b.verify(token, AUD)]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    });

    it('a CDS call resent byte-identical to instance 2 while instance 1 has not answered it is accepted; another body or a resend after an answer is refused', async (t) => {
      if (!one || !two) return t.skip(`${s.name} is not installed`);
      // Instance 1 holds the call (its card log is slow), as a replica that dies before answering would.
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const held = { recordFeedback: async (_s: string, _c: string, entries: readonly unknown[]) => { entered(); await gate; return entries.length; } } as unknown as CardLogStore;
      const quick = { recordFeedback: async (_s: string, _c: string, entries: readonly unknown[]) => entries.length } as unknown as CardLogStore;
      const app = (store: CardLogStore, replay: ReplayCache): express.Express => express().use('/cds-services', createCdsRouter({
        risk: {} as RiskService, // feedback does not assess
        verifier: cdsVerifier(replay), store, logger: silentLogger(),
        settings: { publicBaseUrl: 'https://frcds.example.test', deadlineMs: 400, orderMinTier: 'low', patientViewMinTier: 'low', fhirTimeoutMs: 1000 },
      }));
      const appOne = app(held, one.replay);
      const appTwo = app(quick, two.replay);
      const path = '/cds-services/fracture-risk-patient-view/feedback';
      const auth = `Bearer ${await mint({ iss: ISS, aud: `https://frcds.example.test${path}`, key: cdsKey })}`;
      const body = JSON.stringify({ feedback: [{ card: randomUUID(), outcome: 'overridden', outcomeTimestamp: new Date().toISOString() }] });
      const post = (a: express.Express, b: string): Promise<request.Response> => request(a).post(path).set('Authorization', auth).set('Content-Type', 'application/json').send(b).then((r) => r);
      const first = post(appOne, body);
      await inside;
      try {
        assert.equal((await post(appTwo, body.replace('overridden', 'accepted'))).status, 401, 'a different body with the in-flight jti is a replay');
        assert.equal((await post(appTwo, body)).status, 200, 'the same body while the first is unanswered: a retry, accepted');
        assert.equal((await post(appTwo, body)).status, 401, 'after an answer (instance 2 answered the retry) the same body is a replay');
      } finally {
        release();
      }
      assert.equal((await first).status, 200);
      assert.equal((await post(appOne, body)).status, 401, 'and on instance 1');
    });

    it('a notification JWT used on instance 1 is refused on instance 2', async (t) => {
      if (!one || !two) return t.skip(`${s.name} is not installed`);
      const token = `Bearer ${await notificationToken()}`;
      assert.ok(await eventsVerifier(one.replay).verify(token));
      await assert.rejects(eventsVerifier(two.replay).verify(token), (e: unknown) => e instanceof NotificationAuthError && e.reason === 'replay');
    });
  });
}

it('CDS Hooks with its shared jti cache down: a valid token gets 503 (retry later), not 401 (bad credentials)', async (t) => {
  if (!redisServerInstalled()) return t.skip('redis-server is not installed');
  const own = await startRedis();
  const stores = await openStateStores({ redisUrl: own.url, databaseUrl: undefined, dbPath: ':memory:' });
  const store = new CdsStore(':memory:');
  try {
    const app = express();
    app.use('/cds-services', createCdsRouter({
      risk: {} as RiskService, // discovery does not assess
      verifier: cdsVerifier(stores.replay),
      store,
      logger: silentLogger(),
      settings: { publicBaseUrl: 'https://frcds.example.test', deadlineMs: 400, orderMinTier: 'low', patientViewMinTier: 'low', fhirTimeoutMs: 1000 },
    }));
    const discovery = 'https://frcds.example.test/cds-services';
    const ok = await request(app).get('/cds-services').set('Authorization', `Bearer ${await mint({ iss: ISS, aud: discovery, key: cdsKey })}`);
    assert.equal(ok.status, 200);
    await own.stop();
    const down = await request(app).get('/cds-services').set('Authorization', `Bearer ${await mint({ iss: ISS, aud: discovery, key: cdsKey })}`);
    assert.equal(down.status, 503);
    assert.equal(down.headers['retry-after'], '5');
  } finally {
    await store.close();
    await stores.close();
    await own.stop();
  }
});
