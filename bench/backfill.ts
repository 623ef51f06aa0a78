/**
 * `npx tsx bench/backfill.ts [--studies <n>] [--concurrency <n>] [--no-redis]`
 *
 * Studies per hour (issue 8, "Must show": target ≥ 20,000/h on a 2-core machine):
 * 1. Embedded stack: the backfill (`runBackfill`, what `npm run backfill` runs) against the embedded FHIR and
 *    DICOMweb sandboxes in this process, over loopback HTTP: list → read chart → fetch + decode the radiograph →
 *    preprocess → ONNX inference → write RiskAssessment + Provenance → FLS triage.
 * 2. Redis: the same number of report events queued in BullMQ (Debian redis-server on a free loopback port) and run
 *    by two `server/jobs/worker.ts` processes against the same sandboxes.
 * The demo cohort has 50 studies, so the bench adds copies of each demo patient (new Patient/ImagingStudy/report
 * ids, same DICOM images) whose study date is shifted by the copy number: the index date enters the risk service's
 * cache key, so no copy can be answered from another's cached assessment. Only assessments the risk service
 * computed (source "new") count as throughput; cached ones are reported separately.
 */
import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Writable } from 'node:stream';
import type { Bundle, DiagnosticReport } from '@medplum/fhirtypes';
import { loadConfig } from '../server/config.ts';
import { HttpFhirClient } from '../server/fhir/client.ts';
import { createLogger } from '../server/logging.ts';
import { startEmbeddedSandboxes } from '../server/risk/embedded.ts';
import { runBackfill } from '../server/jobs/backfill.ts';
import { RedisJobQueue } from '../server/jobs/redis-queue.ts';
import { configuredTriage, createStandaloneRisk } from '../server/jobs/runtime.ts';
import { redisServerInstalled, startRedis } from '../test/support/redis.ts';
import { spawnTs, waitFor } from '../test/support/service-process.ts';

const args = parseArgs({ options: { studies: { type: 'string' }, concurrency: { type: 'string' }, 'no-redis': { type: 'boolean' } } }).values;
const N = Number(args.studies ?? 300);
const CONCURRENCY = Number(args.concurrency ?? 4);
const silent = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

const baseConfig = loadConfig({ ...process.env, FHIR_BASE_URL: undefined, DICOMWEB_BASE_URL: undefined });
const sandboxes = await startEmbeddedSandboxes(baseConfig, silent);
const config = loadConfig({ ...process.env, FHIR_BASE_URL: sandboxes.fhirBaseUrl, DICOMWEB_BASE_URL: sandboxes.dicomWebBaseUrl, FHIR_AUTH: 'none' });
const fhir = new HttpFhirClient({ baseUrl: sandboxes.fhirBaseUrl, timeoutMs: 60_000, maxResources: 1_000_000 });

const demoBundles = readdirSync(join(config.sandboxDataDir, 'fhir')).filter((f) => f.endsWith('.json')).sort().map((f) => ({ id: f.slice(0, -5), text: readFileSync(join(config.sandboxDataDir, 'fhir', f), 'utf8') }));

/** Adds copies (copy numbers from..to-1) of every demo patient; returns their report ids. */
async function addCopies(from: number, to: number): Promise<string[]> {
  const reports: string[] = [];
  for (let k = from; k < to; k++) {
    for (const demo of demoBundles) {
      const cloneId = `bk${String(k).padStart(4, '0')}-${demo.id}`;
      const bundle = JSON.parse(demo.text.split(demo.id).join(cloneId)) as Bundle;
      for (const e of bundle.entry ?? []) {
        const r = e.resource as { resourceType: string; id: string; started?: string; effectiveDateTime?: string; issued?: string };
        const shift = (iso: string | undefined): string | undefined => (iso ? new Date(Date.parse(iso) - k * 86_400_000).toISOString() : iso);
        if (r.resourceType === 'ImagingStudy') r.started = shift(r.started);
        if (r.resourceType === 'DiagnosticReport') {
          r.effectiveDateTime = shift(r.effectiveDateTime);
          r.issued = shift(r.issued);
          reports.push(r.id); // -xr-report (hip) or -ct-report (the demo CT patients)
        }
        if (r.resourceType === 'Endpoint') (r as { address?: string }).address = sandboxes.dicomWebBaseUrl;
      }
      const res = await fetch(`${sandboxes.fhirBaseUrl}/`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(bundle) });
      if (!res.ok) throw new Error(`seeding a copy failed: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
    }
  }
  return reports;
}

const copies = Math.ceil(N / demoBundles.length);
process.stderr.write(`bench/backfill: adding ${copies} copies of the ${demoBundles.length} demo patients (${copies * demoBundles.length} studies)…\n`);
await addCopies(1, copies + 1);

const dir = mkdtempSync(join(tmpdir(), 'frcds-bench-backfill-'));
const { risk, registry, bulkFhir } = await createStandaloneRisk(config, silent);
const summary = await runBackfill({
  fhir: bulkFhir,
  risk,
  triage: await configuredTriage(config, silent),
  dbPath: join(dir, 'bench.sqlite'),
  runId: 'bench',
  since: '1900-01-01',
  concurrency: CONCURRENCY,
  limit: N,
  logger: silent,
});
await registry.close();
const lines: string[] = [];
lines.push(`Embedded stack (backfill, concurrency ${CONCURRENCY}, one process): ${summary.computed} studies computed in ${summary.seconds.toFixed(1)} s → ${summary.studiesPerHour.toFixed(0)} studies/hour (${summary.reused} reused from cache, not counted; ${summary.failed.length} failed; ${summary.triageTasks} FLS Tasks)`);
process.stdout.write(`${lines[0]}\n`);

if (!args['no-redis']) {
  if (!redisServerInstalled()) {
    process.stdout.write('Redis: /usr/bin/redis-server is not installed — skipped\n');
  } else {
    const redis = await startRedis();
    const reports = await addCopies(copies + 1, 2 * copies + 1);
    const env = {
      HOST: '127.0.0.1', REDIS_URL: redis.url, FHIR_BASE_URL: sandboxes.fhirBaseUrl, DICOMWEB_BASE_URL: sandboxes.dicomWebBaseUrl, FHIR_AUTH: 'none',
      INFERENCE_DEVICE: 'cpu', INFERENCE_THREADS: '1', JOBS_CONCURRENCY: String(Math.max(1, Math.round(CONCURRENCY / 2))), LOG_LEVEL: 'info',
      FLS_AUDIT_DB: join(dir, 'fls.sqlite'), CDS_FEEDBACK_DB: join(dir, 'cds.sqlite'),
    };
    const workers = [spawnTs('server/jobs/worker.ts', env, join(dir, 'worker-1.log')), spawnTs('server/jobs/worker.ts', env, join(dir, 'worker-2.log'))];
    await waitFor('both workers', async () => [1, 2].every((i) => readFileSync(join(dir, `worker-${i}.log`), 'utf8').includes('report-event worker started')), 120_000, 100);
    const queue = new RedisJobQueue({ url: redis.url, maxAttempts: 3, backoffMs: 500, leaseMs: 30_000, logger: silent });
    const batch = reports.slice(0, N);
    const versions = new Map<string, string>();
    for (const id of batch) versions.set(id, (await fhir.read<DiagnosticReport>('DiagnosticReport', id)).meta!.versionId!);
    const t0 = performance.now();
    for (const id of batch) await queue.enqueue({ reportId: id, versionId: versions.get(id)!, source: 'manual', receivedAt: new Date().toISOString() });
    const final = await waitFor('all jobs', async () => {
      const s = await queue.stats();
      return s.completedKeys + s.deadLetters >= batch.length && s.running === 0 ? s : undefined;
    }, 3_600_000, 200);
    const seconds = (performance.now() - t0) / 1000;
    const line = `Redis/BullMQ, 2 worker processes (concurrency ${env.JOBS_CONCURRENCY} each, 1 ONNX thread each), events → RiskAssessment + Provenance + triage: ${final.completedKeys} jobs in ${seconds.toFixed(1)} s → ${((final.completedKeys / seconds) * 3600).toFixed(0)} studies/hour (${final.deadLetters} dead letters)`;
    lines.push(line);
    process.stdout.write(`${line}\n`);
    await queue.close();
    for (const w of workers) await w.kill('SIGTERM');
    await redis.stop();
  }
}
process.stdout.write(`(2-core machine; load average at the end ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}; target ≥ 20,000 studies/hour)\n`);
await sandboxes.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
