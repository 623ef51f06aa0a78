/**
 * `npm run worker` — a BullMQ worker process for report-event jobs (issue 8, item 2: "any number of worker
 * processes on any number of machines"). Needs `REDIS_URL`, `FHIR_BASE_URL` and `DICOMWEB_BASE_URL` (a worker has
 * no embedded sandbox: it works for the servers the service uses) plus their credentials, exactly as the service
 * reads them. Runs the same job code as the in-process queue. `WORKER_METRICS_PORT` (optional) serves its
 * Prometheus metrics at `http://127.0.0.1:<port>/metrics`.
 * SIGTERM/SIGINT: finishes the running jobs (BullMQ close), then exits; a SIGKILLed worker's jobs are taken over
 * by the other workers once their lock expires (`JOBS_LEASE_MS`).
 */
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { loadConfigForCli } from '../config.ts';
import { createLogger } from '../logging.ts';
import { createJobMetrics } from './metrics.ts';
import { configuredTriage, createQueue, createRunner, createStandaloneRisk } from './runtime.ts';

async function main(): Promise<number> {
  const config = loadConfigForCli();
  if (!config) return 2;
  if (!config.jobs.redisUrl) {
    process.stderr.write('npm run worker needs REDIS_URL (without it, jobs run inside the service: npm start)\n');
    return 2;
  }
  if (config.fhir.sandbox || config.dicomweb.sandbox) {
    process.stderr.write('npm run worker needs FHIR_BASE_URL and DICOMWEB_BASE_URL (a worker has no embedded sandbox)\n');
    return 2;
  }
  const logger = createLogger({ level: config.log.level, hashSalt: config.log.hashSalt });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'frcds_worker_' });
  const metrics = createJobMetrics(registry);
  const queue = createQueue(config, logger, metrics);
  const { risk, registry: models } = await createStandaloneRisk(config, logger);
  const triage = await configuredTriage(config, logger);
  queue.start(createRunner({ risk, triage, coordination: queue.coordination, logger }), config.jobs.concurrency);
  const port = Number(process.env['WORKER_METRICS_PORT'] ?? 0);
  const http = port > 0
    ? createServer((req, res) => {
        if (req.url !== '/metrics') return void res.writeHead(404).end();
        void registry.metrics().then((body) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(body));
      }).listen(port, '127.0.0.1')
    : undefined;
  logger.info({ pid: process.pid, concurrency: config.jobs.concurrency }, 'report-event worker started (BullMQ)');
  await new Promise<void>((done) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'worker shutting down');
      const t = setTimeout(() => process.exit(0), 10_000);
      t.unref();
      void queue.close().then(() => models.close()).then(() => http?.close()).then(() => done());
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`worker failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
