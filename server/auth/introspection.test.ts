/**
 * RFC 7662 introspection with the five client authentications, against a tiny introspection endpoint that records
 * exactly what it received: Basic header, form fields, a Bearer credential, the token itself, an RFC 7523 client
 * assertion (verified here with the public key: aud, iss, sub, exp, jti).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from 'jose';
import { JWT_BEARER_ASSERTION, type IntrospectionClientAuth } from './client-auth.ts';
import { IntrospectionAccessTokenVerifier } from './introspection.ts';
import { startStubServer, type RecordedRequest, type StubServer } from './test-http.ts';
import { AccessTokenError } from './types.ts';

const GOOD = 'opaque-good-token';
const EXPIRED = 'opaque-expired-token';
const refused = (code: string) => (e: unknown): boolean => e instanceof AccessTokenError && e.code === code;
const form = (r: RecordedRequest): Record<string, string> => Object.fromEntries(new URLSearchParams(r.body));

describe('RFC 7662 introspection: the five client authentications', () => {
  let endpoint: StubServer;
  let publicKey: CryptoKey;
  let privateJwk: JWK;
  const url = (): string => `${endpoint.url}/introspect`;

  before(async () => {
    const pair = await generateKeyPair('ES384', { extractable: true });
    publicKey = pair.publicKey;
    privateJwk = { ...(await exportJWK(pair.privateKey)), kid: 'frcds-1' }; // no alg: ES384 from the P-384 curve
    endpoint = await startStubServer((r) => {
      if (r.url === '/moved') return { status: 302, headers: { Location: `${endpoint.url}/introspect` } };
      const token = form(r)['token'];
      // bearer-token: the token is its own credential; this endpoint refuses unknown ones with 401, as some do.
      if (r.headers.authorization === `Bearer ${'unknown-token'}`) return { status: 401, body: { error: 'invalid_token' } };
      if (token === GOOD) return { body: { active: true, sub: 'clinician-9', scope: 'patient/*.rs launch', patient: 'p-1', client_id: 'app', exp: Math.floor(Date.now() / 1000) + 300, iss: 'https://auth.example' } };
      if (token === EXPIRED) return { body: { active: true, sub: 'clinician-9', exp: Math.floor(Date.now() / 1000) - 10 } };
      return { body: { active: false } };
    });
  });
  after(() => endpoint?.close());

  const verifier = (clientAuth: IntrospectionClientAuth, extra: { issuer?: string; path?: string } = {}): IntrospectionAccessTokenVerifier =>
    new IntrospectionAccessTokenVerifier({ introspectionUrl: `${endpoint.url}${extra.path ?? '/introspect'}`, clientAuth, timeoutMs: 2000, ...(extra.issuer ? { issuer: extra.issuer } : {}) });
  const last = (): RecordedRequest => endpoint.requests.at(-1)!;

  test('basic: Authorization: Basic with the encoded id and secret, nothing in the form', async () => {
    const v = verifier({ type: 'basic', clientId: 'frcds', clientSecret: 's3cret:with/odd chars' });
    const a = await v.verify(GOOD);
    assert.equal(a.subject, 'clinician-9');
    assert.equal(a.patient, 'p-1');
    const r = last();
    assert.equal(r.method, 'POST');
    assert.equal(r.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(r.headers.authorization, `Basic ${Buffer.from('frcds:s3cret%3Awith%2Fodd%20chars').toString('base64')}`);
    assert.deepEqual(form(r), { token: GOOD, token_type_hint: 'access_token' });
    await assert.rejects(v.verify('not-active'), refused('invalid'));
  });

  test('client_secret_post: client_id and client_secret form fields, no Authorization header', async () => {
    await verifier({ type: 'client_secret_post', clientId: 'frcds', clientSecret: 'post-secret' }).verify(GOOD);
    const r = last();
    assert.equal(r.headers.authorization, undefined);
    assert.deepEqual(form(r), { token: GOOD, token_type_hint: 'access_token', client_id: 'frcds', client_secret: 'post-secret' });
  });

  test('bearer: the configured credential as Authorization: Bearer', async () => {
    await verifier({ type: 'bearer', credential: 'service-credential-42' }).verify(GOOD);
    assert.equal(last().headers.authorization, 'Bearer service-credential-42');
    assert.deepEqual(form(last()), { token: GOOD, token_type_hint: 'access_token' });
  });

  test('bearer-token: the token itself as the credential; a 401 then refuses the token (not 503)', async () => {
    const v = verifier({ type: 'bearer-token' });
    await v.verify(GOOD);
    assert.equal(last().headers.authorization, `Bearer ${GOOD}`);
    await assert.rejects(v.verify('unknown-token'), refused('invalid'));
  });

  test('private_key_jwt: an RFC 7523 assertion that verifies with the public key (aud, iss, sub, exp, jti)', async () => {
    const v = verifier({ type: 'private_key_jwt', clientId: 'frcds-backend', privateKey: privateJwk });
    await v.verify(GOOD);
    const f = form(last());
    assert.equal(last().headers.authorization, undefined);
    assert.equal(f['client_assertion_type'], JWT_BEARER_ASSERTION);
    assert.equal(f['token'], GOOD);
    const { payload, protectedHeader } = await jwtVerify(f['client_assertion']!, publicKey, { issuer: 'frcds-backend', subject: 'frcds-backend', audience: url(), algorithms: ['ES384'] });
    assert.equal(protectedHeader.kid, 'frcds-1');
    assert.equal(typeof payload.jti, 'string');
    assert.ok(payload.exp! > Date.now() / 1000 && payload.exp! <= Date.now() / 1000 + 301);
    // A second assertion has a fresh jti (no replay of the first).
    await v.verify('not-active').catch(() => undefined);
    assert.notEqual(form(last())['client_assertion'], f['client_assertion']);
  });

  test('inactive and expired tokens are refused; an issuer mismatch is refused; active answers are cached', async () => {
    const v = verifier({ type: 'basic', clientId: 'frcds', clientSecret: 'x' }, { issuer: 'https://auth.example' });
    await assert.rejects(v.verify(EXPIRED), refused('expired'));
    const n = endpoint.requests.length;
    await v.verify(GOOD);
    await v.verify(GOOD);
    assert.equal(endpoint.requests.length, n + 1, 'the second check is served from the cache');
    const other = verifier({ type: 'basic', clientId: 'frcds', clientSecret: 'x' }, { issuer: 'https://not-this.example' });
    await assert.rejects(other.verify(GOOD), refused('invalid'));
  });

  test('a redirect is not followed (the token goes nowhere else) and a dead endpoint is "unavailable"', async () => {
    const n = endpoint.requests.length;
    await assert.rejects(verifier({ type: 'bearer-token' }, { path: '/moved' }).verify(GOOD), refused('unavailable'));
    assert.equal(endpoint.requests.length, n + 1, 'only the redirecting request, not the target');
    const dead = new IntrospectionAccessTokenVerifier({ introspectionUrl: 'http://127.0.0.1:1/introspect', clientAuth: { type: 'bearer-token' }, timeoutMs: 500 });
    await assert.rejects(dead.verify(GOOD), refused('unavailable'));
  });
});
