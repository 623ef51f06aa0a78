/**
 * Fault behaviour of the DICOMweb client: a PACS that is down, slow, flaky, too generous or talking garbage.
 * These faults cannot be produced with a healthy Orthanc, so they use small local HTTP servers.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { DicomWebClient } from './dicomweb-client.ts';
import {
  DecodeError,
  MalformedResponseError,
  PacsHttpError,
  PacsTimeoutError,
  PacsUnavailableError,
  ResponseTooLargeError,
} from './errors.ts';
import { writeMultipart } from './multipart.ts';
import { fetchFrame } from './retrieve.ts';
import { parseDicomFile } from './dicom.ts';
import { datasetToJson } from '../sandbox/dicomweb/to-json.ts';
import { fixturePath } from '../../test/support/dicom-fixtures.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

const servers: Server[] = [];
async function serve(handler: Handler): Promise<{ url: string; count: () => number; headers: () => IncomingMessage['headers'][] }> {
  let n = 0;
  const seen: IncomingMessage['headers'][] = [];
  const srv = createServer((req, res) => {
    seen.push(req.headers);
    handler(req, res, n++);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { url: `http://127.0.0.1:${port}/dicom-web`, count: () => n, headers: () => seen };
}

after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

const fast = { retryBaseDelayMs: 5 };

async function closedPortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const addr = s.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}/dicom-web`;
}

describe('DICOMweb client faults', () => {
  it('PACS down (closed port): PacsUnavailableError naming ECONNREFUSED, after the configured retries, quickly', async () => {
    const c = new DicomWebClient({ baseUrl: await closedPortUrl(), retries: 2, ...fast });
    const t0 = performance.now();
    await assert.rejects(c.searchStudies({ PatientID: 'X' }), (e: unknown) => {
      assert.ok(e instanceof PacsUnavailableError);
      assert.match(e.message, /ECONNREFUSED/);
      assert.doesNotMatch(e.message, /PatientID/, 'query strings (may hold identifiers) stay out of messages');
      return true;
    });
    assert.ok(performance.now() - t0 < 2000);
  });

  it('PACS that never answers: PacsTimeoutError after timeout × attempts, not a hang', async () => {
    const s = await serve(() => undefined); // accept, never respond
    const c = new DicomWebClient({ baseUrl: s.url, timeoutMs: 200, retries: 1, ...fast });
    const t0 = performance.now();
    await assert.rejects(c.searchStudies(), PacsTimeoutError);
    const ms = performance.now() - t0;
    assert.ok(ms >= 380 && ms < 2000, `took ${ms} ms`);
    assert.equal(s.count(), 2);
  });

  it('PACS that stalls mid-body: PacsTimeoutError', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.write('[{"0020000D":');
    });
    const c = new DicomWebClient({ baseUrl: s.url, timeoutMs: 200, retries: 0 });
    await assert.rejects(c.searchStudies(), PacsTimeoutError);
  });

  it('retries 503 and network resets for GET, then succeeds', async () => {
    const s = await serve((req, res, n) => {
      if (n === 0) return req.socket.destroy();
      if (n === 1) return res.writeHead(503).end('busy');
      res.writeHead(200, { 'content-type': 'application/dicom+json' }).end('[]');
    });
    const c = new DicomWebClient({ baseUrl: s.url, retries: 2, ...fast });
    assert.deepEqual(await c.searchStudies(), []);
    assert.equal(s.count(), 3);
  });

  it('retries GETs only after transient answers: 502/503/504 and 408 yes; 500, 501, 4xx and POST never', async () => {
    const counts = new Map<number, number>();
    for (const status of [500, 501, 400, 404, 422, 408, 502, 503, 504]) {
      const s = await serve((_q, res) => res.writeHead(status, { 'content-type': 'application/json' }).end('{"Message":"Bad file format"}'));
      const c = new DicomWebClient({ baseUrl: s.url, retries: 2, ...fast });
      await assert.rejects(c.searchStudies(), (e: unknown) => e instanceof PacsHttpError && e.status === status, String(status));
      counts.set(status, s.count());
    }
    assert.deepEqual(Object.fromEntries(counts), { 400: 1, 404: 1, 408: 3, 422: 1, 500: 1, 501: 1, 502: 3, 503: 3, 504: 3 });
    const s500 = await serve((_q, res) => res.writeHead(503).end('busy'));
    await assert.rejects(new DicomWebClient({ baseUrl: s500.url, retries: 2, ...fast }).store([new Uint8Array(10)]), PacsHttpError);
    assert.equal(s500.count(), 1, 'STOW-RS (POST) is not retried');
  });

  it('retries 429 only when Retry-After says when, waiting that long; a Retry-After beyond the cap ends the call at once', async () => {
    const soon = await serve((_q, res, n) => (n === 0 ? res.writeHead(429, { 'retry-after': '1' }).end() : res.writeHead(200, { 'content-type': 'application/dicom+json' }).end('[]')));
    const t0 = performance.now();
    assert.deepEqual(await new DicomWebClient({ baseUrl: soon.url, retries: 2, ...fast }).searchStudies(), []);
    const waited = performance.now() - t0;
    assert.equal(soon.count(), 2);
    assert.ok(waited >= 950 && waited < 3000, `waited ${waited} ms for Retry-After: 1`);

    const noHint = await serve((_q, res) => res.writeHead(429).end());
    await assert.rejects(new DicomWebClient({ baseUrl: noHint.url, retries: 2, ...fast }).searchStudies(), (e: unknown) => e instanceof PacsHttpError && e.status === 429);
    assert.equal(noHint.count(), 1, '429 without Retry-After is not retried');

    const later = await serve((_q, res) => res.writeHead(503, { 'retry-after': '120' }).end());
    const t1 = performance.now();
    await assert.rejects(new DicomWebClient({ baseUrl: later.url, retries: 2, ...fast }).searchStudies(), (e: unknown) => e instanceof PacsHttpError && e.retryAfterMs === 120_000);
    assert.equal(later.count(), 1, 'a Retry-After of two minutes is not waited for');
    assert.ok(performance.now() - t1 < 1000);
  });

  it('messages name the route, not UIDs, query values or the host; the PACS body is summarized apart, scrubbed', async () => {
    const study = '2.25.31415926535897932384626433832795028';
    const orthancBody = JSON.stringify({
      HttpError: 'Internal Server Error', HttpStatus: 500, Message: 'Bad file format', Method: 'GET', OrthancError: 'Bad file format', OrthancStatus: 15,
      Uri: `/dicom-web/studies/${study}/series/1.2.3.4/instances/1.2.3.5/frames/1`, Details: 'patient MRN-77 file 1.2.3.5 unreadable',
    }, null, 2);
    const s = await serve((_q, res) => res.writeHead(500, { 'content-type': 'application/json' }).end(orthancBody));
    const c = new DicomWebClient({ baseUrl: s.url, retries: 0 });
    const err = await c.retrieveFrames(study, '1.2.3.4', '1.2.3.5', [1]).catch((e: unknown) => e);
    assert.ok(err instanceof PacsHttpError);
    assert.equal(err.message, 'PACS answered HTTP 500 for GET /studies/{study}/series/{series}/instances/{instance}/frames/1');
    assert.equal(err.url, '/studies/{study}/series/{series}/instances/{instance}/frames/1');
    assert.equal(err.pacsDetail, 'Bad file format; patient MRN-77 file {uid} unreadable');
    assert.equal(err.userMessage, 'the PACS refused the image request (HTTP 500)');
    assert.equal(err.code, 'PACS_HTTP_ERROR');

    const echo = await serve((req, res) => res.writeHead(400, { 'content-type': 'text/html' }).end(`<html><b>bad query</b> ${decodeURIComponent(req.url!)}</html>`));
    const qErr = await new DicomWebClient({ baseUrl: echo.url }).searchStudies({ PatientID: 'MRN-0042', StudyDate: '20240101' }).catch((e: unknown) => e);
    assert.ok(qErr instanceof PacsHttpError);
    for (const text of [qErr.message, qErr.pacsDetail ?? '', qErr.userMessage]) {
      assert.doesNotMatch(text, /MRN-0042|20240101|127\.0\.0\.1|<b>/, text);
    }
    assert.match(qErr.pacsDetail ?? '', /bad query .*PatientID=\{query\}/);

    const closed = new DicomWebClient({ baseUrl: await closedPortUrl(), retries: 0 });
    const refused = await closed.retrieveMetadata(study).catch((e: unknown) => e);
    assert.ok(refused instanceof PacsUnavailableError);
    assert.equal(refused.userMessage, 'the PACS could not be reached (connection refused)');
    assert.doesNotMatch(refused.message, new RegExp(study.replace(/\./g, '\\.')));
  });

  it('garbage bodies: MalformedResponseError for non-JSON, non-DICOM-JSON, wrong type and broken multipart', async () => {
    const bodies: [string, string][] = [
      ['application/dicom+json', '<html>oops</html>'],
      ['application/dicom+json', '{"not":"an array"}'],
      ['application/dicom+json', '[{"bad key":{"vr":"CS"}}]'],
      ['text/html', '[]'],
    ];
    for (const [type, body] of bodies) {
      const s = await serve((_q, res) => res.writeHead(200, { 'content-type': type }).end(body));
      await assert.rejects(new DicomWebClient({ baseUrl: s.url }).searchStudies(), MalformedResponseError, body);
    }
    const frames: [string, string][] = [
      ['application/json', '{}'],
      ['multipart/related; boundary=q', '--q\r\nContent-Type: application/octet-stream\r\n\r\ntruncated'],
      ['multipart/related; type="application/octet-stream"', 'no boundary'],
    ];
    for (const [type, body] of frames) {
      const s = await serve((_q, res) => res.writeHead(200, { 'content-type': type }).end(body));
      await assert.rejects(new DicomWebClient({ baseUrl: s.url }).retrieveFrames('1', '2', '3', [1]), MalformedResponseError, type);
    }
  });

  it('garbage pixels from the PACS: DecodeError, not a crash', async () => {
    const file = parseDicomFile(readFileSync(fixturePath('jpeg-ls-80-12.dcm')));
    const meta = datasetToJson(file.dataSet);
    const junk = new Uint8Array(3000).map((_, i) => (i * 7919) % 256);
    junk.set([0xff, 0xd8, 0xff, 0xf7, 0x00, 0x0b, 0x0c, 0x00, 0x35, 0x00, 0x43, 0x01], 0); // plausible SOF55 header
    const s = await serve((req, res) => {
      if (req.url!.endsWith('/metadata')) return res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(JSON.stringify([meta]));
      const mp = writeMultipart([{ contentType: 'image/jls; transfer-syntax=1.2.840.10008.1.2.4.80', body: junk }], 'image/jls');
      res.writeHead(200, { 'content-type': mp.contentType }).end(mp.body);
    });
    await assert.rejects(fetchFrame(new DicomWebClient({ baseUrl: s.url }), { studyUid: '1', seriesUid: '2', sopUid: '3' }), DecodeError);
  });

  it('enforces the response size limit, with and without Content-Length', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
    const withLen = await serve((_q, res) => res.writeHead(200, { 'content-type': 'application/dicom+json', 'content-length': big.length }).end(big));
    await assert.rejects(new DicomWebClient({ baseUrl: withLen.url, maxResponseBytes: 1024 * 1024 }).searchStudies(), ResponseTooLargeError);
    const chunked = await serve((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.write(big.subarray(0, 1024 * 1024));
      res.end(big.subarray(1024 * 1024));
    });
    await assert.rejects(new DicomWebClient({ baseUrl: chunked.url, maxResponseBytes: 1024 * 1024 }).searchStudies(), ResponseTooLargeError);
  });

  it('sends bearer tokens from a callback (fresh per request) and basic credentials', async () => {
    const s = await serve((_q, res) => res.writeHead(200, { 'content-type': 'application/dicom+json' }).end('[]'));
    let i = 0;
    await new DicomWebClient({ baseUrl: s.url, auth: { type: 'bearer', token: () => `tok${++i}` } }).searchStudies();
    await new DicomWebClient({ baseUrl: s.url, auth: { type: 'bearer', token: () => `tok${++i}` } }).searchStudies();
    await new DicomWebClient({ baseUrl: s.url, auth: { type: 'basic', username: 'u', password: 'p:w' } }).searchStudies();
    assert.deepEqual(s.headers().map((h) => h.authorization), ['Bearer tok1', 'Bearer tok2', `Basic ${Buffer.from('u:p:w').toString('base64')}`]);
  });

  it('stops promptly when the caller aborts', async () => {
    const s = await serve(() => undefined);
    const c = new DicomWebClient({ baseUrl: s.url, timeoutMs: 10_000 });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error('caller gave up')), 50);
    const t0 = performance.now();
    await assert.rejects(c.searchStudies({}, { signal: ctl.signal }), /caller gave up/);
    assert.ok(performance.now() - t0 < 1000);
  });
});

describe('DICOMweb client bodies', () => {
  it('reads gzip-encoded JSON (Content-Length counts compressed bytes) and rejects a body shorter than its Content-Length', async () => {
    const { gzipSync } = await import('node:zlib');
    const json = JSON.stringify([{ '0020000D': { vr: 'UI', Value: ['1.2.3'] } }]);
    const gz = gzipSync(json);
    const s = await serve((_q, res) => res.writeHead(200, { 'content-type': 'application/dicom+json', 'content-encoding': 'gzip', 'content-length': gz.length }).end(gz));
    assert.equal((await new DicomWebClient({ baseUrl: s.url }).searchStudies())[0]!['0020000D']!.Value![0], '1.2.3');
    const short = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'application/dicom+json', 'content-length': 100 });
      res.write('[]');
      setTimeout(() => req.socket.destroy(), 20);
    });
    await assert.rejects(new DicomWebClient({ baseUrl: short.url, retries: 0 }).searchStudies(), (e: unknown) => e instanceof MalformedResponseError || e instanceof PacsUnavailableError);
  });
});
