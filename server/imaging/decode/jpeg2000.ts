/**
 * JPEG 2000 (.90 reversible, .91) codestreams (ISO/IEC 15444-1) with @cornerstonejs/codec-openjpeg, in full or at a
 * reduced resolution level (decodeJpeg2000At; the rule is in resolution.ts).
 */
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { chooseReductionLevel, reducedExtent, reducedPixelModule, type DecodedFrame, type ResolutionNeed } from './resolution.ts';
import type { StoredArray } from './types.ts';
import { decodeWithWasm } from './wasm-decode.ts';
import type { CodecModules, WasmDecoder } from './wasm.ts';

/** Where the codestream starts: 0 for a raw codestream (SOC FF4F first), after the `jp2c` box header in a JP2 file. */
function codestreamStart(bytes: Uint8Array): number | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0x4f) return 0;
  const i = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf('jp2c', 0, 'latin1');
  return i < 0 ? undefined : i + 4;
}

/** The image area on the reference grid from SIZ: [xo, xsiz) × [yo, ysiz), and the component count. */
export interface J2kGeometry {
  xsiz: number;
  ysiz: number;
  xo: number;
  yo: number;
  components: number;
}

/** SIZ (ISO/IEC 15444-1 §A.5.1), read without decoding. */
export function readJ2kGeometry(bytes: Uint8Array): J2kGeometry | undefined {
  const start = codestreamStart(bytes);
  if (start === undefined) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (start + 42 > bytes.length || dv.getUint16(start) !== 0xff4f || dv.getUint16(start + 2) !== 0xff51) return undefined;
  const s = start + 4; // at Lsiz
  return { xsiz: dv.getUint32(s + 4), ysiz: dv.getUint32(s + 8), xo: dv.getUint32(s + 12), yo: dv.getUint32(s + 16), components: dv.getUint16(s + 36) };
}

/**
 * Number of wavelet decomposition levels of component 0 from the main header (ISO/IEC 15444-1 §A.6.1 COD, §A.6.2
 * COC, which overrides COD for its component), read without decoding; undefined when the main header cannot be
 * walked. Tile-part headers may lower it for a tile: a reduced decode that the codec then refuses falls back to
 * a full one (decodeJpeg2000At).
 */
export function readJ2kDecompositionLevels(bytes: Uint8Array): number | undefined {
  const start = codestreamStart(bytes);
  if (start === undefined) return undefined;
  const geo = readJ2kGeometry(bytes);
  if (!geo) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let i = start + 2; // after SOC
  let cod: number | undefined;
  let coc: number | undefined;
  while (i + 4 <= bytes.length) {
    const marker = dv.getUint16(i);
    if ((marker & 0xff00) !== 0xff00) return undefined;
    if (marker === 0xff90 || marker === 0xff93 || marker === 0xffd9) break; // SOT / SOD / EOC: end of the main header
    const len = dv.getUint16(i + 2);
    if (len < 2 || i + 2 + len > bytes.length) return undefined;
    const seg = i + 4; // first byte after Lxxx
    if (marker === 0xff52 && len >= 7) cod = bytes[seg + 5]; // Scod, SGcod (4 bytes), then SPcod: decomposition levels
    if (marker === 0xff53) {
      const wide = geo.components >= 257; // Ccoc is 2 bytes when Csiz ≥ 257
      const comp = wide ? dv.getUint16(seg) : bytes[seg]!;
      const at = seg + (wide ? 2 : 1) + 1; // after Ccoc and Scoc
      if (comp === 0 && at < i + 2 + len) coc = bytes[at];
    }
    i += 2 + len;
  }
  return coc ?? cod;
}

/** OpenJPEG's decoder with its reduced-resolution call (the wrapper's `decodeSubResolution(level, layer)`). */
interface J2kDecoder extends WasmDecoder {
  decodeSubResolution(level: number, layer: number): void;
}

/**
 * Image size from the SIZ marker segment (ISO/IEC 15444-1 §A.5.1), read without decoding. Accepts a raw
 * codestream (SOC FF4F first) or a JP2 file (box structure; the codestream follows a `jp2c` box).
 */
export function readJ2kSize(bytes: Uint8Array): { rows: number; columns: number; components: number } | undefined {
  const g = readJ2kGeometry(bytes);
  return g ? { rows: g.ysiz - g.yo, columns: g.xsiz - g.xo, components: g.components } : undefined;
}

export function decodeJpeg2000(bytes: Uint8Array, pm: PixelModule, ts: string): Promise<StoredArray> {
  const siz = readJ2kSize(bytes);
  if (!siz) return Promise.reject(new DecodeError(ts, 'JPEG 2000 frame has no SOC/SIZ header'));
  if (siz.rows !== pm.rows || siz.columns !== pm.columns || siz.components !== pm.samplesPerPixel) {
    return Promise.reject(
      new DecodeError(ts, `JPEG 2000 frame is ${siz.rows}×${siz.columns}×${siz.components}, header says ${pm.rows}×${pm.columns}×${pm.samplesPerPixel}`),
    );
  }
  return decodeWithWasm('openjpeg', (m) => new (m as CodecModules['openjpeg']).J2KDecoder(), bytes, pm, ts, 'JPEG 2000');
}

/**
 * Decodes at the coarsest resolution level that still meets `need` (resolution.ts), or in full when none does.
 * The returned pixel module describes the decoded array (reduced rows, columns and spacing; `reducedFrom` keeps
 * the header's). If the codec cannot decode the chosen level (e.g. a tile with fewer decompositions than the main
 * header says), the frame is decoded in full instead; a corrupt frame then fails with the full decode's error.
 */
export async function decodeJpeg2000At(bytes: Uint8Array, pm: PixelModule, ts: string, need: ResolutionNeed): Promise<DecodedFrame> {
  const geo = readJ2kGeometry(bytes);
  const levels = geo ? readJ2kDecompositionLevels(bytes) : undefined;
  const geometry = (k: number) => ({ rows: reducedExtent(geo!.ysiz, geo!.yo, k), columns: reducedExtent(geo!.xsiz, geo!.xo, k) });
  const level = geo && levels !== undefined && geo.ysiz - geo.yo === pm.rows && geo.xsiz - geo.xo === pm.columns
    ? chooseReductionLevel(pm, need, levels, geometry)
    : 0;
  if (level > 0) {
    const { rows, columns } = geometry(level);
    const output = reducedPixelModule(pm, level, rows, columns);
    try {
      const stored = await decodeWithWasm('openjpeg', (m) => new (m as CodecModules['openjpeg']).J2KDecoder(), bytes, pm, ts, 'JPEG 2000', undefined, {
        // Layer 0: all quality layers.
        decode: (dec) => (dec as J2kDecoder).decodeSubResolution(level, 0),
        output,
      });
      return { stored, pixelModule: output, level };
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
    }
  }
  return { stored: await decodeJpeg2000(bytes, pm, ts), pixelModule: pm, level: 0 };
}
