/**
 * The direct signature check of pinned keys: every algorithm family verifies its own tokens and refuses a changed
 * one, and every case jose would treat differently (a key jose refuses, a curve that is not the algorithm's, an
 * ambiguous or unknown kid, a `crit` header) is left to jose (`undefined`), never decided here.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { PinnedKeys } from './pinned-keys.ts';

async function keyAndToken(alg: string, kid = 'k1', opts: { crv?: string } = {}): Promise<{ jwk: JWK; token: string }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(opts.crv ? { crv: opts.crv } : {}) });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg };
  const token = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg, kid, typ: 'JWT' }).setIssuedAt().setJti('j').sign(privateKey);
  return { jwk, token };
}
const header = (token: string): { alg: string; kid?: string; crit?: unknown } => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { alg: string; kid?: string };
/** The same token with another payload and the original signature. */
const tampered = (token: string): string => {
  const [h, , s] = token.split('.');
  return `${h}.${Buffer.from(JSON.stringify({ sub: 'y' })).toString('base64url')}.${s}`;
};

for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'ES256', 'ES384', 'ES512', 'EdDSA']) {
  test(`${alg}: a valid token verifies, a changed payload does not`, async () => {
    const { jwk, token } = await keyAndToken(alg);
    const keys = new PinnedKeys({ keys: [jwk] });
    assert.equal(keys.check(token, header(token)), true);
    assert.equal(keys.check(tampered(token), header(token)), false);
  });
}

test('a key of another client (same kid) does not verify the token: false, not a fallback', async () => {
  const a = await keyAndToken('RS384');
  const b = await keyAndToken('RS384');
  assert.equal(new PinnedKeys({ keys: [b.jwk] }).check(a.token, header(a.token)), false);
});

test('left to jose: unknown kid, no kid, two keys with the kid, the JWK names another alg, crit, b64', async () => {
  const { jwk, token } = await keyAndToken('RS384');
  const h = header(token);
  assert.equal(new PinnedKeys({ keys: [{ ...jwk, kid: 'other' }] }).check(token, h), undefined);
  assert.equal(new PinnedKeys({ keys: [jwk] }).check(token, { alg: h.alg }), undefined);
  assert.equal(new PinnedKeys({ keys: [jwk, { ...jwk }] }).check(token, h), undefined);
  assert.equal(new PinnedKeys({ keys: [{ ...jwk, alg: 'RS256' }] }).check(token, h), undefined);
  assert.equal(new PinnedKeys({ keys: [jwk] }).check(token, { ...h, crit: ['exp'] }), undefined);
  assert.equal(new PinnedKeys({ keys: [jwk] }).check(token, { ...h, b64: false } as never), undefined);
  assert.equal(new PinnedKeys({ keys: [{ ...jwk, use: 'enc' }] }).check(token, h), undefined);
});

test('left to jose: an ES256 token with a P-384 key, and an RSA key under 2048 bits', async () => {
  const p384 = await keyAndToken('ES384');
  const es256Header = { alg: 'ES256', kid: 'k1' };
  assert.equal(new PinnedKeys({ keys: [{ ...p384.jwk, alg: undefined } as JWK] }).check(p384.token, es256Header), undefined);

  const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const jwk = { ...(small.publicKey.export({ format: 'jwk' }) as JWK), kid: 'k1', alg: 'RS256' };
  const input = `${Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'k1' })).toString('base64url')}.${Buffer.from('{}').toString('base64url')}`;
  const token = `${input}.${sign('sha256', Buffer.from(input), small.privateKey).toString('base64url')}`;
  assert.equal(new PinnedKeys({ keys: [jwk] }).check(token, { alg: 'RS256', kid: 'k1' }), undefined);
});

test('a JWK that cannot be imported is skipped, not thrown', () => {
  const keys = new PinnedKeys({ keys: [{ kty: 'RSA', kid: 'k1', n: '', e: '' }] });
  assert.equal(keys.check('a.b.c', { alg: 'RS256', kid: 'k1' }), undefined);
});
