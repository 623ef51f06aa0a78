/**
 * What the "Model monitoring" view shows, computed from `GET /api/monitoring/tscore` (server/monitoring/types.ts):
 * one row per series (site × model × calibration) with the agreement figures in words and numbers, and the alarm
 * rule as a sentence. Pure, so the client tests can check it.
 */
import type { MonitoringResponse, MonitoringSeries } from '../../server/monitoring/types.ts';
import { formatDate } from './format.ts';

export interface MonitoringRow {
  readonly key: string;
  readonly site: string;
  readonly model: string;
  readonly calibration: string;
  readonly pairs: string;
  readonly r: string;
  readonly bias: string;
  readonly coverage: string;
  readonly limits: string;
  readonly window: string;
  readonly status: 'alarm' | 'ok' | 'too-few-pairs';
  /** Plain words for the status cell. */
  readonly statusText: string;
}

/** Two decimals; "−0.00" reads as 0.00. */
const num = (x: number | null, digits = 2): string => (x === null ? '–' : x.toFixed(digits).replace(/^-(0\.0+)$/, '$1'));
const pct = (x: number | null): string => (x === null ? '–' : `${(100 * x).toFixed(1)} %`);

/** The row of one series. */
export function monitoringRow(s: MonitoringSeries): MonitoringRow {
  const a = s.agreement;
  const statusText = s.alarm.state === 'alarm'
    ? `Drift alarm${s.alarm.since ? ` since ${formatDate(s.alarm.since)}` : ''}: ${s.alarm.reason ?? 'agreement outside the limits'}`
    : s.alarm.state === 'too-few-pairs'
      ? `Too few pairs to judge (${s.alarm.reason ?? `${a.n} pairs`})`
      : 'Within the limits';
  return {
    key: `${s.site}|${s.model}|${s.calibration}`,
    site: s.site,
    model: s.model,
    calibration: s.calibration,
    pairs: String(a.n),
    r: num(a.r),
    bias: num(a.bias),
    coverage: pct(a.coverage),
    limits: a.limits ? `${num(a.limits.lower)} to ${num(a.limits.upper)}` : '–',
    window: s.from && s.to ? (s.from === s.to ? formatDate(s.from) : `${formatDate(s.from)} – ${formatDate(s.to)}`) : '–',
    status: s.alarm.state,
    statusText,
  };
}

/** Rows with raised alarms first, then by site. */
export function monitoringRows(r: Pick<MonitoringResponse, 'series'>): MonitoringRow[] {
  const order = { alarm: 0, ok: 1, 'too-few-pairs': 2 } as const;
  return r.series.map(monitoringRow).sort((x, y) => order[x.status] - order[y.status] || x.site.localeCompare(y.site) || x.key.localeCompare(y.key));
}

/** The alarm rule and the window, as a sentence under the table. */
export function ruleText(s: MonitoringResponse['settings']): string {
  return `A drift alarm is raised when, over the latest ${s.windowPairs} pairs of a site (at least ${s.minPairs}), fewer than ${Math.round(100 * s.minCoverage)} % of measured DXA T-scores fall inside the estimate's 95 % interval, or the estimate is off by more than ${s.maxAbsBias} T units on average. A pair is a DXA femoral-neck T-score and the patient's latest radiograph-based estimate, the radiograph at most ${s.pairWindowDays} days from the scan.`;
}

/**
 * True for a "Model monitoring" launch (`?mode=monitoring`): a user-level session granted RiskAssessment reads but
 * not the FLS worklist's Task scope (a worklist session reaches the view through its link instead).
 */
export function isMonitoringLaunch(s: { patientId: string | null; scopes: readonly string[] }): boolean {
  return s.patientId === null && s.scopes.some((x) => x === 'user/RiskAssessment.rs' || x === 'user/*.rs') && !s.scopes.some((x) => x.startsWith('user/Task.'));
}
