/**
 * Composition of production monitoring for `server/index.ts`: the store on the shared state (PostgreSQL pool with
 * `DATABASE_URL`, else the embedded `STATE_DB` file), the DXA poller with the service's FHIR credentials, the
 * periodic loop with its `/metrics` gauges, and the `/api/monitoring` router behind user-level SMART access. The
 * `/readyz` component `tscore-monitoring` is added when a drift alarm is first seen (a service that never had one
 * lists the same components as without monitoring).
 */
import type { RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import type { Readiness } from '../health/readiness.ts';
import { createApiTokenVerifier } from '../auth/setup.ts';
import type { AppConfig } from '../config.ts';
import type { Logger } from '../logging.ts';
import { configuredFhirClient } from '../risk/wiring.ts';
import { openSqlite } from '../state/sqlite.ts';
import type { StateStores } from '../state/stores.ts';
import { TscorePoller } from './poller.ts';
import { createMonitoringRouter, monitoringGuard } from './routes.ts';
import { TscoreMonitoring } from './service.ts';
import { PostgresMonitoringStore, SqliteMonitoringStore, type MonitoringStore } from './store.ts';

export interface MonitoringMount {
  readonly handler: RequestHandler;
  readonly monitoring: TscoreMonitoring;
  close(): Promise<void>;
}

export function createMonitoringMount(config: AppConfig, logger: Logger, shared: { stores: Pick<StateStores, 'pool' | 'sqlite'>; registry: Registry; readiness?: Pick<Readiness, 'addProbe'>; guard?: RequestHandler }): MonitoringMount {
  const log = logger.child({ component: 'tscore-monitoring' });
  const store: MonitoringStore = shared.stores.pool
    ? new PostgresMonitoringStore(shared.stores.pool)
    : shared.stores.sqlite
      ? new SqliteMonitoringStore(shared.stores.sqlite)
      : new SqliteMonitoringStore(openSqlite(config.state.dbPath), { ownsDb: true });
  const poller = new TscorePoller({
    fhir: configuredFhirClient(config, { maxResources: 100_000 }),
    store,
    pairWindowDays: config.monitoring.pairWindowDays,
    logger: log,
  });
  let listed = false;
  const monitoring: TscoreMonitoring = new TscoreMonitoring({
    store, poller, settings: config.monitoring, logger: log, registry: shared.registry,
    onAlarm: () => {
      if (listed || !shared.readiness) return;
      listed = true;
      shared.readiness.addProbe('tscore-monitoring', async () => monitoring.probe(), 3000);
    },
  });
  const handler = createMonitoringRouter({ monitoring, guard: shared.guard ?? monitoringGuard(createApiTokenVerifier(config)), logger: log });
  return {
    handler,
    monitoring,
    close: async () => {
      await monitoring.close();
      await store.close();
    },
  };
}
