import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, createRemoteJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import express, { type Request } from 'express';
import request from 'supertest';
import { silentLogger } from '../../test/support/demo-stack.ts';
import { StateUnavailableError, type ReplayCache } from '../state/types.ts';
import { createAuthenticator } from './auth.ts';
import { createEventsRouter } from './receiver.ts';
import { MAX_NOTIFICATION_TOKEN_LIFETIME_S, NotificationAuthError, NotificationJwtVerifier, type NotificationAuthReason } from './jwt.ts';

const ISS = 'https://ehr.example/auth';
const AUD = 'https://cds.example/api/events/notifications';
const NOW_S = 1_760_000_000;

interface Key { privateKey: CryptoKey; jwk: JWK }
async function key(alg: 'RS256' | 'ES384', kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

let jtiCounter = 0;
async function sign(k: Key, over: { claims?: JWTPayload; iat?: number; exp?: number; noJti?: boolean; alg?: string } = {}): Promise<string> {
  const iat = over.iat ?? NOW_S;
  const payload: JWTPayload = { iss: ISS, aud: AUD, iat, exp: over.exp ?? iat + 60, ...(over.noJti ? {} : { jti: `jti-${++jtiCounter}` }), ...over.claims };
  return new SignJWT(payload).setProtectedHeader({ alg: over.alg ?? k.jwk.alg!, kid: k.jwk.kid!, typ: 'JWT' }).sign(k.privateKey);
}

async function refused(v: NotificationJwtVerifier, authorization: string | undefined, reason: NotificationAuthReason): Promise<void> {
  await assert.rejects(v.verify(authorization), (e: unknown) => e instanceof NotificationAuthError && e.reason === reason, `expected ${reason}`);
}

describe('NotificationJwtVerifier', () => {
  let good: Key;
  let ec: Key;
  let other: Key;
  let now = NOW_S * 1000;
  const verifier = (opts: { maxJtis?: number } = {}): NotificationJwtVerifier =>
    new NotificationJwtVerifier({ issuer: ISS, audience: AUD, keys: () => createLocalJWKSet({ keys: [good.jwk, ec.jwk] }), now: () => now, ...opts });

  before(async () => {
    good = await key('RS256', 'rsa-1');
    ec = await key('ES384', 'ec-1');
    other = await key('RS256', 'rsa-1'); // same kid, different key: a forger who copied the kid
  });

  it('accepts a fresh token signed by a key of the set (RS256 and ES384), with the right iss and aud', async () => {
    now = NOW_S * 1000;
    const v = verifier();
    assert.match((await v.verify(`Bearer ${await sign(good)}`)).jti, /^jti-/);
    assert.ok(await v.verify(`bearer ${await sign(ec)}`));
    // aud may be an array containing the endpoint (RFC 7519 §4.1.3)
    assert.ok(await v.verify(`Bearer ${await sign(good, { claims: { aud: ['https://other.example', AUD] } })}`));
  });

  it('refuses a missing or malformed Authorization header', async () => {
    const v = verifier();
    await refused(v, undefined, 'missing');
    await refused(v, '', 'missing');
    await refused(v, 'Basic dXNlcjpwYXNz', 'malformed');
    await refused(v, 'Bearer not-a-jwt', 'malformed');
    await refused(v, 'Bearer aaa.bbb.ccc', 'malformed');
  });

  it('refuses HS256 (even keyed with the public key\'s bytes) and alg none before any key is looked at', async () => {
    const v = verifier();
    const hs = await new SignJWT({ iss: ISS, aud: AUD, iat: NOW_S, exp: NOW_S + 60, jti: 'hs' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(JSON.stringify(good.jwk)));
    await refused(v, `Bearer ${hs}`, 'alg');
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    await refused(v, `Bearer ${b64({ alg: 'none' })}.${b64({ iss: ISS, aud: AUD, iat: NOW_S, exp: NOW_S + 60, jti: 'n' })}.x`, 'alg');
  });

  it('refuses a token signed by another key, even under a kid of the set', async () => {
    await refused(verifier(), `Bearer ${await sign(other)}`, 'signature');
    const stranger = await key('RS256', 'unknown-kid');
    await refused(verifier(), `Bearer ${await sign(stranger)}`, 'no-key');
  });

  it('refuses a wrong issuer or audience', async () => {
    const v = verifier();
    await refused(v, `Bearer ${await sign(good, { claims: { iss: 'https://evil.example/auth' } })}`, 'iss');
    await refused(v, `Bearer ${await sign(good, { claims: { aud: 'https://cds.example/cds-services/x' } })}`, 'aud');
    await refused(v, `Bearer ${await sign(good, { claims: { aud: undefined } })}`, 'aud');
  });

  it('refuses expired tokens, tokens from the future, tokens too old, too long-lived, or without exp/iat/jti', async () => {
    const v = verifier();
    await refused(v, `Bearer ${await sign(good, { iat: NOW_S - 200, exp: NOW_S - 60 })}`, 'expired');
    await refused(v, `Bearer ${await sign(good, { iat: NOW_S + 120 })}`, 'iat');
    await refused(v, `Bearer ${await sign(good, { iat: NOW_S - MAX_NOTIFICATION_TOKEN_LIFETIME_S - 60, exp: NOW_S + 30 })}`, 'iat');
    await refused(v, `Bearer ${await sign(good, { exp: NOW_S + MAX_NOTIFICATION_TOKEN_LIFETIME_S + 1 })}`, 'lifetime');
    await refused(v, `Bearer ${await sign(good, { noJti: true })}`, 'claims');
    await refused(v, `Bearer ${await sign(good, { claims: { jti: '' } })}`, 'claims');
    await refused(v, `Bearer ${await sign(good, { claims: { exp: undefined } })}`, 'claims');
    await refused(v, `Bearer ${await sign(good, { claims: { iat: undefined } })}`, 'iat');
    // within the skew (30 s) an expired token still passes: clocks differ
    assert.ok(await v.verify(`Bearer ${await sign(good, { iat: NOW_S - 70, exp: NOW_S - 10 })}`));
  });

  it('refuses a replayed token, and remembers a jti only until its token expires', async () => {
    now = NOW_S * 1000;
    const v = verifier();
    const t = await sign(good);
    await v.verify(`Bearer ${t}`);
    await refused(v, `Bearer ${t}`, 'replay');
    assert.equal(v.rememberedJtis, 1);
    now = (NOW_S + 200) * 1000; // the token has expired: its jti is swept at the next check
    await v.verify(`Bearer ${await sign(good, { iat: NOW_S + 200 })}`);
    assert.equal(v.rememberedJtis, 1);
    await refused(v, `Bearer ${t}`, 'expired');
    now = NOW_S * 1000;
  });

  it('does not burn a jti for a token that failed verification (an attacker cannot pre-empt a genuine one)', async () => {
    const v = verifier();
    const genuine = await sign(good, { claims: { jti: 'shared-jti' } });
    await refused(v, `Bearer ${await sign(other, { claims: { jti: 'shared-jti' } })}`, 'signature');
    assert.ok(await v.verify(`Bearer ${genuine}`));
  });

  it('keeps the replay cache bounded', async () => {
    const v = verifier({ maxJtis: 3 });
    for (let i = 0; i < 10; i++) await v.verify(`Bearer ${await sign(good)}`);
    assert.ok(v.rememberedJtis <= 3, `${v.rememberedJtis} jtis remembered`);
  });

  it('is not-configured while it has no keys', async () => {
    const v = new NotificationJwtVerifier({ issuer: ISS, audience: AUD, keys: () => undefined, now: () => now });
    await refused(v, `Bearer ${await sign(good)}`, 'not-configured');
  });

  describe('with a remote JWK Set', () => {
    let server: Server;
    let jwksUrl: string;
    before(async () => {
      server = createServer((req, res) => {
        if (req.url === '/jwks') res.writeHead(200, { 'Content-Type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [good.jwk] }));
        else res.writeHead(404).end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    it('fetches the keys, and a set that cannot be fetched is a refusal, not a crash', async () => {
      const v = new NotificationJwtVerifier({ issuer: ISS, audience: AUD, keys: () => createRemoteJWKSet(new URL(jwksUrl)), now: () => now });
      assert.ok(await v.verify(`Bearer ${await sign(good)}`));
      const gone = new NotificationJwtVerifier({ issuer: ISS, audience: AUD, keys: () => createRemoteJWKSet(new URL(jwksUrl.replace('/jwks', '/missing'))), now: () => now });
      await refused(gone, `Bearer ${await sign(good)}`, 'no-key');
    });
  });
});

describe('createAuthenticator', () => {
  const req = (headers: Record<string, string>): Request => ({ get: (name: string) => headers[name.toLowerCase()] }) as unknown as Request;

  it('secret mode: constant-time match of the configured header (a Bearer prefix is accepted), not-configured without a secret', async () => {
    const auth = createAuthenticator({ type: 'secret', header: 'X-Subscription-Secret', secret: 'a-long-enough-secret' });
    assert.deepEqual(await auth.check(req({ 'x-subscription-secret': 'a-long-enough-secret' })), { ok: true });
    assert.deepEqual(await auth.check(req({ 'x-subscription-secret': 'Bearer a-long-enough-secret' })), { ok: true });
    assert.deepEqual(await auth.check(req({ 'x-subscription-secret': 'a-long-enough-secreT' })), { ok: false, reason: 'invalid' });
    assert.deepEqual(await auth.check(req({})), { ok: false, reason: 'missing' });
    const none = createAuthenticator({ type: 'secret', header: 'X-Subscription-Secret', secret: undefined });
    assert.deepEqual(await none.check(req({ 'x-subscription-secret': 'anything-at-all-here' })), { ok: false, reason: 'not-configured' });
  });

  it('jwt mode: the verifier decides; a secret header is worth nothing', async () => {
    const k = await key('ES384', 'k');
    const v = new NotificationJwtVerifier({ issuer: ISS, audience: AUD, keys: () => createLocalJWKSet({ keys: [k.jwk] }), now: () => NOW_S * 1000 });
    const auth = createAuthenticator({ type: 'jwt', verifier: v });
    assert.deepEqual(await auth.check(req({ authorization: `Bearer ${await sign(k)}` })), { ok: true });
    assert.deepEqual(await auth.check(req({ 'x-subscription-secret': 'a-long-enough-secret' })), { ok: false, reason: 'missing', detail: 'missing' });
    assert.deepEqual(await auth.check(req({ authorization: `Bearer ${await sign(k, { claims: { aud: 'https://elsewhere.example' } })}` })), { ok: false, reason: 'invalid', detail: 'aud' });
  });

  it('jwt mode with the shared replay cache down: a good token gets 503 with Retry-After (the sender retries), a forged one still 401', async () => {
    const k = await key('ES384', 'k');
    const forger = await key('ES384', 'k');
    const down: ReplayCache = {
      backend: 'redis',
      claim: () => Promise.reject(new StateUnavailableError('redis', 'replay cache claim failed')),
      answered: () => Promise.reject(new StateUnavailableError('redis', 'replay cache answer mark failed')),
      check: () => Promise.reject(new StateUnavailableError('redis', 'ping failed')),
      close: async () => undefined,
    };
    const v = new NotificationJwtVerifier({ issuer: ISS, audience: AUD, keys: () => createLocalJWKSet({ keys: [k.jwk] }), now: () => NOW_S * 1000, replay: down });
    const auth = createAuthenticator({ type: 'jwt', verifier: v });
    assert.equal((await auth.check(req({ authorization: `Bearer ${await sign(k)}` }))).ok, false);
    const app = express().use('/api/events', createEventsRouter({ queue: () => undefined, auth, logger: silentLogger() }));
    const post = async (token: string): Promise<request.Response> =>
      request(app).post('/api/events/notifications').set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/fhir+json').send('{}');
    const good = await post(await sign(k));
    assert.equal(good.status, 503, 'a token that cannot be checked for replay is the service\'s fault, not bad credentials');
    assert.equal(good.headers['retry-after'], '5');
    assert.equal(good.body.resourceType, 'OperationOutcome');
    assert.equal((await post(await sign(forger))).status, 401, 'a bad signature is refused before the replay cache is asked');
  });
});
