/** The "Model monitoring" view's one call: `GET /api/monitoring/tscore` (server/monitoring/routes.ts). */
import type { MonitoringResponse } from '../../server/monitoring/types.ts';
import { apiFetch, type ApiSession } from './api.ts';

export const fetchMonitoring = (s: ApiSession, signal?: AbortSignal): Promise<MonitoringResponse> =>
  apiFetch<MonitoringResponse>(s, '/monitoring/tscore', signal ? { signal } : {});
