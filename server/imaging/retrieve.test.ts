/**
 * fetchFrame against small DICOMweb stubs that count and hold requests: the frame request is cancelled (its
 * connection closed) when the header is refused or the metadata fails; with the metadata at hand a refused header
 * asks for no frame at all; when the frame endpoint fails the way Orthanc 1.10 does for a multi-frame file without a
 * Basic Offset Table (400 "Bad file format"), the frame is read from the whole instance — but not after transient
 * failures, a 404, or beyond the byte budget; a decode failure is not retried.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeFrame } from './decode/index.ts';
import { parseDicomFile, type DicomFile } from './dicom.ts';
import type { DicomJsonDataset } from './dicom-json.ts';
import { DicomWebClient } from './dicomweb-client.ts';
import { DecodeError, InvalidPixelModuleError, PacsHttpError, ResponseTooLargeError } from './errors.ts';
import { writeMultipart } from './multipart.ts';
import { fetchFrame } from './retrieve.ts';
import { datasetToJson } from '../sandbox/dicomweb/to-json.ts';
import { DEMO_DICOM_DIR, fixturePath } from '../../test/support/dicom-fixtures.ts';

interface Stub {
  url: string;
  /** Requests seen, by kind. */
  seen: { metadata: number; frames: number; instance: number };
  /** Resolves when a frames request's connection has closed (answered or cut). */
  framesClosed: Promise<number>;
}

type Kind = 'metadata' | 'frames' | 'instance';
type Handler = (kind: Kind, req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

async function stub(handler: Handler): Promise<Stub> {
  const seen = { metadata: 0, frames: 0, instance: 0 };
  let closed!: (t: number) => void;
  const framesClosed = new Promise<number>((r) => (closed = r));
  const srv = createServer((req, res) => {
    const path = req.url!.split('?')[0]!;
    const kind: Kind = path.endsWith('/metadata') ? 'metadata' : /\/frames\//.test(path) ? 'frames' : 'instance';
    seen[kind]++;
    if (kind === 'frames') res.on('close', () => closed(performance.now()));
    handler(kind, req, res);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/dicom-web`, seen, framesClosed };
}

const mf = (name: string) => fixturePath(`../dicom-multiframe/${name}`);
const loadFile = (path: string): { bytes: Uint8Array; file: DicomFile; meta: DicomJsonDataset } => {
  const bytes = new Uint8Array(readFileSync(path));
  const file = parseDicomFile(bytes);
  return { bytes, file, meta: datasetToJson(file.dataSet) };
};
const refOf = (file: DicomFile) => ({ studyUid: file.studyInstanceUid, seriesUid: file.seriesInstanceUid, sopUid: file.sopInstanceUid });
const json = (res: ServerResponse, body: unknown) => res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(JSON.stringify(body));
const orthanc400 = (req: IncomingMessage, res: ServerResponse) =>
  res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ HttpError: 'Bad Request', HttpStatus: 400, Message: 'Bad file format', OrthancError: 'Bad file format', OrthancStatus: 15, Uri: req.url }));
const multipart = (res: ServerResponse, type: string, body: Uint8Array) => {
  const mp = writeMultipart([{ contentType: type, body }], type);
  res.writeHead(200, { 'content-type': mp.contentType }).end(mp.body);
};

/** A 65535×65535 header, as a corrupt or hostile file may carry. */
function hugeHeader(): DicomJsonDataset {
  const meta = loadFile(fixturePath('jpeg-ls-80-12.dcm')).meta;
  return { ...meta, '00280010': { vr: 'US', Value: [65535] }, '00280011': { vr: 'US', Value: [65535] } };
}

describe('fetchFrame: the frame request is cancelled when it is not needed', () => {
  it('header refused (65535×65535) while the frame is on its way: the frame connection is closed at once', async () => {
    const s = await stub((kind, _req, res) => {
      if (kind === 'metadata') setTimeout(() => json(res, [hugeHeader()]), 100); // the frame request is surely out by then
      // frames: never answered — a PACS busy sending a 8 GB frame
    });
    const client = new DicomWebClient({ baseUrl: s.url, timeoutMs: 10_000, retries: 0 });
    const t0 = performance.now();
    await assert.rejects(fetchFrame(client, { studyUid: '1', seriesUid: '2', sopUid: '3' }), InvalidPixelModuleError);
    const refusedAt = performance.now();
    const closedAt = await Promise.race([s.framesClosed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 2000))]);
    assert.equal(s.seen.frames, 1);
    assert.ok(closedAt - refusedAt < 500, `frame connection still open ${Math.round(Math.min(closedAt, performance.now()) - refusedAt)} ms after the header was refused`);
    assert.ok(refusedAt - t0 < 2000);
  });

  it('metadata request fails (404): the frame connection is closed too', async () => {
    const s = await stub((kind, _req, res) => {
      if (kind === 'metadata') setTimeout(() => res.writeHead(404).end(), 100);
    });
    const client = new DicomWebClient({ baseUrl: s.url, timeoutMs: 10_000, retries: 0 });
    await assert.rejects(fetchFrame(client, { studyUid: '1', seriesUid: '2', sopUid: '3' }), (e: unknown) => e instanceof PacsHttpError && e.status === 404);
    const closedAt = await Promise.race([s.framesClosed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 2000))]);
    assert.ok(Number.isFinite(closedAt), 'frame connection left open');
  });

  it('with the metadata at hand, a refused header asks the PACS for no frame at all', async () => {
    const s = await stub(() => undefined);
    const client = new DicomWebClient({ baseUrl: s.url, timeoutMs: 10_000, retries: 0 });
    await assert.rejects(fetchFrame(client, { studyUid: '1', seriesUid: '2', sopUid: '3' }, { metadata: hugeHeader() }), InvalidPixelModuleError);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(s.seen, { metadata: 0, frames: 0, instance: 0 });
  });

  it('a decode failure is not retried: the frame is asked for once', async () => {
    const { file, meta } = loadFile(fixturePath('jpeg-ls-80-12.dcm'));
    const junk = new Uint8Array(file.frame(0));
    junk.fill(0x55, 40);
    const s = await stub((kind, _req, res) => (kind === 'metadata' ? json(res, [meta]) : multipart(res, 'image/jls; transfer-syntax=1.2.840.10008.1.2.4.80', junk)));
    const client = new DicomWebClient({ baseUrl: s.url, retries: 2, retryBaseDelayMs: 5 });
    await assert.rejects(fetchFrame(client, refOf(file)), (e: unknown) => e instanceof DecodeError && /CharLS error 5/.test(e.message));
    assert.deepEqual(s.seen, { metadata: 1, frames: 1, instance: 0 });
  });
});

describe('fetchFrame: whole-instance fallback when the frame endpoint cannot cut the frame', () => {
  const reference = loadFile(mf('explicit-le-3frames.dcm')).file;
  const refPixels = async (f: number) => Array.from(await decodeFrame(reference.transferSyntaxUid, reference.frame(f - 1), reference.pixelModule));

  for (const name of ['jpeg-ls-3frames-fragmented-nobot.dcm', 'jpeg2000-3frames-fragmented-nobot.dcm', 'rle-3frames-nobot.dcm']) {
    it(`${name}: frame endpoint answers 400 "Bad file format" (as Orthanc does for fragmented frames) → each frame read from the instance`, async () => {
      const { bytes, file, meta } = loadFile(mf(name));
      const s = await stub((kind, req, res) => {
        if (kind === 'metadata') return json(res, [meta]);
        if (kind === 'frames') return orthanc400(req, res);
        assert.match(req.headers.accept ?? '', /multipart\/related; *type="?application\/dicom"?; *transfer-syntax=\*/);
        multipart(res, 'application/dicom', bytes);
      });
      const client = new DicomWebClient({ baseUrl: s.url, retries: 2, retryBaseDelayMs: 5 });
      for (let f = 1; f <= 3; f++) {
        const got = await fetchFrame(client, refOf(file), { frame: f });
        assert.equal(got.source, 'instance');
        assert.equal(got.receivedTransferSyntaxUid, file.transferSyntaxUid);
        assert.deepEqual(Array.from(got.stored), await refPixels(f), `${name} frame ${f}`);
      }
      assert.deepEqual(s.seen, { metadata: 3, frames: 3, instance: 3 }, 'a 400 is not retried; one instance request per frame');
    });
  }

  it('not after transient failures (503, already retried) nor a 404: the frame endpoint\'s error stands', async () => {
    const { file, meta } = loadFile(mf('jpeg-ls-3frames-fragmented-nobot.dcm'));
    for (const status of [503, 404]) {
      const s = await stub((kind, _req, res) => (kind === 'metadata' ? json(res, [meta]) : res.writeHead(status).end()));
      const client = new DicomWebClient({ baseUrl: s.url, retries: 1, retryBaseDelayMs: 5 });
      await assert.rejects(fetchFrame(client, refOf(file)), (e: unknown) => e instanceof PacsHttpError && e.status === status);
      assert.equal(s.seen.instance, 0, `no fallback after ${status}`);
    }
  });

  it('the instance is capped at what the header says the pixels need; a larger one is refused unread', async () => {
    const { bytes, file, meta } = loadFile(mf('rle-3frames-nobot.dcm'));
    const padded = new Uint8Array(bytes.length + 5 * 1024 * 1024); // 5 MiB more than the file: beyond 1.25 × pixels + 4 MiB
    padded.set(bytes);
    const s = await stub((kind, req, res) => (kind === 'metadata' ? json(res, [meta]) : kind === 'frames' ? orthanc400(req, res) : multipart(res, 'application/dicom', padded)));
    const client = new DicomWebClient({ baseUrl: s.url, retries: 0 });
    await assert.rejects(fetchFrame(client, refOf(file)), ResponseTooLargeError);
    await assert.rejects(fetchFrame(client, refOf(file), { maxInstanceBytes: 1024 }), ResponseTooLargeError);
  });

  it('when the instance cannot be had either, the frame endpoint\'s answer is reported', async () => {
    const { file, meta } = loadFile(mf('jpeg-ls-3frames-fragmented-nobot.dcm'));
    const s = await stub((kind, req, res) => (kind === 'metadata' ? json(res, [meta]) : kind === 'frames' ? orthanc400(req, res) : res.writeHead(500).end('{"Message":"disk error"}')));
    const client = new DicomWebClient({ baseUrl: s.url, retries: 0 });
    await assert.rejects(fetchFrame(client, refOf(file)), (e: unknown) => e instanceof PacsHttpError && e.status === 400 && e.pacsDetail === 'Bad file format');
    assert.equal(s.seen.instance, 1);
  });
});

describe('fetchFrame: decoding only the resolution asked for', () => {
  it('a JPEG 2000 frame comes back at the reduced level with the pixel module of that array; other syntaxes in full', async () => {
    // The demo cohort's 2110 × 2032, 0.148 mm JPEG 2000 radiograph.
    const j2k = loadFile(join(DEMO_DICOM_DIR, '2.25.194028265246438451854232190121438986035/2.25.42896757839887391941928359406833499886/2.25.68054873820987736307455184883370014097.dcm'));
    const jls = loadFile(fixturePath('jpeg-ls-80-12.dcm'));
    for (const { file, meta } of [j2k, jls]) {
      const s = await stub((kind, _req, res) => {
        if (kind === 'metadata') json(res, [meta]);
        else multipart(res, `application/octet-stream; transfer-syntax=${file.transferSyntaxUid}`, file.frame(0));
      });
      const client = new DicomWebClient({ baseUrl: s.url, timeoutMs: 60_000, retries: 0 });
      const need = { fovMm: 200, size: 128 };
      const got = await fetchFrame(client, refOf(file), { resolution: need });
      const full = await fetchFrame(client, refOf(file));
      assert.equal(full.decodeLevel, 0);
      assert.deepEqual(full.pixelModule, file.pixelModule);
      if (file === j2k.file) {
        assert.equal(got.decodeLevel, 2);
        assert.deepEqual([got.pixelModule.rows, got.pixelModule.columns, got.stored.length], [528, 508, 528 * 508]);
        assert.deepEqual(got.pixelModule.pixelSpacingMm, [0.592, 0.592]);
        assert.equal(got.pixelModule.reducedFrom?.rows, 2110);
      } else {
        assert.equal(got.decodeLevel, 0);
        assert.deepEqual(got.stored, full.stored);
      }
    }
  });
});
