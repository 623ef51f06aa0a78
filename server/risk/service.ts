/**
 * The risk service every channel uses (API, CLI, later CDS Hooks and the app): assessments with a cache keyed by
 * (study, model version, factor hash) — a new radiograph, a new model or any changed factor gives a new
 * assessment; anything else reuses the stored one — plus a short request-level memo so a burst of identical
 * requests (a CDS hook firing repeatedly for one chart) does not re-read the chart each time. Optional write-back
 * of the FHIR resources (`RISK_WRITE_BACK`).
 *
 * With a {@link ResultStore} (server/state/) every new result is also stored there, so an assessment id stays valid
 * after a restart and on every replica, and a replica reuses what another computed (source `cache`). With a
 * {@link SingleFlight} as well, two replicas asked for the same assessment at once compute it once: the other waits
 * for the result to appear in the store. The in-process maps stay in front as a near cache. A store that cannot be
 * reached fails the call with its StateUnavailableError (never answered from this process alone as if shared).
 */
import type { ImagingStudy } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import type { Logger } from '../logging.ts';
import type { ResultRecord, ResultStore, SingleFlight } from '../state/types.ts';
import { assess, cacheKeyOf, dxaFor, indexDateOf, prepare, type AssessDeps, type AssessmentResult, type AssessRequest } from './assess.ts';
import { ctCacheKeyOf, ctDxaFor } from './ct-assess.ts';
import { extractFactors } from './factors.ts';
import { toFhir, type AssessmentFhir } from './fhir-output.ts';

/** How long an identical request (patient, study, model) is answered from memory without re-reading the chart. */
export const REQUEST_MEMO_MS = 60_000;

export interface StoredAssessment extends AssessmentResult {
  fhir: AssessmentFhir;
  writeBack: { written: boolean; error?: string } | null;
}

export interface ServiceResult {
  stored: StoredAssessment;
  /** 'memo': identical request within REQUEST_MEMO_MS; 'cache': same study, model and factors; 'new': computed. */
  source: 'memo' | 'cache' | 'new';
  ms: number;
}

/** Per-call options of {@link RiskService.assess} (additive; issue 6). */
export interface AssessOptions {
  /** Where to read the chart (default: the configured FHIR server). */
  fhir?: FhirDataSource;
}

/** Warning of a {@link RiskService.clinicalEstimate} made while the radiograph is still being analysed. */
export const IMAGE_IN_PROGRESS = 'Image analysis in progress: this is the clinical-only (QFracture-2012) estimate; the radiograph-based estimate follows when the analysis finishes.';

export interface RiskServiceOptions {
  deps: AssessDeps;
  cacheSize: number;
  writeBack: boolean;
  logger: Logger;
  /** Where results are shared and kept across restarts (default: only this process's memory). */
  results?: ResultStore;
  /** How long a stored result is kept, ms (default 30 days). */
  resultTtlMs?: number;
  /** One computation per assessment across replicas (used together with `results`). */
  flight?: SingleFlight;
}

/** The stored JSON of a result: everything but the PNGs, which the store keeps beside it. */
interface StoredBody {
  assessment: StoredAssessment['assessment'];
  fhir: AssessmentFhir;
  writeBack: StoredAssessment['writeBack'];
}

/** A result read from another replica may have its PNGs stored a moment later: how long a read by id waits for them. */
const IMAGES_WAIT_MS = 2000;

export class RiskService {
  readonly #deps: AssessDeps;
  readonly #byKey = new Map<string, StoredAssessment>();
  readonly #byId = new Map<string, StoredAssessment>();
  readonly #memo = new Map<string, { key: string; at: number }>();
  readonly #inflight = new Map<string, Promise<{ stored: StoredAssessment; computed: boolean }>>();
  readonly #opts: RiskServiceOptions;
  /** PNG writes to the result store still running (awaited by {@link flush}). */
  readonly #imageWrites = new Set<Promise<void>>();
  /** Ids read from the store before their PNGs were there (another replica writes them just after the result). */
  readonly #imagesPending = new Set<string>();

  constructor(opts: RiskServiceOptions) {
    this.#deps = opts.deps;
    this.#opts = opts;
  }

  get fhir(): FhirDataSource {
    return this.#deps.fhir;
  }

  /** The CT spine model in use (`id@version`), or null when CT studies are not assessed. */
  get ctModel(): string | null {
    const m = this.#deps.ct?.model;
    return m ? `${m.id}@${m.version}` : null;
  }

  /**
   * `opts.fhir` (CDS Hooks, issue 6): read the chart from this data source instead of the configured server (e.g.
   * the hook's prefetch with a fall-back to the client's `fhirServer`). Write-back still goes to the configured
   * server, and only when both are the same server (a foreign chart is never written into ours).
   */
  async assess(req: AssessRequest, opts: AssessOptions = {}): Promise<ServiceResult> {
    const t0 = performance.now();
    const deps = this.#depsFor(opts);
    const model = this.#deps.registry.get(req.modelId);
    const memoKey = `${this.#sourcePrefix(opts)}${req.patientId}|${req.studyId ?? ''}|${model.id}@${model.version}`;
    const m = this.#memo.get(memoKey);
    if (m && Date.now() - m.at < REQUEST_MEMO_MS && !req.at) {
      const hit = this.#byKey.get(m.key);
      if (hit) return { stored: this.#touch(m.key, hit), source: 'memo', ms: performance.now() - t0 };
    }
    const prepared = await prepare(deps, req);
    const factors = extractFactors(prepared.chart, indexDateOf(prepared.study, prepared.at));
    const key = prepared.pathway === 'ct-spine' && prepared.study && deps.ct
      ? ctCacheKeyOf(prepared.study, deps.ct.model, factors, ctDxaFor(deps.ct.model, prepared, deps))
      : cacheKeyOf(prepared.study, prepared.model, factors, dxaFor(prepared.model, prepared.chart, prepared.at, deps.settings));
    const cached = this.#byKey.get(key) ?? (await this.#sharedByKey(key));
    if (cached) {
      this.#memo.set(memoKey, { key, at: Date.now() });
      return { stored: this.#touch(key, cached), source: 'cache', ms: performance.now() - t0 };
    }
    let p = this.#inflight.get(key);
    if (!p) {
      p = this.#computeOnce(key, req, prepared, deps).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    const { stored, computed } = await p;
    this.#memo.set(memoKey, { key, at: Date.now() });
    return { stored, source: computed ? 'new' : 'cache', ms: performance.now() - t0 };
  }

  /**
   * The assessment with this id: from this process's memory, else from the result store (computed before a restart,
   * or by another replica). Undefined when unknown or expired.
   */
  async get(id: string): Promise<StoredAssessment | undefined> {
    const local = this.#byId.get(id);
    if ((local && !this.#imagesPending.has(id)) || !this.#opts.results) return local;
    let record = await this.#opts.results.byId(id);
    // Another replica stores the PNGs just after the result: wait briefly for them rather than answer "no image".
    for (const until = Date.now() + IMAGES_WAIT_MS; record && !record.images && this.#hasImage(record) && Date.now() < until;) {
      await new Promise((r) => setTimeout(r, 50));
      record = await this.#opts.results.byId(id);
    }
    return record && this.#remember(record);
  }

  /**
   * Resolves when the PNGs of every result computed so far are in the result store (they are written just after
   * the result itself). For shutdown and tests.
   */
  async flush(): Promise<void> {
    while (this.#imageWrites.size > 0) await Promise.allSettled([...this.#imageWrites]);
  }

  // --- shared results (server/state/) ---------------------------------------------------------------------

  async #sharedByKey(key: string): Promise<StoredAssessment | undefined> {
    const record = await this.#opts.results?.byKey(key);
    return record && this.#remember(record);
  }

  #hasImage(record: ResultRecord): boolean {
    const a = (JSON.parse(record.body) as StoredBody).assessment;
    return a.heatmap !== null || !!a.ct?.overlays;
  }

  /** A stored record as a StoredAssessment, kept in the near cache. */
  #remember(record: ResultRecord): StoredAssessment {
    const known = this.#byId.get(record.id);
    if (known && !(this.#imagesPending.has(record.id) && record.images)) return known;
    const body = JSON.parse(record.body) as StoredBody;
    const images = record.images;
    if (!images && (body.assessment.heatmap !== null || !!body.assessment.ct?.overlays)) this.#imagesPending.add(record.id);
    else this.#imagesPending.delete(record.id);
    const stored: StoredAssessment = { ...body, pngs: images ? { display: () => images.display, overlay: () => images.overlay } : null };
    this.#byKey.set(record.cacheKey, stored);
    this.#byId.set(record.id, stored);
    this.#evict();
    return stored;
  }

  /**
   * Computes the assessment of `key`, once across the replicas sharing the single-flight: `computed` is false when
   * another replica computed it and this one read its result from the store.
   */
  async #computeOnce(key: string, req: AssessRequest, prepared: Awaited<ReturnType<typeof prepare>>, deps: AssessDeps): Promise<{ stored: StoredAssessment; computed: boolean }> {
    const { flight, results } = this.#opts;
    if (!flight || !results) return { stored: await this.#compute(req, prepared, deps), computed: true };
    const out = await flight.run(key, () => this.#compute(req, prepared, deps), () => this.#sharedByKey(key));
    return { stored: out.value, computed: out.led };
  }

  /** Stores a new result (awaited: a waiting replica reads it next), then its PNGs in the background. */
  async #share(stored: StoredAssessment): Promise<void> {
    const results = this.#opts.results;
    if (!results) return;
    const a = stored.assessment;
    const body: StoredBody = { assessment: a, fhir: stored.fhir, writeBack: stored.writeBack };
    await results.put({ id: a.id, cacheKey: a.cacheKey, body: JSON.stringify(body), images: null }, this.#opts.resultTtlMs ?? 30 * 86_400_000);
    const pngs = stored.pngs;
    if (!pngs) return;
    // Encoding both PNGs takes tens of ms: after the answer, not before it.
    const write = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => results.attachImages(a.id, { display: pngs.display(), overlay: pngs.overlay() }))
      .catch((err: unknown) => this.#opts.logger.warn({ err: (err as Error).message }, 'the PNGs of an assessment could not be stored; its heatmap is available on this replica only'))
      .finally(() => this.#imageWrites.delete(write));
    this.#imageWrites.add(write);
  }

  // --- CDS Hooks additions (issue 6): per-request data source, cache peek, fast clinical-only estimate ---------

  #depsFor(opts: AssessOptions): AssessDeps {
    return opts.fhir ? { ...this.#deps, fhir: opts.fhir } : this.#deps;
  }

  /** Memo keys of charts read from another server carry that server, so equal patient ids never collide. */
  #sourcePrefix(opts: AssessOptions): string {
    return opts.fhir && opts.fhir.baseUrl !== this.#deps.fhir.baseUrl ? `${opts.fhir.baseUrl}|` : '';
  }

  /**
   * The assessment a request would get from memory, without any I/O: the memo of an identical recent request.
   * Undefined when it would have to read the chart (callers then go through {@link assess}).
   */
  peek(req: AssessRequest, opts: AssessOptions = {}): StoredAssessment | undefined {
    if (req.at) return undefined;
    const model = this.#deps.registry.get(req.modelId);
    const m = this.#memo.get(`${this.#sourcePrefix(opts)}${req.patientId}|${req.studyId ?? ''}|${model.id}@${model.version}`);
    if (!m || Date.now() - m.at >= REQUEST_MEMO_MS) return undefined;
    return this.#byKey.get(m.key);
  }

  /**
   * The clinical-only (QFracture-2012) estimate of the same request, computed from the chart alone — what a caller
   * with a deadline shows while the image is still being fetched and analysed. Not cached (it is not the assessment
   * the request asks for); the caller keeps {@link assess} running to completion, which caches the real one.
   * Its warnings say the image analysis is in progress instead of "no eligible radiograph".
   */
  async clinicalEstimate(req: AssessRequest, opts: AssessOptions = {}): Promise<AssessmentResult & { studyPending: ImagingStudy | null }> {
    const deps = this.#depsFor(opts);
    const prepared = await prepare(deps, req);
    const result = await assess(deps, req, { ...prepared, study: null });
    if (prepared.study) {
      const a = result.assessment;
      a.warnings = [IMAGE_IN_PROGRESS, ...a.warnings.filter((w) => !w.startsWith('No eligible hip radiograph'))];
    }
    return { ...result, studyPending: prepared.study };
  }

  async #compute(req: AssessRequest, prepared: Awaited<ReturnType<typeof prepare>>, deps: AssessDeps = this.#deps): Promise<StoredAssessment> {
    const result = await assess(deps, req, prepared);
    const fhir = toFhir(result, { binaries: this.#opts.writeBack });
    let writeBack: StoredAssessment['writeBack'] = null;
    if (this.#opts.writeBack && deps.fhir.baseUrl === this.#deps.fhir.baseUrl) {
      try {
        // CT measurements first: the RiskAssessment's basis references them.
        const ct = fhir.ct ? [fhir.ct.device, ...fhir.ct.observations, fhir.ct.provenance] : [];
        for (const r of [...ct, fhir.device, ...fhir.binaries, ...(fhir.documentReference ? [fhir.documentReference] : []), fhir.riskAssessment, fhir.provenance]) {
          await this.#deps.fhir.write(r);
        }
        writeBack = { written: true };
      } catch (err) {
        this.#opts.logger.error({ err: (err as Error).message }, 'write-back of the assessment failed');
        writeBack = { written: false, error: (err as Error).message };
      }
    }
    const stored: StoredAssessment = { ...result, fhir, writeBack };
    this.#byKey.set(result.assessment.cacheKey, stored);
    this.#byId.set(result.assessment.id, stored);
    this.#evict();
    await this.#share(stored);
    return stored;
  }

  #touch(key: string, s: StoredAssessment): StoredAssessment {
    this.#byKey.delete(key);
    this.#byKey.set(key, s);
    return s;
  }

  #evict(): void {
    while (this.#byKey.size > this.#opts.cacheSize) {
      const [oldest, s] = this.#byKey.entries().next().value as [string, StoredAssessment];
      this.#byKey.delete(oldest);
      this.#byId.delete(s.assessment.id);
      this.#imagesPending.delete(s.assessment.id);
    }
    if (this.#memo.size > 4 * this.#opts.cacheSize) this.#memo.clear();
  }
}
