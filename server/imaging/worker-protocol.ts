/**
 * Messages between the imaging worker pool (worker-pool.ts) and its threads (imaging-worker.ts), and how the
 * imaging layer's typed errors cross the thread boundary (structured clone keeps only name/message, so the
 * fields callers branch on — `code`, the transfer syntax, the attribute, a decode failure's plain-words reason —
 * are carried explicitly and the same class is rebuilt on the main thread; retrieve.ts relies on
 * UnsupportedTransferSyntaxError to ask the PACS to transcode).
 */
import type { ResolutionNeed } from './decode/resolution.ts';
import type { StoredArray } from './decode/types.ts';
import {
  DecodeError,
  ImagingWorkerError,
  InvalidPixelModuleError,
  MissingAttributeError,
  PreprocessError,
  UnsupportedTransferSyntaxError,
} from './errors.ts';
import type { PixelModule } from './pixel-module.ts';
import type { PreprocessRecipe } from './preprocess.ts';

export type WorkerRequest =
  | { id: number; kind: 'decode'; transferSyntaxUid: string; bytes: Uint8Array; pixelModule: PixelModule; need?: ResolutionNeed }
  | { id: number; kind: 'preprocess'; stored: StoredArray; pixelModule: PixelModule; laterality: string | undefined; recipe: PreprocessRecipe };

export interface SerializedError {
  name: string;
  message: string;
  transferSyntaxUid?: string;
  attribute?: string;
  /** DecodeError's plain-words reason (its userMessage). */
  reason?: string;
}

export type WorkerReply =
  | { id: number; ok: true; kind: 'decode'; stored: StoredArray; pixelModule: PixelModule; level: number }
  | { id: number; ok: true; kind: 'preprocess'; stored: StoredArray; working: Float32Array }
  | { id: number; ok: false; error: SerializedError };

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const out: SerializedError = { name: err.name, message: err.message };
  if (err instanceof UnsupportedTransferSyntaxError || err instanceof DecodeError) out.transferSyntaxUid = err.transferSyntaxUid;
  if (err instanceof MissingAttributeError) out.attribute = err.attribute;
  if (err instanceof DecodeError && err.reason) out.reason = err.reason;
  return out;
}

/** The error the inline call would have thrown: same class for the imaging errors a decode/preprocess can raise. */
export function deserializeError(e: SerializedError): Error {
  switch (e.name) {
    case 'UnsupportedTransferSyntaxError':
      return new UnsupportedTransferSyntaxError(e.transferSyntaxUid ?? '', e.message);
    case 'DecodeError':
      return new DecodeError(e.transferSyntaxUid ?? '', e.message, e.reason ? { reason: e.reason } : {});
    case 'PreprocessError':
      return new PreprocessError(e.message);
    case 'InvalidPixelModuleError':
      return new InvalidPixelModuleError(e.message);
    case 'MissingAttributeError':
      return new MissingAttributeError(e.attribute ?? '', e.message);
    case 'ImagingWorkerError':
      return new ImagingWorkerError(e.message);
    case 'RangeError':
      return new RangeError(e.message);
    case 'TypeError':
      return new TypeError(e.message);
    default: {
      const err = new Error(e.message);
      err.name = e.name;
      return err;
    }
  }
}
