/**
 * {@link HttpFhirClient} against a tiny real HTTP server that answers with a chosen Content-Type: the FHIR JSON
 * spellings servers use in the field are read, other types are clear errors, and the request says what it takes.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Patient } from '@medplum/fhirtypes';
import { freePort } from '../../test/support/net.ts';
import { FhirMalformedError, HttpFhirClient } from './client.ts';
import { checkFhirJsonAnswer, FHIR_JSON_ACCEPT, negotiateFhirJson } from './media-type.ts';

let server: Server;
let base: string;
/** Content-Type of the next answers (undefined: none sent). */
let answerType: string | undefined;
let answerBody = '';
const seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (answerType !== undefined) res.setHeader('Content-Type', answerType);
      res.writeHead(req.method === 'POST' ? 201 : 200).end(answerBody);
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${port}/fhir`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const patient: Patient = { resourceType: 'Patient', id: 'p1', gender: 'female' };
const client = (): HttpFhirClient => new HttpFhirClient({ baseUrl: base, timeoutMs: 2000 });

describe('HttpFhirClient: media types of answers', () => {
  const readable = [
    'application/fhir+json',
    'application/fhir+json; charset=utf-8',
    'application/fhir+json;charset=UTF-8;fhirVersion=4.0',
    'application/fhir+json; fhirVersion=4.0.1',
    'Application/FHIR+JSON',
    'application/json+fhir',
    'application/json+fhir; charset=utf-8',
    'application/json',
    'application/json; charset=utf-8; fhirVersion=4.0',
    undefined,
  ];
  for (const type of readable) {
    test(`reads an answer typed ${type ?? '(no Content-Type)'}`, async () => {
      answerType = type;
      answerBody = JSON.stringify(patient);
      const p = await client().read<Patient>('Patient', 'p1');
      assert.equal(p.gender, 'female');
      const bundle = { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: patient, search: { mode: 'match' } }] };
      answerBody = JSON.stringify(bundle);
      assert.deepEqual((await client().search<Patient>('Patient', { gender: 'female' })).map((x) => x.id), ['p1']);
    });
  }

  const refused: [string, RegExp][] = [
    ['application/fhir+xml', /answered application\/fhir\+xml, not FHIR JSON/],
    ['application/xml+fhir; charset=utf-8', /answered application\/xml\+fhir/],
    ['text/html; charset=utf-8', /answered text\/html/],
    ['application/fhir+json; fhirVersion=3.0', /FHIR version 3\.0/],
  ];
  for (const [type, message] of refused) {
    test(`refuses an answer typed ${type} with a FhirMalformedError naming it`, async () => {
      answerType = type;
      answerBody = JSON.stringify(patient);
      await assert.rejects(client().read<Patient>('Patient', 'p1'), (e: unknown) => e instanceof FhirMalformedError && message.test(e.message) && e.retryable === false);
    });
  }

  test('sends the R4 type first with the DSTU2 type and plain JSON as fallbacks, and bodies as application/fhir+json', async () => {
    answerType = 'application/json+fhir';
    answerBody = JSON.stringify(patient);
    seen.length = 0;
    await client().read<Patient>('Patient', 'p1');
    await client().write<Patient>({ resourceType: 'Patient', gender: 'female' });
    assert.equal(seen.length, 2);
    for (const r of seen) assert.equal(r.headers['accept'], FHIR_JSON_ACCEPT);
    assert.equal(seen[1]!.method, 'POST');
    assert.equal(seen[1]!.headers['content-type'], 'application/fhir+json');
    // What the client asks for is what the sandbox (and any R4 server) answers as R4 JSON.
    assert.deepEqual(negotiateFhirJson(FHIR_JSON_ACCEPT, undefined), { ok: true, type: 'application/fhir+json' });
  });
});

describe('media-type helpers', () => {
  test('checkFhirJsonAnswer', () => {
    assert.ok(checkFhirJsonAnswer('application/fhir+json; fhirVersion="4.0"').ok);
    assert.ok(checkFhirJsonAnswer('application/problem+json').ok);
    assert.ok(!checkFhirJsonAnswer('text/plain').ok);
    assert.ok(!checkFhirJsonAnswer('application/fhir+json; fhirVersion=5.0').ok);
  });
  test('negotiateFhirJson: q=0 excludes a type; _format wins over Accept', () => {
    assert.deepEqual(negotiateFhirJson('application/fhir+json;q=0, application/json+fhir', undefined), { ok: true, type: 'application/json+fhir' });
    assert.equal(negotiateFhirJson('application/fhir+json;q=0', undefined).ok, false);
    assert.deepEqual(negotiateFhirJson('application/fhir+xml', 'json'), { ok: true, type: 'application/fhir+json' });
    assert.equal(negotiateFhirJson('application/fhir+json', 'xml').ok, false);
    assert.deepEqual(negotiateFhirJson(undefined, 'application/fhir json'), { ok: true, type: 'application/fhir+json' });
  });
});

describe('HttpFhirClient: a connection closed under a request', () => {
  /** A server that resets the connection of the first `resets` requests it receives, then answers. */
  async function resettingServer(resets: number): Promise<{ url: string; count: () => number; close: () => Promise<void> }> {
    let n = 0;
    const s = createServer((req, res) => {
      n += 1;
      if (n <= resets) {
        req.socket.destroy();
        return;
      }
      res.setHeader('Content-Type', 'application/fhir+json');
      res.end(JSON.stringify(patient));
    });
    const port = await freePort();
    await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
    return { url: `http://127.0.0.1:${port}/fhir`, count: () => n, close: () => new Promise<void>((r) => s.close(() => r())) };
  }

  test('a read is sent once more on a new connection', async () => {
    const s = await resettingServer(1);
    try {
      const p = await new HttpFhirClient({ baseUrl: s.url, timeoutMs: 2000 }).read<Patient>('Patient', 'p1');
      assert.equal(p.id, 'p1');
      assert.equal(s.count(), 2);
    } finally {
      await s.close();
    }
  });

  test('only once: a second reset is a clear unavailable error', async () => {
    const s = await resettingServer(5);
    try {
      await assert.rejects(new HttpFhirClient({ baseUrl: s.url, timeoutMs: 2000 }).read<Patient>('Patient', 'p1'), { name: 'FhirUnavailableError' });
      assert.equal(s.count(), 2);
    } finally {
      await s.close();
    }
  });

  test('a write is not resent (the server may have applied it)', async () => {
    const s = await resettingServer(1);
    try {
      await assert.rejects(new HttpFhirClient({ baseUrl: s.url, timeoutMs: 2000 }).write<Patient>({ resourceType: 'Patient', gender: 'female' }), { name: 'FhirUnavailableError' });
      assert.equal(s.count(), 1);
    } finally {
      await s.close();
    }
  });
});
