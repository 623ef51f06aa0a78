/**
 * Wire types of `GET /api/monitoring/tscore` (server/monitoring/routes.ts), shared with the app's "Model monitoring"
 * view (client/src/views/monitoring.tsx). No Node imports: the client bundle includes this file.
 */
import type { Agreement } from './agreement.ts';

/** The figures of a series (agreement.ts, which has no Node imports either). */
export type MonitoringAgreement = Agreement;

export interface MonitoringSeries {
  readonly site: string;
  /** `<model id>@<version>`. */
  readonly model: string;
  /** T-score calibration version the estimates were made with. */
  readonly calibration: string;
  readonly agreement: MonitoringAgreement;
  /** DXA dates of the oldest and newest pair in the rolling window. */
  readonly from: string | null;
  readonly to: string | null;
  readonly alarm: { readonly state: 'ok' | 'alarm' | 'too-few-pairs'; readonly reason: string | null; readonly since: string | null };
}

export interface MonitoringResponse {
  readonly series: MonitoringSeries[];
  readonly settings: {
    readonly windowPairs: number;
    readonly minPairs: number;
    readonly minCoverage: number;
    readonly maxAbsBias: number;
    readonly pairWindowDays: number;
    readonly pollSeconds: number;
  };
  /** The last poll of new DXA results by this replica (null before the first). */
  readonly lastPoll: { readonly at: string; readonly seen: number; readonly paired: number; readonly unpaired: number; readonly failed: number } | { readonly at: string; readonly error: string } | null;
  readonly notice: string;
}
