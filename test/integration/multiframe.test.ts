/**
 * Multi-frame instances without a Basic Offset Table (test/fixtures/dicom-multiframe: JPEG-LS and JPEG 2000 with
 * several fragments per frame, RLE with one), fetched frame by frame through the DICOMweb client:
 * - the embedded sandbox server cuts the frames itself (dicom.ts finds them by their end markers);
 * - Orthanc 1.10 answers its frame endpoint with 400 "Bad file format" for the files whose frames span several
 *   fragments, and fetchFrame reads the frame from the whole instance instead; the RLE file (one fragment per frame)
 *   it serves. Orthanc is started by this file (skipped loudly outside CI when not installed).
 * Either way every frame equals the uncompressed source.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import pino from 'pino';
import { decodeFrame } from '../../server/imaging/decode/index.ts';
import { parseDicomFile, type DicomFile } from '../../server/imaging/dicom.ts';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { fetchFrame } from '../../server/imaging/retrieve.ts';
import { createDicomWebRouter } from '../../server/sandbox/dicomweb/router.ts';
import { FIXTURE_DIR } from '../support/dicom-fixtures.ts';
import { dicomWebPlugin, orthancBinary, startOrthanc, type OrthancHandle } from '../support/orthanc.ts';

const DIR = join(FIXTURE_DIR, '../dicom-multiframe');
const NO_BOT = ['jpeg-ls-3frames-fragmented-nobot.dcm', 'jpeg2000-3frames-fragmented-nobot.dcm', 'rle-3frames-nobot.dcm'];
const load = (name: string): DicomFile => parseDicomFile(new Uint8Array(readFileSync(join(DIR, name))));
const reference = load('explicit-le-3frames.dcm');
const refOf = (f: DicomFile) => ({ studyUid: f.studyInstanceUid, seriesUid: f.seriesInstanceUid, sopUid: f.sopInstanceUid });

async function expectSourcePixels(client: DicomWebClient, name: string): Promise<Set<string>> {
  const file = load(name);
  const sources = new Set<string>();
  for (let f = 1; f <= 3; f++) {
    const got = await fetchFrame(client, refOf(file), { frame: f });
    sources.add(got.source);
    const ref = await decodeFrame(reference.transferSyntaxUid, reference.frame(f - 1), reference.pixelModule);
    assert.deepEqual(Array.from(got.stored), Array.from(ref), `${name} frame ${f}`);
  }
  return sources;
}

describe('multi-frame without a Basic Offset Table: embedded sandbox DICOMweb', () => {
  let server: Server | undefined;
  let dir = '';
  let client: DicomWebClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'frcds-multiframe-'));
    for (const name of NO_BOT) copyFileSync(join(DIR, name), join(dir, name));
    const { router } = await createDicomWebRouter({ dicomDir: dir, logger: pino({ level: 'silent' }) });
    const app = express().use('/dicom-web', router);
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    client = new DicomWebClient({ baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/dicom-web` });
  });

  after(async () => {
    await new Promise((r) => server?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const name of NO_BOT) {
    it(`${name}: served by the frame endpoint, every frame equal to the source`, async () => {
      assert.deepEqual([...(await expectSourcePixels(client, name))], ['frames']);
    });
  }
});

const missing = !orthancBinary() ? 'Orthanc' : !dicomWebPlugin() ? 'the Orthanc DICOMweb plugin' : undefined;
if (missing && process.env.CI !== 'true') {
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!! SKIPPING the Orthanc multi-frame cases: ${missing} is not installed (\`npm run setup\`). CI (CI=true) runs them.\n${bar}\n`);
  it('multi-frame without a Basic Offset Table: Orthanc', { skip: `${missing} is not installed (see the warning above)` }, () => undefined);
} else {
  describe('multi-frame without a Basic Offset Table: Orthanc (real PACS)', () => {
    let orthanc: OrthancHandle | undefined;
    let client: DicomWebClient;
    let auth = '';

    before(async () => {
      if (missing) throw new Error(`CI=true but ${missing} is not installed`);
      orthanc = await startOrthanc();
      auth = `Basic ${Buffer.from(`${orthanc.username}:${orthanc.password}`).toString('base64')}`;
      client = new DicomWebClient({ baseUrl: orthanc.dicomWebUrl, auth: { type: 'basic', username: orthanc.username, password: orthanc.password }, timeoutMs: 30_000 });
      await client.store(NO_BOT.map((name) => new Uint8Array(readFileSync(join(DIR, name)))));
    });

    after(async () => {
      await orthanc?.stop();
    });

    for (const name of NO_BOT) {
      const fragmented = name.includes('fragmented');
      const title = fragmented ? 'frame endpoint refused (400 Bad file format), every frame read from the whole instance' : 'served by the frame endpoint';
      it(`${name}: ${title}`, async () => {
        const f = load(name);
        const r = await fetch(`${orthanc!.dicomWebUrl}/studies/${f.studyInstanceUid}/series/${f.seriesInstanceUid}/instances/${f.sopInstanceUid}/frames/1`, {
          headers: { authorization: auth, accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
        });
        const said = await r.text();
        assert.equal(r.status, fragmented ? 400 : 200, `Orthanc's frame endpoint for ${name}: ${said.slice(0, 200)}`);
        assert.deepEqual([...(await expectSourcePixels(client, name))], [fragmented ? 'instance' : 'frames']);
      });
    }
  });
}
