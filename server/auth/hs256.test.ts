/** Hs256AccessTokenVerifier: development launchers' shared-secret tokens, without iss/aud, exp still required. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { Hs256AccessTokenVerifier } from './hs256.ts';
import { AccessTokenError } from './types.ts';

const SECRET = 'dev-launcher-shared-secret-0123456789';
const now = (): number => Math.floor(Date.now() / 1000);
const refused = (code: string, message?: RegExp) => (e: unknown): boolean =>
  e instanceof AccessTokenError && e.code === code && (!message || message.test(e.message));

function hs256(claims: Record<string, unknown>, secret = SECRET, exp: number | null = now() + 300): Promise<string> {
  const jwt = new SignJWT({ client_id: 'my-app', scope: 'patient/*.read launch/patient', patient: 'p-7', ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' });
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(new TextEncoder().encode(secret));
}

describe('HS256 access tokens (development launchers)', () => {
  const v = new Hs256AccessTokenVerifier({ secret: SECRET });

  test('a token without iss, aud or sub is accepted: subject from client_id, scopes and patient from the claims', async () => {
    const a = await v.verify(await hs256({}));
    assert.equal(a.subject, 'my-app');
    assert.equal(a.patient, 'p-7');
    assert.deepEqual(a.scopes, ['patient/*.read', 'launch/patient']);
  });

  test('another secret, an expired token, a token without exp and an RS256 token are refused', async () => {
    await assert.rejects(v.verify(await hs256({}, 'another-secret-of-the-same-size!!')), refused('invalid'));
    await assert.rejects(v.verify(await hs256({}, SECRET, now() - 120)), refused('expired'));
    await assert.rejects(v.verify(await hs256({}, SECRET, null)), refused('invalid', /"exp"/));
    const { privateKey } = await generateKeyPair('RS256');
    const rs = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime(now() + 60).sign(privateKey);
    await assert.rejects(v.verify(rs), refused('invalid'));
  });

  test('issuer and audience are checked when configured', async () => {
    const strict = new Hs256AccessTokenVerifier({ secret: SECRET, issuer: 'https://launcher.example', audience: ['https://launcher.example/fhir'] });
    assert.equal((await strict.verify(await hs256({ iss: 'https://launcher.example', aud: 'https://launcher.example/fhir' }))).patient, 'p-7');
    await assert.rejects(strict.verify(await hs256({})), refused('invalid'));
    await assert.rejects(strict.verify(await hs256({ iss: 'https://launcher.example', aud: 'https://other.example' })), refused('invalid', /"aud"/));
  });
});
