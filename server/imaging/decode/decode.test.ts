import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, it } from 'node:test';
import { parseDicomFile, type DicomFile } from '../dicom.ts';
import { DecodeError, UnsupportedTransferSyntaxError } from '../errors.ts';
import { maskStored } from '../pixels.ts';
import { TS } from '../transfer-syntax.ts';
import { decodeFrame } from './index.ts';
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
