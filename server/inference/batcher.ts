/**
 * Micro-batching (issue 5, item 1): concurrent inference requests are queued and run together — as soon as
 * `maxBatch` items wait, or `maxWaitMs` after the first one arrived — so one session run serves several requests
 * (a GPU, or onnxruntime's CPU threads, are used better by one batch of 8 than by 8 runs of 1).
 * One batch runs at a time per model; items that arrive meanwhile form the next batch.
 */
export interface BatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export interface BatchStats {
  batches: number;
  items: number;
  largestBatch: number;
}

export class MicroBatcher<I, O> {
  readonly #run: (items: I[]) => Promise<O[]>;
  readonly #opts: BatcherOptions;
  #queue: Pending<I, O>[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  readonly stats: BatchStats = { batches: 0, items: 0, largestBatch: 0 };

  constructor(run: (items: I[]) => Promise<O[]>, opts: BatcherOptions) {
    if (!(opts.maxBatch >= 1) || !(opts.maxWaitMs >= 0)) throw new RangeError('maxBatch must be ≥ 1 and maxWaitMs ≥ 0');
    this.#run = run;
    this.#opts = opts;
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#running) return;
    if (this.#queue.length >= this.#opts.maxBatch || this.#opts.maxWaitMs === 0) {
      this.#flush();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => this.#flush(), this.#opts.maxWaitMs);
    }
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.#opts.maxBatch);
    this.#running = true;
    this.stats.batches++;
    this.stats.items += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    this.#run(batch.map((p) => p.item))
      .then((out) => {
        if (out.length !== batch.length) throw new Error(`batch of ${batch.length} returned ${out.length} results`);
        batch.forEach((p, i) => p.resolve(out[i]!));
      })
      .catch((err: unknown) => batch.forEach((p) => p.reject(err)))
      .finally(() => {
        this.#running = false;
        // Items that queued while this batch ran have waited long enough: run them now.
        if (this.#queue.length > 0) this.#flush();
      });
  }
}
