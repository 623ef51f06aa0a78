/**
 * Bad DICOM input: every way a file can be wrong ends in a typed ImagingError with a clear message — and a
 * property-based test mutates real files (truncate, flip, splice) to show the whole decode path never throws
 * anything else, never hangs, and never allocates beyond the pixel limits.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeFrame } from './decode/index.ts';
import { parseDicomFile } from './dicom.ts';
import {
  DecodeError,
  DicomParseError,
  ImagingError,
  InvalidPixelModuleError,
  MissingAttributeError,
  UnsupportedTransferSyntaxError,
} from './errors.ts';
import { modalityValues } from './pixels.ts';
import { fixtureIndex, fixturePath } from '../../test/support/dicom-fixtures.ts';

const read = (name: string) => new Uint8Array(readFileSync(fixturePath(name)));

/** Overwrites a US element's value in a copy of the file. */
function patchUs(bytes: Uint8Array, tag: string, value: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  const el = parseDicomFile(copy).dataSet.elements[tag]!;
  new DataView(copy.buffer).setUint16(el.dataOffset, value, true);
  return copy;
}

describe('bad DICOM input gives typed errors', () => {
  it('not DICOM at all / empty', () => {
    assert.throws(() => parseDicomFile(new Uint8Array(0)), DicomParseError);
    assert.throws(() => parseDicomFile(new Uint8Array(Buffer.from('<html>not dicom</html>'.repeat(20)))), (e: unknown) => {
      assert.ok(e instanceof DicomParseError);
      assert.match(e.message, /DICM/);
      return true;
    });
  });

  it('truncated inside the header', () => {
    const b = read('explicit-le-12.dcm');
    assert.throws(() => parseDicomFile(b.subarray(0, 300)), DicomParseError);
  });

  it('truncated inside native pixel data', () => {
    const b = read('explicit-le-12.dcm');
    // Caught while parsing (the element overruns the buffer) or, for a lenient parse, when the frame is read.
    assert.throws(() => parseDicomFile(b.subarray(0, b.length - 1000)).frame(0), (e: unknown) => e instanceof DicomParseError && /overrun|truncated|fewer/.test(e.message));
  });

  it('truncated inside encapsulated pixel data', () => {
    const b = read('jpeg-ls-80-12.dcm');
    assert.throws(() => {
      const f = parseDicomFile(b.subarray(0, b.length - 500));
      f.frame(0);
    }, DicomParseError);
  });

  it('missing pixel data', () => {
    const b = read('explicit-le-12.dcm');
    const el = parseDicomFile(b).pixelDataElement;
    const f = parseDicomFile(b.subarray(0, el.dataOffset - 12));
    assert.equal(f.hasPixelData, false);
    assert.throws(() => f.frame(0), (e: unknown) => e instanceof MissingAttributeError && /Pixel Data/.test(e.message));
  });

  it('absurd dimensions are refused before any allocation', () => {
    const b = patchUs(patchUs(read('explicit-le-12.dcm'), 'x00280010', 65535), 'x00280011', 65535);
    const f = parseDicomFile(b, { limits: { maxDimension: 16384, maxTotalPixels: 100_000_000 } });
    assert.throws(() => f.pixelModule, (e: unknown) => e instanceof InvalidPixelModuleError && /65535/.test(e.message));
    const zero = parseDicomFile(patchUs(read('explicit-le-12.dcm'), 'x00280010', 0));
    assert.throws(() => zero.pixelModule, InvalidPixelModuleError);
    const bits = parseDicomFile(patchUs(read('explicit-le-12.dcm'), 'x00280100', 12));
    assert.throws(() => bits.pixelModule, /BitsAllocated 12/);
  });

  it('header dimensions larger than the compressed frame: DecodeError for every codec', async () => {
    for (const name of ['jpeg-lossless-70-12.dcm', 'jpeg-ls-80-12.dcm', 'jpeg2000-90-12.dcm', 'rle-12.dcm']) {
      const f = parseDicomFile(patchUs(read(name), 'x00280010', 200));
      await assert.rejects(decodeFrame(f.transferSyntaxUid, f.frame(0), f.pixelModule), DecodeError, name);
    }
  });

  it('unsupported transfer syntax', async () => {
    const f = parseDicomFile(read('explicit-le-12.dcm'));
    await assert.rejects(decodeFrame('1.2.840.10008.1.2.4.100', f.frame(0), f.pixelModule), (e: unknown) => {
      assert.ok(e instanceof UnsupportedTransferSyntaxError);
      assert.match(e.message, /1\.2\.840\.10008\.1\.2\.4\.100 cannot be decoded locally/);
      return true;
    });
  });

  it('corrupt compressed data', async () => {
    for (const name of ['jpeg-lossless-70-12.dcm', 'jpeg-ls-80-12.dcm', 'jpeg2000-90-12.dcm', 'rle-12.dcm', 'jpeg-baseline-50-8.dcm']) {
      const f = parseDicomFile(read(name));
      const frame = new Uint8Array(f.frame(0));
      frame.fill(0xff, 30, frame.length - 2);
      await assert.rejects(decodeFrame(f.transferSyntaxUid, frame, f.pixelModule), DecodeError, name);
    }
  });
});

/** The whole path the service runs on a file; returns normally or throws. */
async function pipeline(bytes: Uint8Array): Promise<void> {
  const f = parseDicomFile(bytes, { limits: { maxDimension: 4096, maxTotalPixels: 4_000_000 } });
  const pm = f.pixelModule;
  const stored = await decodeFrame(f.transferSyntaxUid, f.frame(0), pm);
  if (pm.samplesPerPixel === 1) modalityValues(stored, pm);
}

describe('property: mutated real DICOM never escapes as an untyped error, a hang or a memory blow-up', () => {
  const sources = fixtureIndex()
    .filter((f) => !f.file.includes('51')) // .51 is refused up front; others reach their codec
    .map((f) => read(f.file));

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
    fc.record({
      kind: fc.constant('flip' as const),
      flips: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }),
      headerBias: fc.boolean(),
    }),
    fc.record({
      kind: fc.constant('splice' as const),
      from: fc.double({ min: 0, max: 1, noNaN: true }),
      to: fc.double({ min: 0, max: 1, noNaN: true }),
      len: fc.integer({ min: 1, max: 512 }),
      other: fc.nat(),
    }),
  );

  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

  function mutate(src: Uint8Array, m: Mutation, all: Uint8Array[]): Uint8Array {
    if (m.kind === 'truncate') return src.slice(0, Math.floor(m.at * src.length));
    if (m.kind === 'flip') {
      const out = new Uint8Array(src);
      // Half the time aim at the first 1.2 kB where the header and pixel-module values live.
      const span = m.headerBias ? Math.min(1200, out.length) : out.length;
      for (const [pos, x] of m.flips) {
        const i = Math.floor(pos * span);
        out[i] = out[i]! ^ x;
      }
      return out;
    }
    const other = all[m.other % all.length]!;
    const from = Math.floor(m.from * other.length);
    const chunk = other.subarray(from, from + m.len);
    const to = Math.floor(m.to * src.length);
    const out = new Uint8Array(src.length + chunk.length);
    out.set(src.subarray(0, to));
    out.set(chunk, to);
    out.set(src.subarray(to), to + chunk.length);
    return out;
  }

  it('for 600 mutations across every fixture syntax', async () => {
    const rss0 = process.memoryUsage().rss;
    let worstMs = 0;
    let typed = 0;
    let ok = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: sources.length - 1 }), mutation, async (which, m) => {
        const bytes = mutate(sources[which]!, m, sources);
        const t0 = performance.now();
        try {
          await pipeline(bytes);
          ok++;
        } catch (e) {
          if (!(e instanceof ImagingError)) throw new Error(`untyped error escaped: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
          assert.ok(e.message.length > 10, 'error message says something');
          typed++;
        }
        const ms = performance.now() - t0;
        worstMs = Math.max(worstMs, ms);
        assert.ok(ms < 2000, `one decode took ${ms} ms`);
      }),
      { numRuns: 600, seed: 20261127 },
    );
    const grownMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.ok(grownMb < 300, `RSS grew by ${grownMb.toFixed(0)} MB`);
    assert.ok(typed > 50 && ok > 50, `both outcomes exercised (typed errors ${typed}, decoded ${ok})`);
  });
});

describe('multi-frame encapsulated pixel data without a Basic Offset Table', () => {
  const dir = fixturePath('../dicom-multiframe');
  const load = (name: string) => parseDicomFile(new Uint8Array(readFileSync(`${dir}/${name}`)));
  const reference = load('explicit-le-3frames.dcm');

  for (const name of ['jpeg-ls-3frames-fragmented-nobot.dcm', 'jpeg2000-3frames-fragmented-nobot.dcm', 'rle-3frames-nobot.dcm']) {
    it(`${name}: every frame is found (fragments up to the frame's end marker) and decodes to the source pixels`, async () => {
      const file = load(name);
      const el = file.pixelDataElement;
      assert.equal(el.basicOffsetTable?.length ?? 0, 0, 'the fixture has an empty Basic Offset Table');
      assert.ok((el.fragments?.length ?? 0) >= 3, 'at least one fragment per frame');
      for (let f = 0; f < 3; f++) {
        const ours = await decodeFrame(file.transferSyntaxUid, file.frame(f), file.pixelModule);
        const ref = await decodeFrame(reference.transferSyntaxUid, reference.frame(f), reference.pixelModule);
        assert.deepEqual(Array.from(ours), Array.from(ref), `${name} frame ${f + 1}`);
      }
    });
  }

  it('a frame beyond the frames the fragments hold is a DicomParseError naming the count', () => {
    const bytes = new Uint8Array(readFileSync(`${dir}/jpeg-ls-3frames-fragmented-nobot.dcm`));
    const file = parseDicomFile(bytes);
    // Say 4 frames where the fragments end 3 codestreams: frame 4 cannot be located.
    const el = file.dataSet.elements.x00280008!;
    bytes.set(Buffer.from('4 '.padEnd(el.length, ' ')), el.dataOffset);
    assert.throws(() => parseDicomFile(bytes).frame(3), (e: unknown) => e instanceof DicomParseError && /hold 3 frame\(s\), 4 announced/.test(e.message));
  });
});
