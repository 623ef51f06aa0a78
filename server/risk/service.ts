/**
 * The risk service every channel uses (API, CLI, later CDS Hooks and the app): assessments with a cache keyed by
 * (study, model version, factor hash) — a new radiograph, a new model or any changed factor gives a new
 * assessment; anything else reuses the stored one — plus a short request-level memo so a burst of identical
 * requests (a CDS hook firing repeatedly for one chart) does not re-read the chart each time. Optional write-back
 * of the FHIR resources (`RISK_WRITE_BACK`).
 */
import type { ImagingStudy } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import type { Logger } from '../logging.ts';
import { assess, cacheKeyOf, indexDateOf, prepare, type AssessDeps, type AssessmentResult, type AssessRequest } from './assess.ts';
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
}

export class RiskService {
  readonly #deps: AssessDeps;
  readonly #byKey = new Map<string, StoredAssessment>();
  readonly #byId = new Map<string, StoredAssessment>();
  readonly #memo = new Map<string, { key: string; at: number }>();
  readonly #inflight = new Map<string, Promise<StoredAssessment>>();
  readonly #opts: RiskServiceOptions;

  constructor(opts: RiskServiceOptions) {
    this.#deps = opts.deps;
    this.#opts = opts;
  }

  get fhir(): FhirDataSource {
    return this.#deps.fhir;
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
    const key = cacheKeyOf(prepared.study, prepared.model, factors);
    const cached = this.#byKey.get(key);
    if (cached) {
      this.#memo.set(memoKey, { key, at: Date.now() });
      return { stored: this.#touch(key, cached), source: 'cache', ms: performance.now() - t0 };
    }
    let p = this.#inflight.get(key);
    if (!p) {
      p = this.#compute(req, prepared, deps).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    const stored = await p;
    this.#memo.set(memoKey, { key, at: Date.now() });
    return { stored, source: 'new', ms: performance.now() - t0 };
  }

  get(id: string): StoredAssessment | undefined {
    return this.#byId.get(id);
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
        for (const r of [fhir.device, ...fhir.binaries, ...(fhir.documentReference ? [fhir.documentReference] : []), fhir.riskAssessment, fhir.provenance]) {
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
    }
    if (this.#memo.size > 4 * this.#opts.cacheSize) this.#memo.clear();
  }
}
