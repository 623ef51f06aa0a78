/**
 * `npm start` end to end: the composition root started as a child process on a free port with the small fixture
 * cohort, checked over real HTTP the way the README's Quick start says, then stopped by its PID.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Bundle } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../server/config.ts';
import { freePort } from './support/net.ts';
import { getNoFollow, pkce, postForm } from './support/oauth.ts';


let child: ChildProcess;
let dataDir = '';
let base = '';
let stdout = '';
let stderr = '';

before(async () => {
  // A small cohort: the fixture FHIR bundles and the imaging fixtures' DICOM files.
  dataDir = mkdtempSync(join(tmpdir(), 'frcds-start-'));
  cpSync(join(REPO_ROOT, 'test/fixtures/fhir-cohort/fhir'), join(dataDir, 'fhir'), { recursive: true });
  cpSync(join(REPO_ROOT, 'test/fixtures/dicom'), join(dataDir, 'dicom'), { recursive: true, filter: (src) => !src.endsWith('.json') });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'server/index.ts')], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', SANDBOX_DATA_DIR: dataDir, LOG_LEVEL: 'info', MODELS_DIR: join(REPO_ROOT, 'test/fixtures/models'), STATE_DB: join(dataDir, 'state.sqlite') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!stdout.includes('Fracture Risk CDS is up')) {
    if (child.exitCode !== null) assert.fail(`server exited early (${child.exitCode}): ${stderr}`);
    if (Date.now() > deadline) assert.fail(`server did not start within 60 s; stdout: ${stdout}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  if (child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start (server/index.ts)', () => {
  test('logs JSON lines, the last of them listing the URLs to open', () => {
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const up = lines.find((l) => String(l['msg']).startsWith('Fracture Risk CDS is up'));
    assert.ok(up);
    assert.match(String(up['msg']), /^Fracture Risk CDS is up and ready \(research use — trained on synthetic data\)/);
    const urls = up['urls'] as Record<string, string>;
    assert.equal(urls['fhirPatients'], `${base.replace('127.0.0.1', 'localhost')}/sandbox/fhir/Patient?_count=5`);
    assert.equal(urls['readiness'], `${base.replace('127.0.0.1', 'localhost')}/readyz`);
    assert.doesNotMatch(stdout, /fx-000\d|Synthetic-|FX900/, 'no patient ids, names or MRNs in the log');
  });

  test('/readyz is 200 and /sandbox/fhir/Patient?_count=5 is a searchset with fullUrls and a next link', async () => {
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200, await ready.clone().text());
    // SMART (issue 7): without a token the sandbox says how to get one; the developer client's token works.
    const anonymous = await fetch(`${base}/sandbox/fhir/Patient?_count=5`);
    assert.equal(anonymous.status, 401);
    assert.match(((await anonymous.json()) as { issue: { details: { text: string } }[] }).issue[0]!.details.text, /grant_type=client_credentials/);
    const tokenRes = await fetch(`${base}/sandbox/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${Buffer.from('demo-backend:sandbox-only-demo-backend-secret').toString('base64')}` },
      body: 'grant_type=client_credentials&scope=system/*.rs',
    });
    assert.equal(tokenRes.status, 200);
    const { access_token } = (await tokenRes.json()) as { access_token: string };
    const res = await fetch(`${base}/sandbox/fhir/Patient?_count=5`, { headers: { Authorization: `Bearer ${access_token}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/fhir\+json/);
    const b = (await res.json()) as Bundle;
    assert.equal(b.type, 'searchset');
    assert.equal(b.entry?.length, 5);
    assert.ok(b.entry?.every((e) => e.fullUrl?.startsWith(`${base.replace('127.0.0.1', 'localhost')}/sandbox/fhir/Patient/`)));
    assert.ok(b.link?.some((l) => l.relation === 'next'));
  });

  test('the DICOMweb sandbox answers QIDO-RS with DICOM JSON for the demo files', async () => {
    const res = await fetch(`${base}/sandbox/dicom-web/studies`, { headers: { Accept: 'application/dicom+json' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/dicom\+json/);
    const studies = (await res.json()) as Record<string, { Value?: unknown[] }>[];
    assert.ok(studies.length > 0);
    assert.ok(studies.every((s) => typeof s['0020000D']?.Value?.[0] === 'string'));
    const ready = (await (await fetch(`${base}/readyz`)).json()) as { ready: string[]; components: Record<string, { detail?: string }> };
    assert.deepEqual(ready.ready, ['app', 'dicomweb-sandbox', 'fhir-sandbox', 'models', 'state']);
    assert.match(ready.components['state']?.detail ?? '', /results: sqlite/, 'the embedded state file by default');
    // The execution provider in use is shown (this machine has no CUDA: auto fell back to CPU).
    assert.match(ready.components['models']?.detail ?? '', /hip-xray-smoke@0\.0\.1 on cpu/);
    assert.match(ready.components['models']?.detail ?? '', /; CT: (ct-spine-v\d+@[\d.]+|not assessed)/, 'whether CT studies are assessed is shown');
    assert.ok(readdirSync(join(dataDir, 'dicom')).length > 0);
  });

  // SMART (issue 7): the API verifies the app's token against the sandbox JWKS and the service reads FHIR with its
  // own client_credentials token; a token launched for one patient cannot assess another.
  test('/api/assessments needs a SMART access token whose patient matches (EHR launch over HTTP)', async () => {
    const post = (patient: string, token?: string): Promise<Response> =>
      fetch(`${base}/api/assessments`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify({ patient }) });
    const anonymous = await post('fx-0001');
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer /);
    const launchRes = await fetch(`${base}/sandbox/auth/launch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ patient: 'fx-0001' }) });
    assert.equal(launchRes.status, 201);
    const { launch } = (await launchRes.json()) as { launch: string };
    const p = pkce();
    const publicBase = base.replace('127.0.0.1', 'localhost');
    const redirectUri = `${publicBase}/app/index.html`;
    const auth = await getNoFollow(
      `${base}/sandbox/auth/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'fracture-risk-app', redirect_uri: redirectUri, scope: 'launch openid fhirUser patient/*.rs', state: 's', aud: `${publicBase}/sandbox/fhir`, launch, code_challenge: p.challenge, code_challenge_method: 'S256' })}`,
    );
    const code = auth.location?.searchParams.get('code');
    assert.ok(code, `authorize answered ${auth.status} ${auth.location}`);
    const t = await postForm(`${base}/sandbox/auth/token`, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: 'fracture-risk-app', code_verifier: p.verifier });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const token = String(t.body['access_token']);
    const other = await post('fx-0002', token);
    assert.equal(other.status, 403);
    assert.equal(((await other.json()) as { code: string }).code, 'PATIENT_MISMATCH');
    const own = await post('fx-0001', token);
    assert.equal(own.status, 201, await own.clone().text());
    const body = (await own.json()) as { assessment: { id: string; patientId: string } };
    assert.equal(body.assessment.patientId, 'fx-0001');
    assert.equal((await fetch(`${base}/api/assessments/${body.assessment.id}`, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
    assert.equal((await fetch(`${base}/api/assessments/${body.assessment.id}`)).status, 401);
  });

  test('stops cleanly on SIGTERM', async () => {
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 0);
  });
});
