/**
 * Calls of the FLS coordinator's screens to the service's FLS API (`/api/fls`, wire types in server/fls/types.ts):
 * the worklist and one item, recording a pathway step, owner, notes, dismissal, bulk actions, owners, KPIs and the
 * two CSV exports. Same headers as every other call of the app (`apiHeaders`: bearer token, FHIR server); actions
 * on one item send `If-Match` with the item's version, so a change made meanwhile by someone else answers 409
 * (`STALE_VERSION`) instead of being overwritten.
 */
import type {
  AcceptResponse, BulkRequest, BulkResponse, DismissalReasonCode, DismissResponse, KpiQuery, KpiResponse, OwnersResponse, PathwayOwner,
  StepRequest, WorklistItem, WorklistItemResponse, WorklistQuery, WorklistResponse,
} from '../../server/fls/types.ts';
import { ApiError, apiFetch, apiHeaders, type ApiSession } from './api.ts';

interface CallOptions {
  method?: 'GET' | 'POST';
  body?: unknown;
  /** The item's `pathway.version`: sent as `If-Match: W/"<version>"`. */
  version?: string;
  signal?: AbortSignal;
}

/** One call under `/fls` through the app's {@link apiFetch}, with `If-Match` when the item's version is given. */
const call = <T>(s: ApiSession, path: string, opts: CallOptions = {}): Promise<T> =>
  apiFetch<T>(s, `/fls${path}`, {
    ...(opts.method ? { method: opts.method } : {}),
    ...(opts.body === undefined ? {} : { body: opts.body }),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.version ? { headers: { 'If-Match': `W/"${opts.version}"` } } : {}),
  });

/** The query string of worklist or KPI filters (empty values left out). */
export function flsQueryString(q: WorklistQuery | KpiQuery): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (typeof v === 'string' && v !== '') p.set(k, v);
    else if (typeof v === 'boolean') p.set(k, String(v));
  }
  const out = p.toString();
  return out ? `?${out}` : '';
}

const item = (taskId: string): string => `/worklist/${encodeURIComponent(taskId)}`;

export const fetchWorklist = (s: ApiSession, q: WorklistQuery, signal?: AbortSignal): Promise<WorklistResponse> =>
  call<WorklistResponse>(s, `/worklist${flsQueryString(q)}`, signal ? { signal } : {});

export const fetchItem = (s: ApiSession, taskId: string, signal?: AbortSignal): Promise<WorklistItemResponse> =>
  call<WorklistItemResponse>(s, item(taskId), signal ? { signal } : {});

export const fetchOwners = (s: ApiSession, signal?: AbortSignal): Promise<OwnersResponse> => call<OwnersResponse>(s, '/owners', signal ? { signal } : {});

export const fetchKpis = (s: ApiSession, q: KpiQuery, signal?: AbortSignal): Promise<KpiResponse> =>
  call<KpiResponse>(s, `/kpis${flsQueryString(q)}`, signal ? { signal } : {});

/** The FLS takes the patient on: creates the FLS referral (identified → accepted). */
export const accept = (s: ApiSession, it: Pick<WorklistItem, 'taskId' | 'pathway'>, note?: string): Promise<AcceptResponse> =>
  call<AcceptResponse>(s, `${item(it.taskId)}/accept`, { method: 'POST', body: note ? { note } : {}, version: it.pathway.version });

export const recordStep = (s: ApiSession, it: Pick<WorklistItem, 'taskId' | 'pathway'>, req: StepRequest): Promise<WorklistItemResponse> =>
  call<WorklistItemResponse>(s, `${item(it.taskId)}/step`, { method: 'POST', body: req, version: it.pathway.version });

export const assignOwner = (s: ApiSession, it: Pick<WorklistItem, 'taskId' | 'pathway'>, owner: PathwayOwner | null): Promise<WorklistItemResponse> =>
  call<WorklistItemResponse>(s, `${item(it.taskId)}/owner`, { method: 'POST', body: { owner }, version: it.pathway.version });

export const addNote = (s: ApiSession, it: Pick<WorklistItem, 'taskId' | 'pathway'>, text: string): Promise<WorklistItemResponse> =>
  call<WorklistItemResponse>(s, `${item(it.taskId)}/notes`, { method: 'POST', body: { text }, version: it.pathway.version });

export const dismiss = (s: ApiSession, it: Pick<WorklistItem, 'taskId' | 'pathway'>, reason: DismissalReasonCode, note?: string): Promise<DismissResponse> =>
  call<DismissResponse>(s, `${item(it.taskId)}/dismiss`, { method: 'POST', body: { reason, ...(note ? { note } : {}) }, version: it.pathway.version });

export const bulk = (s: ApiSession, req: BulkRequest): Promise<BulkResponse> => call<BulkResponse>(s, '/worklist/bulk', { method: 'POST', body: req });

/**
 * Downloads one of the server's CSV exports (`worklist.csv`, `kpis.csv`) with the bearer token (a plain link could
 * not carry it) and hands it to the browser as a file.
 */
export async function downloadCsv(s: ApiSession, what: 'worklist' | 'kpis', q: WorklistQuery | KpiQuery, fileName: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${s.apiBase}/fls/${what}.csv${flsQueryString(q)}`, { headers: { ...apiHeaders(s), Accept: 'text/csv' } });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `The service could not be reached (${(err as Error).message}).`);
  }
  if (!res.ok) throw new ApiError(res.status, `HTTP_${res.status}`, `The CSV export failed (${res.status}).`);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A failed action in words for the status line ("Someone else changed this item…" for a stale version). */
export function actionError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'STALE_VERSION') return 'Someone else changed this item meanwhile; it has been reloaded. Check it and try again.';
    if (err.status === 401 || err.status === 403) return `Not allowed: ${err.message}`;
    return err.message;
  }
  return (err as Error).message;
}
