/**
 * {@link HttpFhirClient} against servers that misbehave on purpose: an answer far larger than the cap (streamed
 * without Content-Length, the 600 MB case), one that declares a huge Content-Length, and a redirect to another
 * server. The cap holds memory to about the cap, and a redirect is never followed.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../test/support/net.ts';
import { FhirHttpError, FhirTooLargeError, HttpFhirClient } from './client.ts';

const MB = 1024 * 1024;
let server: Server;
let target: Server;
let base: string;
let targetHits = 0;
let streamedBytes = 0;

async function listen(s: Server): Promise<number> {
  const port = await freePort();
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
  return port;
}

before(async () => {
  target = createServer((_req, res) => {
    targetHits++;
    res.writeHead(200, { 'Content-Type': 'application/fhir+json' }).end('{"resourceType":"Patient","id":"p1"}');
  });
  const targetPort = await listen(target);
  server = createServer((req, res) => {
    if (req.url?.startsWith('/fhir/Patient/huge')) {
      // 600 MB of a never-ending JSON string, written as fast as the client reads it.
      res.writeHead(200, { 'Content-Type': 'application/fhir+json' });
      const chunk = Buffer.alloc(MB, 0x61);
      res.write('{"resourceType":"Patient","id":"huge","text":{"div":"');
      let sent = 0;
      const pump = (): void => {
        while (sent < 600) {
          sent++;
          streamedBytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end('"}}');
      };
      res.on('close', () => (sent = 600));
      pump();
      return;
    }
    if (req.url?.startsWith('/fhir/Patient/declared')) {
      res.writeHead(200, { 'Content-Type': 'application/fhir+json', 'Content-Length': String(600 * MB) });
      res.write('{');
      return; // never finishes: the client must refuse on the header alone
    }
    if (req.url?.startsWith('/fhir/Patient/moved')) {
      res.writeHead(302, { Location: `http://127.0.0.1:${targetPort}/fhir/Patient/p1` }).end();
      return;
    }
    res.writeHead(404).end();
  });
  base = `http://127.0.0.1:${await listen(server)}/fhir`;
});
after(async () => {
  for (const s of [server, target]) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

describe('HttpFhirClient: answer size cap and redirects', () => {
  test('a 600 MB streamed answer is cut off at the cap; memory grows by about the cap, not the answer', async () => {
    const cap = 8 * MB;
    const client = new HttpFhirClient({ baseUrl: base, timeoutMs: 30_000, maxResponseBytes: cap });
    globalThis.gc?.();
    const rss0 = process.memoryUsage().rss;
    await assert.rejects(client.read('Patient', 'huge'), (e: unknown) => e instanceof FhirTooLargeError && /larger than the limit of 8388608 bytes/.test(e.message) && e.retryable === false);
    const grownMb = (process.memoryUsage().rss - rss0) / MB;
    // The figure, for the record (not a timing): how much of the 600 MB was sent before the client stopped reading.
    console.log(`600 MB answer with an 8 MB cap: RSS grew ${grownMb.toFixed(1)} MB; the server had written ${(streamedBytes / MB).toFixed(0)} MB when the client cancelled`);
    assert.ok(grownMb < 100, `RSS grew ${grownMb.toFixed(1)} MB`);
    assert.ok(streamedBytes < 200 * MB, 'the client cancelled the stream rather than draining it');
  });

  test('a Content-Length above the cap is refused before the body is read', async () => {
    const client = new HttpFhirClient({ baseUrl: base, timeoutMs: 5000, maxResponseBytes: 8 * MB });
    const t0 = Date.now();
    await assert.rejects(client.read('Patient', 'declared'), FhirTooLargeError);
    assert.ok(Date.now() - t0 < 4000, 'did not wait for the body');
  });

  test('a redirect is not followed (the token and the request stay with the configured server)', async () => {
    const client = new HttpFhirClient({ baseUrl: base, timeoutMs: 5000, token: 'secret-token' });
    await assert.rejects(client.read('Patient', 'moved'), (e: unknown) => e instanceof FhirHttpError && e.status === 302 && /redirect not followed/.test(e.message));
    assert.equal(targetHits, 0);
  });
});
