/**
 * Calls to the service's own API (`/api/assessments`, `/api/patients/{id}/…`; the FLS calls are in worklist-api.ts), always with the SMART access token as
 * `Authorization: Bearer` — the service verifies it and that its patient matches — plus `X-FHIR-Server` (the FHIR
 * server the app was launched against: it picks how the service verifies the token) and `X-SMART-Patient` (the
 * launch patient, when there is one: what the service checks an opaque token against). Failures become typed
 * {@link ApiError}s the error screen can explain (401/403: access; 5xx: the service).
 */
import type { WorklistQuery } from '../../server/fls/types.ts';
import type { ApiErrorBody, AssessmentHistoryResponse, AssessmentResponse, CareStatusResponse } from './types.ts';
import type { Session } from './session.ts';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function messageOf(body: unknown, status: number): { code: string; message: string } {
  const b = body as ApiErrorBody | null;
  if (b && typeof b.error === 'string') return { code: ('code' in b && b.code) || `HTTP_${status}`, message: b.error };
  if (b && typeof b.error === 'object' && b.error) return { code: b.error.code, message: b.error.message };
  return { code: `HTTP_${status}`, message: `The service answered ${status}` };
}

/** What {@link apiFetch} and the other calls need from the session. */
export type ApiSession = Pick<Session, 'accessToken' | 'apiBase' | 'fhirBaseUrl' | 'patientId'>;

/** The headers every call to the service's API carries: the bearer token and where it comes from. */
export function apiHeaders(session: ApiSession): Record<string, string> {
  return {
    Authorization: `Bearer ${session.accessToken}`,
    'X-FHIR-Server': session.fhirBaseUrl,
    ...(session.patientId ? { 'X-SMART-Patient': session.patientId } : {}),
  };
}

/**
 * `fetch` against the service with the bearer token; JSON in and out. `headers` are added to those of every call
 * (e.g. the FLS actions' `If-Match`).
 */
export async function apiFetch<T>(session: ApiSession, path: string, init: { method?: string; body?: unknown; signal?: AbortSignal; headers?: Record<string, string> } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${session.apiBase}${path}`, {
      method: init.method ?? 'GET',
      headers: { ...apiHeaders(session), Accept: 'application/json', ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }), ...init.headers },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      ...(init.signal ? { signal: init.signal } : {}),
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `The service could not be reached (${(err as Error).message}).`);
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const m = messageOf(body, res.status);
    throw new ApiError(res.status, m.code, m.message);
  }
  return body as T;
}

/**
 * The assessment to show: the one the card named (`appContext`), else — or when it is no longer in the service's
 * memory — a fresh (usually cached) assessment of the patient in context. Refuses one of another patient.
 */
export async function loadAssessment(session: Session, assessmentId: string | null): Promise<AssessmentResponse> {
  let res: AssessmentResponse | null = null;
  if (assessmentId) {
    try {
      res = await apiFetch<AssessmentResponse>(session, `/assessments/${encodeURIComponent(assessmentId)}`);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
  }
  if (!res) {
    if (!session.patientId) throw new ApiError(400, 'NO_PATIENT', 'The launch gave no patient and no assessment to open.');
    res = await apiFetch<AssessmentResponse>(session, '/assessments', { method: 'POST', body: { patient: session.patientId } });
  }
  if (session.patientId && res.assessment.patientId !== session.patientId) {
    throw new ApiError(403, 'PATIENT_MISMATCH', 'The assessment named by the launch belongs to another patient than the one in context.');
  }
  return res;
}

/** The patient's past assessments (newest first, capped by the service). */
export const getHistory = (s: ApiSession, patientId: string, signal?: AbortSignal): Promise<AssessmentHistoryResponse> =>
  apiFetch<AssessmentHistoryResponse>(s, `/patients/${encodeURIComponent(patientId)}/assessments`, signal ? { signal } : {});

/** The care the patient already has: open FLS referral or DXA order, latest DXA result, treatment. */
export const getCareStatus = (s: ApiSession, patientId: string, signal?: AbortSignal): Promise<CareStatusResponse> =>
  apiFetch<CareStatusResponse>(s, `/patients/${encodeURIComponent(patientId)}/care-status`, signal ? { signal } : {});

/** A PNG of the service (radiograph, heatmap) fetched with the bearer token and decoded for a canvas. */
export async function fetchBitmap(session: ApiSession, url: string, signal?: AbortSignal): Promise<ImageBitmap> {
  const res = await fetch(new URL(url, session.apiBase).href, { headers: apiHeaders(session), ...(signal ? { signal } : {}) });
  if (!res.ok) throw new ApiError(res.status, `HTTP_${res.status}`, `The image could not be loaded (${res.status}).`);
  return createImageBitmap(await res.blob());
}

/** Query string of the worklist filters (empty values left out). */
export function worklistQueryString(q: WorklistQuery): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (typeof v === 'string' && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}
