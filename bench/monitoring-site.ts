/**
 * `npx tsx bench/monitoring-site.ts --site <cohort folder> [--name <site>] [--concurrency <n>]`
 * (`MODELS_DIR` = a folder with the T-score-mediated model; `MODEL_TSCORE_CALIBRATION` optional)
 *
 * Production monitoring on a simulated site, end to end: the embedded sandboxes serve the cohort folder (e.g. from
 * bench/vendor-c-site.py); the backfill (`runBackfill`, what `npm run backfill` runs) assesses every study with the
 * model and writes the RiskAssessments back (with the `tscore-estimate` extension); then one monitoring poll
 * (server/monitoring/poller.ts) pairs the site's DXA results with them and the figures and drift alarm are evaluated
 * (figures.ts) as the service does, into a throw-away SQLite store. Prints the `/api/monitoring/tscore` answer's
 * series and the `/metrics` gauges.
 *
 * Run it once with the manifest's calibration and once with a site's recalibration file to see the alarm state of
 * each (the two runs are separate series: the calibration version is part of the series key).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { loadConfig } from '../server/config.ts';
import { HttpFhirClient } from '../server/fhir/client.ts';
import { createLogger } from '../server/logging.ts';
import { runBackfill } from '../server/jobs/backfill.ts';
import { createStandaloneRisk } from '../server/jobs/runtime.ts';
import { TscorePoller } from '../server/monitoring/poller.ts';
import { MONITORING_DEFAULTS, TscoreMonitoring } from '../server/monitoring/service.ts';
import { SqliteMonitoringStore } from '../server/monitoring/store.ts';
import { startEmbeddedSandboxes } from '../server/risk/embedded.ts';
import { openSqlite } from '../server/state/sqlite.ts';

const { values: args } = parseArgs({ options: { site: { type: 'string' }, name: { type: 'string' }, concurrency: { type: 'string' } } });
if (!args.site) {
  process.stderr.write('usage: npx tsx bench/monitoring-site.ts --site <cohort folder> [--concurrency <n>]\n');
  process.exit(2);
}
const logger = createLogger({ level: 'warn', destination: process.stderr });
const work = mkdtempSync(join(tmpdir(), 'frcds-monitoring-site-'));
const base = loadConfig({ ...process.env, SANDBOX_DATA_DIR: resolve(args.site) });
const t0 = performance.now();
const sandboxes = await startEmbeddedSandboxes(base, logger);
const config = loadConfig({ ...process.env, SANDBOX_DATA_DIR: resolve(args.site), FHIR_BASE_URL: sandboxes.fhirBaseUrl, DICOMWEB_BASE_URL: sandboxes.dicomWebBaseUrl, FHIR_AUTH: 'none' });
const { risk, registry, bulkFhir } = await createStandaloneRisk(config, logger);
try {
  const model = registry.get();
  process.stderr.write(`monitoring-site: ${model.id}@${model.version}, calibration ${model.tscoreCalibration?.version ?? 'none'} (${model.tscoreCalibration?.source ?? '-'}); sandboxes up in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  const t1 = performance.now();
  const summary = await runBackfill({ fhir: bulkFhir, risk, triage: null, dbPath: join(work, 'backfill.sqlite'), runId: 'monitoring-site', since: '1900-01-01', concurrency: Number(args.concurrency ?? 2), logger });
  process.stderr.write(`monitoring-site: ${summary.computed} studies assessed and written back in ${((performance.now() - t1) / 1000).toFixed(0)} s (${summary.failed.length} failed)\n`);
  const store = new SqliteMonitoringStore(openSqlite(':memory:'), { ownsDb: true });
  const metrics = new Registry();
  const poller = new TscorePoller({ fhir: new HttpFhirClient({ baseUrl: sandboxes.fhirBaseUrl, timeoutMs: 30_000, maxResources: 100_000 }), store, pairWindowDays: config.monitoring.pairWindowDays, logger, now: () => new Date() });
  const monitoring = new TscoreMonitoring({ store, poller, settings: { ...MONITORING_DEFAULTS, ...config.monitoring }, logger, registry: metrics });
  await monitoring.tick();
  const answer = await monitoring.response();
  process.stdout.write(`${JSON.stringify({ poll: answer.lastPoll, series: answer.series, settings: answer.settings }, null, 2)}\n`);
  process.stdout.write((await metrics.metrics()).split('\n').filter((l) => l.startsWith('frcds_tscore_monitor_')).join('\n') + '\n');
  process.stdout.write(`readyz detail: ${monitoring.probe().detail}\n`);
  await monitoring.close();
  await store.close();
} finally {
  await registry.close();
  await sandboxes.close();
  rmSync(work, { recursive: true, force: true });
}
