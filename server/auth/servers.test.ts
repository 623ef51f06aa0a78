/**
 * The `servers` of smart-config/token-verification.json at start-up: one entry per mode resolves ({PUBLIC_BASE_URL}
 * expanded, secrets read from the variables named), and each wrong configuration is one ConfigError naming the
 * setting — hs256 without API_TOKEN_ALLOW_HS256, a variable that is not set, a duplicate fhirBaseUrl, a field a
 * mode needs, a private key that cannot sign, a pinned private key. Then the whole verifier the service builds.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ConfigError, loadConfig, REPO_ROOT, type AppConfig, type TokenServerFileEntry } from '../config.ts';
import { createApiTokenVerifier, tokenVerificationWarnings } from './setup.ts';
import { AccessTokenError } from './types.ts';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of smart-config/ whose token-verification.json has these servers. */
function configDir(servers: unknown[]): string {
  const d = mkdtempSync(join(tmpdir(), 'frcds-servers-'));
  dirs.push(d);
  cpSync(join(REPO_ROOT, 'smart-config'), d, { recursive: true });
  writeFileSync(join(d, 'token-verification.json'), JSON.stringify({ $schema: './schema/token-verification.schema.json', mode: 'auto', servers }));
  return d;
}

function load(servers: unknown[], env: Record<string, string> = {}): AppConfig {
  return loadConfig({ SMART_CONFIG_DIR: configDir(servers), PUBLIC_BASE_URL: 'http://localhost:8080', ...env });
}

function configError(servers: unknown[], env: Record<string, string> = {}): ConfigError {
  try {
    load(servers, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('the configuration was accepted');
}

const HS256_SECRET = 'launcher-shared-secret-for-tests-0123';
const ALL_MODES: TokenServerFileEntry[] = [
  { id: 'jwks-ehr', fhirBaseUrl: 'https://jwks.example/fhir/', mode: 'jwks', jwksUri: 'https://auth.jwks.example/jwks', issuer: 'https://auth.jwks.example', connectSrc: ['https://auth.jwks.example/oauth2/token'] },
  { id: 'epic-like', fhirBaseUrl: 'https://epic.example/api/FHIR/R4', mode: 'introspection', introspectionUrl: 'https://epic.example/oauth2/introspect', clientAuth: 'private_key_jwt', clientId: 'frcds', privateKeyEnv: 'EPIC_KEY' },
  { id: 'basic-ehr', fhirBaseUrl: 'https://basic.example/fhir', mode: 'introspection', introspectionUrl: 'https://basic.example/introspect', clientAuth: 'basic', clientId: 'frcds', secretEnv: 'BASIC_SECRET' },
  { id: 'oracle-like', fhirBaseUrl: 'https://oracle.example/r4/tenant', mode: 'fhir-delegated', cacheSeconds: 30 },
  { id: 'launcher', fhirBaseUrl: '{PUBLIC_BASE_URL}/launcher/fhir', mode: 'hs256', secretEnv: 'LAUNCHER_SECRET' },
];

describe('token-verification.json "servers": start-up checks', () => {
  test('one entry per mode resolves: URLs expanded and normalised, secrets read from the named variables', async () => {
    const { privateKey } = await generateKeyPair('RS384', { extractable: true });
    const env = { EPIC_KEY: JSON.stringify(await exportJWK(privateKey)), BASIC_SECRET: 'basic-secret', LAUNCHER_SECRET: HS256_SECRET, API_TOKEN_ALLOW_HS256: 'true' };
    const c = load(ALL_MODES, env);
    assert.deepEqual(c.auth.tokenServers.map((s) => [s.id, s.mode, s.fhirBaseUrl]), [
      ['jwks-ehr', 'jwks', 'https://jwks.example/fhir'],
      ['epic-like', 'introspection', 'https://epic.example/api/FHIR/R4'],
      ['basic-ehr', 'introspection', 'https://basic.example/fhir'],
      ['oracle-like', 'fhir-delegated', 'https://oracle.example/r4/tenant'],
      ['launcher', 'hs256', 'http://localhost:8080/launcher/fhir'],
    ]);
    const jwks = c.auth.tokenServers[0]!;
    assert.deepEqual(jwks.connectSrc, ['https://auth.jwks.example']);
    const basic = c.auth.tokenServers[2]!;
    assert.ok(basic.mode === 'introspection' && basic.clientAuth.type === 'basic' && basic.clientAuth.clientSecret === 'basic-secret');
    const launcher = c.auth.tokenServers[4]!;
    assert.ok(launcher.mode === 'hs256' && launcher.secret === HS256_SECRET);
    assert.equal(c.auth.allowHs256, true);
    assert.deepEqual(tokenVerificationWarnings(c).map((w) => w.key), ['API_TOKEN_ALLOW_HS256']);
    assert.match(tokenVerificationWarnings(c)[0]!.message, /launcher/);
  });

  test('absent or empty servers: nothing resolved, no warning (the committed file is valid)', () => {
    const c = loadConfig({});
    assert.deepEqual(c.auth.tokenServers, []);
    assert.deepEqual(tokenVerificationWarnings(c), []);
    assert.deepEqual(load([]).auth.tokenServers, []);
  });

  test('hs256 without API_TOKEN_ALLOW_HS256=true is refused at config load, naming the flag', () => {
    const hs = [ALL_MODES[4]];
    const envs: Record<string, string>[] = [{ LAUNCHER_SECRET: HS256_SECRET }, { LAUNCHER_SECRET: HS256_SECRET, API_TOKEN_ALLOW_HS256: 'false' }];
    for (const env of envs) {
      const err = configError(hs, env);
      assert.deepEqual(err.settings, ['smart-config/token-verification.json#/servers/0']);
      assert.match(err.message, /servers\/0 \("launcher"\) has "mode": "hs256", which is refused unless API_TOKEN_ALLOW_HS256=true/);
      assert.ok(!err.message.includes(HS256_SECRET), 'the secret is never in the message');
    }
  });

  test('a variable named by secretEnv / privateKeyEnv that is not set is one error naming it', () => {
    const err = configError([ALL_MODES[1], ALL_MODES[2]]);
    assert.deepEqual(err.settings, ['EPIC_KEY', 'BASIC_SECRET']);
    assert.match(err.message, /^Configuration error: EPIC_KEY is not set \(named by smart-config\/token-verification\.json#\/servers\/0\/privateKeyEnv, server "epic-like"\); BASIC_SECRET is not set/);
  });

  test('a private key that is not JSON, has no "d" or is pinned in the file is refused without quoting it', async () => {
    let err = configError([ALL_MODES[1]], { EPIC_KEY: 'not-json-but-secret-material' });
    assert.match(err.message, /EPIC_KEY \(named by .*privateKeyEnv\) must hold a private JWK as JSON/);
    assert.ok(!err.message.includes('secret-material'));
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    err = configError([ALL_MODES[1]], { EPIC_KEY: JSON.stringify(await exportJWK(publicKey)) });
    assert.match(err.message, /has no "d"/);
    err = configError([{ id: 'pinned', fhirBaseUrl: 'https://p.example/fhir', mode: 'jwks', jwks: { keys: [await exportJWK(privateKey)] } }]);
    assert.match(err.message, /#\/servers\/0\/jwks\/keys\/0 is a private or symmetric key/);
  });

  test('duplicate fhirBaseUrl (after removing a trailing slash) and duplicate id are refused', () => {
    const a = { id: 'a', fhirBaseUrl: 'https://ehr.example/fhir', mode: 'fhir-delegated' };
    let err = configError([a, { id: 'b', fhirBaseUrl: 'https://EHR.example/fhir/', mode: 'fhir-delegated' }]);
    assert.deepEqual(err.settings, ['smart-config/token-verification.json#/servers/1/fhirBaseUrl']);
    assert.match(err.message, /https:\/\/ehr\.example\/fhir is also the fhirBaseUrl of #\/servers\/0/);
    err = configError([a, { ...a, fhirBaseUrl: 'https://other.example/fhir' }]);
    assert.match(err.message, /servers\/1\/id "a" is also the id of #\/servers\/0/);
  });

  test('schema: a field the mode needs, an unknown field, a bad id or URL are named by pointer', () => {
    let err = configError([{ id: 'x', fhirBaseUrl: 'https://x.example/fhir', mode: 'introspection', introspectionUrl: 'https://x.example/introspect' }]);
    assert.match(err.message, /token-verification\.json#\/servers\/0\/clientAuth is required/);
    assert.ok(!/must match "then" schema/.test(err.message));
    err = configError([{ id: 'x', fhirBaseUrl: 'https://x.example/fhir', mode: 'introspection', introspectionUrl: 'https://x.example/i', clientAuth: 'private_key_jwt' }]);
    assert.match(err.message, /#\/servers\/0\/clientId is required/);
    assert.match(err.message, /#\/servers\/0\/privateKeyEnv is required/);
    err = configError([{ id: 'Bad Id', fhirBaseUrl: 'ftp://x.example/fhir', mode: 'jwks', jwksUri: 'https://x/jwks', secret: 'inline' }]);
    assert.match(err.message, /#\/servers\/0\/id /);
    assert.match(err.message, /#\/servers\/0\/fhirBaseUrl /);
    assert.match(err.message, /#\/servers\/0 has unknown property "secret"/);
    err = configError([{ id: 'x', fhirBaseUrl: 'https://x.example/fhir', mode: 'jwks' }]);
    assert.match(err.message, /#\/servers\/0\/jwksUri is required|#\/servers\/0\/jwks is required/);
  });
});

describe('the API verifier built from the configuration (dispatch by X-FHIR-Server)', () => {
  test('an hs256 entry verifies its tokens; the sandbox\'s own server and an unknown one are told apart', async () => {
    const c = load([ALL_MODES[4]], { LAUNCHER_SECRET: HS256_SECRET, API_TOKEN_ALLOW_HS256: 'true' });
    const v = createApiTokenVerifier(c);
    const token = await new SignJWT({ client_id: 'app', scope: 'patient/*.rs', patient: 'p-3' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(HS256_SECRET));
    const a = await v.verify(token, { fhirServer: 'http://localhost:8080/launcher/fhir/', patient: 'p-3' });
    assert.equal(a.patient, 'p-3');
    // The same token presented for the service's own FHIR server goes to its own verifier (sandbox JWKS): refused.
    await assert.rejects(v.verify(token, { fhirServer: c.fhir.publicBaseUrl }), (e: unknown) => e instanceof AccessTokenError && !/allowlisted/.test(e.message));
    await assert.rejects(v.verify(token), (e: unknown) => e instanceof AccessTokenError && !/allowlisted/.test(e.message));
    await assert.rejects(v.verify(token, { fhirServer: 'https://unknown.example/fhir' }), (e: unknown) => e instanceof AccessTokenError && e.code === 'invalid' && /https:\/\/unknown\.example\/fhir is not allowlisted/.test(e.message));
  });
});
