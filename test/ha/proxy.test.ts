/**
 * The HA test's round-robin proxy on its own, against small real HTTP servers: requests alternate between the
 * upstreams; a request whose upstream dies in flight is answered by the other, body included; a stopped upstream is
 * skipped; a response that has started is not retried; with every upstream gone the client gets a 502.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, test } from 'node:test';
import { startRoundRobinProxy } from './proxy.ts';

interface Upstream {
  url: string;
  server: Server;
  seen: string[];
  stop(): Promise<void>;
}

async function upstream(name: string, handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<Upstream> {
  const seen: string[] = [];
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += String(c);
    seen.push(`${req.method} ${req.url} ${body}`);
    if (handler) return handler(req, res, body);
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name }).end(JSON.stringify({ name, body }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    server,
    seen,
    stop: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test('round robin, retry of a request in flight on a dying upstream, refused upstream skipped, 502 when all are gone', async () => {
  const a = await upstream('a');
  // b dies with the first POST in flight: it has read the request, then its connection is cut without an answer.
  const b = await upstream('b', (req, res) => {
    if (req.method === 'POST') return void res.socket?.destroy();
    res.writeHead(200, { 'x-upstream': 'b' }).end('b');
  });
  const proxy = await startRoundRobinProxy({ upstreams: [a.url, b.url] });
  closers.push(a.stop, b.stop, proxy.close);
  const forwarded: string[] = [];
  proxy.onForwarded((u, method, path) => forwarded.push(`${u === a.url ? 'a' : 'b'} ${method} ${path}`));

  const who: string[] = [];
  for (let i = 0; i < 4; i++) who.push((await fetch(`${proxy.url}/x`)).headers.get('x-upstream') ?? '?');
  assert.deepEqual(who.sort(), ['a', 'a', 'b', 'b'], 'alternates');

  // One of the next two requests goes to b, dies there and is answered by a with its body; the other goes to a.
  const posted: { name: string; body: string }[] = [];
  for (let i = 0; i < 2; i++) posted.push((await (await fetch(`${proxy.url}/hook`, { method: 'POST', body: `payload-${i}` })).json()) as { name: string; body: string });
  assert.deepEqual(posted.map((p) => p.name), ['a', 'a']);
  assert.deepEqual(posted.map((p) => p.body).sort(), ['payload-0', 'payload-1']);
  assert.equal(b.seen.filter((s) => s.startsWith('POST')).length, 1, 'b had one of them in flight');
  let s = proxy.stats();
  assert.equal(s.retriedInFlight, 1);
  assert.deepEqual(s.retriedInFlightRequests, [{ request: 'POST /hook', status: 200 }]);
  assert.deepEqual(forwarded.filter((f) => f.includes('POST')).sort(), ['a POST /hook', 'a POST /hook', 'b POST /hook'], 'each attempt reported once handed over');
  assert.equal(s.failed, 0);

  await b.stop();
  for (let i = 0; i < 4; i++) assert.equal((await fetch(`${proxy.url}/y`)).headers.get('x-upstream'), 'a');
  s = proxy.stats();
  assert.ok(s.retriedRefused >= 1, 'a refused connection was retried elsewhere');
  assert.equal(s.failed, 0);

  await a.stop();
  const res = await fetch(`${proxy.url}/z`);
  assert.equal(res.status, 502);
  assert.equal(proxy.stats().failed, 1);
});

test('a response that has started is not retried', async () => {
  let calls = 0;
  const half = await upstream('half', (_req, res) => {
    calls++;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const proxy = await startRoundRobinProxy({ upstreams: [half.url, half.url] });
  closers.push(half.stop, proxy.close);
  await assert.rejects(async () => {
    const r = await fetch(`${proxy.url}/p`);
    await r.text();
  });
  assert.equal(calls, 1);
  assert.equal(proxy.stats().retriedInFlight, 0);
});
