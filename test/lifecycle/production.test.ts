/**
 * The production start: `npm run build` (tsc to `dist/`, runtime assets, the SMART app bundle) once, then
 * `node dist/server/index.js` with plain Node — no TypeScript loader, no esbuild at run time — serves `/healthz` and
 * `/readyz`, assesses a patient from a radiograph (the imaging worker thread and the job modules resolve their `.js`
 * files) and stops cleanly on SIGTERM. The build takes most of this file's time (≈30 s on two cores).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../../server/config.ts';
import { freePort } from '../support/net.ts';
import { eventually, groupAlive, markedProcesses, portOpen, serviceEnv, startProcess, type Started } from './processes.ts';

describe('npm run build + node dist/server/index.js', () => {
  let dataDir = '';
  let port = 0;
  let base = '';
  let prod: Started;

  before(async () => {
    const build = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 240_000 });
    assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
    assert.match(build.stdout, /build done/);
    assert.ok(existsSync(join(REPO_ROOT, 'dist/server/index.js')));
    assert.ok(existsSync(join(REPO_ROOT, 'dist/server/imaging/imaging-worker.js')));
    assert.ok(existsSync(join(REPO_ROOT, 'dist/server/cds/schemas/hook-request.schema.json')), 'module-relative assets are copied');

    dataDir = mkdtempSync(join(tmpdir(), 'frcds-prod-'));
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // Plain node: no loader from the environment either.
    // The demo cohort: its patients have radiographs in the sandbox PACS (the small fixture cohort's do not).
    const env = serviceEnv(port, dataDir, { API_AUTH_REQUIRED: 'false', SANDBOX_DATA_DIR: join(REPO_ROOT, 'server/sandbox/demo-cohort'), NODE_OPTIONS: '' });
    prod = startProcess(process.execPath, ['dist/server/index.js'], env);
    await prod.line(/Fracture Risk CDS is up/, 90_000);
  });
  after(() => {
    prod?.kill();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('/healthz and /readyz answer; the app bundle is the one npm run build made', async () => {
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${base}/readyz`);
    const body = (await ready.json()) as { ready: string[]; components: Record<string, { ready: boolean; detail?: string }> };
    assert.equal(ready.status, 200, JSON.stringify(body));
    assert.deepEqual(body.ready, ['app', 'dicomweb-sandbox', 'fhir-sandbox', 'models', 'state']);
    assert.equal(body.components['app']?.detail, 'bundle built by npm run build');
    assert.equal((await fetch(`${base}/app/index.html`)).status, 200);
  });

  test('an assessment from a radiograph runs (imaging worker thread loaded from dist)', async () => {
    const res = await fetch(`${base}/api/assessments`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ patient: 'demo-a-022' }) });
    const text = await res.text();
    assert.equal(res.status, 201, text.slice(0, 2000));
    const { assessment } = JSON.parse(text) as { assessment: { mode: string; warnings: string[] } };
    assert.equal(assessment.mode, 'image-and-clinical', assessment.warnings.join('\n'));
    assert.doesNotMatch(prod.output(), /"level":"(error|fatal)"/, 'no error logged');
  });

  test('one process: neither tsx nor esbuild runs beside the server', () => {
    assert.deepEqual(markedProcesses(prod.marker), [prod.pid]);
  });

  test('SIGTERM: exit 0 within 10 s, port closed, nothing left', async () => {
    const t0 = Date.now();
    process.kill(prod.pid, 'SIGTERM');
    const exit = await Promise.race([prod.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000))]);
    assert.ok(exit, 'exited within 10 s');
    assert.equal(exit.code, 0, prod.output().slice(-2000));
    assert.ok(exit.at - t0 < 10_000);
    assert.equal(await portOpen(port), false);
    assert.ok(await eventually(() => markedProcesses(prod.marker).length === 0 && !groupAlive(prod.pid), 2000));
  });
});
