/**
 * Wire types of the fracture liaison service (FLS) worklist API (issue 8, item 3), shared by the server
 * (`server/fls/routes.ts`) and the SMART app's worklist view. Pure TypeScript: no Node imports, so the browser
 * bundle can import it.
 *
 * Risks are percentages (0–100) of the 10-year risk shown to the clinician (fused model, or QFracture-2012 alone in
 * clinical-only mode, whose interval is then `null`). Every screen showing them must carry {@link RESEARCH_NOTICE}.
 */

/** Shown verbatim wherever a model's output is displayed (shared brief). */
export const RESEARCH_NOTICE = 'Research use — trained on synthetic data';

export type WorklistTier = 'low' | 'moderate' | 'high';
export type WorklistMode = 'image-and-clinical' | 'clinical-only';

/**
 * Status of a worklist item, derived from the triage Task:
 * `requested` (Task requested/received/ready), `accepted` (accepted/in-progress/completed: an FLS referral exists),
 * `dismissed` (rejected/cancelled with a dismissal reason).
 */
export type WorklistStatus = 'requested' | 'accepted' | 'dismissed';
export const WORKLIST_STATUSES: readonly WorklistStatus[] = ['requested', 'accepted', 'dismissed'];
export const WORKLIST_TIERS: readonly WorklistTier[] = ['low', 'moderate', 'high'];

/** A 10-year risk in percent with its 95 % interval (null bounds: clinical-only, no interval). */
export interface RiskWithInterval {
  estimate: number;
  lower: number | null;
  upper: number | null;
}

export interface WorklistItem {
  /** Id of the FLS triage Task (the handle for accept/dismiss). */
  taskId: string;
  patientId: string;
  /** Display name (given + family) from the Patient resource; '' when the chart has none. */
  patientName: string;
  /** Patient.birthDate (YYYY-MM-DD); null when absent. */
  birthDate: string | null;
  /** Patient.gender. */
  sex: 'female' | 'male' | 'other' | 'unknown';
  riskAssessmentId: string;
  /** The risk service's assessment id (RiskAssessment.identifier urn:frcds:assessment), to open it in the app. */
  assessmentId?: string;
  tier: WorklistTier;
  mode: WorklistMode;
  hip10: RiskWithInterval;
  mof10: RiskWithInterval;
  /** Imminent risk: a fragility fracture recorded in the 2 years before the assessment. */
  imminent: boolean;
  status: WorklistStatus;
  /** Task.authoredOn (ISO date-time). */
  authoredOn: string;
  /** Site of the patient (managing organisation / MRN assigner), when known. */
  site?: string;
  /** Start date of the radiograph the assessment used (image-and-clinical mode). */
  studyDate?: string;
  /** The assessment's warnings (RiskAssessment.note), plus worklist-level ones (e.g. missing resources). */
  warnings: string[];
  /** Set once accepted: id of the FLS referral ServiceRequest. */
  serviceRequestId?: string;
  /** Set once dismissed: the dismissal reason code (see {@link DISMISSAL_REASONS}). */
  dismissalReason?: DismissalReasonCode;
}

/** Query of `GET /api/fls/worklist` and `GET /api/fls/worklist.csv` (all optional; dates YYYY-MM-DD, inclusive). */
export interface WorklistQuery {
  tier?: WorklistTier;
  status?: WorklistStatus;
  /** Task.authoredOn on or after this date. */
  from?: string;
  /** Task.authoredOn on or before this date. */
  to?: string;
  site?: string;
}

/** Answer of `GET /api/fls/worklist`: items sorted by 10-year hip risk, highest first. */
export interface WorklistResponse {
  items: WorklistItem[];
  total: number;
  notice: typeof RESEARCH_NOTICE;
}

/**
 * Dismissal reasons: the concepts of the CodeSystem `fhir-profiles/codesystems/fls-triage.json`
 * (system {@link FLS_TRIAGE_SYSTEM}). Kept here too so the app can offer them without a terminology call.
 */
export const DISMISSAL_REASONS = {
  'already-treated': 'Already on osteoporosis treatment',
  'already-referred': 'Already under the fracture liaison service or another bone-health service',
  'not-fragility': 'Fracture risk does not warrant FLS review (e.g. high-energy trauma, clinician judgement)',
  'declined': 'Patient declined FLS assessment',
  'end-of-life': 'Palliative or end-of-life care',
  'deceased': 'Patient deceased',
  'moved-away': 'Patient moved out of the service area',
  'duplicate': 'Duplicate of another worklist item',
  'other': 'Other (see note)',
} as const;
export type DismissalReasonCode = keyof typeof DISMISSAL_REASONS;
export const FLS_TRIAGE_SYSTEM = 'https://fracture-risk-cds.invalid/fhir/CodeSystem/fls-triage';

/** Body of `POST /api/fls/worklist/{taskId}/dismiss`. */
export interface DismissRequest {
  reason: DismissalReasonCode;
  /** Free text (kept in Task.note); required when reason is `other`. */
  note?: string;
}

/** Answer of `POST /api/fls/worklist/{taskId}/accept` (also accepts an optional `{note}` body). */
export interface AcceptResponse {
  item: WorklistItem;
  serviceRequestId: string;
}

/** Answer of `POST /api/fls/worklist/{taskId}/dismiss`. */
export interface DismissResponse {
  item: WorklistItem;
}

/** Error body of the FLS API (the same shape as `/api/assessments` errors). */
export interface FlsErrorBody {
  error: string;
  code: 'BAD_REQUEST' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT' | 'FHIR_UNAVAILABLE' | 'FHIR_TIMEOUT' | 'INTERNAL';
  status: number;
}
