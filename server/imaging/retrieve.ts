/**
 * Getting decoded pixels of one frame from any DICOMweb server: metadata for the pixel module, the frame in its
 * stored syntax (`transfer-syntax=*`, so nothing is transcoded or recompressed needlessly), local decoding — and,
 * when the stored syntax cannot be decoded here (e.g. 12-bit JPEG .51), a second request asking the PACS to
 * transcode to explicit VR little endian (PS3.18 §8.7.3.5).
 */
import { decodeFrame } from './decode/index.ts';
import type { StoredArray } from './decode/types.ts';
import type { DicomJsonDataset } from './dicom-json.ts';
import type { CallOptions, DicomWebClient } from './dicomweb-client.ts';
import { ImagingError, MalformedResponseError, NotAcceptableError, PacsHttpError, UnsupportedTransferSyntaxError } from './errors.ts';
import { DEFAULT_PIXEL_LIMITS, pixelModuleFromJson, type PixelLimits, type PixelModule } from './pixel-module.ts';
import { TS } from './transfer-syntax.ts';
import type { ImagingExecutor } from './worker-pool.ts';

export interface InstanceRef {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
}

export interface FetchedFrame {
  pixelModule: PixelModule;
  /** Stored values of the frame (before masking/rescale; see pixels.ts). */
  stored: StoredArray;
  /** The syntax the PACS stored / sent before any local decoding. */
  receivedTransferSyntaxUid: string;
  /** True when the PACS had to transcode because the stored syntax is not decodable locally. */
  transcodedByPacs: boolean;
  metadata: DicomJsonDataset;
  /** metadataMs: until metadata is parsed; frameMs: further wait for the frame (the two requests overlap). */
  timings: { metadataMs: number; frameMs: number; decodeMs: number };
}

export interface FetchFrameOptions extends CallOptions {
  /** 1-based frame number (default 1). */
  frame?: number;
  limits?: PixelLimits;
  /** Metadata already at hand (e.g. from series selection) saves one round trip. */
  metadata?: DicomJsonDataset;
  /** Where frames are decoded: an imaging worker pool (worker-pool.ts) or, by default, inline on this thread. */
  imaging?: Pick<ImagingExecutor, 'decodeFrame'>;
}

export async function fetchFrame(client: DicomWebClient, ref: InstanceRef, opts: FetchFrameOptions = {}): Promise<FetchedFrame> {
  const frameNo = opts.frame ?? 1;
  const decode = opts.imaging ? opts.imaging.decodeFrame.bind(opts.imaging) : decodeFrame;
  const t0 = performance.now();
  // Metadata and the stored frame do not depend on each other: ask for both at once (one round trip saved).
  const framePromise = client.retrieveFrames(ref.studyUid, ref.seriesUid, ref.sopUid, [frameNo], { ...opts, transferSyntaxes: '*' });
  framePromise.catch(() => undefined); // handled below; avoids an unhandled rejection while metadata is awaited
  let metadata = opts.metadata;
  if (!metadata) {
    const list = await client.retrieveMetadata(ref.studyUid, ref.seriesUid, ref.sopUid, opts);
    if (list.length !== 1) throw new MalformedResponseError(`instance metadata returned ${list.length} data sets, 1 expected`);
    metadata = list[0]!;
  }
  const pm = pixelModuleFromJson(metadata, opts.limits ?? DEFAULT_PIXEL_LIMITS);
  if (frameNo < 1 || frameNo > pm.numberOfFrames) {
    throw new MalformedResponseError(`frame ${frameNo} requested; the instance has ${pm.numberOfFrames} frame(s)`);
  }
  const t1 = performance.now();
  const [stored] = await framePromise;
  const t2 = performance.now();
  try {
    const pixels = await decode(stored!.transferSyntaxUid, stored!.body, pm);
    return {
      pixelModule: pm,
      stored: pixels,
      receivedTransferSyntaxUid: stored!.transferSyntaxUid,
      transcodedByPacs: false,
      metadata,
      timings: { metadataMs: t1 - t0, frameMs: t2 - t1, decodeMs: performance.now() - t2 },
    };
  } catch (e) {
    if (!(e instanceof UnsupportedTransferSyntaxError)) throw e;
  }
  // Not decodable here: ask the PACS for native pixels.
  let native;
  try {
    [native] = await client.retrieveFrames(ref.studyUid, ref.seriesUid, ref.sopUid, [frameNo], { ...opts, transferSyntaxes: [TS.explicitLE] });
  } catch (e) {
    if (e instanceof NotAcceptableError || (e instanceof PacsHttpError && !(e.status === 404))) {
      throw new UnsupportedTransferSyntaxError(
        stored!.transferSyntaxUid,
        `transfer syntax ${stored!.transferSyntaxUid} cannot be decoded locally and the PACS could not transcode it (${(e as ImagingError).message})`,
      );
    }
    throw e;
  }
  const t3 = performance.now();
  if (native!.transferSyntaxUid !== TS.explicitLE && native!.transferSyntaxUid !== TS.implicitLE) {
    throw new UnsupportedTransferSyntaxError(native!.transferSyntaxUid, `asked the PACS for explicit VR little endian, got ${native!.transferSyntaxUid}`);
  }
  const pixels = await decode(TS.explicitLE, native!.body, pm);
  return {
    pixelModule: pm,
    stored: pixels,
    receivedTransferSyntaxUid: stored!.transferSyntaxUid,
    transcodedByPacs: true,
    metadata,
    timings: { metadataMs: t1 - t0, frameMs: t3 - t1, decodeMs: performance.now() - t3 },
  };
}
