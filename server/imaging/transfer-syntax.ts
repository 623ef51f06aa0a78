/**
 * Transfer syntaxes the service meets, their DICOMweb media types (PS3.18 Table 8.7.3-2/-3) and whether the
 * local decoders handle them.
 */

export const TS = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflatedExplicitLE: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  jpegLS: '1.2.840.10008.1.2.4.80',
  jpegLSNear: '1.2.840.10008.1.2.4.81',
  jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  jpeg2000: '1.2.840.10008.1.2.4.91',
  rle: '1.2.840.10008.1.2.5',
} as const;

/** Syntaxes whose pixel data is native (not encapsulated) and little endian. */
const NATIVE_LE = new Set<string>([TS.implicitLE, TS.explicitLE]);

const MEDIA: Record<string, string> = {
  [TS.jpegBaseline]: 'image/jpeg',
  [TS.jpegExtended]: 'image/jpeg',
  [TS.jpegLossless]: 'image/jpeg',
  [TS.jpegLosslessSV1]: 'image/jpeg',
  [TS.jpegLS]: 'image/jls',
  [TS.jpegLSNear]: 'image/jls',
  [TS.jpeg2000Lossless]: 'image/jp2',
  [TS.jpeg2000]: 'image/jp2',
  [TS.rle]: 'image/dicom-rle',
};

/** Default transfer syntax of a bulk-data media type when the Accept entry names none (PS3.18 Table 8.7.3-5). */
const DEFAULT_FOR_MEDIA: Record<string, string> = {
  'application/octet-stream': TS.explicitLE,
  'image/jpeg': TS.jpegLosslessSV1,
  'image/jls': TS.jpegLS,
  'image/jp2': TS.jpeg2000Lossless,
  'image/dicom-rle': TS.rle,
};

export function isNativeLittleEndian(uid: string): boolean {
  return NATIVE_LE.has(uid);
}

export function isEncapsulated(uid: string): boolean {
  return uid in MEDIA;
}

/** The bulk-data (frame) media type for a syntax: compressed image types or application/octet-stream. */
export function frameMediaType(uid: string): string {
  return MEDIA[uid] ?? 'application/octet-stream';
}

export function defaultSyntaxForMediaType(mediaType: string): string | undefined {
  return DEFAULT_FOR_MEDIA[mediaType.toLowerCase()];
}

/** Lossy syntaxes: decoded pixels differ from the acquisition, which the model must know. */
export function isLossy(uid: string): boolean {
  return uid === TS.jpegBaseline || uid === TS.jpegExtended || uid === TS.jpegLSNear || uid === TS.jpeg2000;
}

const NAMES: Record<string, string> = {
  [TS.implicitLE]: 'uncompressed (implicit VR)',
  [TS.explicitLE]: 'uncompressed',
  [TS.deflatedExplicitLE]: 'deflated',
  [TS.explicitBE]: 'uncompressed big-endian',
  [TS.jpegBaseline]: 'JPEG baseline',
  [TS.jpegExtended]: '12-bit JPEG',
  [TS.jpegLossless]: 'JPEG lossless',
  [TS.jpegLosslessSV1]: 'JPEG lossless',
  [TS.jpegLS]: 'JPEG-LS',
  [TS.jpegLSNear]: 'JPEG-LS',
  [TS.jpeg2000Lossless]: 'JPEG 2000',
  [TS.jpeg2000]: 'JPEG 2000',
  [TS.rle]: 'RLE',
};

/** A name people know for a syntax ("JPEG-LS", "JPEG 2000"), for messages; unknown UIDs get a generic phrase. */
export function syntaxName(uid: string): string {
  return NAMES[uid] ?? 'an unfamiliar compression';
}
