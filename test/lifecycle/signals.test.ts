/**
 * Process lifecycle of `npm start` as an operator meets it: a second start on a busy port fails with one line while
 * the first keeps answering; SIGTERM or SIGINT to the `npm start` process drains (a request in flight completes, no
 * new connection is accepted, an idle keep-alive connection does not hold the stop up) and leaves no process
 * behind and the port closed; Ctrl-C (SIGINT to the whole process group) counts once, and a second Ctrl-C exits at
 * once. The FHIR server is a fake in this process whose `/metadata` can be made slow: the readiness probe of
 * `/readyz` calls it, which makes `/readyz` a request that stays in flight as long as the test wants.
 */
import assert from 'node:assert/strict';
import { Agent, createServer, get, type Server, type ServerResponse } from 'node:http';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../support/net.ts';
import { eventually, groupAlive, markedProcesses, portOpen, serviceEnv, smallDataDir, startProcess, type Started } from './processes.ts';

/** How long `/metadata` of the fake FHIR server takes when slow (the drain waits for it). */
const SLOW_MS = 2500;
/** `/readyz` reuses a probe result for 2 s (server/health/readiness.ts): wait this long for a fresh probe. */
const PROBE_CACHE_MS = 2100;

interface FakeFhir {
  url: string;
  slow: boolean;
  delayMs: number;
  /** `/metadata` requests being held. */
  pending: number;
  server: Server;
}

async function startFakeFhir(): Promise<FakeFhir> {
  const fake: FakeFhir = { url: '', slow: false, delayMs: SLOW_MS, pending: 0, server: undefined as unknown as Server };
  const answer = (res: ServerResponse): void => {
    res.writeHead(200, { 'Content-Type': 'application/fhir+json' }).end(JSON.stringify({ resourceType: 'CapabilityStatement', status: 'active', kind: 'instance', fhirVersion: '4.0.1', format: ['json'] }));
  };
  fake.server = createServer((req, res) => {
    if (!req.url?.startsWith('/fhir/metadata')) return void res.writeHead(404, { 'Content-Type': 'application/json' }).end('{}');
    if (!fake.slow) return answer(res);
    fake.pending++;
    setTimeout(() => {
      fake.pending--;
      answer(res);
    }, fake.delayMs);
  });
  const port = await new Promise<number>((resolve) => fake.server.listen(0, '127.0.0.1', () => resolve((fake.server.address() as { port: number }).port)));
  fake.url = `http://127.0.0.1:${port}/fhir`;
  return fake;
}

/** GET over a given agent; resolves with status and body. */
function httpGet(url: string, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Resolves with the exit, or fails after `ms`. */
async function exitWithin(s: Started, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
  const timeout = sleep(ms).then(() => undefined);
  const r = await Promise.race([s.exited, timeout]);
  if (!r) assert.fail(`did not exit within ${ms} ms; output:\n${s.output().slice(-3000)}`);
  return r;
}

/** Nothing of the start is left: no process carrying its marker, an empty process group, the port closed. */
async function assertNothingLeft(s: Started, port: number): Promise<void> {
  assert.ok(await eventually(() => markedProcesses(s.marker).length === 0, 2000), `processes left behind: ${markedProcesses(s.marker).join(', ')}`);
  assert.equal(groupAlive(s.pid), false, 'the process group of npm start is empty');
  assert.equal(await portOpen(port), false, `port ${port} is closed`);
}

const logLines = (s: Started): Record<string, unknown>[] =>
  s
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('npm start: busy port, signals and drain', () => {
  let fake: FakeFhir;
  let dataDir = '';
  const started: Started[] = [];
  /** `npm start` on a free port with the small cohort and the fake FHIR server; resolves once it is up. */
  const npmStart = async (): Promise<{ s: Started; port: number; upAt: number }> => {
    const port = await freePort();
    const s = startProcess('npm', ['start'], serviceEnv(port, dataDir, { FHIR_BASE_URL: fake.url }));
    started.push(s);
    await s.line(/Fracture Risk CDS is up/, 90_000);
    return { s, port, upAt: Date.now() };
  };

  before(async () => {
    fake = await startFakeFhir();
    dataDir = smallDataDir();
  });
  after(async () => {
    for (const s of started) s.kill();
    const closed = new Promise<void>((r) => fake.server.close(() => r()));
    fake.server.closeAllConnections();
    await closed;
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('a second start on the busy port exits 1 with one line naming it; then SIGTERM drains the first and leaves nothing', async () => {
    fake.slow = false;
    fake.delayMs = SLOW_MS;
    const { s, port, upAt } = await npmStart();
    const base = `http://127.0.0.1:${port}`;

    // A second start on the same port: one fatal line, exit status 1, and the first one still answers.
    const otherDir = smallDataDir();
    try {
      const t0 = Date.now();
      const second = startProcess(process.execPath, ['--import', 'tsx', 'server/index.ts'], serviceEnv(port, otherDir, { FHIR_BASE_URL: fake.url }));
      started.push(second);
      const r = await exitWithin(second, 30_000);
      assert.equal(r.code, 1, second.output());
      const lines = second.output().trim().split('\n');
      assert.equal(lines.length, 1, `exactly one line:\n${second.output()}`);
      const line = JSON.parse(lines[0]!) as { level: string; msg: string; port: number };
      assert.equal(line.level, 'fatal');
      assert.match(line.msg, new RegExp(`^cannot start: port ${port} is already in use on 127\\.0\\.0\\.1: another process is listening there`));
      assert.doesNotMatch(second.output(), /"listening"/);
      assert.ok(r.at - t0 < 30_000);
      assert.equal(markedProcesses(second.marker).length, 0);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'the first start keeps answering');

    // A request in flight (/readyz waiting on the slow FHIR server) and an idle keep-alive connection.
    fake.slow = true;
    await sleep(upAt + PROBE_CACHE_MS - Date.now());
    const idle = new Agent({ keepAlive: true });
    assert.equal((await httpGet(`${base}/healthz`, idle)).status, 200);
    const oneShot = new Agent({ keepAlive: false });
    const pendingBefore = fake.pending;
    const inFlight = httpGet(`${base}/readyz`, oneShot);
    assert.ok(await eventually(() => fake.pending > pendingBefore, 5000), 'the readiness probe reached the slow FHIR server');

    const tSignal = Date.now();
    process.kill(s.pid, 'SIGTERM'); // to npm, which forwards it
    await s.line(/SIGTERM: shutting down/, 5000);
    assert.equal(await portOpen(port), false, 'no new connection is accepted while draining');
    const res = await inFlight;
    assert.ok(Date.now() - tSignal >= SLOW_MS - 500, 'the request in flight was answered after its slow dependency, not cut');
    assert.ok((JSON.parse(res.body) as { components: Record<string, unknown> }).components['fhir-server'], res.body);

    const exit = await exitWithin(s, 10_000);
    assert.equal(exit.code, 0, s.output().slice(-2000));
    assert.ok(exit.at - tSignal < SLOW_MS + 4000, `stopped ${exit.at - tSignal} ms after SIGTERM: the idle keep-alive connection did not hold it up`);
    const stopped = logLines(s).find((l) => l['msg'] === 'stopped');
    assert.ok(stopped, 'one "stopped" line');
    assert.equal(stopped['forced'], 0);
    await assertNothingLeft(s, port);
    idle.destroy();
    oneShot.destroy();
  });

  test('SIGINT to npm start: stopped, exit 0, nothing left', async () => {
    fake.slow = false;
    const { s, port } = await npmStart();
    const tSignal = Date.now();
    process.kill(s.pid, 'SIGINT');
    const exit = await exitWithin(s, 10_000);
    assert.ok(exit.at - tSignal < 10_000);
    assert.equal(exit.code, 0, s.output().slice(-2000));
    assert.equal(logLines(s).filter((l) => String(l['msg']).startsWith('SIGINT: shutting down')).length, 1);
    assert.ok(logLines(s).some((l) => l['msg'] === 'stopped'));
    await assertNothingLeft(s, port);
  });

  test('Ctrl-C (SIGINT to the process group) counts once; a second Ctrl-C exits at once without waiting', async () => {
    fake.slow = false;
    const { s, port, upAt } = await npmStart();
    fake.slow = true;
    fake.delayMs = 10_000; // never answered in time: the second Ctrl-C comes first
    await sleep(upAt + PROBE_CACHE_MS - Date.now());
    const pendingBefore = fake.pending;
    const agent = new Agent({ keepAlive: false });
    const inFlight = httpGet(`http://127.0.0.1:${port}/readyz`, agent).then(
      () => 'answered',
      () => 'cut',
    );
    assert.ok(await eventually(() => fake.pending > pendingBefore, 5000), 'the readiness probe reached the slow FHIR server');
    // The terminal signals npm and the server; npm forwards its copy to the server as well.
    process.kill(-s.pid, 'SIGINT');
    await s.line(/SIGINT: shutting down/, 5000);
    await sleep(1200);
    assert.equal(logLines(s).filter((l) => String(l['msg']).startsWith('SIGINT')).length, 1, 'the duplicate SIGINT was not a second Ctrl-C');
    const tSecond = Date.now();
    process.kill(-s.pid, 'SIGINT');
    await exitWithin(s, 5000);
    assert.equal(await inFlight, 'cut', 'the second Ctrl-C did not wait for the request in flight');
    assert.ok(Date.now() - tSecond < 5000, 'exited at once');
    assert.ok(logLines(s).some((l) => String(l['msg']).startsWith('SIGINT again: exiting at once')), s.output().slice(-2000));
    await assertNothingLeft(s, port);
    agent.destroy();
  });
});
