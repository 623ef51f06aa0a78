/**
 * Shared driver for the WebAssembly decoders: the caller checks the bitstream header against the DICOM header
 * BEFORE this runs (so no codec allocates for absurd sizes); geometry is checked again after decoding; pixels are
 * copied out of WebAssembly memory and the decoder is always freed.
 */
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { allocStored, samplesPerFrame, type StoredArray } from './types.ts';
import { codec, readCppException, resetCodec, type CodecModules, type CppException, type WasmDecoder } from './wasm.ts';

type Make = (m: CodecModules[keyof CodecModules]) => WasmDecoder;

/**
 * Turns what a codec threw into words: `detail` for the operator's message, `reason` (plain words) for the
 * clinician's, or undefined when the codec's error means nothing specific.
 */
export type ExplainCodecError = (thrown: CppException | undefined) => { detail: string; reason?: string } | undefined;

/**
 * A decode at reduced resolution: `decode` runs the codec's own call (e.g. OpenJPEG's decodeSubResolution) instead
 * of `decode()`, and `output` is the pixel module of the smaller array it produces. The frame info still reports the
 * full image (checked against `pm`); the decoded buffer must hold `output`'s samples.
 */
export interface ReducedDecode {
  decode(dec: WasmDecoder): void;
  output: PixelModule;
}

export async function decodeWithWasm(
  name: keyof CodecModules,
  make: Make,
  bytes: Uint8Array,
  pm: PixelModule,
  ts: string,
  label: string,
  explain?: ExplainCodecError,
  reduced?: ReducedDecode,
): Promise<StoredArray> {
  const mod = await codec(name);
  let dec: WasmDecoder | undefined;
  try {
    dec = make(mod);
    dec.getEncodedBuffer(bytes.length).set(bytes);
    if (reduced) reduced.decode(dec);
    else dec.decode();
    const info = dec.getFrameInfo();
    checkInfo(info, pm, ts, label);
    const n = samplesPerFrame(reduced?.output ?? pm);
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
    // Emscripten codecs throw C++ exceptions as a bare address: read the exception object before it is gone.
    const thrown = readCppException(mod, e);
    const explained = explain?.(thrown);
    const detail = explained?.detail ??
      (thrown ? (thrown.what ?? `C++ exception ${thrown.typeName}`) : e instanceof Error ? e.message : typeof e === 'number' ? 'unreadable C++ exception' : String(e));
    throw new DecodeError(ts, `${label} decoding failed: ${detail}`, { cause: e, ...(explained?.reason ? { reason: explained.reason } : {}) });
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
