/**
 * DICOM Part 10 parsing (PS3.10 §7) on top of dicom-parser: transfer syntax, identifying UIDs, the pixel module and
 * per-frame access to native or encapsulated (PS3.5 §A.4) pixel data. Every failure becomes a typed error; nothing
 * from dicom-parser (which throws strings and plain objects) escapes.
 */
import dicomParser, { type DataSet, type Element } from 'dicom-parser';
import { DicomParseError, MissingAttributeError } from './errors.ts';
import {
  DEFAULT_PIXEL_LIMITS,
  frameByteLength,
  validatePixelModule,
  type PixelLimits,
  type PixelModule,
} from './pixel-module.ts';
import { isEncapsulated, TS } from './transfer-syntax.ts';

/** Encapsulated syntaxes whose frames end with the bytes FFD9 (JPEG lossless SV1, JPEG-LS, JPEG 2000; and all .5x). */
const ENDS_WITH_FFD9 = new Set<string>([TS.jpegLosslessSV1, TS.jpegLS, TS.jpegLSNear, TS.jpeg2000Lossless, TS.jpeg2000]);

/** dicom-parser tag key (`xggggeeee`) from a DICOM JSON key (`GGGGEEEE`). */
export const dpTag = (jsonTag: string): string => `x${jsonTag.toLowerCase()}`;

function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  if (typeof e === 'object' && e !== null && 'exception' in e) return describe((e as { exception: unknown }).exception);
  return String(e);
}

export class DicomFile {
  readonly transferSyntaxUid: string;
  private pm: PixelModule | undefined;

  constructor(
    readonly bytes: Uint8Array,
    readonly dataSet: DataSet,
    private readonly limits: PixelLimits,
  ) {
    const ts = dataSet.string('x00020010');
    if (!ts) throw new DicomParseError('Part 10 meta header has no TransferSyntaxUID (0002,0010)');
    this.transferSyntaxUid = ts.replace(/\0/g, '').trim();
  }

  string(jsonTag: string): string | undefined {
    const v = this.dataSet.string(dpTag(jsonTag));
    return v === undefined || v === '' ? undefined : v;
  }

  get sopInstanceUid(): string {
    return this.requiredString('00080018', 'SOPInstanceUID (0008,0018)');
  }
  get seriesInstanceUid(): string {
    return this.requiredString('0020000E', 'SeriesInstanceUID (0020,000E)');
  }
  get studyInstanceUid(): string {
    return this.requiredString('0020000D', 'StudyInstanceUID (0020,000D)');
  }

  private requiredString(tag: string, name: string): string {
    const v = this.string(tag);
    if (!v) throw new MissingAttributeError(name);
    return v;
  }

  /** The Pixel Data element, or a MissingAttributeError. */
  get pixelDataElement(): Element {
    const el = this.dataSet.elements.x7fe00010;
    if (!el || el.length === 0) throw new MissingAttributeError('PixelData (7FE0,0010)', 'the DICOM file has no Pixel Data (7FE0,0010)');
    return el;
  }

  get hasPixelData(): boolean {
    const el = this.dataSet.elements.x7fe00010;
    return el !== undefined && el.length !== 0;
  }

  /** The validated pixel module (throws MissingAttributeError / InvalidPixelModuleError). */
  get pixelModule(): PixelModule {
    if (!this.pm) {
      const ds = this.dataSet;
      const us = (t: string) => ds.uint16(t);
      const multi = (t: string) => {
        const n = ds.numStringValues(t);
        if (!n) return undefined;
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push(ds.floatString(t, i) ?? Number.NaN);
        return out;
      };
      this.pm = validatePixelModule(
        {
          rows: us('x00280010'),
          columns: us('x00280011'),
          samplesPerPixel: us('x00280002'),
          bitsAllocated: us('x00280100'),
          bitsStored: us('x00280101'),
          highBit: us('x00280102'),
          pixelRepresentation: us('x00280103'),
          photometricInterpretation: ds.string('x00280004'),
          planarConfiguration: us('x00280006'),
          numberOfFrames: ds.intString('x00280008'),
          rescaleSlope: ds.floatString('x00281053'),
          rescaleIntercept: ds.floatString('x00281052'),
          windowCenter: ds.floatString('x00281050'),
          windowWidth: ds.floatString('x00281051'),
          pixelSpacing: multi('x00280030'),
          imagerPixelSpacing: multi('x00181164'),
        },
        this.limits,
      );
    }
    return this.pm;
  }

  get encapsulated(): boolean {
    return isEncapsulated(this.transferSyntaxUid) || this.pixelDataElement.encapsulatedPixelData === true;
  }

  /**
   * The stored bytes of frame `index` (0-based): a view into the file for native syntaxes, the frame's compressed
   * bitstream for encapsulated ones (PS3.5 §A.4: Basic Offset Table, one fragment per frame, or JPEG markers).
   */
  frame(index: number): Uint8Array {
    const pm = this.pixelModule;
    const el = this.pixelDataElement;
    if (!Number.isInteger(index) || index < 0 || index >= pm.numberOfFrames) {
      throw new DicomParseError(`frame ${index + 1} requested but the image has ${pm.numberOfFrames} frame(s)`);
    }
    try {
      if (!this.encapsulated) {
        const len = frameByteLength(pm);
        const start = el.dataOffset + index * len;
        if (start + len > this.bytes.length || (index + 1) * len > el.length) {
          throw new DicomParseError(
            `pixel data holds ${Math.min(el.length, this.bytes.length - el.dataOffset)} bytes, fewer than ${pm.numberOfFrames} frame(s) of ${pm.rows}×${pm.columns}×${pm.bitsAllocated / 8} bytes need (truncated file?)`,
          );
        }
        return this.bytes.subarray(start, start + len);
      }
      const fragments = el.fragments ?? [];
      if (fragments.length === 0) throw new DicomParseError('encapsulated pixel data has no fragments');
      for (const f of fragments) {
        if (f.position + f.length > this.bytes.length) throw new DicomParseError('encapsulated pixel data is truncated');
      }
      if (pm.numberOfFrames === 1) {
        return fragments.length === 1
          ? this.bytes.subarray(fragments[0]!.position, fragments[0]!.position + fragments[0]!.length)
          : dicomParser.readEncapsulatedPixelDataFromFragments(this.dataSet, el, 0, fragments.length);
      }
      if (el.basicOffsetTable && el.basicOffsetTable.length > 0) {
        return dicomParser.readEncapsulatedImageFrame(this.dataSet, el, index);
      }
      if (fragments.length === pm.numberOfFrames) {
        const f = fragments[index]!;
        return this.bytes.subarray(f.position, f.position + f.length);
      }
      if (ENDS_WITH_FFD9.has(this.transferSyntaxUid) || this.transferSyntaxUid.startsWith('1.2.840.10008.1.2.4.5')) {
        // No offset table and several fragments per frame: a frame ends with the fragment whose last bytes are FFD9
        // (JPEG and JPEG-LS EOI, JPEG 2000 EOC), a pair that cannot occur inside their entropy-coded data. So frame
        // k is the fragments after the (k−1)-th such end up to the k-th. Not handled: RLE (PS3.5 Annex G allows one
        // fragment per frame only) and JPEG 2000 wrapped in JP2 boxes that end with something else.
        const bot = dicomParser.createJPEGBasicOffsetTable(this.dataSet, el);
        if (index >= bot.length) {
          throw new DicomParseError(`cannot locate frame ${index + 1}: ${fragments.length} fragments without a Basic Offset Table hold ${bot.length} frame(s), ${pm.numberOfFrames} announced`);
        }
        return dicomParser.readEncapsulatedImageFrame(this.dataSet, el, index, bot);
      }
      throw new DicomParseError(
        `cannot locate frame ${index + 1}: ${fragments.length} fragments, ${pm.numberOfFrames} frames and no Basic Offset Table`,
      );
    } catch (e) {
      if (e instanceof DicomParseError) throw e;
      throw new DicomParseError(`cannot read frame ${index + 1}: ${describe(e)}`, { cause: e });
    }
  }
}

export interface ParseOptions {
  limits?: PixelLimits;
  /** Stop parsing at this tag (dicom-parser `untilTag`), e.g. to index headers only. */
  untilTag?: string;
}

/**
 * Parses a DICOM Part 10 file (128-byte preamble, "DICM", File Meta Information, data set) in any of the
 * uncompressed or encapsulated little-endian transfer syntaxes. Big-endian files parse; their pixels are refused
 * later by the decoders.
 * @see PS3.10 §7.1 (file format), PS3.5 §7.1 (data elements), PS3.5 §A.4 (encapsulation)
 */
export function parseDicomFile(input: Uint8Array, options: ParseOptions = {}): DicomFile {
  // A Node Buffer's slice() is a view, not a copy: work on a plain Uint8Array so frame views behave as documented.
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (bytes.length < 132 || bytes[128] !== 0x44 || bytes[129] !== 0x49 || bytes[130] !== 0x43 || bytes[131] !== 0x4d) {
    throw new DicomParseError(`not a DICOM Part 10 file: no "DICM" marker at byte 128 (${bytes.length} bytes)`);
  }
  let dataSet: DataSet;
  try {
    dataSet = dicomParser.parseDicom(bytes, options.untilTag ? { untilTag: options.untilTag } : {});
  } catch (e) {
    throw new DicomParseError(`DICOM file cannot be parsed: ${describe(e)}`, { cause: e });
  }
  const ts = dataSet.string('x00020010');
  if (ts?.trim() === TS.deflatedExplicitLE) {
    throw new DicomParseError('deflated transfer syntax 1.2.840.10008.1.2.1.99 is not supported');
  }
  return new DicomFile(bytes, dataSet, options.limits ?? DEFAULT_PIXEL_LIMITS);
}
