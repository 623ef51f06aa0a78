/**
 * DICOM RLE Lossless decoder (PS3.5 Annex G).
 *
 * Hand-written: the scheme is a 64-byte header of segment offsets plus PackBits runs, about 60 lines; the
 * JavaScript packages that implement it bundle whole imaging toolkits. Writing it also lets every run be
 * bounds-checked, so a corrupt segment ends in a DecodeError instead of an over-long loop or a wrong image.
 */
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { allocStored, type StoredArray } from './types.ts';

/**
 * Decodes one PackBits segment (G.3.1) into `out`; returns the number of bytes written.
 * Stops at `out.length`: trailing data past the image is tolerated (encoders pad segments to even length).
 */
function unpackSegment(src: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let i = start;
  let o = 0;
  const cap = out.length;
  while (i < end && o < cap) {
    const n = src[i++]!;
    if (n < 128) {
      // literal run of n+1 bytes (a plain loop: runs are short, subarray/set would allocate per run)
      const len = Math.min(n + 1, end - i, cap - o);
      for (let k = 0; k < len; k++) out[o + k] = src[i + k]!;
      o += len;
      i += n + 1;
    } else if (n > 128) {
      // replicate the next byte 257-n times (n = -1..-127 as a signed byte)
      if (i >= end) break;
      const len = Math.min(257 - n, cap - o);
      out.fill(src[i++]!, o, o + len);
      o += len;
    }
    // n === 128 (-128): no operation
  }
  return o;
}

export function decodeRle(bytes: Uint8Array, pm: PixelModule, ts: string): StoredArray {
  if (bytes.length < 64) throw new DecodeError(ts, `RLE frame of ${bytes.length} bytes is shorter than its 64-byte header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const segments = dv.getUint32(0, true);
  const bytesPerSample = pm.bitsAllocated / 8;
  const expected = bytesPerSample * pm.samplesPerPixel;
  if (segments !== expected) {
    throw new DecodeError(ts, `RLE header announces ${segments} segments; ${expected} expected for ${pm.bitsAllocated}-bit × ${pm.samplesPerPixel} sample(s)`);
  }
  const offsets: number[] = [];
  for (let s = 0; s < segments; s++) offsets.push(dv.getUint32(4 + 4 * s, true));
  for (let s = 0; s < segments; s++) {
    const start = offsets[s]!;
    const end = s + 1 < segments ? offsets[s + 1]! : bytes.length;
    if (start < 64 || start > end || end > bytes.length) {
      throw new DecodeError(ts, `RLE segment ${s + 1} offset ${start} is outside the frame (${bytes.length} bytes)`);
    }
  }
  const px = pm.rows * pm.columns;
  const spp = pm.samplesPerPixel;
  const planes = new Uint8Array(px * segments);
  for (let s = 0; s < segments; s++) {
    const start = offsets[s]!;
    const end = s + 1 < segments ? offsets[s + 1]! : bytes.length;
    const n = unpackSegment(bytes, start, end, planes.subarray(s * px, (s + 1) * px));
    if (n < px) throw new DecodeError(ts, `RLE segment ${s + 1} decodes to ${n} bytes, ${px} expected (corrupt or truncated)`);
  }
  // G.2: segments go sample by sample, most significant byte first.
  if (spp === 1 && bytesPerSample === 2) {
    // The common case (16-bit grey): compose directly, no intermediate byte array.
    const out = allocStored(pm, px) as Uint16Array | Int16Array;
    const u = new Uint16Array(out.buffer, out.byteOffset, px);
    const hiPlane = planes.subarray(0, px);
    const loPlane = planes.subarray(px, 2 * px);
    for (let i = 0; i < px; i++) u[i] = (hiPlane[i]! << 8) | loPlane[i]!;
    return out;
  }
  const le = new Uint8Array(px * segments);
  for (let sample = 0; sample < spp; sample++) {
    for (let b = 0; b < bytesPerSample; b++) {
      const plane = planes.subarray((sample * bytesPerSample + b) * px, (sample * bytesPerSample + b + 1) * px);
      const byteInSample = bytesPerSample - 1 - b;
      let o = sample * bytesPerSample + byteInSample;
      const stride = spp * bytesPerSample;
      for (let i = 0; i < px; i++, o += stride) le[o] = plane[i]!;
    }
  }
  const out = allocStored(pm, px * spp);
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(le);
  return out;
}
