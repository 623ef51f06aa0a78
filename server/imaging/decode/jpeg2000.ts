/** JPEG 2000 (.90 reversible, .91) codestreams (ISO/IEC 15444-1) with @cornerstonejs/codec-openjpeg. */
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import type { StoredArray } from './types.ts';
import { decodeWithWasm } from './wasm-decode.ts';
import type { CodecModules } from './wasm.ts';

/**
 * Image size from the SIZ marker segment (ISO/IEC 15444-1 §A.5.1), read without decoding. Accepts a raw
 * codestream (SOC FF4F first) or a JP2 file (box structure; the codestream follows a `jp2c` box).
 */
export function readJ2kSize(bytes: Uint8Array): { rows: number; columns: number; components: number } | undefined {
  let start = 0;
  if (!(bytes[0] === 0xff && bytes[1] === 0x4f)) {
    const i = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf('jp2c', 0, 'latin1');
    if (i < 0) return undefined;
    start = i + 4;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (start + 42 > bytes.length || dv.getUint16(start) !== 0xff4f || dv.getUint16(start + 2) !== 0xff51) return undefined;
  const s = start + 4; // at Lsiz
  const xsiz = dv.getUint32(s + 4);
  const ysiz = dv.getUint32(s + 8);
  const xo = dv.getUint32(s + 12);
  const yo = dv.getUint32(s + 16);
  const csiz = dv.getUint16(s + 36);
  return { rows: ysiz - yo, columns: xsiz - xo, components: csiz };
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
