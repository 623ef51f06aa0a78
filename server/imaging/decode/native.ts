/** Native (uncompressed) little-endian pixel data (PS3.5 §8.1.1): a typed view, planar colour made interleaved. */
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { allocStored, samplesPerFrame, viewStored, type StoredArray } from './types.ts';

export function decodeNative(bytes: Uint8Array, pm: PixelModule, ts: string): StoredArray {
  const n = samplesPerFrame(pm);
  const need = (n * pm.bitsAllocated) / 8;
  if (bytes.byteLength < need) {
    throw new DecodeError(ts, `native frame has ${bytes.byteLength} bytes, ${need} expected for ${pm.rows}×${pm.columns}`);
  }
  const view = viewStored(bytes.subarray(0, need), pm);
  if (pm.samplesPerPixel === 1 || pm.planarConfiguration === 0) return view;
  const px = pm.rows * pm.columns;
  const out = allocStored(pm, n);
  for (let s = 0; s < 3; s++) for (let i = 0; i < px; i++) out[i * 3 + s] = view[s * px + i]!;
  return out;
}
