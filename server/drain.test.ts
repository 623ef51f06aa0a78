import assert from 'node:assert/strict';
import { createServer, request, Agent, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { drainable } from './drain.ts';

/** A server whose `/slow` answers when `release()` is called; everything else at once. */
async function start(): Promise<{ server: Server; port: number; release(): void; waiting(): number }> {
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/slow') held.push(res);
    else if (req.url === '/streaming') {
      // The head (keep-alive) is sent before the drain starts; the body ends later.
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('stream');
      held.push(res);
    } else res.end('fast');
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
  return {
    server,
    port,
    release: () => held.splice(0).forEach((r) => r.end('slow')),
    waiting: () => held.length,
  };
}

function get(port: number, path: string, agent: Agent): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    })
      .on('error', reject)
      .end();
  });
}

const refused = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });

async function until(what: string, fn: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('drainable: graceful HTTP stop', () => {
  test('stops accepting, lets the request in flight finish with Connection: close, closes idle keep-alive connections at once', async () => {
    const s = await start();
    const d = drainable(s.server);
    const idleAgent = new Agent({ keepAlive: true });
    assert.equal((await get(s.port, '/fast', idleAgent)).body, 'fast'); // leaves an idle keep-alive connection
    const slowAgent = new Agent({ keepAlive: true });
    const inFlight = get(s.port, '/slow', slowAgent);
    await until('the slow request to arrive', () => s.waiting() === 1);
    assert.equal(d.inFlight, 1);

    const t0 = Date.now();
    const drained = d.drain(5000);
    assert.ok(await refused(s.port), 'no new connection is accepted while draining');
    s.release();
    const res = await inFlight;
    assert.equal(res.body, 'slow');
    assert.equal(res.headers.connection, 'close', 'the client is told not to reuse the connection');
    assert.deepEqual(await drained, { forced: 0 });
    assert.ok(Date.now() - t0 < 2000, `drained in ${Date.now() - t0} ms: the idle keep-alive connection did not hold the close up`);
    assert.equal(d.inFlight, 0);
    idleAgent.destroy();
    slowAgent.destroy();
  });

  test('a response whose head went out before the drain: its keep-alive connection is closed once it ends', async () => {
    const s = await start();
    const d = drainable(s.server);
    const agent = new Agent({ keepAlive: true });
    const streaming = get(s.port, '/streaming', agent);
    await until('the streaming request to arrive', () => s.waiting() === 1);
    await new Promise((r) => setTimeout(r, 50)); // let the head reach the client
    const t0 = Date.now();
    const drained = d.drain(5000);
    s.release();
    const res = await streaming;
    assert.equal(res.body, 'streamslow');
    assert.notEqual(res.headers.connection, 'close', 'the head was already sent as keep-alive');
    assert.deepEqual(await drained, { forced: 0 });
    assert.ok(Date.now() - t0 < 2000, `drained in ${Date.now() - t0} ms, not after the keep-alive time-out`);
    agent.destroy();
  });

  test('after the grace period the connections of unfinished requests are closed and counted', async () => {
    const s = await start();
    const d = drainable(s.server);
    const agent = new Agent({ keepAlive: true });
    const stuck = get(s.port, '/slow', agent).then(
      () => 'answered',
      () => 'cut',
    );
    await until('the slow request to arrive', () => s.waiting() === 1);
    let forcedWith: number | undefined;
    const t0 = Date.now();
    const result = await d.drain(300, (n) => (forcedWith = n));
    assert.deepEqual(result, { forced: 1 });
    assert.equal(forcedWith, 1);
    assert.ok(Date.now() - t0 >= 290 && Date.now() - t0 < 2000);
    assert.equal(await stuck, 'cut');
    assert.equal(d.drain(300), d.drain(300), 'idempotent');
    agent.destroy();
  });
});
