/**
 * Wire types the app reads. The assessment JSON is defined by the risk engine (`server/risk/assess.ts`, served by
 * `server/risk/routes.ts`); these are type-only imports, erased from the bundle.
 */
import type { Assessment as EngineAssessment } from '../../server/risk/assess.ts';

export type { FactorContribution, OutcomeResult, Tier } from '../../server/risk/assess.ts';
export type { FactorRecord } from '../../server/risk/factors.ts';
export type { Outcome } from '../../server/risk/qfracture.ts';
export type { AssessmentHistoryItem, AssessmentHistoryResponse, CareStatusResponse, HistoryRisk } from '../../server/risk/routes.ts';
export type { CareStatus } from '../../server/orders/care-status.ts';

/** What the app may suggest for a tier (risk engine's decision): FLS referral, DXA, or nothing pushed. */
export type RecommendedAction = 'refer-fls' | 'order-dxa' | 'none';

/** One outcome's 10-year risk against its treatment threshold. */
export interface OutcomeDecision {
  outcome: 'hip' | 'mof';
  thresholdPercent: number;
  shownPercent: number;
  /** P(10-year risk ≥ threshold); null for a clinical-only result (no interval). */
  probabilityAbove: number | null;
}

/** The risk engine's decision: what the risk means against the guideline thresholds, and the action for the tier. */
export interface Decision {
  hip: OutcomeDecision;
  mof: OutcomeDecision;
  action: RecommendedAction;
  actionWarranted: boolean;
  meaning: string;
  guideline: { name: string; url: string };
}

/** The assessment as the app receives it: the engine's, with the decision and the one summary caveat. */
export type Assessment = EngineAssessment & { decision: Decision; caveat: string | null };

/** Body of `GET /api/assessments/{id}` and `POST /api/assessments` (server/risk/routes.ts). */
export interface AssessmentResponse {
  assessment: Assessment;
  /** URLs (origin-relative) of the radiograph and the heatmap overlay PNGs; null for a clinical-only result. */
  links: { heatmap: string; display: string } | null;
  fhir: { riskAssessment: { resourceType: 'RiskAssessment'; id?: string } };
  writeBack: { written: boolean; error?: string } | null;
  source?: 'memo' | 'cache' | 'new';
}

/** Error body of the service's JSON APIs: `{error, code, status}` (risk API) or `{error: {code, message}}` (FLS API). */
export type ApiErrorBody = { error: string; code?: string; status?: number } | { error: { code: string; message: string } };
