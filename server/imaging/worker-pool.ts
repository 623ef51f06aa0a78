/**
 * A small `worker_threads` pool for the CPU-bound part of getting a model input out of a radiograph: frame
 * decoding (WASM codecs, RLE, JPEG lossless) and the preprocessing recipe. On the main thread these take tens to
 * hundreds of milliseconds per image, during which no CDS hook can be answered; in a worker they run beside the
 * event loop. Size: `IMAGING_WORKERS` (server/config.ts); 0 keeps today's inline behaviour ({@link inlineImaging}).
 *
 * Both executors have the same interface so retrieve.ts and assess.ts do not care which one they get. Guarantees:
 * - ArrayBuffers move between threads (transfer list) instead of being copied; a frame that is a slice of a larger
 *   response is copied once first (the rest of that buffer may still be in use).
 * - A job never hangs: a worker that crashes, exits, or exceeds `jobTimeoutMs` rejects its job with
 *   {@link ImagingWorkerError} (an ImagingError, so an assessment falls back to clinical-only with the reason) and
 *   is replaced on the next job. After {@link ImagingPool.close} every pending and new job rejects the same way.
 * - Idle workers are `unref`'d: a pool that nobody closed does not keep a process alive.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../logging.ts';
import { decodeFrameAt, type DecodedFrame, type ResolutionNeed } from './decode/index.ts';
import type { StoredArray } from './decode/types.ts';
import { ImagingWorkerError } from './errors.ts';
import type { PixelModule } from './pixel-module.ts';
import { preprocessPixels, type PreprocessInput, type PreprocessRecipe } from './preprocess.ts';
import { deserializeError, type WorkerReply, type WorkerRequest } from './worker-protocol.ts';

/** Decode + preprocess, inline or in worker threads. */
export interface ImagingExecutor {
  /**
   * Same contract as decode/index.ts `decodeFrame`. With a pool, `bytes`' ArrayBuffer is transferred (detached
   * here) when the view spans all of it: the caller hands the bytes over.
   */
  decodeFrame(transferSyntaxUid: string, bytes: Uint8Array, pm: PixelModule): Promise<StoredArray>;
  /**
   * decode/index.ts `decodeFrameAt`: like decodeFrame, at a reduced resolution when `need` allows it (JPEG 2000);
   * the returned pixel module describes the returned array. Same transfer rule for `bytes`.
   */
  decodeFrameAt(transferSyntaxUid: string, bytes: Uint8Array, pm: PixelModule, need?: ResolutionNeed): Promise<DecodedFrame>;
  /**
   * preprocess.ts `preprocessPixels`, plus the stored array back: with a pool `input.stored` travels to the worker
   * and back (transferred both ways), so the caller must use the returned `stored` afterwards.
   */
  preprocess(input: PreprocessInput, recipe: PreprocessRecipe): Promise<{ stored: StoredArray; working: Float32Array }>;
  close(): Promise<void>;
}

/** Today's behaviour: everything on the calling (main) thread. */
export const inlineImaging: ImagingExecutor = {
  decodeFrame: async (ts, bytes, pm) => (await decodeFrameAt(ts, bytes, pm)).stored,
  decodeFrameAt: (ts, bytes, pm, need) => decodeFrameAt(ts, bytes, pm, need),
  preprocess: async (input, recipe) => ({ stored: input.stored, working: preprocessPixels(input, recipe) }),
  close: async () => undefined,
};

export interface ImagingPoolOptions {
  /** Worker threads (≥ 1). */
  size: number;
  /** A job not answered within this time kills its worker (default 60 s: a pathological codestream, a bug). */
  jobTimeoutMs?: number;
  /** Worker entry; tests point it at a fixture that fails in a chosen way. Default: imaging-worker.ts. */
  entry?: URL;
  logger?: Logger;
}

type Ok = Extract<WorkerReply, { ok: true }>;
type WorkerRequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

interface Job {
  req: WorkerRequest;
  transfer: ArrayBuffer[];
  resolve(r: Ok): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  timer: NodeJS.Timeout | null;
  dead: boolean;
}

/**
 * How to start the entry. The project runs TypeScript through tsx; on Node 20 a worker does not get tsx's loader
 * from an inherited or explicit `--import tsx` before its entry module resolves ("Unknown file extension .ts"),
 * so a `.ts` entry is started by a two-line bootstrap that registers tsx's ESM hooks in the worker and then imports
 * the entry. Works the same under `tsx server/index.ts`, `node --import tsx`, and the test runner's children.
 */
function startWorker(entry: URL): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { name: 'frcds-imaging' });
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const code = `import(${api}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(code, { eval: true, name: 'frcds-imaging' });
}

/** Whether a typed array can be moved without detaching memory that someone else uses. */
const ownsBuffer = (a: ArrayBufferView): boolean =>
  a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.byteLength > 0;

export class ImagingPool implements ImagingExecutor {
  readonly size: number;
  readonly #entry: URL;
  readonly #timeoutMs: number;
  readonly #logger: Logger | undefined;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #nextId = 1;
  #closed = false;

  constructor(opts: ImagingPoolOptions) {
    if (!Number.isInteger(opts.size) || opts.size < 1) throw new RangeError(`imaging pool size must be an integer ≥ 1, got ${opts.size}`);
    this.size = opts.size;
    // The worker file has this module's own extension: .ts from the sources, .js in the production build (dist/).
    this.#entry = opts.entry ?? new URL(`./imaging-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
    this.#timeoutMs = opts.jobTimeoutMs ?? 60_000;
    this.#logger = opts.logger;
    // Start the threads now so their start-up (tsx, codec WASM) is not paid by the first patient.
    for (let i = 0; i < this.size; i++) this.#slots.push(this.#spawn());
  }

  async decodeFrame(transferSyntaxUid: string, bytes: Uint8Array, pm: PixelModule): Promise<StoredArray> {
    return (await this.decodeFrameAt(transferSyntaxUid, bytes, pm)).stored;
  }

  async decodeFrameAt(transferSyntaxUid: string, bytes: Uint8Array, pm: PixelModule, need?: ResolutionNeed): Promise<DecodedFrame> {
    const own = ownsBuffer(bytes) ? bytes : new Uint8Array(bytes); // a slice of a multipart body: copy once
    const r = await this.#submit(
      { kind: 'decode', transferSyntaxUid, bytes: own, pixelModule: pm, ...(need ? { need } : {}) },
      [own.buffer as ArrayBuffer],
    );
    if (r.kind !== 'decode') throw new ImagingWorkerError(`imaging worker answered a decode job with '${r.kind}'`);
    return { stored: r.stored, pixelModule: r.pixelModule, level: r.level };
  }

  async preprocess(input: PreprocessInput, recipe: PreprocessRecipe): Promise<{ stored: StoredArray; working: Float32Array }> {
    const s = input.stored;
    const stored = ownsBuffer(s) ? s : s.slice();
    const r = await this.#submit(
      { kind: 'preprocess', stored, pixelModule: input.pixelModule, laterality: input.laterality, recipe },
      [stored.buffer as ArrayBuffer],
    );
    if (r.kind !== 'preprocess') throw new ImagingWorkerError(`imaging worker answered a preprocess job with '${r.kind}'`);
    return { stored: r.stored, working: r.working };
  }

  /** Terminates the threads; pending and later jobs reject with ImagingWorkerError. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.reject(new ImagingWorkerError('the imaging worker pool was closed'));
    const slots = this.#slots.splice(0);
    await Promise.all(slots.map((s) => this.#kill(s, new ImagingWorkerError('the imaging worker pool was closed'))));
  }

  #submit(body: WorkerRequestBody, transfer: ArrayBuffer[]): Promise<Ok> {
    if (this.#closed) return Promise.reject(new ImagingWorkerError('the imaging worker pool is closed'));
    return new Promise<Ok>((resolve, reject) => {
      this.#queue.push({ req: { ...body, id: this.#nextId++ } as WorkerRequest, transfer, resolve, reject });
      this.#dispatch();
    });
  }

  #spawn(): Slot {
    const worker = startWorker(this.#entry);
    const slot: Slot = { worker, job: null, timer: null, dead: false };
    worker.unref();
    worker.on('message', (reply: WorkerReply) => this.#onReply(slot, reply));
    worker.on('error', (err: Error) => {
      this.#logger?.error({ err: err.message }, 'imaging worker crashed');
      void this.#kill(slot, new ImagingWorkerError(`imaging worker crashed: ${err.message}`, { cause: err }));
    });
    worker.on('exit', (code) => {
      if (!slot.dead) this.#logger?.error({ code }, 'imaging worker exited unexpectedly');
      void this.#kill(slot, new ImagingWorkerError(`imaging worker exited (code ${code})`));
    });
    return slot;
  }

  /** Rejects the slot's job, removes the slot, terminates its thread; a replacement starts if work is waiting. */
  async #kill(slot: Slot, reason: ImagingWorkerError): Promise<void> {
    if (slot.dead) return;
    slot.dead = true;
    if (slot.timer) clearTimeout(slot.timer);
    const job = slot.job;
    slot.job = null;
    job?.reject(reason);
    const i = this.#slots.indexOf(slot);
    if (i >= 0) this.#slots.splice(i, 1);
    this.#dispatch();
    await slot.worker.terminate().catch(() => undefined);
  }

  #onReply(slot: Slot, reply: WorkerReply): void {
    const job = slot.job;
    if (slot.dead || !job || job.req.id !== reply.id) return;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.job = null;
    slot.worker.unref();
    if (reply.ok) job.resolve(reply);
    else job.reject(deserializeError(reply.error));
    this.#dispatch();
  }

  #dispatch(): void {
    if (this.#closed) return;
    while (this.#slots.length < this.size && this.#queue.length > 0) this.#slots.push(this.#spawn());
    for (const slot of this.#slots) {
      if (this.#queue.length === 0) return;
      if (slot.job || slot.dead) continue;
      const job = this.#queue.shift()!;
      slot.job = job;
      slot.worker.ref(); // a job in flight keeps the process alive until it is answered
      slot.timer = setTimeout(() => void this.#kill(slot, new ImagingWorkerError(`imaging worker did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      try {
        slot.worker.postMessage(job.req, job.transfer);
      } catch (err) {
        slot.job = null;
        slot.worker.unref();
        clearTimeout(slot.timer);
        slot.timer = null;
        job.reject(new ImagingWorkerError(`could not hand the job to an imaging worker: ${(err as Error).message}`, { cause: err }));
      }
    }
  }
}

/**
 * The executor, decoding at the reduced resolution `need` allows whenever a caller names no need of its own
 * (decode/resolution.ts; JPEG 2000 only). The risk service wraps its executor with the loaded models' need, so
 * every assessment decodes only what its model reads. `need` undefined: the executor itself.
 */
export function withResolution(executor: ImagingExecutor, need: ResolutionNeed | undefined): ImagingExecutor {
  if (!need) return executor;
  return {
    decodeFrame: (ts, bytes, pm) => executor.decodeFrame(ts, bytes, pm),
    decodeFrameAt: (ts, bytes, pm, own) => executor.decodeFrameAt(ts, bytes, pm, own ?? need),
    preprocess: (input, recipe) => executor.preprocess(input, recipe),
    close: () => executor.close(),
  };
}

/** `IMAGING_WORKERS`: 0 → inline on the main thread, n ≥ 1 → a pool of n threads. */
export function createImagingExecutor(workers: number, opts: Omit<ImagingPoolOptions, 'size'> = {}): ImagingExecutor {
  return workers > 0 ? new ImagingPool({ ...opts, size: workers }) : inlineImaging;
}
