/**
 * Shared driver for the WebAssembly decoders: the caller checks the bitstream header against the DICOM header
 * BEFORE this runs (so no codec allocates for absurd sizes); geometry is checked again after decoding; pixels are
 * copied out of WebAssembly memory and the decoder is always freed.
 */
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { allocStored, samplesPerFrame, type StoredArray } from './types.ts';
import { codec, resetCodec, type CodecModules, type WasmDecoder } from './wasm.ts';

type Make = (m: CodecModules[keyof CodecModules]) => WasmDecoder;

export async function decodeWithWasm(
  name: keyof CodecModules,
  make: Make,
  bytes: Uint8Array,
  pm: PixelModule,
  ts: string,
  label: string,
): Promise<StoredArray> {
  const mod = await codec(name);
  let dec: WasmDecoder | undefined;
  try {
    dec = make(mod);
    dec.getEncodedBuffer(bytes.length).set(bytes);
    dec.decode();
    const info = dec.getFrameInfo();
    checkInfo(info, pm, ts, label);
    const n = samplesPerFrame(pm);
    const bytesPerSample = info.bitsPerSample > 8 ? 2 : 1;
    const decoded = dec.getDecodedBuffer();
    if (decoded.byteLength < n * bytesPerSample) {
      throw new DecodeError(ts, `${label} decoder produced ${decoded.byteLength} bytes, ${n * bytesPerSample} expected`);
    }
    const out = allocStored(pm, n);
    if (bytesPerSample * 8 === pm.bitsAllocated) {
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(decoded.subarray(0, out.byteLength));
    } else {
      // e.g. an 8-bit codestream in a 16-bit container: widen sample by sample.
      const src = bytesPerSample === 2 ? new Uint16Array(decoded.slice(0, n * 2).buffer) : decoded;
      for (let i = 0; i < n; i++) out[i] = src[i]!;
    }
    return out;
  } catch (e) {
    // A trap, abort or half-finished decode can leave the WebAssembly instance in an undefined state: start a new
    // one next time (≈40 ms, only after bad input).
    resetCodec(name);
    if (e instanceof DecodeError) throw e;
    throw new DecodeError(ts, `${label} decoding failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  } finally {
    try {
      dec?.delete();
    } catch {
      resetCodec(name);
    }
  }
}

function checkInfo(info: ReturnType<WasmDecoder['getFrameInfo']>, pm: PixelModule, ts: string, label: string): void {
  if (info.width !== pm.columns || info.height !== pm.rows || info.componentCount !== pm.samplesPerPixel) {
    throw new DecodeError(
      ts,
      `${label} frame is ${info.height}×${info.width}×${info.componentCount}, header says ${pm.rows}×${pm.columns}×${pm.samplesPerPixel}`,
    );
  }
  if (info.bitsPerSample > pm.bitsAllocated || info.bitsPerSample < 1) {
    throw new DecodeError(ts, `${label} bit depth ${info.bitsPerSample} does not fit BitsAllocated ${pm.bitsAllocated}`);
  }
}
