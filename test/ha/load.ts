/**
 * An open-loop load generator for the high-availability test: starts one operation every `1000 / ratePerSec` ms for
 * `durationMs`, whatever the previous ones are doing (as many EHR users do), with at most `maxInFlight` at once
 * (beyond that it waits for a slot, and says how often it had to). Each operation reports whether it succeeded; the
 * report counts them per kind and keeps every failure.
 */

/** What one operation reports. */
export interface OpResult {
  ok: boolean;
  /** HTTP status (0 when no response came back). */
  status: number;
  /** Short reason for a failure (no PHI, no tokens). */
  detail?: string;
}

/** One operation of the load: its kind (for the figures) and how to run it. */
export interface LoadOp {
  kind: string;
  run(): Promise<OpResult>;
}

export interface KindFigures {
  sent: number;
  ok: number;
  failed: number;
  /** Latency percentiles of this kind, in ms. */
  p50: number;
  p95: number;
}

export interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  /** Times the generator waited because `maxInFlight` operations were running. */
  saturated: number;
  byKind: Record<string, KindFigures>;
  failures: { kind: string; status: number; detail: string; atMs: number }[];
  elapsedMs: number;
}

export interface LoadOptions {
  durationMs: number;
  ratePerSec: number;
  maxInFlight: number;
  /** The `i`-th operation to start. */
  next(i: number): LoadOp;
  /** Called about every 50 ms with the time since the start (e.g. to kill a replica at some point). */
  onTick?(elapsedMs: number): void;
}

function pctl(xs: number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** Runs the load and resolves when every operation started has finished. */
export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const t0 = performance.now();
  const lat = new Map<string, number[]>();
  const counts = new Map<string, { sent: number; ok: number; failed: number }>();
  const failures: LoadReport['failures'] = [];
  const running = new Set<Promise<void>>();
  let saturated = 0;
  const ticker = opts.onTick ? setInterval(() => opts.onTick!(performance.now() - t0), 50) : undefined;
  const interval = 1000 / opts.ratePerSec;
  try {
    for (let i = 0; ; i++) {
      const due = t0 + i * interval;
      if (due - t0 >= opts.durationMs) break;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      while (running.size >= opts.maxInFlight) {
        saturated++;
        await Promise.race(running);
      }
      const op = opts.next(i);
      const c = counts.get(op.kind) ?? { sent: 0, ok: 0, failed: 0 };
      counts.set(op.kind, c);
      c.sent++;
      const started = performance.now();
      const p: Promise<void> = op.run()
        .catch((err: unknown): OpResult => ({ ok: false, status: 0, detail: (err as Error).message.slice(0, 200) }))
        .then((r) => {
          (lat.get(op.kind) ?? lat.set(op.kind, []).get(op.kind)!).push(performance.now() - started);
          if (r.ok) c.ok++;
          else {
            c.failed++;
            failures.push({ kind: op.kind, status: r.status, detail: r.detail ?? '', atMs: Math.round(started - t0) });
          }
        })
        .finally(() => running.delete(p));
      running.add(p);
    }
    await Promise.all(running);
  } finally {
    if (ticker) clearInterval(ticker);
  }
  const byKind: Record<string, KindFigures> = {};
  let sent = 0;
  let ok = 0;
  let failed = 0;
  for (const [k, c] of counts) {
    const xs = lat.get(k) ?? [];
    byKind[k] = { ...c, p50: Math.round(pctl(xs, 0.5) * 10) / 10, p95: Math.round(pctl(xs, 0.95) * 10) / 10 };
    sent += c.sent;
    ok += c.ok;
    failed += c.failed;
  }
  return { sent, ok, failed, saturated, byKind, failures, elapsedMs: Math.round(performance.now() - t0) };
}
