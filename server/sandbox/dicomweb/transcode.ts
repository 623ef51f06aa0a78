/**
 * Transcoding to explicit VR little endian for WADO-RS (what a PACS does when a client cannot decode the stored
 * syntax): decode every frame with the service's decoders, then re-wrap as native pixel data. For instances the
 * Part 10 file is rebuilt: new File Meta (PS3.10 §7.1) + the original data set bytes up to Pixel Data (all
 * encapsulated syntaxes encode the data set as explicit VR LE, so those bytes stay valid) + native Pixel Data.
 */
import type { DicomFile } from '../../imaging/dicom.ts';
import { decodeFrame } from '../../imaging/decode/index.ts';
import { DicomParseError } from '../../imaging/errors.ts';
import { TS } from '../../imaging/transfer-syntax.ts';

/** Native little-endian bytes of frame `index` (0-based). */
export async function nativeFrameBytes(file: DicomFile, index: number): Promise<Uint8Array> {
  const stored = await decodeFrame(file.transferSyntaxUid, file.frame(index), file.pixelModule);
  return new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
}

/** True when the sandbox can transcode this file to explicit VR LE (monochrome encapsulated pixel data). */
export function canTranscode(file: DicomFile): boolean {
  try {
    return file.hasPixelData && file.pixelModule.samplesPerPixel === 1;
  } catch {
    return false;
  }
}

function element(group: number, elem: number, vr: string, value: Uint8Array): Buffer {
  const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV'].includes(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

function ui(v: string): Buffer {
  const b = Buffer.from(v, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from([0])]) : b;
}

/** PS3.10 §7.1 File Meta Information for an explicit VR LE file. */
export function fileMeta(sopClassUid: string, sopInstanceUid: string, transferSyntaxUid: string): Buffer {
  const body = Buffer.concat([
    element(0x0002, 0x0001, 'OB', new Uint8Array([0, 1])),
    element(0x0002, 0x0002, 'UI', ui(sopClassUid)),
    element(0x0002, 0x0003, 'UI', ui(sopInstanceUid)),
    element(0x0002, 0x0010, 'UI', ui(transferSyntaxUid)),
    element(0x0002, 0x0012, 'UI', ui('2.25.163480945364150297935862519339104419917')),
    element(0x0002, 0x0013, 'SH', Buffer.from('FRCDS_SANDBOX ', 'latin1')),
  ]);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(0x0002, 0x0000, 'UL', len), body]);
}

/** Rebuilds an encapsulated Part 10 file as explicit VR little endian with native pixel data. */
export async function transcodeInstance(file: DicomFile): Promise<Uint8Array> {
  const pm = file.pixelModule;
  const pixel = file.pixelDataElement;
  // Data set starts after the last File Meta element; Pixel Data's header (tag, VR, reserved, length) is 12 bytes.
  let dsStart = 0;
  for (const [key, el] of Object.entries(file.dataSet.elements)) {
    if (key.startsWith('x0002')) dsStart = Math.max(dsStart, el.dataOffset + el.length);
  }
  const pixelStart = pixel.dataOffset - 12;
  if (dsStart <= 132 || pixelStart < dsStart) throw new DicomParseError('cannot locate the data set or Pixel Data for transcoding');
  const frames: Uint8Array[] = [];
  for (let f = 0; f < pm.numberOfFrames; f++) frames.push(await nativeFrameBytes(file, f));
  let pixelBytes = Buffer.concat(frames);
  if (pixelBytes.length % 2) pixelBytes = Buffer.concat([pixelBytes, Buffer.from([0])]);
  const sopClass = file.string('00080016') ?? '';
  return Buffer.concat([
    fileMeta(sopClass, file.sopInstanceUid, TS.explicitLE),
    file.bytes.subarray(dsStart, pixelStart),
    element(0x7fe0, 0x0010, pm.bitsAllocated > 8 ? 'OW' : 'OB', pixelBytes),
  ]);
}
