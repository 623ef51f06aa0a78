/**
 * The risk service every channel uses (API, CLI, later CDS Hooks and the app): assessments with a cache keyed by
 * (study, model version, factor hash) — a new radiograph, a new model or any changed factor gives a new
 * assessment; anything else reuses the stored one — plus a short request-level memo so a burst of identical
 * requests (a CDS hook firing repeatedly for one chart) does not re-read the chart each time. Optional write-back
 * of the FHIR resources (`RISK_WRITE_BACK`).
 */
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

  async assess(req: AssessRequest): Promise<ServiceResult> {
    const t0 = performance.now();
    const model = this.#deps.registry.get(req.modelId);
    const memoKey = `${req.patientId}|${req.studyId ?? ''}|${model.id}@${model.version}`;
    const m = this.#memo.get(memoKey);
    if (m && Date.now() - m.at < REQUEST_MEMO_MS && !req.at) {
      const hit = this.#byKey.get(m.key);
      if (hit) return { stored: this.#touch(m.key, hit), source: 'memo', ms: performance.now() - t0 };
    }
    const prepared = await prepare(this.#deps, req);
    const factors = extractFactors(prepared.chart, indexDateOf(prepared.study, prepared.at));
    const key = cacheKeyOf(prepared.study, prepared.model, factors);
    const cached = this.#byKey.get(key);
    if (cached) {
      this.#memo.set(memoKey, { key, at: Date.now() });
      return { stored: this.#touch(key, cached), source: 'cache', ms: performance.now() - t0 };
    }
    let p = this.#inflight.get(key);
    if (!p) {
      p = this.#compute(req, prepared).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    const stored = await p;
    this.#memo.set(memoKey, { key, at: Date.now() });
    return { stored, source: 'new', ms: performance.now() - t0 };
  }

  get(id: string): StoredAssessment | undefined {
    return this.#byId.get(id);
  }

  async #compute(req: AssessRequest, prepared: Awaited<ReturnType<typeof prepare>>): Promise<StoredAssessment> {
    const result = await assess(this.#deps, req, prepared);
    const fhir = toFhir(result, { binaries: this.#opts.writeBack });
    let writeBack: StoredAssessment['writeBack'] = null;
    if (this.#opts.writeBack) {
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
