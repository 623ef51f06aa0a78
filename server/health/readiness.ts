/**
 * What the service needs before it can do useful work, and whether each part is there yet (issue 4: `/readyz`
 * lists what is ready and what is not).
 *
 * Components either report their own state (the sandboxes: `starting` → `ready` | `failed`) or are probed when
 * `/readyz` is asked (an external FHIR server or PACS). Probes run with a time-out and are cached briefly so a
 * load balancer polling `/readyz` does not turn into load on the PACS.
 */
export type ComponentState = 'starting' | 'ready' | 'failed';

export interface ComponentReport {
  readonly ready: boolean;
  readonly state: ComponentState;
  /** Short operator-facing explanation, never PHI. */
  readonly detail?: string;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly components: Record<string, ComponentReport>;
  /**
   * Settings that are on but unsafe outside development (an open FHIR sandbox, a shared-secret token mode). They do
   * not make the service unready — a demo may want them — but an operator polling `/readyz` must see them.
   */
  readonly warnings?: readonly ReadinessWarning[];
}

/** An unsafe-but-allowed setting in force, as listed by `/readyz`. */
export interface ReadinessWarning {
  /** Stable key, e.g. the setting's name (`SANDBOX_FHIR_OPEN`). */
  readonly key: string;
  /** Operator-facing sentence: what is on and why it matters. Never PHI or a secret. */
  readonly message: string;
}

export type Probe = (signal: AbortSignal) => Promise<{ ok: boolean; detail?: string }>;

interface ProbeEntry {
  readonly probe: Probe;
  readonly timeoutMs: number;
  cached?: { at: number; report: ComponentReport };
}

/** Probe results are reused for this long (ms). */
const PROBE_CACHE_MS = 2000;

export class Readiness {
  readonly #states = new Map<string, ComponentReport>();
  readonly #probes = new Map<string, ProbeEntry>();
  readonly #warnings = new Map<string, string>();

  /** Flags an unsafe setting in force (listed under `warnings` by `/readyz`; readiness itself is unchanged). */
  warn(key: string, message: string): void {
    this.#warnings.set(key, message);
  }

  /** Declares or updates a self-reported component. */
  set(component: string, state: ComponentState, detail?: string): void {
    this.#states.set(component, { ready: state === 'ready', state, ...(detail ? { detail } : {}) });
  }

  /** Declares a component whose state is found by calling `probe` (with a time-out) when readiness is asked. */
  addProbe(component: string, probe: Probe, timeoutMs: number): void {
    this.#probes.set(component, { probe, timeoutMs });
  }

  async report(now: () => number = Date.now): Promise<ReadinessReport> {
    const components: Record<string, ComponentReport> = {};
    for (const [name, report] of this.#states) components[name] = report;
    await Promise.all(
      [...this.#probes].map(async ([name, entry]) => {
        if (entry.cached && now() - entry.cached.at < PROBE_CACHE_MS) {
          components[name] = entry.cached.report;
          return;
        }
        const report = await runProbe(entry);
        entry.cached = { at: now(), report };
        components[name] = report;
      }),
    );
    const names = Object.keys(components).sort();
    const sorted: Record<string, ComponentReport> = {};
    for (const n of names) sorted[n] = components[n]!;
    const warnings = [...this.#warnings].sort(([a], [b]) => a.localeCompare(b)).map(([key, message]) => ({ key, message }));
    return { ready: names.length > 0 && names.every((n) => sorted[n]!.ready), components: sorted, ...(warnings.length ? { warnings } : {}) };
  }
}

async function runProbe(entry: ProbeEntry): Promise<ComponentReport> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ComponentReport>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ ready: false, state: 'failed', detail: `no answer within ${entry.timeoutMs} ms` });
    }, entry.timeoutMs);
  });
  try {
    const probed = entry.probe(controller.signal).then(
      (r): ComponentReport => ({ ready: r.ok, state: r.ok ? 'ready' : 'failed', ...(r.detail ? { detail: r.detail } : {}) }),
      (err: unknown): ComponentReport => ({ ready: false, state: 'failed', detail: err instanceof Error ? err.message : String(err) }),
    );
    return await Promise.race([probed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A probe that GETs `url` and is ready on a 2xx answer (e.g. an external FHIR server's `/metadata`, a PACS's
 * QIDO-RS root). The URL is reported without its query string; credentials go in `headers`, never in the detail.
 */
export function httpProbe(url: string, headers: Record<string, string> = {}): Probe {
  const shown = url.split('?')[0];
  return async (signal) => {
    let res: Response;
    try {
      res = await fetch(url, { headers, signal, redirect: 'manual' });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      return { ok: false, detail: `${shown} unreachable (${cause?.code ?? cause?.message ?? (err as Error).message})` };
    }
    await res.body?.cancel();
    return res.ok ? { ok: true, detail: `${shown} answered ${res.status}` } : { ok: false, detail: `${shown} answered ${res.status}` };
  };
}
