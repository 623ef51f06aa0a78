/**
 * Address rules, the host check and the connection check of outbound.ts. The connection check is measured on real
 * loopback servers that record every byte they receive: a refused request must not send even its request line.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  addressAllowed,
  checkHost,
  classifyAddress,
  OutboundAddressRefusedError,
  OutboundGuardError,
  Semaphore,
  withConnectionPolicy,
  type AddressClass,
  type AddressPolicy,
  type HostLookup,
} from './outbound.ts';

const PUBLIC_ONLY: AddressPolicy = { allow: new Set<AddressClass>(['public']) };
const LOOPBACK: AddressPolicy = { allow: new Set<AddressClass>(['loopback']) };

describe('classifyAddress', () => {
  const cases: [string, AddressClass][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['::ffff:10.1.2.3', 'private'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['8.8.8.8', 'public'],
    ['172.32.0.1', 'public'],
    ['172.15.255.255', 'public'],
    ['100.128.0.1', 'public'],
    ['169.253.0.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['::ffff:8.8.8.8', 'public'],
  ];
  for (const [ip, cls] of cases) test(`${ip} is ${cls}`, () => assert.equal(classifyAddress(ip), cls));
  test('a host name is not an address', () => assert.throws(() => classifyAddress('example.org'), TypeError));
});

describe('addressAllowed', () => {
  test('by class', () => {
    assert.equal(addressAllowed('8.8.8.8', PUBLIC_ONLY), true);
    for (const ip of ['127.0.0.1', '10.0.0.1', '169.254.169.254', '0.0.0.0', '::', 'fe80::1', '::ffff:127.0.0.1']) assert.equal(addressAllowed(ip, PUBLIC_ONLY), false, ip);
    assert.equal(addressAllowed('::1', LOOPBACK), true);
    assert.equal(addressAllowed('8.8.8.8', LOOPBACK), false, 'localhost is loopback only');
  });
  test('an address named exactly is allowed in any of its written forms, and nothing else is', () => {
    const only: AddressPolicy = { allow: new Set(), exactly: '10.1.2.3' };
    assert.equal(addressAllowed('10.1.2.3', only), true);
    assert.equal(addressAllowed('::ffff:10.1.2.3', only), true);
    assert.equal(addressAllowed('10.1.2.4', only), false);
    assert.equal(addressAllowed('8.8.8.8', only), false);
    assert.equal(addressAllowed('::1', { allow: new Set(), exactly: '[0:0:0:0:0:0:0:1]' }), true);
  });
  test('no address (a socket already closed) is refused', () => assert.equal(addressAllowed(undefined, { allow: new Set<AddressClass>(['public', 'private', 'loopback']) }), false));
});

describe('checkHost', () => {
  const fake = (map: Record<string, string[]>): HostLookup & { calls: string[] } => {
    const calls: string[] = [];
    const f = async (h: string) => {
      calls.push(h);
      const a = map[h];
      if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${h}`), { code: 'ENOTFOUND' });
      return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
    return Object.assign(f, { calls });
  };

  test('every address must pass: one private address among public ones refuses the host', async () => {
    const lookup = fake({ 'ok.example': ['93.184.216.34', '2606:2800:220:1::1'], 'mixed.example': ['93.184.216.34', '10.0.0.7'], 'meta.example': ['169.254.169.254'] });
    assert.deepEqual(await checkHost('ok.example', PUBLIC_ONLY, lookup), { ok: true, addresses: ['93.184.216.34', '2606:2800:220:1::1'] });
    assert.deepEqual(await checkHost('mixed.example', PUBLIC_ONLY, lookup), { ok: false, address: '10.0.0.7', addressClass: 'private' });
    assert.deepEqual(await checkHost('meta.example', PUBLIC_ONLY, lookup), { ok: false, address: '169.254.169.254', addressClass: 'link-local' });
    assert.equal((await checkHost('mixed.example', { allow: new Set<AddressClass>(['public', 'private']) }, lookup)).ok, true, 'private allowed when the policy says so');
  });
  test('an IP literal is checked as it is, without a lookup', async () => {
    const lookup = fake({});
    assert.equal((await checkHost('127.0.0.1', PUBLIC_ONLY, lookup)).ok, false);
    assert.equal((await checkHost('[::1]', LOOPBACK, lookup)).ok, true);
    assert.deepEqual(lookup.calls, []);
  });
  test('a name that does not resolve is an error, not a refusal', async () => {
    await assert.rejects(checkHost('nowhere.example', PUBLIC_ONLY, fake({})), /ENOTFOUND/);
  });
});

/** A TCP server that records every byte it receives and answers HTTP 200 to any request. */
async function recorder(): Promise<{ port: number; bytes: () => string; connections: () => number; close(): Promise<void> }> {
  let received = '';
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.on('data', (d) => {
      received += d.toString('latin1');
      if (received.includes('\r\n\r\n')) s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    bytes: () => received,
    connections: () => connections,
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

describe('withConnectionPolicy: the address a request is actually sent to', () => {
  let rec: Awaited<ReturnType<typeof recorder>>;
  before(async () => void (rec = await recorder()));
  after(() => rec.close());

  test('a refused address gets nothing of the request (no request line, no bearer token); other requests are untouched', async () => {
    const url = `http://127.0.0.1:${rec.port}/fhir/Patient/p1`;
    const guarded = withConnectionPolicy(PUBLIC_ONLY, () => fetch(url, { headers: { Authorization: 'Bearer secret-token' } }));
    await assert.rejects(guarded, (err: unknown) => err instanceof OutboundAddressRefusedError && err.addressClass === 'loopback');
    assert.equal(rec.bytes(), '', 'not one byte of the refused request was sent');
    // The same server, outside the policy, in the same process: served.
    const free = await fetch(url);
    assert.equal(await free.text(), 'ok');
    assert.match(rec.bytes(), /^GET \/fhir\/Patient\/p1 HTTP\/1.1/);
    assert.doesNotMatch(rec.bytes(), /secret-token/);
  });

  test('an allowed address is served, and concurrent guarded and unguarded requests each get their own policy', async () => {
    const url = `http://127.0.0.1:${rec.port}/x`;
    const results = await Promise.allSettled([
      withConnectionPolicy(LOOPBACK, async () => (await fetch(url)).text()),
      withConnectionPolicy(PUBLIC_ONLY, async () => (await fetch(url)).text()),
      fetch(url).then((r) => r.text()),
      withConnectionPolicy({ allow: new Set(), exactly: '127.0.0.1' }, async () => (await fetch(url)).text()),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    assert.ok((results[1] as PromiseRejectedResult).reason instanceof OutboundAddressRefusedError);
  });

  test('a kept-alive socket opened by an unguarded request is checked again when a guarded request reuses it', async () => {
    let requests = 0;
    const server = createHttpServer((_q, s) => {
      requests++;
      s.writeHead(200, { 'Content-Type': 'text/plain', Connection: 'keep-alive' }).end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
      assert.equal(await (await fetch(url)).text(), 'ok');
      await assert.rejects(withConnectionPolicy(PUBLIC_ONLY, () => fetch(url)), OutboundAddressRefusedError);
      assert.equal(requests, 1, 'the guarded request never reached the server');
      assert.equal(await (await fetch(url)).text(), 'ok');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test('fail closed: a function expected to make a request that made none is an error', async () => {
    await assert.rejects(withConnectionPolicy(LOOPBACK, async () => 'no request', { expectRequest: true }), OutboundGuardError);
    assert.equal(await withConnectionPolicy(LOOPBACK, async () => 'no request'), 'no request');
  });
});

describe('Semaphore', () => {
  test('never more than its size at a time; everyone gets a turn, in order', async () => {
    const s = new Semaphore(3);
    let active = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(Array.from({ length: 10 }, (_, i) => s.run(async () => {
      active++;
      peak = Math.max(peak, active);
      order.push(i);
      await new Promise((r) => setTimeout(r, 5));
      active--;
    })));
    assert.equal(peak, 3);
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(s.active, 0);
  });
  test('a failing task frees its place', async () => {
    const s = new Semaphore(1);
    await assert.rejects(s.run(async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(await s.run(async () => 'next'), 'next');
  });
  test('size must be a positive integer', () => {
    assert.throws(() => new Semaphore(0), RangeError);
    assert.throws(() => new Semaphore(1.5), RangeError);
  });
});
