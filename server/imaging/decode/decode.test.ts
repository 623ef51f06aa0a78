import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, it } from 'node:test';
import { parseDicomFile, type DicomFile } from '../dicom.ts';
import { DecodeError, UnsupportedTransferSyntaxError } from '../errors.ts';
import { maskStored } from '../pixels.ts';
import { TS } from '../transfer-syntax.ts';
import { decodeFrame } from './index.ts';
import { CHARLS_ERRORS, explainCharlsError } from './jpeg-ls.ts';
import { codec, readCppException, resetCodec } from './wasm.ts';
import {
  demoCohortFiles,
  fixtureIndex,
  fixturePath,
  referencePixels,
  repoRelative,
} from '../../../test/support/dicom-fixtures.ts';

async function decodeAll(file: DicomFile): Promise<Int32Array> {
  const pm = file.pixelModule;
  const per = pm.rows * pm.columns * pm.samplesPerPixel;
  const out = new Int32Array(per * pm.numberOfFrames);
  for (let f = 0; f < pm.numberOfFrames; f++) {
    out.set(Int32Array.from(maskStored(await decodeFrame(file.transferSyntaxUid, file.frame(f), pm), pm)), f * per);
  }
  return out;
}

function load(path: string): DicomFile {
  return parseDicomFile(readFileSync(path));
}

function firstDifference(a: Int32Array, b: Int32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `index ${i}: ${a[i]} vs ${b[i]}`;
  return 'none';
}

const fixtures = fixtureIndex();

describe('frame decoders on the committed fixtures (real dcmtk / OpenJPEG encoder output)', () => {
  const decodable = fixtures.filter((f) => f.transferSyntax !== TS.jpegExtended);

  it('match pydicom+GDCM bit-exactly for every lossless file, and stay close for lossy ones', async () => {
    const paths = decodable.map((f) => fixturePath(f.file));
    const refs = await referencePixels(paths);
    for (const [i, f] of decodable.entries()) {
      const ours = await decodeAll(load(paths[i]!));
      const ref = refs[i]!;
      if (f.bitExact) {
        assert.deepEqual(ours, ref, `${f.file}: first difference at ${firstDifference(ours, ref)}`);
      } else {
        assert.equal(ours.length, ref.length, f.file);
        let sum = 0;
        for (let k = 0; k < ours.length; k++) sum += Math.abs(ours[k]! - ref[k]!);
        assert.ok(sum / ours.length <= 1, `${f.file}: mean |ours − pydicom| = ${sum / ours.length}`);
      }
    }
  });

  it('reproduce the uncompressed source exactly (lossless) or within the codec tolerance (lossy)', async () => {
    for (const f of decodable.filter((x) => x.reference)) {
      const ours = await decodeAll(load(fixturePath(f.file)));
      const src = await decodeAll(load(fixturePath(f.reference!)));
      if (f.bitExact) {
        assert.deepEqual(ours, src, `${f.file} vs ${f.reference}: ${firstDifference(ours, src)}`);
        continue;
      }
      let maxDiff = 0;
      let sum = 0;
      for (let k = 0; k < ours.length; k++) {
        const d = Math.abs(ours[k]! - src[k]!);
        maxDiff = Math.max(maxDiff, d);
        sum += d;
      }
      const pm = load(fixturePath(f.file)).pixelModule;
      if (f.transferSyntax === TS.jpegLSNear) assert.ok(maxDiff <= 2, `${f.file}: NEAR=2 but max error ${maxDiff}`);
      else assert.ok(sum / ours.length < 0.03 * 2 ** pm.bitsStored, `${f.file}: mean error ${sum / ours.length}`);
      assert.ok(maxDiff > 0 || f.transferSyntax === TS.jpegLSNear, `${f.file} is lossy yet identical to its source`);
    }
  });

  it('refuses 12-bit JPEG extended (.51) with UnsupportedTransferSyntaxError so the PACS is asked to transcode', async () => {
    const file = load(fixturePath('jpeg-extended-51-12.dcm'));
    await assert.rejects(decodeFrame(file.transferSyntaxUid, file.frame(0), file.pixelModule), UnsupportedTransferSyntaxError);
  });

  it('refuses a syntax it does not know', async () => {
    const file = load(fixturePath('explicit-le-12.dcm'));
    await assert.rejects(decodeFrame(TS.explicitBE, file.frame(0), file.pixelModule), (e: unknown) => {
      assert.ok(e instanceof UnsupportedTransferSyntaxError);
      assert.match(e.message, /1\.2\.840\.10008\.1\.2\.2/);
      return true;
    });
  });

  it('rejects a bitstream whose geometry disagrees with the DICOM header, for every codec', async () => {
    for (const name of ['jpeg-lossless-70-12.dcm', 'jpeg-ls-80-12.dcm', 'jpeg2000-90-12.dcm', 'rle-12.dcm', 'jpeg-baseline-50-8.dcm']) {
      const file = load(fixturePath(name));
      const pm = { ...file.pixelModule, rows: file.pixelModule.rows + 1 };
      await assert.rejects(decodeFrame(file.transferSyntaxUid, file.frame(0), pm), DecodeError, name);
    }
  });

  it('recovers after a codec failure (next decode of a good frame succeeds)', async () => {
    const good = load(fixturePath('jpeg2000-90-12.dcm'));
    const bytes = new Uint8Array(good.frame(0));
    bytes.fill(0x55, 40);
    await assert.rejects(decodeFrame(good.transferSyntaxUid, bytes, good.pixelModule), DecodeError);
    const ok = await decodeFrame(good.transferSyntaxUid, good.frame(0), good.pixelModule);
    assert.equal(ok.length, good.pixelModule.rows * good.pixelModule.columns);
  });
});

describe('frame decoders on the committed demo cohort', () => {
  const files = demoCohortFiles();
  it('decode one file of every transfer syntax in the cohort bit-exactly (vs pydicom+GDCM)', async () => {
    assert.ok(files.length > 0, 'the committed demo cohort (server/sandbox/demo-cohort/dicom) is missing');
    const bySyntax = new Map<string, string>();
    for (const p of files) {
      const ts = parseDicomFile(readFileSync(p), { untilTag: 'x00020010' }).transferSyntaxUid;
      if (!bySyntax.has(ts)) bySyntax.set(ts, p);
    }
    const chosen = [...bySyntax.values()];
    const refs = await referencePixels(chosen);
    for (const [i, p] of chosen.entries()) {
      const ours = await decodeAll(load(p));
      assert.deepEqual(ours, refs[i], `${repoRelative(p)} (${basename(p)}): ${firstDifference(ours, refs[i]!)}`);
    }
    assert.ok(bySyntax.size >= 1);
  });
});

describe('codec failures in words (CharLS error codes, C++ exceptions)', () => {
  const jls = () => load(fixturePath('jpeg-ls-80-12.dcm'));

  it('a corrupt JPEG-LS frame names the CharLS error, not the address of its exception object', async () => {
    const file = jls();
    const bytes = new Uint8Array(file.frame(0));
    bytes.fill(0x55, 40);
    await assert.rejects(decodeFrame(file.transferSyntaxUid, bytes, file.pixelModule), (e: unknown) => {
      assert.ok(e instanceof DecodeError);
      assert.equal(e.message, 'JPEG-LS decoding failed: CharLS error 5 invalid_encoded_data (Invalid JPEG-LS stream, the encoded bit stream contains a general structural problem)');
      assert.equal(e.userMessage, 'the image file is corrupt (the JPEG-LS compressed data is invalid)');
      return true;
    });
    const cut = file.frame(0).slice(0, 30);
    await assert.rejects(decodeFrame(file.transferSyntaxUid, cut, file.pixelModule), (e: unknown) => {
      assert.ok(e instanceof DecodeError);
      assert.match(e.message, /CharLS error 4 source_buffer_too_small/);
      assert.equal(e.userMessage, 'the image file is corrupt (the JPEG-LS data is truncated: it ends before the image is complete)');
      return true;
    });
  });

  it('the error-code table matches the bundled CharLS: provoked errors carry the code whose name fits CharLS\'s own text', async () => {
    const good = jls().frame(0);
    const m = await codec('charls');
    const cases: [Uint8Array, number, RegExp][] = [
      [good.slice(0, 30), 4, /source buffer is too small/],
      [Uint8Array.from([...good.slice(0, 40), ...new Uint8Array(good.length - 40).fill(0x55)]), 5, /general structural problem/],
      [Uint8Array.from([0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0, 10, 0, 10, 1, 1, 0x11, 0, 0xff, 0xda]), 10, /not encoded with the JPEG-LS algorithm/],
      [Uint8Array.from([0xff, 0xd8, 0xff, 0x02, 0, 4, 0, 0]), 11, /unknown JPEG marker/],
      [Uint8Array.from([0x12, 0x34, ...good.slice(2)]), 12, /start byte \(0xFF\)/],
      [Uint8Array.from([0xff, 0xd8, 0xff, 0xd8, ...good.slice(2)]), 18, /more then one Start Of Image/],
    ];
    for (const [bytes, code, text] of cases) {
      const dec = new m.JpegLSDecoder();
      let thrown: unknown;
      try {
        dec.getEncodedBuffer(bytes.length).set(bytes);
        dec.decode();
      } catch (e) {
        thrown = e;
      } finally {
        dec.delete();
      }
      const ex = readCppException(m, thrown);
      assert.equal(ex?.typeName, 'N6charls12jpegls_errorE');
      assert.equal(ex?.errorCode, code, `expected CharLS error ${code} (${CHARLS_ERRORS[code]![0]})`);
      assert.match(ex?.what ?? '', text);
      assert.equal(explainCharlsError(ex)?.reason, CHARLS_ERRORS[code]![1]);
    }
    resetCodec('charls'); // the instance threw C++ exceptions: let the next user start a fresh one
  });

  it('an unknown CharLS code, or another codec\'s exception, falls back to "could not be decoded"', async () => {
    assert.deepEqual(explainCharlsError({ typeName: 'N6charls12jpegls_errorE', errorCode: 999, what: 'new' }), { detail: 'CharLS error 999 (new)' });
    assert.equal(explainCharlsError({ typeName: 'PKc', what: 'x' }), undefined);
    assert.equal(new DecodeError(TS.jpegLS, 'x').userMessage, 'the image file is corrupt (the JPEG-LS data could not be decoded)');
    const file = load(fixturePath('jpeg-baseline-50-8.dcm'));
    const bytes = new Uint8Array(file.frame(0));
    bytes.fill(0x55, 300);
    await assert.rejects(decodeFrame(file.transferSyntaxUid, bytes, file.pixelModule), (e: unknown) => {
      assert.ok(e instanceof DecodeError);
      assert.doesNotMatch(e.message, /failed: \d+$/, 'not a bare exception address');
      assert.match(e.message, /JPEG decoding failed: .*decompressing JPEG image/);
      assert.equal(e.userMessage, 'the image file is corrupt (the JPEG baseline data could not be decoded)');
      return true;
    });
  });
});
