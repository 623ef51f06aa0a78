/**
 * The operator credential of the operations endpoints: `OPS_TOKEN` (constant-time compare) or, in sandbox mode, a
 * system-level token of the sandbox authorization server; everything else is a bare 401.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import express, { type RequestHandler } from 'express';
import request from 'supertest';
import { createLogger } from '../logging.ts';
import { isSystemAccess, requireOperator } from './operator.ts';
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess } from './types.ts';

const OPS_TOKEN = 'ops-token-for-tests-0123456789abcdef0123';
const logs: string[] = [];
const logger = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => void (logs.push(c.toString()), cb()) }) });

/** A verifier that knows a few made-up tokens. */
const verifier: AccessTokenVerifier = {
  async verify(token: string): Promise<SmartAccess> {
    const known: Record<string, SmartAccess> = {
      'system-token': { subject: 'demo-backend', clientId: 'demo-backend', scopes: ['system/*.rs'] },
      'system-write-only': { subject: 'x', scopes: ['system/Task.cu'] },
      'user-token': { subject: 'Practitioner/1', scopes: ['user/*.rs', 'openid'] },
      'patient-token': { subject: 'Practitioner/1', scopes: ['patient/*.rs', 'system/*.rs'], patient: 'p1' },
    };
    if (token === 'down') throw new AccessTokenError('unavailable', 'authorization server down');
    const a = known[token];
    if (!a) throw new AccessTokenError('invalid', 'unknown token');
    return a;
  },
};

function app(guard: RequestHandler): express.Express {
  const a = express();
  a.get('/ops', guard, (_req, res) => void res.json({ operator: res.locals['operator'] }));
  return a;
}

describe('requireOperator', () => {
  test('OPS_TOKEN configured: only "Authorization: Bearer <OPS_TOKEN>" passes; anything else is 401 with a Bearer challenge', async () => {
    const a = app(requireOperator({ opsToken: OPS_TOKEN, logger }));
    const missing = await request(a).get('/ops').expect(401);
    assert.match(String(missing.headers['www-authenticate']), /^Bearer realm=/);
    assert.equal(missing.body.code, 'OPERATOR_CREDENTIAL_REQUIRED');
    await request(a).get('/ops').set('Authorization', `Bearer ${OPS_TOKEN}x`).expect(401);
    await request(a).get('/ops').set('Authorization', `Bearer ${OPS_TOKEN.slice(0, -1)}`).expect(401);
    await request(a).get('/ops').set('Authorization', `Basic ${Buffer.from(`ops:${OPS_TOKEN}`).toString('base64')}`).expect(401);
    assert.equal((await request(a).get('/ops').set('Authorization', 'Bearer system-token')).status, 401, 'no SMART tokens without a verifier');
    const ok = await request(a).get('/ops').set('Authorization', `Bearer ${OPS_TOKEN}`).expect(200);
    assert.equal(ok.body.operator, 'ops-token');
    assert.ok(!logs.join('').includes(OPS_TOKEN.slice(0, 20)), 'the token is never logged');
  });

  test('nothing configured: every request is refused, and the answer names the setting', async () => {
    const a = app(requireOperator({ opsToken: undefined, logger }));
    const r = await request(a).get('/ops').set('Authorization', 'Bearer anything').expect(401);
    assert.match(r.body.error, /OPS_TOKEN/);
    await request(a).get('/ops').set('Authorization', 'Bearer ').expect(401);
  });

  test('with a system-token verifier: system/ read scopes without a patient pass; user, patient and write-only tokens do not', async () => {
    const a = app(requireOperator({ opsToken: OPS_TOKEN, systemTokens: verifier, logger }));
    const sys = await request(a).get('/ops').set('Authorization', 'Bearer system-token').expect(200);
    assert.equal(sys.body.operator, 'system-token:demo-backend');
    await request(a).get('/ops').set('Authorization', `Bearer ${OPS_TOKEN}`).expect(200);
    for (const t of ['user-token', 'patient-token', 'system-write-only', 'unknown']) {
      assert.equal((await request(a).get('/ops').set('Authorization', `Bearer ${t}`)).status, 401, t);
    }
    const down = await request(a).get('/ops').set('Authorization', 'Bearer down').expect(503);
    assert.equal(down.headers['retry-after'], '5');
  });

  test('isSystemAccess', () => {
    assert.ok(isSystemAccess({ subject: 's', scopes: ['system/*.cruds'] }));
    assert.ok(isSystemAccess({ subject: 's', scopes: ['system/Patient.read'] }));
    assert.ok(!isSystemAccess({ subject: 's', scopes: ['system/*.rs?category=x'] }), 'granular scopes grant nothing');
    assert.ok(!isSystemAccess({ subject: 's', scopes: ['system/*.rs'], patient: 'p' }));
    assert.ok(!isSystemAccess({ subject: 's', scopes: ['user/*.cruds', 'launch'] }));
  });
});
