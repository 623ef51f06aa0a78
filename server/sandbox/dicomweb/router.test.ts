/**
 * Sandbox DICOMweb specifics beyond the shared imaging-access cases: negotiation corner cases, QIDO errors,
 * bulk data, read-only answers, and start-up on a folder with a broken file.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import pino from 'pino';
import request from 'supertest';
import { parseDicomFile } from '../../imaging/dicom.ts';
import { parseMultipart } from '../../imaging/multipart.ts';
import { fixtureIndex, fixturePath } from '../../../test/support/dicom-fixtures.ts';
import { negotiate } from './negotiate.ts';
import { matchValue } from './qido.ts';
import { createDicomWebRouter } from './router.ts';

const STUDY = '2.25.31415926535897932384626433832795028';
const ref = (n: number) => ({
  series: `2.25.27182818284590452353602874713526${1000 + n}`,
  sop: `2.25.27182818284590452353602874713526${String(n).padStart(4, '0')}`,
});
const url = (n: number, tail = '') => `/dw/studies/${STUDY}/series/${ref(n).series}/instances/${ref(n).sop}${tail}`;

describe('sandbox DICOMweb router', () => {
  let dir = '';
  let app: express.Express;
  let count = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'frcds-dw-'));
    for (const f of fixtureIndex()) copyFileSync(fixturePath(f.file), join(dir, f.file));
    writeFileSync(join(dir, 'broken.dcm'), 'not a DICOM file');
    const logs: string[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => logs.push(s) });
    const r = await createDicomWebRouter({ dicomDir: dir, logger });
    count = r.instanceCount;
    app = express();
    app.use('/dw', r.router);
    assert.ok(logs.some((l) => l.includes('skipping unreadable DICOM file')));
    assert.ok(!logs.some((l) => l.includes('Fixture^Synthetic') || l.includes('FIXTURE-0001')), 'no PHI in logs');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('indexes every readable file and skips the broken one', () => {
    assert.equal(count, fixtureIndex().length);
  });

  it('starts with an empty archive when the folder does not exist', async () => {
    const r = await createDicomWebRouter({ dicomDir: join(dir, 'nope'), logger: pino({ level: 'silent' }) });
    assert.equal(r.instanceCount, 0);
  });

  it('QIDO: 400 for unknown keys and bad limits, [] for no match, includefield=all, RetrieveURL', async () => {
    assert.equal((await request(app).get('/dw/studies?NoSuchKeyword=1')).status, 400);
    assert.equal((await request(app).get('/dw/studies?limit=-1')).status, 400);
    assert.equal((await request(app).get('/dw/studies?ReferencedSeriesSequence.SeriesInstanceUID=1')).status, 400);
    const none = await request(app).get('/dw/studies?PatientID=nobody');
    assert.equal(none.status, 200);
    assert.deepEqual(none.body, []);
    const all = await request(app).get(`/dw/studies/${STUDY}/instances?SOPInstanceUID=${ref(1).sop}&includefield=all`);
    assert.equal(all.body.length, 1);
    assert.equal(all.body[0]['00185101'].Value[0], 'AP');
    assert.equal(all.body[0]['7FE00010'], undefined, 'no pixel data in QIDO results');
    assert.match(all.body[0]['00081190'].Value[0], new RegExp(`/dw/studies/${STUDY}/series/${ref(1).series}/instances/${ref(1).sop}$`));
    assert.equal((await request(app).get('/dw/studies/1.2.3/series')).status, 404);
  });

  it('frames: 404 beyond the last frame, 400 for a malformed list, several frames in order', async () => {
    assert.equal((await request(app).get(url(51, '/frames/3'))).status, 404);
    assert.equal((await request(app).get(url(51, '/frames/0'))).status, 400);
    const r = await request(app)
      .get(url(51, '/frames/2,1'))
      .set('Accept', 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1')
      .buffer(true)
      .parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      });
    const parts = parseMultipart(r.body as Buffer, r.headers['content-type']!);
    const file = parseDicomFile(readFileSync(fixturePath('explicit-le-signed-2frames.dcm')));
    assert.deepEqual(Buffer.from(parts[0]!.body), Buffer.from(file.frame(1)));
    assert.deepEqual(Buffer.from(parts[1]!.body), Buffer.from(file.frame(0)));
  });

  it('instances: an implicit-VR file cannot be served as explicit VR LE (406), but as stored', async () => {
    assert.equal((await request(app).get(url(11))).status, 406);
    const ok = await request(app).get(url(11)).set('Accept', 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2');
    assert.equal(ok.status, 200);
  });

  it('bulk data: Pixel Data as native bytes; other tags 404', async () => {
    const r = await request(app).get(url(31, '/bulk/7FE00010')).set('Accept', 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1');
    assert.equal(r.status, 200);
    assert.equal((await request(app).get(url(31, '/bulk/00100010'))).status, 404);
  });

  it('is read-only: STOW-RS and DELETE answer 405 with Allow', async () => {
    const r = await request(app).post('/dw/studies').send('x');
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, HEAD');
    assert.equal((await request(app).delete(`/dw/studies/${STUDY}`)).status, 405);
  });
});

describe('transfer-syntax negotiation (PS3.18 §8.7.3.5)', () => {
  const jls = '1.2.840.10008.1.2.4.80';
  it('serves the stored syntax for * or its UID, transcodes for explicit VR LE, 406 otherwise', () => {
    assert.deepEqual(negotiate('multipart/related; type="application/octet-stream"; transfer-syntax=*', 'frames', jls, true), { ok: true, syntax: jls, transcode: false, partType: 'image/jls' });
    assert.deepEqual(negotiate(`multipart/related; type="image/jls"; transfer-syntax=${jls}`, 'frames', jls, true), { ok: true, syntax: jls, transcode: false, partType: 'image/jls' });
    assert.deepEqual(negotiate('multipart/related; type="image/jls"', 'frames', jls, true), { ok: true, syntax: jls, transcode: false, partType: 'image/jls' });
    assert.deepEqual(negotiate('multipart/related; type="application/octet-stream"', 'frames', jls, true), { ok: true, syntax: '1.2.840.10008.1.2.1', transcode: true, partType: 'application/octet-stream' });
    assert.equal(negotiate('multipart/related; type="application/octet-stream"', 'frames', jls, false).ok, false);
    assert.equal(negotiate('multipart/related; type="image/jp2"', 'frames', jls, true).ok, false);
    assert.equal(negotiate('application/octet-stream', 'frames', jls, true).ok, false);
    assert.deepEqual(negotiate(undefined, 'instance', jls, true), { ok: true, syntax: '1.2.840.10008.1.2.1', transcode: true, partType: 'application/dicom' });
    assert.deepEqual(negotiate('*/*', 'instance', '1.2.840.10008.1.2.1', true), { ok: true, syntax: '1.2.840.10008.1.2.1', transcode: false, partType: 'application/dicom' });
  });

  it('respects q-values', () => {
    const accept = `multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1; q=0.4, multipart/related; type="image/jls"; transfer-syntax=${jls}`;
    assert.equal((negotiate(accept, 'frames', jls, true) as { transcode: boolean }).transcode, false);
  });
});

describe('QIDO value matching (PS3.4 §C.2.2.2)', () => {
  it('implements single value, wildcard, list, range and universal matching', () => {
    assert.equal(matchValue('LO', 'ABC', ['ABC']), true);
    assert.equal(matchValue('LO', 'abc', ['ABC']), false);
    assert.equal(matchValue('PN', 'doe^*', ['Doe^Jane']), true);
    assert.equal(matchValue('LO', 'A?C', ['ABC']), true);
    assert.equal(matchValue('LO', 'A.C', ['ABC']), false, 'regex metacharacters are literal');
    assert.equal(matchValue('UI', '1.2,1.3', ['1.3']), true);
    assert.equal(matchValue('UI', '1.2\\1.3', ['1.4']), false);
    assert.equal(matchValue('DA', '20240101-20240131', ['20240115']), true);
    assert.equal(matchValue('DA', '20240101-20240131', ['20240201']), false);
    assert.equal(matchValue('TM', '1000-1100', ['101500']), true);
    assert.equal(matchValue('CS', 'CT\\DX', ['DX']), true);
    assert.equal(matchValue('IS', '3', ['3']), true);
    assert.equal(matchValue('CS', '', []), true);
  });
});
