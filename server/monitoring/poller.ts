/**
 * Finds new measured DXA T-scores and pairs each with the latest image-based estimate of its patient — the input of
 * production monitoring (figures.ts).
 *
 * Why polling: the sandbox FHIR server sends Subscription notifications only for the project's report topic
 * (server/sandbox/fhir/subscriptions.ts: DiagnosticReport became final); R4 servers differ in whether they notify
 * on Observation creation at all. So a periodic FHIR search job is the one mechanism that works everywhere: every
 * `MONITORING_POLL_S` seconds it searches `Observation?code=<DXA Femur T-score codes>&_lastUpdated=ge<cursor>`, the
 * cursor being the newest `meta.lastUpdated` seen (kept in the monitoring store, so a restart or another replica
 * continues from it; the first poll looks back `pairWindowDays`). An Observation seen twice is stored once.
 *
 * For each measured femoral-neck T-score (monitoring/dxa.ts):
 * 1. the patient's RiskAssessments; the latest one (by `occurrenceDateTime`) carrying the `tscore-estimate`
 *    extension (only image-based assessments of a T-score-mediated model carry it) whose radiograph — the
 *    `ImagingStudy` in its basis — is within `pairWindowDays` of the DXA date;
 * 2. the patient's site: `Patient.managingOrganization` (reference id, else display), else `unknown`;
 * 3. the pair (estimate mean and 95 % interval, calibration version, model) is stored.
 * A DXA result for a patient without such an assessment is skipped (counted): a later assessment does not reach
 * back to an older DXA result.
 */
import type { ImagingStudy, Observation, Patient, RiskAssessment } from '@medplum/fhirtypes';
import { FhirAccessError, type FhirDataSource } from '../fhir/client.ts';
import { loadValueSets, type ValueSetIndex } from '../fhir/valuesets.ts';
import { hashPatientId, type Logger } from '../logging.ts';
import { femurTscoreTokens, measuredTscore, type MeasuredTscore } from './dxa.ts';
import type { MonitoringStore, TscorePair } from './store.ts';

export const TSCORE_ESTIMATE_URL = 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/tscore-estimate';
const MODEL_SYSTEM = 'urn:frcds:model';
export const CURSOR = 'dxa-observations';
const DAY = 86_400_000;

export interface PollerOptions {
  /** FHIR server with the service's system credentials. */
  readonly fhir: FhirDataSource;
  readonly store: MonitoringStore;
  /** Largest gap between radiograph and DXA for a pair, days (`MONITORING_PAIR_WINDOW_DAYS`). */
  readonly pairWindowDays: number;
  readonly logger: Logger;
  readonly valueSets?: ValueSetIndex;
  /** DXA results handled at once. */
  readonly concurrency?: number;
  readonly now?: () => Date;
}

export interface PollResult {
  /** Femoral-neck T-scores seen in this poll. */
  readonly seen: number;
  /** New pairs stored. */
  readonly paired: number;
  /** Seen before (already stored). */
  readonly known: number;
  /** No image-based estimate within the window. */
  readonly unpaired: number;
  readonly failed: number;
}

/** The estimate an image-based RiskAssessment carries, or null. */
export function estimateOf(ra: RiskAssessment): { mean: number; low: number; high: number; calibration: string } | null {
  const ext = ra.extension?.find((e) => e.url === TSCORE_ESTIMATE_URL);
  const sub = (name: string) => ext?.extension?.find((e) => e.url === name);
  const mean = sub('mean')?.valueDecimal;
  const low = sub('low')?.valueDecimal;
  const high = sub('high')?.valueDecimal;
  const calibration = sub('calibration')?.valueString;
  if (![mean, low, high].every((v) => typeof v === 'number' && Number.isFinite(v)) || !calibration) return null;
  return { mean: mean!, low: low!, high: high!, calibration };
}

const refId = (ref: string | undefined, type: string): string | undefined => new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})(?:/_history/[^/]+)?$`).exec(ref ?? '')?.[1];

/** Site of a patient: the managing organisation's id, else its display, else `unknown`. */
export function siteOf(p: Patient): string {
  const org = p.managingOrganization;
  return refId(org?.reference, 'Organization') ?? org?.display ?? 'unknown';
}

export class TscorePoller {
  readonly #o: PollerOptions;
  readonly #vs: ValueSetIndex;
  #running: Promise<PollResult> | undefined;

  constructor(o: PollerOptions) {
    this.#o = o;
    this.#vs = o.valueSets ?? loadValueSets();
  }

  /** One poll; concurrent calls share the run in progress. */
  poll(): Promise<PollResult> {
    this.#running ??= this.#poll().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #poll(): Promise<PollResult> {
    const o = this.#o;
    const now = o.now?.() ?? new Date();
    const cursor = (await o.store.cursor(CURSOR)) ?? new Date(now.getTime() - o.pairWindowDays * DAY).toISOString();
    const observations = await o.fhir.search<Observation>('Observation', { code: femurTscoreTokens(this.#vs).join(','), _lastUpdated: `ge${cursor}`, _count: '200' });
    let newest = cursor;
    const measured: MeasuredTscore[] = [];
    for (const obs of observations) {
      const updated = obs.meta?.lastUpdated;
      if (updated && updated > newest) newest = updated;
      const m = measuredTscore(obs, this.#vs);
      if (m) measured.push(m);
    }
    const counts = { seen: measured.length, paired: 0, known: 0, unpaired: 0, failed: 0 };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < measured.length) {
        const m = measured[next++]!;
        try {
          const pair = await this.#pairOf(m);
          if (!pair) counts.unpaired++;
          else if (await o.store.add(pair)) counts.paired++;
          else counts.known++;
        } catch (err) {
          // A permanent refusal (a deleted study, a malformed answer) would hold the cursor back for ever: skip it.
          if (err instanceof FhirAccessError && !err.retryable) counts.unpaired++;
          else counts.failed++;
          o.logger.warn({ patient: hashPatientId(m.patientId), code: (err as { code?: string }).code, retried: !(err instanceof FhirAccessError && !err.retryable) }, 'T-score monitoring: a DXA result could not be paired');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 4) }, worker));
    // A DXA result that failed for a passing reason (time-out, 5xx) is tried again next time: the cursor stays before it.
    if (counts.failed === 0 && newest !== cursor) await o.store.setCursor(CURSOR, newest);
    return counts;
  }

  async #pairOf(m: MeasuredTscore): Promise<TscorePair | null> {
    const { fhir, pairWindowDays } = this.#o;
    const subject = `Patient/${m.patientId}`;
    const assessments = (await fhir.search<RiskAssessment>('RiskAssessment', { subject }))
      .filter((ra) => ra.status !== 'entered-in-error' && refId(ra.subject?.reference, 'Patient') === m.patientId && !!ra.id && estimateOf(ra))
      .sort((a, b) => Date.parse(b.occurrenceDateTime ?? '') - Date.parse(a.occurrenceDateTime ?? ''));
    const dxaTime = Date.parse(m.date);
    for (const ra of assessments) {
      const studyId = ra.basis?.map((b) => refId(b.reference, 'ImagingStudy')).find((x) => !!x);
      if (!studyId) continue;
      const study = await fhir.read<ImagingStudy>('ImagingStudy', studyId);
      const imageTime = Date.parse(study.started ?? '');
      if (Number.isNaN(imageTime) || Math.abs(imageTime - dxaTime) > pairWindowDays * DAY) continue;
      const est = estimateOf(ra)!;
      const method = ra.method?.coding?.find((c) => c.system === MODEL_SYSTEM);
      const patient = await fhir.read<Patient>('Patient', m.patientId);
      return {
        observationId: m.observationId,
        riskAssessmentId: ra.id!,
        site: siteOf(patient),
        model: `${method?.code ?? 'unknown'}@${method?.version ?? 'unknown'}`,
        calibration: est.calibration,
        mean: est.mean,
        low: est.low,
        high: est.high,
        measured: m.value,
        dxaDate: m.date.slice(0, 10),
        imageDate: study.started!.slice(0, 10),
      };
    }
    return null;
  }
}
