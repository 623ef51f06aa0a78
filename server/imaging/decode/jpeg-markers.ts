/**
 * Reads the frame header (SOFn) of a JPEG / JPEG-LS bitstream (ITU-T T.81 §B.2.2, T.87 §5.1) without decoding,
 * so the decoders can refuse a bitstream whose geometry disagrees with the DICOM header before any codec
 * allocates memory for it.
 */
export interface JpegFrameHeader {
  marker: number;
  precision: number;
  rows: number;
  columns: number;
  components: number;
}

export function readJpegFrameHeader(bytes: Uint8Array): JpegFrameHeader | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return undefined;
    const marker = bytes[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    const len = (bytes[i + 2]! << 8) | bytes[i + 3]!;
    // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC); and JPEG-LS SOF55 (F7).
    const isSof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (isSof) {
      if (i + 10 > bytes.length) return undefined;
      return {
        marker,
        precision: bytes[i + 4]!,
        rows: (bytes[i + 5]! << 8) | bytes[i + 6]!,
        columns: (bytes[i + 7]! << 8) | bytes[i + 8]!,
        components: bytes[i + 9]!,
      };
    }
    if (marker === 0xda || len < 2) return undefined; // scan before any SOF: malformed
    i += 2 + len;
  }
  return undefined;
}
