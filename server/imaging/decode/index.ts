/**
 * Frame decoding by transfer syntax. Each decoder checks the bitstream's geometry against the DICOM header and
 * returns stored values; pixels.ts turns those into modality values.
 */
import { UnsupportedTransferSyntaxError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { TS } from '../transfer-syntax.ts';
import { decodeJpegBaseline } from './jpeg-baseline.ts';
import { decodeJpegLossless } from './jpeg-lossless.ts';
import { decodeJpegLs } from './jpeg-ls.ts';
import { decodeJpeg2000, decodeJpeg2000At } from './jpeg2000.ts';
import { decodeNative } from './native.ts';
import type { DecodedFrame, ResolutionNeed } from './resolution.ts';
import { decodeRle } from './rle.ts';
import type { FrameDecoder, StoredArray } from './types.ts';

export type { StoredArray } from './types.ts';
export { DISPLAY_LONGEST_SIDE, resolutionNeedOf, strictestNeed, type DecodedFrame, type ResolutionNeed } from './resolution.ts';
export { warmUpCodecs } from './wasm.ts';

const DECODERS: Record<string, FrameDecoder> = {
  [TS.implicitLE]: decodeNative,
  [TS.explicitLE]: decodeNative,
  [TS.rle]: decodeRle,
  [TS.jpegLossless]: decodeJpegLossless,
  [TS.jpegLosslessSV1]: decodeJpegLossless,
  [TS.jpegLS]: decodeJpegLs,
  [TS.jpegLSNear]: decodeJpegLs,
  [TS.jpeg2000Lossless]: decodeJpeg2000,
  [TS.jpeg2000]: decodeJpeg2000,
  [TS.jpegBaseline]: decodeJpegBaseline,
};

/** Syntaxes with a local decoder (the others need the PACS to transcode). */
export const LOCALLY_DECODABLE: readonly string[] = Object.keys(DECODERS);

/**
 * Decodes one frame's stored bytes. Throws UnsupportedTransferSyntaxError (caller may ask the PACS to transcode)
 * or DecodeError (the bytes are bad).
 */
export async function decodeFrame(transferSyntaxUid: string, bytes: Uint8Array, pm: PixelModule): Promise<StoredArray> {
  const decoder = DECODERS[transferSyntaxUid];
  if (!decoder) throw new UnsupportedTransferSyntaxError(transferSyntaxUid);
  return decoder(bytes, pm, transferSyntaxUid);
}

/**
 * Syntaxes whose codec can stop at a reduced resolution: JPEG 2000 (resolution levels). JPEG baseline would allow
 * DCT scaling (1/2, 1/4, 1/8) in libjpeg-turbo, but @cornerstonejs/codec-libjpeg-turbo-8bit exposes no scaling
 * call (its decoder has only readHeader/decode/getFrameInfo), so .50 is decoded in full like the other syntaxes.
 */
export const REDUCIBLE: readonly string[] = [TS.jpeg2000Lossless, TS.jpeg2000];

/**
 * Decodes one frame, at a reduced resolution when `need` is given and the syntax allows it (resolution.ts has the
 * rule); otherwise in full (`level` 0, the header's pixel module). Same errors as {@link decodeFrame}.
 */
export async function decodeFrameAt(transferSyntaxUid: string, bytes: Uint8Array, pm: PixelModule, need?: ResolutionNeed): Promise<DecodedFrame> {
  if (need && REDUCIBLE.includes(transferSyntaxUid)) return decodeJpeg2000At(bytes, pm, transferSyntaxUid, need);
  return { stored: await decodeFrame(transferSyntaxUid, bytes, pm), pixelModule: pm, level: 0 };
}
