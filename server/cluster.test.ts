/**
 * `SERVICE_PROCESSES=2`: the composition root started as a child process (a supervising primary and two workers on
 * one port) against a small stand-in FHIR/DICOMweb server, checked over real HTTP: both workers answer, a killed
 * worker is replaced, only one runs the report-event jobs, and SIGTERM lets a request in flight finish.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request, createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig, REPO_ROOT } from './config.ts';
import { WORKER_SLOT_ENV, workerEnv } from './cluster.ts';
import { freePort } from '../test/support/net.ts';

describe('SERVICE_PROCESSES (configuration)', () => {
  const external = { FHIR_BASE_URL: 'http://127.0.0.1:9/fhir', DICOMWEB_BASE_URL: 'http://127.0.0.1:9/dicom-web' };
  test('default 1; auto = the cores available; a number', () => {
    assert.equal(loadConfig({}).processes, 1);
    assert.equal(loadConfig({ ...external, SERVICE_PROCESSES: 'auto' }).processes, availableParallelism());
    assert.equal(loadConfig({ ...external, SERVICE_PROCESSES: '3' }).processes, 3);
  });
  test('more than one process with an embedded sandbox, or a wrong value, stops start-up with one message', () => {
    assert.throws(() => loadConfig({ SERVICE_PROCESSES: '2' }), (err: unknown) => err instanceof ConfigError && /SERVICE_PROCESSES=2 .*needs FHIR_BASE_URL and DICOMWEB_BASE_URL/.test(err.message));
    assert.throws(() => loadConfig({ FHIR_BASE_URL: external.FHIR_BASE_URL, SERVICE_PROCESSES: '2' }), /DICOMWEB_BASE_URL/);
    assert.throws(() => loadConfig({ ...external, SERVICE_PROCESSES: 'two' }), /SERVICE_PROCESSES.*number of processes from 1 to 99, or auto/);
    assert.throws(() => loadConfig({ ...external, SERVICE_PROCESSES: '0' }), /SERVICE_PROCESSES/);
  });
  test('workers: a slot each, jobs in slot 1 only, one log hash salt and a share of the cores for onnxruntime unless configured', () => {
    const one = workerEnv(1, {}, 'salt');
    const two = workerEnv(2, {}, 'salt');
    assert.equal(one[WORKER_SLOT_ENV], '1');
    assert.equal(one['JOBS_IN_PROCESS_WORKER'], undefined);
    assert.equal(two['JOBS_IN_PROCESS_WORKER'], 'false');
    assert.equal(one['LOG_HASH_SALT'], two['LOG_HASH_SALT']);
    assert.equal(workerEnv(2, { LOG_HASH_SALT: 'configured' }, 'salt')['LOG_HASH_SALT'], 'configured');
    // onnxruntime threads: the worker's share of the cores unless configured.
    assert.equal(workerEnv(1, {}, 'salt', { cores: 2, processes: 2 })['INFERENCE_THREADS'], '1');
    assert.equal(workerEnv(1, {}, 'salt', { cores: 8, processes: 2 })['INFERENCE_THREADS'], '4');
    assert.equal(workerEnv(1, {}, 'salt', { cores: 2, processes: 4 })['INFERENCE_THREADS'], '1');
    assert.equal(workerEnv(1, { INFERENCE_THREADS: '3' }, 'salt', { cores: 2, processes: 2 })['INFERENCE_THREADS'], undefined);
  });
});

/** Stand-in FHIR and DICOMweb server for readiness; `/fhir/metadata` waits `slowMs` when set. */
let upstream: Server;
let slowMs = 0;
let child: ChildProcess;
let dataDir = '';
let port = 0;
let stdout = '';
let stderr = '';

interface LogLine { msg?: string; slot?: number; pid?: number; worker?: number; [k: string]: unknown }
const logLines = (): LogLine[] => stdout.trim().split('\n').filter(Boolean).flatMap((l) => {
  try {
    return [JSON.parse(l) as LogLine];
  } catch {
    return [];
  }
});

async function waitFor<T>(what: string, probe: () => T | undefined | false, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (child.exitCode !== null) assert.fail(`service exited (${child.exitCode}) while waiting for ${what}: ${stderr}${stdout.slice(-2000)}`);
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; stdout: ${stdout.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One GET on a new connection (no keep-alive pool), so the primary hands each to the next worker. */
function get(path: string): Promise<{ status: number; worker: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, worker: res.headers['x-service-worker'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const started = (): LogLine[] => logLines().filter((l) => l.msg === 'service worker started');

before(async () => {
  upstream = createServer((req, res) => {
    const send = (): void => void res.writeHead(200, { 'Content-Type': 'application/json' }).end(req.url?.startsWith('/fhir') ? '{"resourceType":"CapabilityStatement"}' : '[]');
    if (req.url?.startsWith('/fhir/metadata') && slowMs > 0) setTimeout(send, slowMs);
    else send();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const up = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'frcds-cluster-'));
  port = await freePort();
  child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'server/index.ts')], {
    env: {
      ...process.env,
      SERVICE_PROCESSES: '2',
      PORT: String(port),
      HOST: '127.0.0.1',
      FHIR_BASE_URL: `${up}/fhir`,
      DICOMWEB_BASE_URL: `${up}/dicom-web`,
      EVENTS_SECRET: 'cluster-test-secret-cluster-test-secret',
      MODELS_DIR: join(REPO_ROOT, 'test/fixtures/models'),
      JOBS_DB_PATH: join(dataDir, 'jobs.sqlite'),
      CDS_FEEDBACK_DB: join(dataDir, 'cds.sqlite'),
      FLS_AUDIT_DB: join(dataDir, 'fls-audit.sqlite'),
      STATE_DB: join(dataDir, 'state.sqlite'),
      LOG_LEVEL: 'info',
      IMAGING_WORKERS: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await waitFor('two workers up', () => logLines().filter((l) => String(l.msg).startsWith('Fracture Risk CDS is up')).length >= 2);
});

after(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  await new Promise<void>((r) => {
    upstream.close(() => r());
    upstream.closeAllConnections();
  });
  rmSync(dataDir, { recursive: true, force: true });
});

describe('SERVICE_PROCESSES=2 (npm start as a cluster)', () => {
  test('two worker processes answer on one port, and only one runs the report-event jobs', async () => {
    const workers = started();
    assert.deepEqual(workers.map((l) => l.slot).sort(), [1, 2]);
    assert.notEqual(workers[0]!.pid, workers[1]!.pid);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const res = await get('/healthz');
      assert.equal(res.status, 200);
      seen.add(String(res.worker));
    }
    assert.deepEqual([...seen].sort(), ['1', '2']);
    const ready = await get('/readyz');
    assert.equal(ready.status, 200, ready.body);
    assert.equal(logLines().filter((l) => l.msg === 'report-event worker started').length, 1);
  });

  test('a killed worker is replaced, and takes calls only once started, while the other keeps answering', async () => {
    const victim = started().find((l) => l.slot === 2)!;
    process.kill(victim.pid!, 'SIGKILL');
    await waitFor('the death logged', () => logLines().some((l) => l.msg === 'service worker died: starting a replacement' && l.pid === victim.pid));
    // Until the replacement is up, CDS calls keep being answered by a started worker: never "models loading" (503)
    // from a worker still starting. (Discovery without a token: 401 from a started CDS service.)
    const statuses: number[] = [];
    const up = (): boolean => logLines().filter((l) => String(l.msg).startsWith('Fracture Risk CDS is up')).length >= 3;
    while (!up()) {
      if (child.exitCode !== null) assert.fail(`service exited: ${stderr}`);
      statuses.push((await get('/cds-services')).status);
      await new Promise((r) => setTimeout(r, 25));
    }
    for (let i = 0; i < 10; i++) statuses.push((await get('/cds-services')).status);
    assert.ok(statuses.length > 20);
    assert.deepEqual([...new Set(statuses)], [401], 'every call answered by a started worker');
    const replacement = await waitFor('a replacement in slot 2', () => started().find((l) => l.slot === 2 && l.pid !== victim.pid));
    assert.notEqual(replacement.pid, victim.pid);
    // The replacement bound the port only after it was up; the first workers listened at once. (Worker lines carry
    // their slot; the replacement's are the slot-2 lines after the death.)
    const lines = logLines();
    const died = lines.findIndex((l) => l.msg === 'service worker died: starting a replacement');
    const index = (slot: number, from: number, msg: (m: string) => boolean): number => lines.findIndex((l, i) => i > from && l.worker === slot && msg(String(l.msg)));
    const isUp = (m: string): boolean => m.startsWith('Fracture Risk CDS is up');
    const isListening = (m: string): boolean => m === 'listening';
    assert.ok(index(2, died, isUp) > died, 'the replacement logged that it is up');
    assert.ok(index(2, died, isListening) > index(2, died, isUp), 'the replacement listens once started');
    assert.ok(index(1, -1, isListening) >= 0 && index(1, -1, isListening) < index(1, -1, isUp), 'a first worker listens at once');
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(String((await get('/healthz')).worker));
    assert.deepEqual([...seen].sort(), ['1', '2']);
    // The replacement of slot 2 does not start a second job worker.
    assert.equal(logLines().filter((l) => l.msg === 'report-event worker started').length, 1);
  });

  test('SIGTERM: a request in flight is answered, then every process exits 0', async () => {
    slowMs = 1500;
    // Readiness caches its probes for 2 s: let every worker's cached probe of the upstream expire first.
    await new Promise((r) => setTimeout(r, 2100));
    const inFlight = get('/readyz');
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    child.kill('SIGTERM');
    const res = await inFlight;
    assert.equal(res.status, 200, res.body);
    assert.ok(Date.now() - t0 >= 900, 'the answer came after the slow upstream, not cut at the signal');
    const code = await new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (c) => r(c))));
    assert.equal(code, 0, stdout.slice(-2000));
    const pids = started().map((l) => l.pid!);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
    assert.ok(logLines().filter((l) => l.msg === 'service worker stopped').length >= 2);
  });
});
