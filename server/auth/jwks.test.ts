/**
 * JwtAccessTokenVerifier for foreign authorization servers: pinned keys first, then the JWK Set URL (fetched only
 * when no pinned key matches the kid); issuer and audience checked only when configured; asymmetric algorithms only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { startStubServer, type StubServer } from './test-http.ts';
import { AccessTokenError } from './types.ts';
import { JwtAccessTokenVerifier } from './verifier.ts';

const now = (): number => Math.floor(Date.now() / 1000);
const refused = (code: string, message?: RegExp) => (e: unknown): boolean =>
  e instanceof AccessTokenError && e.code === code && (!message || message.test(e.message));

async function keyPair(kid: string, alg = 'RS384'): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

function sign(key: CryptoKey, kid: string, claims: Record<string, unknown>, alg = 'RS384', exp = now() + 300): Promise<string> {
  return new SignJWT({ scope: 'patient/*.rs launch', patient: 'p-1', ...claims }).setProtectedHeader({ alg, kid }).setSubject('user-1').setIssuedAt().setExpirationTime(exp).sign(key);
}

describe('JWT access tokens of a foreign authorization server (jwks mode)', () => {
  let pinned: { privateKey: CryptoKey; jwk: JWK };
  let rotated: { privateKey: CryptoKey; jwk: JWK };
  let stranger: { privateKey: CryptoKey; jwk: JWK };
  let jwksServer: StubServer;

  before(async () => {
    pinned = await keyPair('pinned-1');
    rotated = await keyPair('rotated-2', 'ES384');
    stranger = await keyPair('pinned-1'); // same kid as the pinned key, another key pair
    jwksServer = await startStubServer((r) => (r.url === '/jwks' ? { body: { keys: [rotated.jwk] } } : { status: 404, body: {} }));
  });
  after(() => jwksServer?.close());

  test('pinned keys only: a good token without iss or aud is accepted when neither is configured', async () => {
    const v = new JwtAccessTokenVerifier({ keys: { jwks: { keys: [pinned.jwk] } }, requiredClaims: ['exp'] });
    const access = await v.verify(await sign(pinned.privateKey, 'pinned-1', {}));
    assert.equal(access.subject, 'user-1');
    assert.equal(access.patient, 'p-1');
    assert.deepEqual(access.scopes, ['patient/*.rs', 'launch']);
  });

  test('a wrong signature (same kid, other key), an expired token and an HS256 token are refused', async () => {
    const v = new JwtAccessTokenVerifier({ keys: { jwks: { keys: [pinned.jwk] } } });
    await assert.rejects(v.verify(await sign(stranger.privateKey, 'pinned-1', {})), refused('invalid'));
    await assert.rejects(v.verify(await sign(pinned.privateKey, 'pinned-1', {}, 'RS384', now() - 120)), refused('expired'));
    const hs = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256', kid: 'pinned-1' }).setExpirationTime(now() + 60).sign(new TextEncoder().encode('a shared secret of enough length!'));
    await assert.rejects(v.verify(hs), refused('invalid'));
    await assert.rejects(v.verify('opaque-token'), refused('malformed'));
  });

  test('pinned first, then jwksUri: the URL is fetched only for a kid no pinned key has', async () => {
    const v = new JwtAccessTokenVerifier({ keys: { jwks: { keys: [pinned.jwk] }, jwksUri: `${jwksServer.url}/jwks` } });
    const before = jwksServer.requests.length;
    await v.verify(await sign(pinned.privateKey, 'pinned-1', {}));
    assert.equal(jwksServer.requests.length, before, 'a pinned kid needs no fetch');
    const access = await v.verify(await sign(rotated.privateKey, 'rotated-2', { patient: 'p-2' }, 'ES384'));
    assert.equal(access.patient, 'p-2');
    assert.equal(jwksServer.requests.length, before + 1);
    // A pinned kid whose signature fails is refused; the URL is not asked as a second chance.
    await assert.rejects(v.verify(await sign(stranger.privateKey, 'pinned-1', {})), refused('invalid'));
    assert.equal(jwksServer.requests.length, before + 1);
  });

  test('issuer and audience are checked when configured', async () => {
    const v = new JwtAccessTokenVerifier({ issuer: 'https://auth.example', audience: ['https://ehr.example/fhir'], keys: { jwks: { keys: [pinned.jwk] } } });
    const good = await sign(pinned.privateKey, 'pinned-1', { iss: 'https://auth.example', aud: 'https://ehr.example/fhir' });
    assert.equal((await v.verify(good)).subject, 'user-1');
    await assert.rejects(v.verify(await sign(pinned.privateKey, 'pinned-1', { iss: 'https://other.example', aud: 'https://ehr.example/fhir' })), refused('invalid', /"iss"/));
    await assert.rejects(v.verify(await sign(pinned.privateKey, 'pinned-1', { iss: 'https://auth.example', aud: 'https://elsewhere/fhir' })), refused('invalid', /"aud"/));
    await assert.rejects(v.verify(await sign(pinned.privateKey, 'pinned-1', {})), refused('invalid'), 'no iss when one is configured');
  });

  test('an unreachable JWK Set URL is "unavailable" (503), not a refusal', async () => {
    const v = new JwtAccessTokenVerifier({ keys: { jwksUri: 'http://127.0.0.1:1/jwks', timeoutMs: 500 } });
    await assert.rejects(v.verify(await sign(rotated.privateKey, 'rotated-2', {}, 'ES384')), refused('unavailable'));
  });
});
