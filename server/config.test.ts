import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig, REPO_ROOT, SETTINGS, settingsMarkdown } from './config.ts';

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('loadConfig accepted a wrong configuration');
}

describe('loadConfig: environment', () => {
  test('defaults: sandbox FHIR and DICOMweb on port 8080, public URLs on localhost', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.publicBaseUrl, 'http://localhost:8080');
    assert.equal(c.fhir.sandbox, true);
    assert.equal(c.fhir.publicBaseUrl, 'http://localhost:8080/sandbox/fhir');
    assert.equal(c.fhir.baseUrl, 'http://127.0.0.1:8080/sandbox/fhir');
    assert.equal(c.dicomweb.sandbox, true);
    assert.equal(c.dicomweb.publicBaseUrl, 'http://localhost:8080/sandbox/dicom-web');
    assert.deepEqual(c.dicomweb.auth, { type: 'none' });
    assert.equal(c.dicomweb.timeoutMs, 10000);
    assert.equal(c.log.level, 'info');
    assert.equal(c.sandboxDataDir, join(REPO_ROOT, 'server/sandbox/demo-cohort'));
    assert.equal(c.files.sandbox.fhir.defaultPageSize, 20);
  });

  test('PORT drives the default public URL; PUBLIC_BASE_URL overrides it (trailing slash dropped)', () => {
    assert.equal(loadConfig({ PORT: '9090' }).publicBaseUrl, 'http://localhost:9090');
    const c = loadConfig({ PORT: '9090', PUBLIC_BASE_URL: 'https://cds.example.org/frcds/' });
    assert.equal(c.publicBaseUrl, 'https://cds.example.org/frcds');
    assert.equal(c.fhir.publicBaseUrl, 'https://cds.example.org/frcds/sandbox/fhir');
    assert.equal(c.fhir.baseUrl, 'http://127.0.0.1:9090/sandbox/fhir', 'the service calls its own sandbox over loopback');
  });

  test('external FHIR and PACS switch the sandboxes off; basic and bearer auth are parsed', () => {
    const c = loadConfig({
      FHIR_BASE_URL: 'https://ehr.example.org/fhir/r4/',
      DICOMWEB_BASE_URL: 'https://pacs.example.org/dicom-web',
      DICOMWEB_AUTH: 'basic',
      DICOMWEB_USERNAME: 'pacs',
      DICOMWEB_PASSWORD: 'secret',
      DICOMWEB_TIMEOUT_MS: '2500',
    });
    assert.equal(c.fhir.sandbox, false);
    assert.equal(c.fhir.baseUrl, 'https://ehr.example.org/fhir/r4');
    assert.equal(c.dicomweb.sandbox, false);
    assert.deepEqual(c.dicomweb.auth, { type: 'basic', username: 'pacs', password: 'secret' });
    assert.equal(c.dicomweb.timeoutMs, 2500);
    const b = loadConfig({ DICOMWEB_BASE_URL: 'http://127.0.0.1:8042/dicom-web', DICOMWEB_AUTH: 'bearer', DICOMWEB_TOKEN: 'abc.def' });
    assert.deepEqual(b.dicomweb.auth, { type: 'bearer', token: 'abc.def' });
  });

  const wrong: [NodeJS.ProcessEnv, string, RegExp][] = [
    [{ PORT: 'abc' }, 'PORT', /PORT="abc" must be an integer from 1 to 65535/],
    [{ PORT: '70000' }, 'PORT', /PORT/],
    [{ FHIR_BASE_URL: 'ftp://x' }, 'FHIR_BASE_URL', /FHIR_BASE_URL="ftp:\/\/x" must be an absolute http/],
    [{ PUBLIC_BASE_URL: 'localhost:8080' }, 'PUBLIC_BASE_URL', /PUBLIC_BASE_URL/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /LOG_LEVEL="loud" must be one of "fatal"/],
    [{ DICOMWEB_AUTH: 'kerberos' }, 'DICOMWEB_AUTH', /DICOMWEB_AUTH/],
    [{ DICOMWEB_BASE_URL: 'http://p/dicom-web', DICOMWEB_AUTH: 'basic', DICOMWEB_USERNAME: 'u' }, 'DICOMWEB_PASSWORD', /DICOMWEB_PASSWORD is required when DICOMWEB_AUTH=basic/],
    [{ DICOMWEB_BASE_URL: 'http://p/dicom-web', DICOMWEB_AUTH: 'bearer' }, 'DICOMWEB_TOKEN', /DICOMWEB_TOKEN is required/],
    [{ DICOMWEB_AUTH: 'bearer', DICOMWEB_TOKEN: 't' }, 'DICOMWEB_AUTH', /needs DICOMWEB_BASE_URL/],
    [{ DICOMWEB_TIMEOUT_MS: '10' }, 'DICOMWEB_TIMEOUT_MS', /DICOMWEB_TIMEOUT_MS="10" must be an integer from 100/],
    [{ LOG_HASH_SALT: 'short' }, 'LOG_HASH_SALT', /LOG_HASH_SALT must be at least 16 characters/],
    [{ SMART_CONFIG_DIR: 'no/such/folder' }, 'SMART_CONFIG_DIR', /SMART_CONFIG_DIR=.* is not a folder/],
  ];
  for (const [env, setting, message] of wrong) {
    test(`wrong ${setting} is named in one message (${JSON.stringify(env)})`, () => {
      const err = configError(env);
      assert.ok(err.settings.includes(setting), `settings ${JSON.stringify(err.settings)} lack ${setting}`);
      assert.match(err.message, /^Configuration error: /);
      assert.match(err.message, message);
      assert.doesNotMatch(err.message, /\n/, 'one line');
    });
  }

  test('secrets are never echoed in the error message', () => {
    const err = configError({ DICOMWEB_BASE_URL: 'http://p/dicom-web', DICOMWEB_AUTH: 'bearer', DICOMWEB_TOKEN: 'has space-s3cr3t' });
    assert.doesNotMatch(err.message, /s3cr3t/);
    assert.deepEqual(err.settings, ['DICOMWEB_TOKEN']);
  });

  test('several wrong settings are all named in the same message', () => {
    const err = configError({ PORT: '0', LOG_LEVEL: 'x' });
    assert.deepEqual(err.settings, ['PORT', 'LOG_LEVEL']);
  });
});

describe('SANDBOX_FHIR_OPEN (interop demo mode)', () => {
  test('off by default; on only with the sandbox FHIR server', () => {
    assert.equal(loadConfig({}).fhir.sandboxOpen, false);
    assert.equal(loadConfig({ SANDBOX_FHIR_OPEN: 'false' }).fhir.sandboxOpen, false);
    assert.equal(loadConfig({ SANDBOX_FHIR_OPEN: 'true' }).fhir.sandboxOpen, true, 'default HOST 127.0.0.1 is loopback');
    assert.equal(loadConfig({ SANDBOX_FHIR_OPEN: 'true', FHIR_BASE_URL: 'https://ehr.example.org/fhir' }).fhir.sandboxOpen, false);
    assert.match(configError({ SANDBOX_FHIR_OPEN: 'yes' }).message, /SANDBOX_FHIR_OPEN="yes" must be one of "true", "false"/);
  });

  test('accepted with every loopback HOST', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST']) {
      assert.equal(loadConfig({ SANDBOX_FHIR_OPEN: 'true', HOST: host }).fhir.sandboxOpen, true, host);
    }
  });

  for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.org', '128.0.0.1']) {
    test(`refused with HOST=${host}, in one message naming both settings`, () => {
      const err = configError({ SANDBOX_FHIR_OPEN: 'true', HOST: host });
      assert.deepEqual(err.settings, ['SANDBOX_FHIR_OPEN']);
      assert.match(err.message, /^Configuration error: SANDBOX_FHIR_OPEN=true needs a loopback HOST/);
      assert.ok(err.message.includes(`not HOST=${JSON.stringify(host)}`), err.message);
      assert.doesNotMatch(err.message, /\n/);
    });
  }

  test('HOST=0.0.0.0 alone is still fine', () => {
    assert.equal(loadConfig({ HOST: '0.0.0.0' }).host, '0.0.0.0');
  });
});

describe('loadConfig: smart-config files', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  function copyConfig(): string {
    const d = mkdtempSync(join(tmpdir(), 'frcds-config-'));
    dirs.push(d);
    cpSync(join(REPO_ROOT, 'smart-config'), d, { recursive: true });
    return d;
  }

  test('a wrong value names the file and JSON pointer', () => {
    const d = copyConfig();
    const data = JSON.parse(readFileSync(join(d, 'sandbox.json'), 'utf8')) as { fhir: Record<string, unknown> };
    data.fhir['maxPageSize'] = 'lots';
    writeFileSync(join(d, 'sandbox.json'), JSON.stringify(data));
    const err = configError({ SMART_CONFIG_DIR: d });
    assert.deepEqual(err.settings, ['smart-config/sandbox.json#/fhir/maxPageSize']);
    assert.match(err.message, /smart-config\/sandbox\.json#\/fhir\/maxPageSize must be integer/);
  });

  test('a missing or unknown property, invalid JSON, a file without schema and a cross-field rule are errors', () => {
    const d = copyConfig();
    writeFileSync(join(d, 'sandbox.json'), JSON.stringify({ fhir: { defaultPageSize: 10, maxRequestBytes: 2048, colour: 'red' } }));
    let err = configError({ SMART_CONFIG_DIR: d });
    assert.match(err.message, /sandbox\.json#\/fhir\/maxPageSize is required/);
    assert.match(err.message, /sandbox\.json#\/fhir has unknown property "colour"/);

    writeFileSync(join(d, 'sandbox.json'), '{ "fhir": ');
    err = configError({ SMART_CONFIG_DIR: d });
    assert.match(err.message, /smart-config\/sandbox\.json is not valid JSON/);

    writeFileSync(join(d, 'sandbox.json'), JSON.stringify({ fhir: { defaultPageSize: 50, maxPageSize: 10, maxRequestBytes: 2048 } }));
    err = configError({ SMART_CONFIG_DIR: d });
    assert.match(err.message, /defaultPageSize must not exceed/);

    cpSync(join(REPO_ROOT, 'smart-config', 'sandbox.json'), join(d, 'sandbox.json'));
    writeFileSync(join(d, 'extra.json'), '{}');
    err = configError({ SMART_CONFIG_DIR: d });
    assert.deepEqual(err.settings, ['smart-config/extra.json']);
    assert.match(err.message, /extra\.json has no schema/);
  });

  test('the committed smart-config files are valid', () => {
    assert.doesNotThrow(() => loadConfig({}));
  });
});

describe('configuration documentation and start-up', () => {
  test('the README configuration table is the one generated from SETTINGS', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    assert.ok(readme.includes(settingsMarkdown()), 'README.md is out of date: paste the output of `npx tsx server/config.ts --markdown`');
    for (const s of SETTINGS) assert.ok(readme.includes(`\`${s.env}\``));
  });

  test('npm start with SANDBOX_FHIR_OPEN=true on HOST=0.0.0.0 is refused: exit 2, one line', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'server/index.ts')], {
      env: { ...process.env, SANDBOX_FHIR_OPEN: 'true', HOST: '0.0.0.0', PORT: '1', LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 30000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /^Configuration error: SANDBOX_FHIR_OPEN=true needs a loopback HOST/);
  });

  test('npm start with a wrong value exits non-zero printing one message naming the setting', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'server/index.ts')], {
      env: { ...process.env, PORT: 'eighty', LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 30000,
    });
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /^Configuration error: PORT="eighty" must be an integer/);
  });
});
