/**
 * HTTP API of the risk engine (issue 5, item 6):
 * - `POST /api/assessments` `{ "patient": "<Patient id>", "study"?: "<ImagingStudy id>" }` → the assessment for the
 *   app plus its FHIR resources (201 when computed, 200 when served from the cache);
 * - `GET /api/assessments/{id}` → the same; `GET /api/assessments/{id}/heatmap.png` and `/display.png` → PNGs.
 * Errors are JSON `{ error, code, status }` with the status the cause calls for (404 unknown patient or study,
 * 422 chart unusable for QFracture, 502/504 FHIR server failing or slow, 503 no model). Every answer carries
 * `Cache-Control: no-store`: they hold PHI (the assessment, the radiograph) and are fetched with a bearer token.
 * The composition root guards the router with {@link ASSESSMENT_SCOPES}.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.5
 */
import express, { Router, type Request, type Response } from 'express';
import { patientAllowed } from '../auth/require.ts';
import { FhirAccessError, FhirNotFoundError, FhirTimeoutError } from '../fhir/client.ts';
import { ModelNotFoundError } from '../inference/registry.ts';
import type { Logger } from '../logging.ts';
import { AssessmentError } from './assess.ts';
import { FactorError } from './factors.ts';
import type { RiskService, StoredAssessment } from './service.ts';

const ID = /^[A-Za-z0-9\-.]{1,64}$/;

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
    links: s.pngs ? { heatmap: `${base}/${a.id}/heatmap.png`, display: `${base}/${a.id}/display.png` } : null,
    fhir: { riskAssessment: s.fhir.riskAssessment, device: s.fhir.device, provenance: s.fhir.provenance, documentReference: s.fhir.documentReference },
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
    const b = req.body as { patient?: unknown; study?: unknown } | undefined;
    if (!b || typeof b.patient !== 'string' || !ID.test(b.patient)) return fail(res, 400, 'BAD_REQUEST', 'body must be {"patient": "<Patient id>", "study"?: "<ImagingStudy id>"}');
    if (b.study !== undefined && (typeof b.study !== 'string' || !ID.test(b.study))) return fail(res, 400, 'BAD_REQUEST', '"study" must be an ImagingStudy id');
    // SMART (issue 7): a token launched for one patient may only assess that patient.
    if (!patientAllowed(res, b.patient)) return fail(res, 403, 'PATIENT_MISMATCH', 'The access token is for another patient');
    try {
      const out = await service.assess({ patientId: b.patient, ...(typeof b.study === 'string' ? { studyId: b.study } : {}) });
      res.status(out.source === 'new' ? 201 : 200).set('X-Assessment-Source', out.source).json({ ...body(out.stored, req.baseUrl), source: out.source });
    } catch (err) {
      if (err instanceof FhirNotFoundError) return fail(res, 404, err.code, `Patient/${b.patient} was not found on the FHIR server`);
      if (err instanceof AssessmentError) return fail(res, err.code === 'STUDY_NOT_FOUND' ? 404 : 400, err.code, err.message);
      if (err instanceof FactorError) return fail(res, 422, err.code, err.message);
      if (err instanceof FhirTimeoutError) return fail(res, 504, err.code, 'The FHIR server did not answer in time');
      if (err instanceof FhirAccessError) return fail(res, 502, err.code, `The FHIR server failed: ${err.message}`);
      if (err instanceof ModelNotFoundError) return fail(res, 503, err.code, err.message);
      logger.error({ err }, 'assessment failed');
      return fail(res, 500, 'INTERNAL', 'Internal error');
    }
  });

  r.get('/:id', (req: Request, res: Response) => {
    const s = service.get(String(req.params['id']));
    if (!s) return fail(res, 404, 'NOT_FOUND', 'No such assessment (they are kept in memory; it may have been evicted)');
    if (!patientAllowed(res, s.assessment.patientId)) return fail(res, 403, 'PATIENT_MISMATCH', 'The access token is for another patient');
    res.json(body(s, req.baseUrl));
  });

  for (const kind of ['heatmap', 'display'] as const) {
    r.get(`/:id/${kind}.png`, (req: Request, res: Response) => {
      const s = service.get(String(req.params['id']));
      if (!s) return fail(res, 404, 'NOT_FOUND', 'No such assessment');
      if (!patientAllowed(res, s.assessment.patientId)) return fail(res, 403, 'PATIENT_MISMATCH', 'The access token is for another patient');
      if (!s.pngs) return fail(res, 404, 'NO_IMAGE', 'This assessment has no image-derived heatmap (clinical-only)');
      res.type('image/png').send(kind === 'heatmap' ? s.pngs.overlay() : s.pngs.display());
    });
  }
  return r;
}
