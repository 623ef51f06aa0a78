import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { describe, test } from 'node:test';
import express from 'express';
import { listen, PortInUseError } from './listen.ts';
import { freePort } from '../test/support/net.ts';

/** Listens a plain TCP server on host:port; resolves with the error code when that fails. */
function occupy(port: number, host: string): Promise<{ server: Server; error?: string }> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => resolve({ server, error: e.code ?? 'error' }));
    server.listen(port, host, () => resolve({ server }));
  });
}

const close = (s: { close(cb: () => void): unknown }): Promise<void> => new Promise((r) => void s.close(() => r()));

describe('listen: a busy port is a failure', () => {
  test('Express 5 app.listen calls its callback with the listen error (why listen.ts does not use it)', async () => {
    const port = await freePort();
    const blocker = await occupy(port, '127.0.0.1');
    const seen = await new Promise<unknown>((resolve) => {
      const s = express().listen(port, '127.0.0.1', (err?: Error) => resolve(err));
      s.on('error', () => undefined);
    });
    assert.equal((seen as NodeJS.ErrnoException | undefined)?.code, 'EADDRINUSE');
    await close(blocker.server);
  });

  test('the same address taken: PortInUseError naming port and address; the port is not held', async () => {
    const port = await freePort();
    const blocker = await occupy(port, '127.0.0.1');
    const server = createHttpServer();
    await assert.rejects(listen(server, port, '127.0.0.1'), (err: unknown) => {
      assert.ok(err instanceof PortInUseError);
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.message, `port ${port} is already in use on 127.0.0.1`);
      return true;
    });
    assert.equal(server.listening, false);
    await close(blocker.server);
  });

  test('a wildcard listener blocks the loopback bind (same family) too', async () => {
    const port = await freePort();
    const blocker = await occupy(port, '0.0.0.0');
    await assert.rejects(listen(createHttpServer(), port, '127.0.0.1'), PortInUseError);
    await close(blocker.server);
  });

  test('on 127.0.0.1, the port taken on ::1 (where localhost may lead) is refused too', async () => {
    const port = await freePort();
    const blocker = await occupy(port, '::1');
    const server = createHttpServer();
    if (blocker.error) {
      // No IPv6 loopback on this machine: nothing can answer localhost over IPv6, so the bind is fine.
      assert.match(blocker.error, /EADDRNOTAVAIL|EAFNOSUPPORT/);
      await listen(server, port, '127.0.0.1');
      assert.equal(server.listening, true);
      await close(server);
      return;
    }
    await assert.rejects(listen(server, port, '127.0.0.1'), (err: unknown) => {
      assert.ok(err instanceof PortInUseError);
      assert.equal(err.address, '::1');
      assert.equal(err.otherLoopback, true);
      assert.match(err.message, new RegExp(`^port ${port} is already in use on ::1 \\(where localhost may lead\\)$`));
      return true;
    });
    assert.equal(server.listening, false, 'the IPv4 socket was released again');
    await close(blocker.server);
  });

  test('a free port: listening, and the other loopback address is left free', async () => {
    const port = await freePort();
    const server = createHttpServer();
    await listen(server, port, '127.0.0.1');
    assert.equal(server.listening, true);
    const v6 = await occupy(port, '::1');
    assert.ok(v6.error === undefined || /EADDRNOTAVAIL|EAFNOSUPPORT/.test(v6.error), `the ::1 probe was released (got ${v6.error})`);
    if (!v6.error) await close(v6.server);
    await close(server);
  });
});
