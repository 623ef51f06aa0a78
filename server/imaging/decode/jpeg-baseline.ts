/**
 * JPEG baseline (.50, 8-bit) with @cornerstonejs/codec-libjpeg-turbo-8bit. 12-bit extended (.51) is not decoded
 * here: the 8-bit build fails on it and no maintained 12-bit build exists for Node, so the client asks the PACS to
 * transcode .51 to explicit VR little endian instead (retrieve.ts).
 */
import { DecodeError, UnsupportedTransferSyntaxError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { readJpegFrameHeader } from './jpeg-markers.ts';
import type { StoredArray } from './types.ts';
import { decodeWithWasm } from './wasm-decode.ts';
import type { CodecModules } from './wasm.ts';

export async function decodeJpegBaseline(bytes: Uint8Array, pm: PixelModule, ts: string): Promise<StoredArray> {
  const sof = readJpegFrameHeader(bytes);
  if (!sof) throw new DecodeError(ts, 'JPEG frame has no frame header');
  if (sof.precision !== 8) {
    throw new UnsupportedTransferSyntaxError(ts, `${sof.precision}-bit JPEG cannot be decoded locally (8-bit only)`);
  }
  if (sof.rows !== pm.rows || sof.columns !== pm.columns || sof.components !== pm.samplesPerPixel) {
    throw new DecodeError(ts, `JPEG frame is ${sof.rows}×${sof.columns}×${sof.components}, header says ${pm.rows}×${pm.columns}×${pm.samplesPerPixel}`);
  }
  return decodeWithWasm('libjpegTurbo', (m) => new (m as CodecModules['libjpegTurbo']).JPEGDecoder(), bytes, pm, ts, 'JPEG');
}
