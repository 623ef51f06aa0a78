/**
 * Getting decoded pixels of one frame from any DICOMweb server: metadata for the pixel module, the frame in its
 * stored syntax (`transfer-syntax=*`, so nothing is transcoded or recompressed needlessly), local decoding — and,
 * when the stored syntax cannot be decoded here (e.g. 12-bit JPEG .51), a second request asking the PACS to
 * transcode to explicit VR little endian (PS3.18 §8.7.3.5).
 *
 * Two safeguards around the frame request:
 * - it is cancelled (its connection closed) whenever fetchFrame ends without using it — a refused header (e.g.
 *   65535×65535), failed metadata, an error — so the PACS does not go on sending a frame nobody reads; with the
 *   metadata at hand the header is checked before the frame is asked for at all;
 * - when the frame endpoint fails for a reason that retrying cannot fix (e.g. Orthanc 1.10 answers 400 "Bad file
 *   format" for a multi-frame file without a Basic Offset Table whose frames span several fragments), the whole
 *   instance is fetched instead (`application/dicom`, `transfer-syntax=*`, capped at what the header says the pixels
 *   can take) and the frame is cut from its Pixel Data by dicom.ts. Limits: RLE frames must be one fragment each
 *   (PS3.5 Annex G); an instance in a syntax not decodable here is not transcoded on this path.
 *
 * With a `resolution` need (the model's field and working size), a JPEG 2000 frame is decoded only down to the
 * resolution level that need allows (decode/resolution.ts); the returned pixel module then describes the smaller
 * array. Frames the PACS had to transcode are native and always decoded in full.
 */
import { decodeFrameAt, type ResolutionNeed } from './decode/index.ts';
import type { StoredArray } from './decode/types.ts';
import { parseDicomFile } from './dicom.ts';
import type { DicomJsonDataset } from './dicom-json.ts';
import type { CallOptions, DicomWebClient, RetrievedFrame } from './dicomweb-client.ts';
import {
  ImagingError,
  MalformedResponseError,
  NotAcceptableError,
  PacsHttpError,
  UnsupportedTransferSyntaxError,
} from './errors.ts';
import { DEFAULT_PIXEL_LIMITS, frameByteLength, pixelModuleFromJson, type PixelLimits, type PixelModule } from './pixel-module.ts';
import { TS } from './transfer-syntax.ts';
import type { ImagingExecutor } from './worker-pool.ts';

export interface InstanceRef {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
}

export interface FetchedFrame {
  /**
   * Describes `stored`: the header's pixel module, or — after a reduced-resolution decode (`resolution` option) —
   * the smaller geometry and coarser spacing of the decoded array, with the header's in `reducedFrom`.
   */
  pixelModule: PixelModule;
  /** Stored values of the frame (before masking/rescale; see pixels.ts). */
  stored: StoredArray;
  /** Resolution level decoded: 0 = full, k = 1/2^k per side (JPEG 2000 only; see decode/resolution.ts). */
  decodeLevel: number;
  /** The syntax the PACS stored / sent before any local decoding. */
  receivedTransferSyntaxUid: string;
  /** True when the PACS had to transcode because the stored syntax is not decodable locally. */
  transcodedByPacs: boolean;
  /** Where the frame's bytes came from: the frame endpoint, or the whole instance after the frame endpoint failed. */
  source: 'frames' | 'instance';
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
  imaging?: Pick<ImagingExecutor, 'decodeFrameAt'>;
  /**
   * What the frame is needed for (the model's field and working size; decode/resolution.ts): where the codec can
   * stop early (JPEG 2000 resolution levels) only that much is decoded, and the returned pixel module describes the
   * smaller array. Absent: full resolution.
   */
  resolution?: ResolutionNeed;
  /**
   * Largest whole instance accepted when the frame endpoint fails (default: the native size of all frames × 1.25
   * + 4 MiB for the header; never above the client's `maxResponseBytes`).
   */
  maxInstanceBytes?: number;
}

/** Why the frame request is being cancelled (the reason its fetch rejects with, never seen by callers). */
class FrameNotNeeded extends Error {
  override readonly name = 'FrameNotNeeded';
}

/** The pixel module of the header, and the frame number checked against it: before any pixel is requested. */
function checkHeader(metadata: DicomJsonDataset, frameNo: number, limits: PixelLimits): PixelModule {
  const pm = pixelModuleFromJson(metadata, limits);
  if (!Number.isInteger(frameNo) || frameNo < 1 || frameNo > pm.numberOfFrames) {
    throw new MalformedResponseError(`frame ${frameNo} requested; the instance has ${pm.numberOfFrames} frame(s)`);
  }
  return pm;
}

/**
 * Frame-endpoint failures the whole instance may get round: the PACS cannot cut the frame out of the file (Orthanc:
 * 400/500 "Bad file format"), or sends something unusable. Not: transient trouble (already retried; more load would
 * not help), a missing instance (404), credentials, or the caller giving up.
 */
function instanceMayHelp(e: unknown): e is ImagingError {
  if (e instanceof PacsHttpError) return !e.retryable && e.status !== 404 && e.status !== 401 && e.status !== 403;
  return e instanceof MalformedResponseError || e instanceof NotAcceptableError;
}

export function instanceByteBudget(pm: PixelModule): number {
  return Math.ceil(frameByteLength(pm) * pm.numberOfFrames * 1.25) + 4 * 1024 * 1024;
}

/** Frame `frameNo` cut from the whole Part 10 instance (its stored syntax), checked against the metadata's header. */
async function frameFromInstance(client: DicomWebClient, ref: InstanceRef, frameNo: number, pm: PixelModule, opts: FetchFrameOptions): Promise<RetrievedFrame> {
  const parts = await client.retrieveInstances(ref.studyUid, ref.seriesUid, ref.sopUid, {
    transferSyntax: '*',
    maxResponseBytes: opts.maxInstanceBytes ?? instanceByteBudget(pm),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (parts.length !== 1) throw new MalformedResponseError(`asked for one instance, the PACS sent ${parts.length} part(s)`);
  const file = parseDicomFile(parts[0]!, { limits: opts.limits ?? DEFAULT_PIXEL_LIMITS });
  if (file.sopInstanceUid !== ref.sopUid) throw new MalformedResponseError('the PACS sent another instance than the one asked for');
  const fpm = file.pixelModule;
  for (const k of ['rows', 'columns', 'samplesPerPixel', 'bitsAllocated', 'bitsStored', 'pixelRepresentation', 'numberOfFrames'] as const) {
    if (fpm[k] !== pm[k]) throw new MalformedResponseError(`the instance's ${k} (${fpm[k]}) differs from its metadata (${pm[k]})`);
  }
  return { transferSyntaxUid: file.transferSyntaxUid, contentType: 'application/dicom', body: file.frame(frameNo - 1) };
}

export async function fetchFrame(client: DicomWebClient, ref: InstanceRef, opts: FetchFrameOptions = {}): Promise<FetchedFrame> {
  const frameNo = opts.frame ?? 1;
  const limits = opts.limits ?? DEFAULT_PIXEL_LIMITS;
  const decode = opts.imaging ? opts.imaging.decodeFrameAt.bind(opts.imaging) : decodeFrameAt;
  const call: CallOptions = opts.signal ? { signal: opts.signal } : {};
  const t0 = performance.now();
  const frameCtl = new AbortController();
  const frameSignal = opts.signal ? AbortSignal.any([opts.signal, frameCtl.signal]) : frameCtl.signal;
  const requestFrame = () => {
    const p = client.retrieveFrames(ref.studyUid, ref.seriesUid, ref.sopUid, [frameNo], { signal: frameSignal, transferSyntaxes: '*' });
    p.catch(() => undefined); // awaited below; avoids an unhandled rejection while the header is checked
    return p;
  };
  try {
    let metadata = opts.metadata;
    let pm: PixelModule;
    let framePromise: Promise<RetrievedFrame[]>;
    if (metadata) {
      pm = checkHeader(metadata, frameNo, limits);
      framePromise = requestFrame();
    } else {
      // Metadata and the stored frame do not depend on each other: ask for both at once (one round trip saved).
      framePromise = requestFrame();
      const list = await client.retrieveMetadata(ref.studyUid, ref.seriesUid, ref.sopUid, call);
      if (list.length !== 1) throw new MalformedResponseError(`instance metadata returned ${list.length} data sets, 1 expected`);
      metadata = list[0]!;
      pm = checkHeader(metadata, frameNo, limits);
    }
    const t1 = performance.now();
    let stored: RetrievedFrame;
    let source: FetchedFrame['source'] = 'frames';
    try {
      [stored] = (await framePromise) as [RetrievedFrame];
    } catch (e) {
      if (!instanceMayHelp(e)) throw e;
      client.logger?.info({ code: e.code, ...(e instanceof PacsHttpError ? { status: e.status, pacs: e.pacsDetail } : {}), frames: pm.numberOfFrames }, 'DICOMweb: frame endpoint failed; reading the frame from the whole instance');
      try {
        stored = await frameFromInstance(client, ref, frameNo, pm, opts);
      } catch (e2) {
        // The PACS would not give the instance either: its answer to the frame request is the better explanation.
        // A file it did send but that is unreadable is reported as such.
        if (e2 instanceof ImagingError && e2.code.startsWith('PACS_')) {
          client.logger?.warn({ code: e2.code, ...(e2 instanceof PacsHttpError ? { status: e2.status } : {}) }, 'DICOMweb: whole-instance fallback failed too');
          throw e;
        }
        throw e2;
      }
      source = 'instance';
    }
    const t2 = performance.now();
    try {
      const decoded = await decode(stored.transferSyntaxUid, stored.body, pm, opts.resolution);
      return {
        pixelModule: decoded.pixelModule,
        stored: decoded.stored,
        decodeLevel: decoded.level,
        receivedTransferSyntaxUid: stored.transferSyntaxUid,
        transcodedByPacs: false,
        source,
        metadata,
        timings: { metadataMs: t1 - t0, frameMs: t2 - t1, decodeMs: performance.now() - t2 },
      };
    } catch (e) {
      if (!(e instanceof UnsupportedTransferSyntaxError)) throw e;
    }
    // Not decodable here: ask the PACS for native pixels.
    let native;
    try {
      [native] = await client.retrieveFrames(ref.studyUid, ref.seriesUid, ref.sopUid, [frameNo], { ...call, transferSyntaxes: [TS.explicitLE] });
    } catch (e) {
      if (e instanceof NotAcceptableError || (e instanceof PacsHttpError && !(e.status === 404))) {
        throw new UnsupportedTransferSyntaxError(
          stored.transferSyntaxUid,
          `transfer syntax ${stored.transferSyntaxUid} cannot be decoded locally and the PACS could not transcode it (${(e as ImagingError).message})`,
        );
      }
      throw e;
    }
    const t3 = performance.now();
    if (native!.transferSyntaxUid !== TS.explicitLE && native!.transferSyntaxUid !== TS.implicitLE) {
      throw new UnsupportedTransferSyntaxError(native!.transferSyntaxUid, `asked the PACS for explicit VR little endian, got ${native!.transferSyntaxUid}`);
    }
    const decoded = await decode(TS.explicitLE, native!.body, pm);
    return {
      pixelModule: decoded.pixelModule,
      stored: decoded.stored,
      decodeLevel: decoded.level,
      receivedTransferSyntaxUid: stored.transferSyntaxUid,
      transcodedByPacs: true,
      source,
      metadata,
      timings: { metadataMs: t1 - t0, frameMs: t3 - t1, decodeMs: performance.now() - t3 },
    };
  } finally {
    // No-op once the frame has arrived; otherwise the PACS stops sending a frame nobody will read.
    frameCtl.abort(new FrameNotNeeded('the frame is no longer needed'));
  }
}
