/**
 * HTTP API of the risk engine (issue 5, item 6):
 * - `POST /api/assessments` `{ "patient": "<Patient id>", "study"?: "<ImagingStudy id>", "model"?: "<model id>" }` →
 *   the assessment for the app plus its FHIR resources (201 when computed, 200 when served from the cache); without
 *   `model` the default model answers (`MODEL_DEFAULT`), a model that is not loaded is 404;
 * - `GET /api/assessments/{id}` → the same; `GET /api/assessments/{id}/heatmap.png` and `/display.png` → PNGs of a
 *   radiograph; `/ct-sagittal.png` and `/ct-axial.png` → the overlays of a CT (ct-assess.ts), same guard and cache.
 * - {@link createPatientRouter} (mounted at `/api/patients`): `GET /api/patients/{id}/assessments` → the patient's
 *   past assessments read back from the FHIR server (RiskAssessments with an `urn:frcds:assessment` identifier, newest
 *   first, at most {@link HISTORY_LIMIT}), and `GET /api/patients/{id}/care-status` → the care the patient already has
 *   (open FLS referral or DXA order, latest DXA result, treatment), which the app checks before creating an order.
 * Errors are JSON `{ error, code, status }` with the status the cause calls for (404 unknown patient or study,
 * 422 chart unusable for QFracture, 502/504 FHIR server failing or slow, 503 no model). Every answer carries
 * `Cache-Control: no-store`: they hold PHI (the assessment, the radiograph) and are fetched with a bearer token.
 * The composition root guards the router with {@link ASSESSMENT_SCOPES}.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.5
 */
import type { RiskAssessment } from '@medplum/fhirtypes';
import express, { Router, type Request, type Response } from 'express';
import { patientAllowed } from '../auth/require.ts';
import { FhirAccessError, FhirNotFoundError, FhirTimeoutError, type FhirDataSource } from '../fhir/client.ts';
import { summarise } from '../fls/fhir-model.ts';
import { ModelNotFoundError } from '../inference/registry.ts';
import type { Logger } from '../logging.ts';
import { loadCareStatus, type CareStatus } from '../orders/care-status.ts';
import { AssessmentError, type Tier } from './assess.ts';
import { FactorError } from './factors.ts';
import type { RiskService, StoredAssessment } from './service.ts';

const ID = /^[A-Za-z0-9\-.]{1,64}$/;
/** A model id as manifests write it (models/manifest.schema.json `id`). */
const MODEL_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;

/**
 * An access token for this API must hold one of these (or a wider scope covering it, e.g. `patient/*.rs` or v1
 * `patient/*.read`): reading RiskAssessment in the patient, user or system context. The SMART app asks for
 * `patient/RiskAssessment.rs` (client/src/launch-options.ts), FHIR-delegated verification grants `patient/*.rs`.
 */
export const ASSESSMENT_SCOPES: readonly string[] = ['patient/RiskAssessment.r', 'user/RiskAssessment.r', 'system/RiskAssessment.r'];

function body(s: StoredAssessment, base: string): Record<string, unknown> {
  const a = s.assessment;
  return {
    assessment: a,
    links: s.pngs ? (a.ct ? { ctSagittal: `${base}/${a.id}/ct-sagittal.png`, ctAxial: `${base}/${a.id}/ct-axial.png` } : { heatmap: `${base}/${a.id}/heatmap.png`, display: `${base}/${a.id}/display.png` }) : null,
    fhir: { riskAssessment: s.fhir.riskAssessment, device: s.fhir.device, provenance: s.fhir.provenance, documentReference: s.fhir.documentReference, ct: s.fhir.ct ?? null },
    writeBack: s.writeBack,
  };
}

function fail(res: Response, status: number, code: string, error: string): void {
  res.status(status).json({ error, code, status });
}

export function createRiskRouter(service: RiskService, logger: Logger): Router {
  const r = Router();
  r.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  r.use(express.json({ limit: '16kb' }));

  r.post('/', async (req: Request, res: Response) => {
    const b = req.body as { patient?: unknown; study?: unknown; model?: unknown } | undefined;
    if (!b || typeof b.patient !== 'string' || !ID.test(b.patient)) return fail(res, 400, 'BAD_REQUEST', 'body must be {"patient": "<Patient id>", "study"?: "<ImagingStudy id>", "model"?: "<model id>"}');
    if (b.study !== undefined && (typeof b.study !== 'string' || !ID.test(b.study))) return fail(res, 400, 'BAD_REQUEST', '"study" must be an ImagingStudy id');
    if (b.model !== undefined && (typeof b.model !== 'string' || !MODEL_ID.test(b.model))) return fail(res, 400, 'BAD_REQUEST', '"model" must be a model id');
    // SMART (issue 7): a token launched for one patient may only assess that patient.
    if (!patientAllowed(res, b.patient)) return fail(res, 403, 'PATIENT_MISMATCH', 'The access token is for another patient');
    try {
      const out = await service.assess({ patientId: b.patient, ...(typeof b.study === 'string' ? { studyId: b.study } : {}), ...(typeof b.model === 'string' ? { modelId: b.model } : {}) });
      res.status(out.source === 'new' ? 201 : 200).set('X-Assessment-Source', out.source).json({ ...body(out.stored, req.baseUrl), source: out.source });
    } catch (err) {
      if (err instanceof FhirNotFoundError) return fail(res, 404, err.code, `Patient/${b.patient} was not found on the FHIR server`);
      if (err instanceof AssessmentError) return fail(res, err.code === 'STUDY_NOT_FOUND' ? 404 : 400, err.code, err.message);
      if (err instanceof FactorError) return fail(res, 422, err.code, err.message);
      if (err instanceof FhirTimeoutError) return fail(res, 504, err.code, 'The FHIR server did not answer in time');
      if (err instanceof FhirAccessError) return fail(res, 502, err.code, `The FHIR server failed: ${err.message}`);
      // A model asked for by name that is not loaded is the request's fault; no model at all is the service's.
      if (err instanceof ModelNotFoundError) return fail(res, b.model !== undefined ? 404 : 503, err.code, err.message);
      logger.error({ err }, 'assessment failed');
      return fail(res, 500, 'INTERNAL', 'Internal error');
    }
  });

  /** The assessment of `:id` (this process, or the shared result store); a store that is down → 503. */
  const stored = async (req: Request, res: Response): Promise<StoredAssessment | undefined | 'failed'> => {
    try {
      return await service.get(String(req.params['id']));
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'reading a stored assessment failed');
      fail(res, 503, 'STATE_UNAVAILABLE', 'The assessment store is not reachable; try again shortly');
      return 'failed';
    }
  };

  r.get('/:id', async (req: Request, res: Response) => {
    const s = await stored(req, res);
    if (s === 'failed') return;
    if (!s) return fail(res, 404, 'NOT_FOUND', 'No such assessment (it may have expired)');
    if (!patientAllowed(res, s.assessment.patientId)) return fail(res, 403, 'PATIENT_MISMATCH', 'The access token is for another patient');
    res.json(body(s, req.baseUrl));
  });

  // A CT assessment keeps its sagittal overlay in the display slot and its axial one in the overlay slot (ct-assess.ts):
  // served only on the CT names, and a radiograph's images only on theirs.
  const PNG_ROUTES = [
    { kind: 'heatmap', ct: false, slot: 'overlay', missing: 'This assessment has no image-derived heatmap (clinical-only)' },
    { kind: 'display', ct: false, slot: 'display', missing: 'This assessment has no image-derived heatmap (clinical-only)' },
    { kind: 'ct-sagittal', ct: true, slot: 'display', missing: 'This assessment has no CT overlay' },
    { kind: 'ct-axial', ct: true, slot: 'overlay', missing: 'This assessment has no CT overlay' },
  ] as const;
  for (const png of PNG_ROUTES) {
    r.get(`/:id/${png.kind}.png`, async (req: Request, res: Response) => {
      const s = await stored(req, res);
      if (s === 'failed') return;
      if (!s) return fail(res, 404, 'NOT_FOUND', 'No such assessment');
      if (!patientAllowed(res, s.assessment.patientId)) return fail(res, 403, 'PATIENT_MISMATCH', 'The access token is for another patient');
      if (!s.pngs || (png.ct ? !s.assessment.ct?.overlays : !!s.assessment.ct)) return fail(res, 404, 'NO_IMAGE', png.missing);
      res.type('image/png').send(s.pngs[png.slot]());
    });
  }
  return r;
}

/** Most past assessments one history answer lists (newest first); older ones are left out and `truncated` says so. */
export const HISTORY_LIMIT = 20;
/** Identifier system of the service's RiskAssessments (server/risk/fhir-output.ts). */
export const ASSESSMENT_IDENTIFIER_SYSTEM = 'urn:frcds:assessment';

/** A 10-year risk of a past assessment, in percent (0–100), with its 95 % interval when the image was used. */
export interface HistoryRisk {
  estimate: number;
  lower: number | null;
  upper: number | null;
}

/** One past assessment as the app's history shows it. */
export interface AssessmentHistoryItem {
  /** The assessment id (identifier `urn:frcds:assessment`). */
  assessmentId: string;
  /** When it was made (RiskAssessment.occurrenceDateTime). */
  date: string;
  mode: 'image-and-clinical' | 'clinical-only';
  tier: Tier | null;
  hip10: HistoryRisk | null;
  mof10: HistoryRisk | null;
}

/** Body of `GET /api/patients/{id}/assessments`. */
export interface AssessmentHistoryResponse {
  patientId: string;
  /** Newest first. */
  items: AssessmentHistoryItem[];
  /** More were on the FHIR server than {@link HISTORY_LIMIT}. */
  truncated: boolean;
}

/** Body of `GET /api/patients/{id}/care-status`. */
export interface CareStatusResponse {
  patientId: string;
  careStatus: CareStatus;
}

/**
 * The history items of a patient's RiskAssessments: only the service's own (identifier system
 * {@link ASSESSMENT_IDENTIFIER_SYSTEM}) of this patient, not entered in error, with a date and a 10-year risk; one
 * per assessment id (a rewrite of the same assessment counts once); newest first; at most `limit`.
 */
export function historyItems(resources: readonly RiskAssessment[], patientId: string, limit = HISTORY_LIMIT): { items: AssessmentHistoryItem[]; truncated: boolean } {
  const byId = new Map<string, AssessmentHistoryItem>();
  for (const ra of resources) {
    if (ra.resourceType !== 'RiskAssessment' || ra.status === 'entered-in-error') continue;
    if (ra.subject?.reference !== `Patient/${patientId}`) continue;
    const s = summarise(ra);
    if (!s.assessmentId || !s.occurrence || (!s.hip10 && !s.mof10)) continue;
    const item: AssessmentHistoryItem = { assessmentId: s.assessmentId, date: s.occurrence, mode: s.mode, tier: s.tier ?? null, hip10: s.hip10 ?? null, mof10: s.mof10 ?? null };
    const seen = byId.get(item.assessmentId);
    if (!seen || Date.parse(item.date) > Date.parse(seen.date)) byId.set(item.assessmentId, item);
  }
  const items = [...byId.values()].sort((a, b) => Date.parse(b.date) - Date.parse(a.date));
  return { items: items.slice(0, limit), truncated: items.length > limit };
}

/** Reads the patient's RiskAssessments made by this service from the FHIR server (newest first, capped). */
export async function loadAssessmentHistory(fhir: FhirDataSource, patientId: string, signal?: AbortSignal): Promise<AssessmentHistoryResponse> {
  const found = await fhir.search<RiskAssessment>(
    'RiskAssessment',
    { patient: `Patient/${patientId}`, identifier: `${ASSESSMENT_IDENTIFIER_SYSTEM}|`, _sort: '-date', _count: String(HISTORY_LIMIT * 2) },
    signal,
  );
  return { patientId, ...historyItems(found, patientId) };
}

/** What {@link createPatientRouter} reads from; tests pass their own. */
export interface PatientRouterDeps {
  /** The FHIR server the service reads charts from (the risk service's). */
  fhir: FhirDataSource;
  logger: Logger;
  /** Care status loader (default: server/orders/care-status.ts). */
  careStatus?: (fhir: FhirDataSource, patientId: string, opts: { signal?: AbortSignal }) => Promise<CareStatus>;
}

/**
 * `/api/patients/{id}/assessments` and `/api/patients/{id}/care-status`, guarded like the assessment routes (the
 * composition root puts the same {@link ASSESSMENT_SCOPES} check in front; a patient-level token reaches only its
 * own patient). FHIR failures answer 502/504 like the assessment routes; an unknown patient simply has no history.
 */
export function createPatientRouter(deps: PatientRouterDeps): Router {
  const r = Router();
  const careStatus = deps.careStatus ?? ((fhir, id, opts) => loadCareStatus(fhir, id, opts));
  r.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  const patientOf = (req: Request, res: Response): string | null => {
    const id = String(req.params['id']);
    if (!ID.test(id)) {
      fail(res, 400, 'BAD_REQUEST', 'the patient id is not a FHIR id');
      return null;
    }
    if (!patientAllowed(res, id)) {
      fail(res, 403, 'PATIENT_MISMATCH', 'The access token is for another patient');
      return null;
    }
    return id;
  };
  const fhirFailure = (res: Response, err: unknown, what: string): void => {
    if (err instanceof FhirTimeoutError) return fail(res, 504, err.code, 'The FHIR server did not answer in time');
    if (err instanceof FhirAccessError) return fail(res, 502, err.code, `The FHIR server failed: ${err.message}`);
    deps.logger.error({ err, route: what }, 'patient route failed');
    return fail(res, 500, 'INTERNAL', 'Internal error');
  };

  r.get('/:id/assessments', async (req: Request, res: Response) => {
    const id = patientOf(req, res);
    if (!id) return;
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    try {
      res.json(await loadAssessmentHistory(deps.fhir, id, ac.signal));
    } catch (err) {
      fhirFailure(res, err, '/api/patients/:id/assessments');
    }
  });

  r.get('/:id/care-status', async (req: Request, res: Response) => {
    const id = patientOf(req, res);
    if (!id) return;
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    try {
      const body: CareStatusResponse = { patientId: id, careStatus: await careStatus(deps.fhir, id, { signal: ac.signal }) };
      res.json(body);
    } catch (err) {
      fhirFailure(res, err, '/api/patients/:id/care-status');
    }
  });
  return r;
}
