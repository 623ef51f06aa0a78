/** JPEG lossless, processes 14 (.57) and 14 SV1 (.70) (ITU-T T.81 Annex H), with jpeg-lossless-decoder-js (bit-exact). */
import { Decoder } from 'jpeg-lossless-decoder-js';
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { readJpegFrameHeader } from './jpeg-markers.ts';
import { allocStored, samplesPerFrame, type StoredArray } from './types.ts';

export function decodeJpegLossless(bytes: Uint8Array, pm: PixelModule, ts: string): StoredArray {
  const sof = readJpegFrameHeader(bytes);
  if (!sof || sof.marker !== 0xc3) throw new DecodeError(ts, 'JPEG lossless frame has no SOF3 frame header');
  if (sof.rows !== pm.rows || sof.columns !== pm.columns || sof.components !== pm.samplesPerPixel) {
    throw new DecodeError(ts, `JPEG frame is ${sof.rows}×${sof.columns}×${sof.components}, header says ${pm.rows}×${pm.columns}×${pm.samplesPerPixel}`);
  }
  if (sof.precision > pm.bitsAllocated) {
    throw new DecodeError(ts, `JPEG precision ${sof.precision} exceeds BitsAllocated ${pm.bitsAllocated}`);
  }
  let decoded: Uint8Array | Uint16Array;
  try {
    // The decoder wants its own ArrayBuffer; copy so a view into the file is not handed over.
    const copy = new Uint8Array(bytes);
    decoded = new Decoder().decode(copy.buffer, 0, copy.byteLength, pm.bitsAllocated > 8 ? 2 : 1);
  } catch (e) {
    throw new DecodeError(ts, `JPEG lossless decoding failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const n = samplesPerFrame(pm);
  if (decoded.length < n) throw new DecodeError(ts, `JPEG lossless decoder produced ${decoded.length} samples, ${n} expected`);
  const out = allocStored(pm, n);
  // Same bit patterns; the typed array chosen by allocStored reinterprets signed data.
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(new Uint8Array(decoded.buffer, decoded.byteOffset, out.byteLength));
  return out;
}
