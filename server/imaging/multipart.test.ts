import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MalformedResponseError, ResponseTooLargeError } from './errors.ts';
import { parseAccept, parseMediaType } from './media-type.ts';
import { boundaryOf, parseMultipart, writeMultipart } from './multipart.ts';

const enc = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

describe('multipart/related', () => {
  it('round-trips binary parts, including bodies that contain CRLF and dashes', () => {
    const a = new Uint8Array([0, 13, 10, 45, 45, 255, 13, 10]);
    const b = new Uint8Array(1000).map((_, i) => i % 256);
    const out = writeMultipart([{ contentType: 'application/dicom', body: a }, { contentType: 'image/jls; transfer-syntax=1.2.840.10008.1.2.4.80', body: b }], 'application/dicom');
    assert.match(out.contentType, /^multipart\/related; type="application\/dicom"; boundary=/);
    const parts = parseMultipart(out.body, out.contentType);
    assert.equal(parts.length, 2);
    assert.deepEqual(parts[0]!.body, a);
    assert.deepEqual(parts[1]!.body, b);
    assert.equal(parseMediaType(parts[1]!.contentType).params['transfer-syntax'], '1.2.840.10008.1.2.4.80');
  });

  it('accepts a preamble, quoted boundaries, and parts without headers', () => {
    const body = enc('preamble text\r\n--b"x\r\n\r\nhello\r\n--b"x\r\nContent-Type: text/plain\r\n\r\nworld\r\n--b"x--\r\nepilogue');
    const parts = parseMultipart(body, 'multipart/related; type="text/plain"; boundary="b\\"x"');
    assert.deepEqual(parts.map((p) => Buffer.from(p.body).toString()), ['hello', 'world']);
    assert.equal(parts[0]!.contentType, '');
  });

  it('rejects non-multipart types, missing boundaries, truncation and bad header lines with MalformedResponseError', () => {
    assert.throws(() => boundaryOf('application/json'), MalformedResponseError);
    assert.throws(() => boundaryOf('multipart/related; type="application/dicom"'), MalformedResponseError);
    const ct = 'multipart/related; boundary=zz';
    assert.throws(() => parseMultipart(enc('no delimiter here'), ct), MalformedResponseError);
    assert.throws(() => parseMultipart(enc('--zz\r\nContent-Type: a/b\r\n\r\ndata without end'), ct), MalformedResponseError);
    assert.throws(() => parseMultipart(enc('--zz\r\nbroken header\r\n\r\nx\r\n--zz--'), ct), MalformedResponseError);
    assert.throws(() => parseMultipart(enc('--zzgarbage'), ct), MalformedResponseError);
  });

  it('enforces part-size and part-count limits', () => {
    const out = writeMultipart([{ contentType: 'a/b', body: new Uint8Array(100) }, { contentType: 'a/b', body: new Uint8Array(1) }], 'a/b');
    assert.throws(() => parseMultipart(out.body, out.contentType, { maxPartBytes: 99 }), ResponseTooLargeError);
    assert.throws(() => parseMultipart(out.body, out.contentType, { maxParts: 1 }), ResponseTooLargeError);
    assert.equal(parseMultipart(out.body, out.contentType, { maxPartBytes: 100, maxParts: 2 }).length, 2);
  });
});

describe('Accept header parsing', () => {
  it('orders by q, keeps transfer-syntax and type parameters, drops q=0', () => {
    const a = parseAccept('multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80; q=0.5, multipart/related; type="application/octet-stream"; transfer-syntax=*, text/html; q=0');
    assert.deepEqual(a.map((e) => [e.params.type, e.params['transfer-syntax'], e.q]), [
      ['application/octet-stream', '*', 1],
      ['image/jls', '1.2.840.10008.1.2.4.80', 0.5],
    ]);
  });
});
