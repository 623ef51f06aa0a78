/**
 * The imaging-access test cases, written once and run against every DICOMweb server the service must work with:
 * the embedded sandbox server (embedded-dicomweb.test.ts) and a real PACS, Orthanc (orthanc.test.ts).
 * Each server is loaded with the same corpus: the committed fixtures (every syntax incl. .50/.51/.57/.81/.91,
 * implicit VR, multi-frame, signed) plus the committed demo cohort when present.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { decodeFrame } from '../../server/imaging/decode/index.ts';
import { parseDicomFile, type DicomFile } from '../../server/imaging/dicom.ts';
import { jsonString, jsonStrings, TAG } from '../../server/imaging/dicom-json.ts';
import type { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { NoMatchingImageError, NotAcceptableError, PacsAuthError, PacsHttpError, UnsupportedTransferSyntaxError } from '../../server/imaging/errors.ts';
import { pixelModuleFromJson } from '../../server/imaging/pixel-module.ts';
import { maskStored } from '../../server/imaging/pixels.ts';
import { fetchFrame } from '../../server/imaging/retrieve.ts';
import { selectImage, type ImagingStudyLike } from '../../server/imaging/select.ts';
import { isLossy, TS } from '../../server/imaging/transfer-syntax.ts';
import { demoCohortFiles, fixtureIndex, fixturePath, repoRelative } from '../support/dicom-fixtures.ts';

export interface ServerUnderTest {
  name: string;
  /** A client with valid credentials. */
  client: DicomWebClient;
  /** Same server, wrong credentials. */
  badAuthClient: DicomWebClient;
  /** DICOMweb root and headers for raw HTTP checks. */
  rootUrl: string;
  authHeaders: Record<string, string>;
  /** Stored syntaxes this server cannot transcode to explicit VR LE (documented server limits). */
  cannotTranscode: ReadonlySet<string>;
}

export interface CorpusEntry {
  path: string;
  label: string;
  file: DicomFile;
  syntax: string;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
}

/** Every file a server under test is loaded with. */
export function corpusFiles(): string[] {
  return [...fixtureIndex().map((f) => fixturePath(f.file)), ...demoCohortFiles()];
}

/**
 * Files whose pixels are fetched and compared: all fixtures, plus from the demo cohort one file per transfer
 * syntax and the largest file (the full-size radiograph).
 */
export function pixelCorpus(): CorpusEntry[] {
  const entries: CorpusEntry[] = [];
  const add = (path: string, label: string) => {
    const file = parseDicomFile(readFileSync(path));
    entries.push({
      path,
      label,
      file,
      syntax: file.transferSyntaxUid,
      studyUid: file.studyInstanceUid,
      seriesUid: file.seriesInstanceUid,
      sopUid: file.sopInstanceUid,
    });
  };
  for (const f of fixtureIndex()) add(fixturePath(f.file), f.file);
  const bySyntax = new Map<string, string>();
  let largest: { p: string; n: number } | undefined;
  for (const p of demoCohortFiles()) {
    const head = parseDicomFile(readFileSync(p), { untilTag: 'x7fe00010' });
    const ts = head.transferSyntaxUid;
    if (!bySyntax.has(ts)) bySyntax.set(ts, p);
    const n = (head.dataSet.uint16('x00280010') ?? 0) * (head.dataSet.uint16('x00280011') ?? 0);
    if (!largest || n > largest.n) largest = { p, n };
  }
  const chosen = new Set([...bySyntax.values(), ...(largest ? [largest.p] : [])]);
  for (const p of chosen) add(p, `demo ${repoRelative(p)}`);
  return entries;
}

async function localPixels(file: DicomFile, frameIndex: number): Promise<Int32Array> {
  const pm = file.pixelModule;
  return Int32Array.from(maskStored(await decodeFrame(file.transferSyntaxUid, file.frame(frameIndex), pm), pm));
}

function meanAbsDiff(a: Int32Array, b: Int32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

/** Registers the cases; `server()` is called inside each test (the server starts in a `before` hook). */
export function imagingAccessCases(server: () => ServerUnderTest, corpus: () => CorpusEntry[]): void {
  const fixture = () => corpus().find((e) => e.label === 'explicit-le-12.dcm')!;
  const byLabel = (label: string) => {
    const e = corpus().find((c) => c.label === label);
    assert.ok(e, `corpus lacks ${label}`);
    return e;
  };

  describe('QIDO-RS', () => {
    it('finds the study by PatientID and returns study attributes as DICOM JSON', async () => {
      const { client } = server();
      const e = fixture();
      const studies = await client.searchStudies({ PatientID: 'FIXTURE-0001' });
      assert.equal(studies.length, 1);
      const s = studies[0]!;
      assert.equal(jsonString(s, TAG.StudyInstanceUID), e.studyUid);
      assert.equal(jsonString(s, TAG.AccessionNumber), 'FXACC0001');
      assert.deepEqual(jsonStrings(s, TAG.ModalitiesInStudy), ['DX']);
      assert.equal(Number(jsonString(s, TAG.NumberOfStudyRelatedInstances)), fixtureIndex().length);
      assert.equal(s[TAG.StudyDate]?.vr, 'DA');
    });

    it('matches StudyDate ranges, AccessionNumber, ModalitiesInStudy, wildcards and UID lists', async () => {
      const { client } = server();
      const uid = fixture().studyUid;
      const hit = async (q: Record<string, string>) =>
        (await client.searchStudies(q)).some((s) => jsonString(s, TAG.StudyInstanceUID) === uid);
      assert.equal(await hit({ StudyDate: '20240101-20240103' }), true);
      assert.equal(await hit({ StudyDate: '20240102' }), true);
      assert.equal(await hit({ StudyDate: '20240103-' }), false);
      assert.equal(await hit({ StudyDate: '-20240101' }), false);
      assert.equal(await hit({ AccessionNumber: 'FXACC0001' }), true);
      assert.equal(await hit({ AccessionNumber: 'NOPE' }), false);
      assert.equal(await hit({ ModalitiesInStudy: 'DX' }), true);
      assert.equal(await hit({ ModalitiesInStudy: 'MR' }), false);
      assert.equal(await hit({ StudyInstanceUID: `1.2.3,${uid}` }), true);
      assert.equal(await hit({ PatientID: 'FIXTURE-0002' }), false);
      assert.equal(await hit({ PatientID: 'FIXTURE-*' }), true);
    });

    it('lists the series of the study with Modality matching and includefield, honouring limit/offset', async () => {
      const { client } = server();
      const e = fixture();
      const all = await client.searchSeries(e.studyUid, { Modality: 'DX', includefield: 'BodyPartExamined' });
      assert.equal(all.length, fixtureIndex().length);
      assert.ok(all.every((s) => jsonString(s, TAG.BodyPartExamined) === 'HIP'));
      assert.ok(all.some((s) => jsonString(s, TAG.SeriesInstanceUID) === e.seriesUid));
      assert.equal((await client.searchSeries(e.studyUid, { Modality: 'CT' })).length, 0);
      const page1 = await client.searchSeries(e.studyUid, { limit: 5 });
      const page2 = await client.searchSeries(e.studyUid, { limit: 5, offset: 5 });
      assert.equal(page1.length, 5);
      assert.equal(page2.length, 5);
      const ids = new Set([...page1, ...page2].map((s) => jsonString(s, TAG.SeriesInstanceUID)));
      assert.equal(ids.size, 10);
    });

    it('lists instances of a series, and finds an instance archive-wide by SOPInstanceUID', async () => {
      const { client } = server();
      const e = fixture();
      const inSeries = await client.searchInstances(e.studyUid, e.seriesUid);
      assert.deepEqual(inSeries.map((i) => jsonString(i, TAG.SOPInstanceUID)), [e.sopUid]);
      const global = await client.searchInstances(undefined, undefined, { SOPInstanceUID: e.sopUid });
      assert.equal(global.length, 1);
      assert.equal(jsonString(global[0]!, TAG.StudyInstanceUID), e.studyUid);
    });

    it('finds each sampled demo-cohort study by its PatientID', async () => {
      const { client } = server();
      for (const d of corpus().filter((c) => c.label.startsWith('demo'))) {
        const pid = d.file.string(TAG.PatientID)!;
        const studies = await client.searchStudies({ PatientID: pid, ModalitiesInStudy: 'DX' });
        assert.ok(studies.some((s) => jsonString(s, TAG.StudyInstanceUID) === d.studyUid), `${d.label}: study not found by PatientID`);
      }
    });
  });

  describe('WADO-RS', () => {
    it('returns instance metadata whose pixel module equals the file header, with Pixel Data as BulkDataURI', async () => {
      const { client } = server();
      for (const e of corpus()) {
        const [md] = await client.retrieveMetadata(e.studyUid, e.seriesUid, e.sopUid);
        assert.ok(md, e.label);
        assert.deepEqual(pixelModuleFromJson(md), e.file.pixelModule, e.label);
        // Pixel Data never comes inline as Value; Orthanc 1.10 omits it for some encapsulated instances.
        const px = md[TAG.PixelData];
        assert.ok(px === undefined || typeof px.BulkDataURI === 'string' || typeof px.InlineBinary === 'string', `${e.label}: Pixel Data`);
        if (px?.BulkDataURI) assert.match(px.BulkDataURI, new RegExp(`/instances/${e.sopUid.replace(/\./g, '\\.')}/`));
        assert.equal(md[TAG.TransferSyntaxUID], undefined, 'File Meta must not appear in metadata');
      }
    });

    it('delivers every stored syntax (incl. each compressed syntax of the demo cohort) as pixels equal to the local decode', async () => {
      const { client, cannotTranscode } = server();
      for (const e of corpus()) {
        const ref = { studyUid: e.studyUid, seriesUid: e.seriesUid, sopUid: e.sopUid };
        for (let f = 1; f <= e.file.pixelModule.numberOfFrames; f++) {
          if (e.syntax === TS.jpegExtended) {
            // 12-bit JPEG is not decodable here: the client must have the PACS transcode, or fail with a typed error.
            if (cannotTranscode.has(e.syntax)) {
              await assert.rejects(fetchFrame(client, ref, { frame: f }), UnsupportedTransferSyntaxError, e.label);
              continue;
            }
            const got = await fetchFrame(client, ref, { frame: f });
            assert.equal(got.transcodedByPacs, true);
            assert.equal(got.receivedTransferSyntaxUid, TS.jpegExtended);
            assert.equal(got.stored.length, e.file.pixelModule.rows * e.file.pixelModule.columns);
            continue;
          }
          const got = await fetchFrame(client, ref, { frame: f });
          assert.equal(got.transcodedByPacs, false, e.label);
          assert.equal(got.receivedTransferSyntaxUid, e.syntax, `${e.label}: frame should arrive in its stored syntax`);
          const ours = Int32Array.from(maskStored(got.stored, got.pixelModule));
          assert.deepEqual(ours, await localPixels(e.file, f - 1), `${e.label} frame ${f}`);
        }
      }
    });

    it('transcodes compressed frames to explicit VR LE on request (exact for lossless syntaxes)', async () => {
      const { client, cannotTranscode } = server();
      for (const e of corpus().filter((c) => c.syntax !== TS.explicitLE && c.syntax !== TS.implicitLE)) {
        const call = () => client.retrieveFrames(e.studyUid, e.seriesUid, e.sopUid, [1], { transferSyntaxes: [TS.explicitLE] });
        if (cannotTranscode.has(e.syntax)) {
          await assert.rejects(
            call(),
            (err: unknown) => err instanceof NotAcceptableError || (err instanceof PacsHttpError && err.status >= 400),
            e.label,
          );
          continue;
        }
        const [frame] = await call();
        assert.equal(frame!.transferSyntaxUid, TS.explicitLE, e.label);
        if (e.syntax === TS.jpegExtended) continue; // no local decoder to compare with (covered above)
        const pm = e.file.pixelModule;
        const native = Int32Array.from(maskStored(await decodeFrame(TS.explicitLE, frame!.body, pm), pm));
        const local = await localPixels(e.file, 0);
        if (isLossy(e.syntax)) assert.ok(meanAbsDiff(native, local) <= 1, `${e.label}: mean |PACS − local| = ${meanAbsDiff(native, local)}`);
        else assert.deepEqual(native, local, e.label);
      }
    });

    it('retrieves Part 10 instances in their stored syntax with transfer-syntax=*', async () => {
      const { client } = server();
      for (const label of ['jpeg-ls-80-12.dcm', 'rle-signed-2frames.dcm', 'implicit-le-12.dcm']) {
        const e = byLabel(label);
        const [bytes] = await client.retrieveInstances(e.studyUid, e.seriesUid, e.sopUid, { transferSyntax: '*' });
        const got = parseDicomFile(bytes!);
        assert.equal(got.sopInstanceUid, e.sopUid);
        assert.equal(got.transferSyntaxUid, e.syntax);
        assert.deepEqual(await localPixels(got, 0), await localPixels(e.file, 0));
      }
    });

    it('retrieves a compressed instance transcoded to explicit VR LE (the PS3.18 default) with identical pixels', async () => {
      const { client } = server();
      const e = byLabel('jpeg-lossless-70-16.dcm');
      const [bytes] = await client.retrieveInstances(e.studyUid, e.seriesUid, e.sopUid);
      const got = parseDicomFile(bytes!);
      assert.equal(got.transferSyntaxUid, TS.explicitLE);
      assert.equal(got.string(TAG.PatientID), 'FIXTURE-0001');
      assert.deepEqual(await localPixels(got, 0), await localPixels(e.file, 0));
    });

    it('refuses a bare application/octet-stream Accept for frames (frames are multipart)', async () => {
      const { rootUrl, authHeaders } = server();
      const e = fixture();
      const r = await fetch(`${rootUrl}/studies/${e.studyUid}/series/${e.seriesUid}/instances/${e.sopUid}/frames/1`, {
        headers: { ...authHeaders, accept: 'application/octet-stream' },
      });
      await r.arrayBuffer();
      assert.ok(r.status === 400 || r.status === 406, `status ${r.status}`);
    });

    it('answers 404 (typed, not retryable) for an unknown study', async () => {
      const { client } = server();
      await assert.rejects(client.retrieveMetadata('1.2.3.4.5.6.7.8.9'), (e: unknown) => e instanceof PacsHttpError && e.status === 404 && !e.retryable);
    });

    it('selects the image from an ImagingStudy by the model rule, using the DICOM tags from the server', async () => {
      const { client } = server();
      const left = byLabel('explicit-le-12.dcm');
      const right = byLabel('explicit-le-16.dcm');
      const anotherLeft = byLabel('jpeg-ls-80-12.dcm');
      const study: ImagingStudyLike = {
        resourceType: 'ImagingStudy',
        identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:${left.studyUid}` }],
        series: [left, right, anotherLeft].map((e, i) => ({ uid: e.seriesUid, number: i + 1, modality: { code: 'DX' } })),
      };
      const rule = { modality: 'DX', bodyPart: 'HIP', viewPosition: 'AP', laterality: 'R' };
      const sel = await selectImage(client, study, rule);
      assert.equal(sel.sopUid, right.sopUid);
      assert.equal(sel.laterality, 'R');
      const frame = await fetchFrame(client, sel, { metadata: sel.metadata });
      assert.deepEqual(Int32Array.from(maskStored(frame.stored, frame.pixelModule)), await localPixels(right.file, 0));
      await assert.rejects(selectImage(client, study, { ...rule, viewPosition: 'LL' }), (e: unknown) => e instanceof NoMatchingImageError && /ViewPosition is AP/.test(e.message));
    });

    it('rejects wrong credentials with PacsAuthError', async () => {
      const { badAuthClient } = server();
      await assert.rejects(badAuthClient.searchStudies({ PatientID: 'FIXTURE-0001' }), PacsAuthError);
    });
  });
}
