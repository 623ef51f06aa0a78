/** JPEG-LS lossless (.80) and near-lossless (.81) (ITU-T T.87) with @cornerstonejs/codec-charls. */
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { readJpegFrameHeader } from './jpeg-markers.ts';
import type { StoredArray } from './types.ts';
import { decodeWithWasm } from './wasm-decode.ts';
import type { CodecModules } from './wasm.ts';

export async function decodeJpegLs(bytes: Uint8Array, pm: PixelModule, ts: string): Promise<StoredArray> {
  // CharLS has no header-only call: check SOF55 ourselves before it allocates.
  const sof = readJpegFrameHeader(bytes);
  if (!sof || sof.marker !== 0xf7) throw new DecodeError(ts, 'JPEG-LS frame has no SOF55 frame header');
  if (sof.rows !== pm.rows || sof.columns !== pm.columns || sof.components !== pm.samplesPerPixel) {
    throw new DecodeError(ts, `JPEG-LS frame is ${sof.rows}×${sof.columns}×${sof.components}, header says ${pm.rows}×${pm.columns}×${pm.samplesPerPixel}`);
  }
  return decodeWithWasm('charls', (m) => new (m as CodecModules['charls']).JpegLSDecoder(), bytes, pm, ts, 'JPEG-LS');
}
