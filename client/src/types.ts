/**
 * Wire types the app reads. The assessment JSON is defined by the risk engine (`server/risk/assess.ts`, served by
 * `server/risk/routes.ts`); these are type-only imports, erased from the bundle.
 */
export type { Assessment, FactorContribution, OutcomeResult, Tier } from '../../server/risk/assess.ts';
export type { Decision, OutcomeDecision, RecommendedAction } from '../../server/risk/decision.ts';
export type { FactorRecord } from '../../server/risk/factors.ts';
export type { Outcome } from '../../server/risk/qfracture.ts';
export type { AssessmentHistoryItem, AssessmentHistoryResponse, CareStatusResponse, HistoryRisk } from '../../server/risk/routes.ts';
export type { CareStatus } from '../../server/orders/care-status.ts';
import type { Assessment } from '../../server/risk/assess.ts';

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
