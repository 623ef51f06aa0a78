/**
 * The site check: before a hospital uses a T-score-mediated model (hip-xray-v2) it runs it on its own hip
 * radiographs of patients who also had a DXA scan, and compares the model's T-score estimate with the measured
 * femoral-neck T-score. No outcomes are needed.
 *
 * 1. Pairs (FHIR): every measured femoral-neck T-score Observation (monitoring/dxa.ts), grouped by patient; for each
 *    patient their ImagingStudies; the eligible study (the model's DICOM selection rule by FHIR, as the risk engine
 *    chooses) closest in time to one of their DXA scans, within `windowDays` either side. One pair per patient.
 * 2. Each pair runs the service's own path: chart → QFracture inputs (the model's clinical input), series selection
 *    over DICOMweb, the image-identity check, frame fetch and decode, the preprocessing recipe, the registry's
 *    session, the image-quality checks. Bounded concurrency; each pair has its own time limit.
 * 3. Figures: OOD share (the service withholds the image-derived estimate above the manifest threshold), quality
 *    flags, agreement of the in-distribution estimates with DXA under the calibration in force, and a local
 *    recalibration measured by cross-validation (recalibrate.ts).
 *
 * Logs carry hashed patient ids and error codes only.
 */
import type { ImagingStudy, Observation } from '@medplum/fhirtypes';
import { FhirAccessError, type FhirDataSource } from '../fhir/client.ts';
import { loadValueSets, type ValueSetIndex } from '../fhir/valuesets.ts';
import type { DicomWebClient } from '../imaging/dicomweb-client.ts';
import { resolutionNeedOf } from '../imaging/decode/index.ts';
import { ImagingError } from '../imaging/errors.ts';
import { assertImageIdentity } from '../imaging/identity.ts';
import { checkRecipe } from '../imaging/preprocess.ts';
import { fetchFrame } from '../imaging/retrieve.ts';
import { candidateSeries, selectImage, selectionRuleFromManifest, studyUidOf, type ImagingStudyLike, type SelectionRule } from '../imaging/select.ts';
import { inlineImaging, withResolution, type ImagingExecutor } from '../imaging/worker-pool.ts';
import type { LoadedModel } from '../inference/registry.ts';
import { hashPatientId, redactIds, type Logger } from '../logging.ts';
import { femurTscoreTokens, measuredTscore, type MeasuredTscore } from '../monitoring/dxa.ts';
import { clinicalInputs, indexDateOf } from '../risk/assess.ts';
import { extractFactors, loadChart } from '../risk/factors.ts';
import { linearPredictor } from '../risk/qfracture.ts';
import { checkImageQuality } from '../risk/quality.ts';
import type { RawMember } from './recalibrate.ts';

export interface SiteCheckOptions {
  /** FHIR server with a resource cap large enough for listing every DXA result. */
  readonly fhir: FhirDataSource;
  readonly dicomweb: DicomWebClient;
  /** A loaded T-score-mediated model (its `tscoreCalibration` is the calibration "before"). */
  readonly model: LoadedModel;
  /** Where frames are decoded and preprocessed (default inline). */
  readonly imaging?: ImagingExecutor;
  /** Patient.identifier systems that carry the PACS Patient ID (`IMAGE_PATIENT_ID_SYSTEMS`). */
  readonly imagePatientIdSystems: readonly string[];
  /** Largest gap between radiograph and DXA scan, in days, either side. */
  readonly windowDays: number;
  /** At most this many pairs (the first by patient id). */
  readonly max?: number;
  readonly concurrency: number;
  /** Time limit of one pair's whole work (FHIR chart, DICOMweb, inference), ms. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  readonly logger: Logger;
  readonly valueSets?: ValueSetIndex;
  /** Told after each pair is done (progress). */
  readonly onPair?: (done: number, total: number) => void;
}

/** A patient's radiograph and DXA result chosen for the check. */
export interface CandidatePair {
  readonly patientId: string;
  readonly study: ImagingStudy;
  readonly dxa: MeasuredTscore;
  /** Radiograph date minus DXA date, days. */
  readonly daysApart: number;
}

/** What one pair gave. */
export type PairResult =
  | {
      readonly status: 'ok';
      readonly daysApart: number;
      readonly measured: number;
      readonly dxaDate: string;
      readonly raw: RawMember[];
      readonly oodDistance: number;
      readonly ood: boolean;
      /** Names of the failed image-quality checks. */
      readonly qualityFlags: string[];
    }
  | { readonly status: 'failed'; readonly daysApart: number; readonly code: string };

export interface SiteCheckRun {
  readonly model: { id: string; version: string; oodThreshold: number; calibration: { intercept: number; slope: number; sdScale: number; version: string; source: string } };
  /** Patients with at least one measured femoral-neck T-score. */
  readonly dxaPatients: number;
  /** Of those, the patients whose studies were searched (all, unless `max` pairs were found first). */
  readonly searched: number;
  /** Searched patients without an eligible radiograph within the window. */
  readonly withoutImage: number;
  readonly windowDays: number;
  readonly pairs: PairResult[];
  /** Earliest and latest DXA date of the pairs. */
  readonly span: { from: string; to: string } | null;
  readonly seconds: number;
  readonly interrupted: boolean;
}

export class SiteCheckError extends Error {
  override readonly name = 'SiteCheckError';
}

const DAY = 86_400_000;
const excluded = new Set(['entered-in-error', 'cancelled']);

/** The eligible study closest in time to one of the DXA scans, within the window; null when none. */
export function closestPair(patientId: string, studies: readonly ImagingStudy[], dxa: readonly MeasuredTscore[], rule: SelectionRule, windowDays: number): CandidatePair | null {
  let best: CandidatePair | null = null;
  for (const s of studies) {
    const t = Date.parse(s.started ?? '');
    if (Number.isNaN(t) || excluded.has(s.status) || !studyUidOf(s as ImagingStudyLike) || candidateSeries(s as ImagingStudyLike, rule).length === 0) continue;
    for (const d of dxa) {
      const daysApart = Math.round((t - Date.parse(d.date)) / DAY);
      if (Math.abs(daysApart) > windowDays) continue;
      // Closest first; on a tie the later radiograph (as the service uses the latest eligible one).
      if (!best || Math.abs(daysApart) < Math.abs(best.daysApart) || (Math.abs(daysApart) === Math.abs(best.daysApart) && t > Date.parse(best.study.started!))) {
        best = { patientId, study: s, dxa: d, daysApart };
      }
    }
  }
  return best;
}

/** Runs `fn` over `items` with at most `n` at once; stops taking new items once `stop()` is true. */
async function bounded<T>(items: readonly T[], n: number, fn: (item: T, index: number) => Promise<void>, stop: () => boolean): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !stop()) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

/** A stable code for a failure (no free text: the report and logs carry no PHI). */
function failureCode(err: unknown, timedOut: boolean): string {
  if (timedOut) return 'TIMEOUT';
  if (err instanceof ImagingError || err instanceof FhirAccessError) return err.code;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z_]{3,40}$/.test(code) ? code : 'ERROR';
}

/** Finds the pairs (step 1). */
export async function findPairs(o: SiteCheckOptions, rule: SelectionRule, vs: ValueSetIndex): Promise<{ dxaPatients: number; searched: number; withoutImage: number; pairs: CandidatePair[] }> {
  const observations = await o.fhir.search<Observation>('Observation', { code: femurTscoreTokens(vs).join(','), _count: '500' }, o.signal);
  const byPatient = new Map<string, MeasuredTscore[]>();
  for (const obs of observations) {
    const m = measuredTscore(obs, vs);
    if (m) byPatient.set(m.patientId, [...(byPatient.get(m.patientId) ?? []), m]);
  }
  const patients = [...byPatient.keys()].sort();
  const found: CandidatePair[] = [];
  let searched = 0;
  await bounded(patients, o.concurrency, async (patientId) => {
    searched++;
    const studies = await o.fhir.search<ImagingStudy>('ImagingStudy', { subject: `Patient/${patientId}` }, o.signal);
    const pair = closestPair(patientId, studies, byPatient.get(patientId)!, rule, o.windowDays);
    if (pair) found.push(pair);
  }, () => Boolean(o.signal?.aborted) || (o.max !== undefined && found.length >= o.max));
  found.sort((a, b) => a.patientId.localeCompare(b.patientId));
  return { dxaPatients: patients.length, searched, withoutImage: searched - found.length, pairs: o.max === undefined ? found : found.slice(0, o.max) };
}

/** Runs the model on one pair (step 2). */
async function runPair(o: SiteCheckOptions, p: CandidatePair, rule: SelectionRule, vs: ValueSetIndex, imaging: ImagingExecutor): Promise<PairResult> {
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
  const man = o.model.manifest;
  try {
    const chart = await loadChart(o.fhir, p.patientId, signal);
    const factors = extractFactors(chart, indexDateOf(p.study, new Date(p.study.started!)), vs);
    const lp = { hip: linearPredictor('hip', factors.sex, factors.inputs), mof: linearPredictor('mof', factors.sex, factors.inputs) };
    const sel = await selectImage(o.dicomweb, p.study as ImagingStudyLike, rule, { signal });
    // The study link is only a pointer: the DICOM header says whose image it is (as the risk engine checks).
    assertImageIdentity(sel.metadata, chart.patient, { systems: o.imagePatientIdSystems });
    const frame = await fetchFrame(o.dicomweb, sel, { metadata: sel.metadata, imaging, signal });
    const constants = checkRecipe(man.preprocessing);
    const { stored, working } = await imaging.preprocess({ stored: frame.stored, pixelModule: frame.pixelModule, laterality: sel.laterality }, man.preprocessing);
    signal.throwIfAborted();
    const out = await o.model.infer({ image: working, clinical: clinicalInputs(o.model, factors.sex, lp) });
    if (!out.tscore) throw new SiteCheckError(`model ${o.model.id} gave no T-score output`);
    const quality = checkImageQuality(stored, frame.pixelModule, working, constants.S, sel.laterality);
    return {
      status: 'ok',
      daysApart: p.daysApart,
      measured: p.dxa.value,
      dxaDate: p.dxa.date,
      raw: out.tscore.map((m) => ({ mean: m.mean, sd: m.sd })),
      oodDistance: out.oodDistance,
      ood: !(out.oodDistance <= man.ood.threshold),
      qualityFlags: quality.filter((q) => !q.passed).map((q) => q.check),
    };
  } catch (err) {
    if (err instanceof SiteCheckError) throw err;
    const code = failureCode(err, timeout.aborted && !o.signal?.aborted);
    o.logger.warn({ patient: hashPatientId(p.patientId), code, detail: redactIds((err as Error).message ?? '').slice(0, 200) }, 'site-check: pair failed');
    return { status: 'failed', daysApart: p.daysApart, code };
  }
}

/** The whole check (steps 1 and 2); the figures are computed by report.ts. */
export async function runSiteCheck(o: SiteCheckOptions): Promise<SiteCheckRun> {
  const t0 = performance.now();
  const model = o.model;
  const cal = model.tscoreCalibration;
  if (!cal) throw new SiteCheckError(`model ${model.id}@${model.version} has no T-score head (risk_model.kind must be tscore-mediated)`);
  const vs = o.valueSets ?? loadValueSets();
  const rule = selectionRuleFromManifest(model.manifest.dicom_selection);
  const { dxaPatients, searched, withoutImage, pairs } = await findPairs(o, rule, vs);
  // Decode only at the resolution the model reads (as the service does).
  const imaging = withResolution(o.imaging ?? inlineImaging, resolutionNeedOf(model.manifest.preprocessing.constants));
  const results: PairResult[] = new Array<PairResult>(pairs.length);
  let done = 0;
  await bounded(pairs, o.concurrency, async (p, i) => {
    results[i] = await runPair(o, p, rule, vs, imaging);
    o.onPair?.(++done, pairs.length);
  }, () => Boolean(o.signal?.aborted));
  const finished = results.filter((r): r is PairResult => r !== undefined);
  const dates = pairs.map((p) => p.dxa.date.slice(0, 10)).sort();
  return {
    model: { id: model.id, version: model.version, oodThreshold: model.manifest.ood.threshold, calibration: { intercept: cal.intercept, slope: cal.slope, sdScale: cal.sdScale, version: cal.version, source: cal.source } },
    dxaPatients,
    searched,
    withoutImage,
    windowDays: o.windowDays,
    pairs: finished,
    span: dates.length ? { from: dates[0]!, to: dates[dates.length - 1]! } : null,
    seconds: (performance.now() - t0) / 1000,
    interrupted: Boolean(o.signal?.aborted),
  };
}
