/**
 * The link from a finished assessment to the fracture liaison service: `maybeCreateTriageTask` in
 * `server/fls/triage.ts` (built by the FLS worklist work, issue 8 item 3). It decides whether the tier warrants a
 * triage Task and whether the patient already has an open FLS referral or current treatment, and is idempotent for
 * one patient (a second call finds the open Task and creates nothing).
 *
 * Loaded dynamically so the job system runs (and says why no Task was made) in a checkout where that module does
 * not exist yet; once it exists, every job calls it.
 */
import type { RiskAssessment } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import type { Logger } from '../logging.ts';
import type { Assessment } from '../risk/assess.ts';

export interface TriageInput {
  patientId: string;
  riskAssessment: RiskAssessment;
  assessment: Assessment;
}

export interface TriageResult {
  created: boolean;
  reason: string;
  taskId?: string;
}

/** Options the FLS module takes (tiers that warrant a Task: setting `FLS_TRIAGE_TIERS`). */
export interface TriageOptions {
  tiers?: readonly ('low' | 'moderate' | 'high')[];
  /** Days from the Task's creation until the patient should be contacted (`FLS_DUE_CONTACT_DAYS`). */
  contactDays?: number;
  logger?: Logger;
}

export type TriageFn = (fhir: FhirDataSource, input: TriageInput, options?: TriageOptions) => Promise<TriageResult>;

/** The FLS triage function, or null when `server/fls/triage.ts` is not part of this build. */
export async function loadTriage(): Promise<TriageFn | null> {
  // A variable specifier keeps the type checker from requiring the module at build time.
  // Same extension as this module: .ts from the sources, .js in the production build (dist/).
  const specifier = `../fls/triage${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`;
  try {
    const mod = (await import(specifier)) as { maybeCreateTriageTask?: unknown };
    return typeof mod.maybeCreateTriageTask === 'function' ? (mod.maybeCreateTriageTask as TriageFn) : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return null;
    throw err;
  }
}
