/**
 * Imaging access against the embedded sandbox DICOMweb server, over real HTTP, with the same cases as the real PACS
 * (imaging-access.cases.ts). A bearer-token check in front of the router exercises the client's bearer auth.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import express from 'express';
import pino from 'pino';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { TS } from '../../server/imaging/transfer-syntax.ts';
import { createDicomWebRouter } from '../../server/sandbox/dicomweb/router.ts';
import { corpusFiles, imagingAccessCases, pixelCorpus, type CorpusEntry, type ServerUnderTest } from './imaging-access.cases.ts';

describe('embedded sandbox DICOMweb integration', () => {
  let server: Server | undefined;
  let dir = '';
  let sut: ServerUnderTest | undefined;
  let corpus: CorpusEntry[] = [];
  const token = `t-${Math.random().toString(36).slice(2)}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'frcds-dicomweb-'));
    corpusFiles().forEach((p, i) => {
      const d = join(dir, String(i));
      mkdirSync(d);
      copyFileSync(p, join(d, 'x.dcm'));
    });
    const { router, instanceCount } = await createDicomWebRouter({ dicomDir: dir, logger: pino({ level: 'silent' }) });
    assert.equal(instanceCount, corpusFiles().length);
    const app = express();
    app.use('/dicom-web', (req, res, next) => (req.get('authorization') === `Bearer ${token}` ? next() : res.status(401).end()), router);
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const rootUrl = `http://127.0.0.1:${port}/dicom-web`;
    corpus = pixelCorpus();
    sut = {
      name: 'embedded',
      client: new DicomWebClient({ baseUrl: rootUrl, auth: { type: 'bearer', token: async () => token } }),
      badAuthClient: new DicomWebClient({ baseUrl: rootUrl, auth: { type: 'bearer', token: 'nope' }, retries: 0 }),
      rootUrl,
      authHeaders: { authorization: `Bearer ${token}` },
      // No local decoder for 12-bit JPEG, hence no transcoding of it either.
      cannotTranscode: new Set([TS.jpegExtended]),
    };
  });

  after(async () => {
    await new Promise((r) => server?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  imagingAccessCases(() => {
    assert.ok(sut, 'server did not start');
    return sut;
  }, () => corpus);
});
