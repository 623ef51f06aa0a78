import type { PixelModule } from '../pixel-module.ts';

/** Stored pixel values of one frame, samples interleaved (R,G,B,R,G,B… for colour), before any masking. */
export type StoredArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array;

/** A frame decoder: compressed (or native) bytes of ONE frame → stored values, checked against the header. */
export type FrameDecoder = (bytes: Uint8Array, pm: PixelModule, transferSyntaxUid: string) => StoredArray | Promise<StoredArray>;

/** Allocates the typed array the pixel module calls for. */
export function allocStored(pm: PixelModule, length: number): StoredArray {
  const signed = pm.pixelRepresentation === 1;
  switch (pm.bitsAllocated) {
    case 8:
      return signed ? new Int8Array(length) : new Uint8Array(length);
    case 16:
      return signed ? new Int16Array(length) : new Uint16Array(length);
    default:
      return signed ? new Int32Array(length) : new Uint32Array(length);
  }
}

/** Views little-endian bytes as the pixel module's typed array (copying only when unaligned). */
export function viewStored(bytes: Uint8Array, pm: PixelModule): StoredArray {
  const bpp = pm.bitsAllocated / 8;
  const aligned = bytes.byteOffset % bpp === 0 ? bytes : new Uint8Array(bytes); // copy (Buffer.slice would not)
  const n = aligned.byteLength / bpp;
  const signed = pm.pixelRepresentation === 1;
  const { buffer, byteOffset } = aligned;
  switch (pm.bitsAllocated) {
    case 8:
      return signed ? new Int8Array(buffer, byteOffset, n) : new Uint8Array(buffer, byteOffset, n);
    case 16:
      return signed ? new Int16Array(buffer, byteOffset, n) : new Uint16Array(buffer, byteOffset, n);
    default:
      return signed ? new Int32Array(buffer, byteOffset, n) : new Uint32Array(buffer, byteOffset, n);
  }
}

export function samplesPerFrame(pm: PixelModule): number {
  return pm.rows * pm.columns * pm.samplesPerPixel;
}
