/**
 * Per-series agreement figures over the rolling window and the drift alarm (production monitoring of the radiograph
 * T-score estimate; series = site × model version × calibration version, so a recalibrated model starts a new
 * series instead of being judged on its predecessor's pairs).
 *
 * Window: the latest `windowPairs` pairs of the series by DXA date. Alarm: with at least `minPairs` pairs in the
 * window, coverage of the 95 % interval below `minCoverage` or |bias| above `maxAbsBias` (T units) → `alarm`;
 * otherwise `ok`. The state lives in the monitoring store; a change is logged once (by the replica whose
 * compare-and-set made it), at warn level when raised and info when cleared.
 */
import type { Logger } from '../logging.ts';
import { agreement, type Agreement } from './agreement.ts';
import { seriesId, type AlarmRecord, type MonitoringStore } from './store.ts';
import type { MonitoringSeries } from './types.ts';

export interface AlarmSettings {
  /** Pairs in the rolling window (`MONITORING_WINDOW_PAIRS`). */
  readonly windowPairs: number;
  /** Fewest pairs before an alarm can be raised (`MONITORING_ALARM_MIN_PAIRS`). */
  readonly minPairs: number;
  /** Coverage below this raises the alarm (`MONITORING_ALARM_COVERAGE`). */
  readonly minCoverage: number;
  /** |bias| above this raises the alarm (`MONITORING_ALARM_BIAS`). */
  readonly maxAbsBias: number;
}

export const ALARM_DEFAULTS: AlarmSettings = { windowPairs: 200, minPairs: 30, minCoverage: 0.9, maxAbsBias: 0.5 };

/** A series with its figures over the window and its alarm state (the API's wire type). */
export type SeriesFigures = MonitoringSeries;

/** Why the figures breach the rule, or null when they do not (or there are too few pairs to tell). */
export function alarmReason(a: Agreement, s: AlarmSettings): string | null {
  if (a.n < s.minPairs) return null;
  const why: string[] = [];
  if (a.coverage !== null && a.coverage < s.minCoverage) why.push(`coverage ${a.coverage.toFixed(2)} < ${s.minCoverage}`);
  if (a.bias !== null && Math.abs(a.bias) > s.maxAbsBias) why.push(`|bias| ${Math.abs(a.bias).toFixed(2)} > ${s.maxAbsBias}`);
  return why.length ? `${why.join(' and ')} over the last ${a.n} pairs` : null;
}

/**
 * The figures of every series, with the alarm evaluated and its state updated in the store (a change is logged
 * once across replicas).
 */
export async function evaluateSeries(store: MonitoringStore, s: AlarmSettings, logger: Logger, now: Date = new Date()): Promise<SeriesFigures[]> {
  const out: SeriesFigures[] = [];
  for (const key of await store.series()) {
    const pairs = await store.window(key, s.windowPairs);
    const a = agreement(pairs);
    const reason = alarmReason(a, s);
    const id = seriesId(key);
    let record: AlarmRecord | null;
    if (a.n < s.minPairs) {
      record = await store.alarm(id);
    } else {
      const state = reason ? 'alarm' : 'ok';
      if (await store.setAlarm(id, state, reason, now)) {
        const fields = { site: key.site, model: key.model, calibration: key.calibration, n: a.n, coverage: a.coverage, bias: a.bias, r: a.r };
        if (state === 'alarm') logger.warn({ ...fields, reason }, 'T-score drift alarm raised: the radiograph estimate no longer agrees with measured DXA at this site');
        else logger.info(fields, 'T-score drift alarm cleared');
      }
      record = await store.alarm(id);
    }
    out.push({
      ...key,
      agreement: a,
      from: pairs.length ? pairs[pairs.length - 1]!.dxaDate : null,
      to: pairs.length ? pairs[0]!.dxaDate : null,
      alarm: a.n < s.minPairs && record?.state !== 'alarm'
        ? { state: 'too-few-pairs', reason: `${a.n} of the ${s.minPairs} pairs needed`, since: null }
        : { state: record?.state ?? 'ok', reason: record?.reason ?? null, since: record?.since ?? null },
    });
  }
  return out;
}
