/**
 * `npm run backfill -- --since <YYYY-MM-DD> [--fhir <FHIR base URL>] [--dicomweb <DICOMweb root>]
 *   [--concurrency <n>] [--run <name>] [--no-triage] [--limit <n>] [--db <SQLite file>]` (`--help`/`-h`: usage, exit 0)
 *
 * Assesses existing imaging studies in bulk (issue 8, item 4): every `ImagingStudy` started on or after `--since`
 * on the FHIR server is assessed by the risk service, its RiskAssessment and Provenance are written (one per study,
 * stable ids, so a re-run rewrites rather than duplicates), and the FLS triage is asked for a Task.
 * - Progress bar on stderr when it is a terminal; one progress line every 10 s otherwise (logs stay readable).
 * - Resumable: each finished study is checkpointed in SQLite (`JOBS_DB_PATH` or `--db`) under the run name (default:
 *   FHIR base + since); running the same command again skips what is done. Interrupt with Ctrl-C at any time.
 * - Throughput at the end counts only studies computed in this run — reused (cached) assessments and studies
 *   skipped from the checkpoint are reported separately, never as throughput.
 * Without `--fhir` and `FHIR_BASE_URL`, the embedded demo sandboxes are started in-process (as `npm run assess`).
 * Exit codes: 0 done, 1 some studies failed (listed), 2 bad arguments or configuration, 130 interrupted.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import type { ImagingStudy } from '@medplum/fhirtypes';
import { loadConfig, loadConfigForCli } from '../config.ts';
import { FhirAccessError, type FhirDataSource } from '../fhir/client.ts';
import { createLogger, type Logger } from '../logging.ts';
import { AssessmentError } from '../risk/assess.ts';
import { startEmbeddedSandboxes, type EmbeddedSandboxes } from '../risk/embedded.ts';
import { derivedId, measurementResources, parseReference, resultResources } from './process.ts';
import { configuredTriage, createStandaloneRisk, type Assessor } from './runtime.ts';
import type { TriageFn } from './triage-link.ts';

/** Identifier system of a backfill-written RiskAssessment (value: `ImagingStudy/<id>`). */
export const BACKFILL_SYSTEM = 'urn:frcds:backfill';

export interface BackfillOptions {
  /** Lists the studies (with a high `maxResources`) and writes the results. */
  readonly fhir: FhirDataSource;
  readonly risk: Assessor;
  readonly triage: TriageFn | null;
  readonly dbPath: string;
  readonly runId: string;
  readonly since: string;
  readonly concurrency: number;
  readonly limit?: number;
  readonly progress?: Progress;
  readonly signal?: AbortSignal;
  readonly logger: Logger;
}

export interface BackfillSummary {
  readonly total: number;
  /** Skipped because the checkpoint says they were done by an earlier (interrupted) run. */
  readonly resumed: number;
  /** Assessed in this run by a new computation (the throughput numerator). */
  readonly computed: number;
  /** Assessed in this run, but the risk service reused a cached assessment (not counted as throughput). */
  readonly reused: number;
  readonly failed: { studyId: string; reason: string }[];
  readonly triageTasks: number;
  readonly seconds: number;
  /** computed / hour of wall time in this run. */
  readonly studiesPerHour: number;
  readonly interrupted: boolean;
}

/** A progress display: a bar on a TTY, periodic lines otherwise. */
export class Progress {
  readonly #out: { write(text: string): unknown };
  readonly #tty: boolean;
  #total = 0;
  #done = 0;
  #start = performance.now();
  #lastLine = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(out: { write(text: string): unknown } = process.stderr, tty: boolean = Boolean(process.stderr.isTTY)) {
    this.#out = out;
    this.#tty = tty;
  }
  start(total: number, alreadyDone: number): void {
    this.#total = total;
    this.#done = alreadyDone;
    this.#start = performance.now();
    this.#base = alreadyDone;
    if (this.#tty) {
      this.#timer = setInterval(() => this.#render(), 200);
      this.#timer.unref();
    }
    this.#render(true);
  }
  #base = 0;
  tick(): void {
    this.#done++;
    if (!this.#tty && performance.now() - this.#lastLine > 10_000) this.#render(true);
  }
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#render(true);
    if (this.#tty) this.#out.write('\n');
  }
  #render(force = false): void {
    const secs = (performance.now() - this.#start) / 1000;
    const rate = secs > 0 ? (this.#done - this.#base) / secs : 0;
    const left = this.#total - this.#done;
    const eta = rate > 0 ? `${Math.ceil(left / rate)} s` : '–';
    const pct = this.#total ? Math.floor((100 * this.#done) / this.#total) : 100;
    const text = `${this.#done}/${this.#total} studies (${pct} %), ${rate.toFixed(1)}/s, ETA ${eta}`;
    if (this.#tty) {
      const width = 30;
      const filled = this.#total ? Math.round((width * this.#done) / this.#total) : width;
      this.#out.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}   `);
    } else if (force) {
      this.#out.write(`backfill: ${text}\n`);
      this.#lastLine = performance.now();
    }
  }
}

function openCheckpoint(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE IF NOT EXISTS backfill_done (run TEXT NOT NULL, study_id TEXT NOT NULL, outcome TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (run, study_id));`);
  return db;
}

/** Runs (or resumes) a backfill. */
export async function runBackfill(o: BackfillOptions): Promise<BackfillSummary> {
  const db = openCheckpoint(o.dbPath);
  const t0 = performance.now();
  try {
    let studies = await o.fhir.search<ImagingStudy>('ImagingStudy', { started: `ge${o.since}`, _sort: 'started', _count: '500' }, o.signal);
    if (o.limit !== undefined) studies = studies.slice(0, o.limit);
    const done = new Set((db.prepare('SELECT study_id FROM backfill_done WHERE run = ?').all(o.runId) as { study_id: string }[]).map((r) => r.study_id));
    const todo = studies.filter((s) => s.id && !done.has(s.id));
    const resumed = studies.length - todo.length;
    const mark = db.prepare('INSERT OR REPLACE INTO backfill_done (run, study_id, outcome, at) VALUES (?, ?, ?, ?)');
    o.progress?.start(studies.length, resumed);
    const devices = new Set<string>();
    let computed = 0;
    let reused = 0;
    let triageTasks = 0;
    const failed: { studyId: string; reason: string }[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < todo.length && !o.signal?.aborted) {
        const study = todo[next++]!;
        const patientId = parseReference(study.subject?.reference, 'Patient');
        try {
          if (!patientId) throw new AssessmentError('BAD_REQUEST', 'the study has no Patient subject');
          const result = await o.risk.assess({ patientId, studyId: study.id! });
          const raId = derivedId('frcds-study-', study.id!);
          const { riskAssessment, provenance } = resultResources(result.stored, { raId, source: { reference: `ImagingStudy/${study.id}` }, identifier: { system: BACKFILL_SYSTEM, value: `ImagingStudy/${study.id}` } });
          const device = result.stored.fhir.device;
          if (!devices.has(device.id!)) {
            await o.fhir.write(device);
            devices.add(device.id!);
          }
          // A CT result's measurements first: the RiskAssessment's basis references them.
          for (const r of measurementResources(result.stored)) await o.fhir.write(r);
          const written = await o.fhir.write(riskAssessment);
          await o.fhir.write(provenance);
          if (o.triage) {
            const t = await o.triage(o.fhir, { patientId, riskAssessment: written, assessment: result.stored.assessment });
            if (t.created) triageTasks++;
          }
          if (result.source === 'new') computed++;
          else reused++;
          mark.run(o.runId, study.id!, result.source === 'new' ? 'computed' : 'reused', Date.now());
        } catch (err) {
          if (err instanceof AssessmentError || (err instanceof FhirAccessError && !err.retryable)) {
            // Permanent for this study: checkpoint it as failed so a resume does not loop on it.
            mark.run(o.runId, study.id!, `failed: ${err.message.slice(0, 200)}`, Date.now());
          }
          failed.push({ studyId: study.id!, reason: (err as Error).message });
          o.logger.warn({ error: (err as Error).message.slice(0, 200) }, 'backfill: study failed');
        }
        o.progress?.tick();
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
    o.progress?.stop();
    const seconds = (performance.now() - t0) / 1000;
    return { total: studies.length, resumed, computed, reused, failed, triageTasks, seconds, studiesPerHour: seconds > 0 ? (computed / seconds) * 3600 : 0, interrupted: Boolean(o.signal?.aborted) };
  } finally {
    db.close();
  }
}

const USAGE = 'usage: npm run backfill -- --since <YYYY-MM-DD> [--fhir <FHIR base URL>] [--dicomweb <DICOMweb root>] [--concurrency <n>] [--run <name>] [--no-triage] [--limit <n>] [--db <SQLite file>]\n';

/** `--help`: the usage line plus what each option does (printed on stdout, exit 0, as CLI conventions expect). */
export const HELP = `${USAGE}
Assesses every ImagingStudy started on or after --since and writes one RiskAssessment (+ Provenance) per study,
then asks the FLS triage for a Task. Resumable: run the same command again after an interruption.

options:
  --since <YYYY-MM-DD>   first study date to assess (required)
  --fhir <url>           FHIR base URL (default FHIR_BASE_URL; neither: the embedded demo sandboxes)
  --dicomweb <url>       DICOMweb root (default DICOMWEB_BASE_URL)
  --concurrency <n>      studies assessed at once, 1-64 (default 4)
  --run <name>           checkpoint name to resume under (default: FHIR base + since)
  --no-triage            do not create FLS triage Tasks
  --limit <n>            assess at most n studies
  --db <file>            checkpoint SQLite file (default JOBS_DB_PATH)
  -h, --help             print this help and exit

exit codes: 0 done, 1 some studies failed, 2 bad arguments or configuration, 130 interrupted
`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        since: { type: 'string' }, fhir: { type: 'string' }, dicomweb: { type: 'string' }, concurrency: { type: 'string' },
        run: { type: 'string' }, 'no-triage': { type: 'boolean' }, limit: { type: 'string' }, db: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!args.since || !/^\d{4}-\d{2}-\d{2}$/.test(args.since) || Number.isNaN(Date.parse(args.since))) {
    process.stderr.write(USAGE);
    return 2;
  }
  const concurrency = Number(args.concurrency ?? 4);
  const limit = args.limit === undefined ? undefined : Number(args.limit);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64 || (limit !== undefined && !(Number.isInteger(limit) && limit > 0))) {
    process.stderr.write(USAGE);
    return 2;
  }
  const env: NodeJS.ProcessEnv = { ...process.env, ...(args.fhir ? { FHIR_BASE_URL: args.fhir } : {}), ...(args.dicomweb ? { DICOMWEB_BASE_URL: args.dicomweb } : {}) };
  const configured = loadConfigForCli(env);
  if (!configured) return 2;
  let config = configured;
  const logger = createLogger({ level: process.env['LOG_LEVEL'] ? config.log.level : 'warn', destination: process.stderr });
  let sandboxes: EmbeddedSandboxes | undefined;
  if (config.fhir.sandbox) {
    // No FHIR server given: the embedded demo sandboxes, called over loopback like external servers.
    sandboxes = await startEmbeddedSandboxes(config, logger);
    config = loadConfig({ ...env, FHIR_BASE_URL: sandboxes.fhirBaseUrl, DICOMWEB_BASE_URL: sandboxes.dicomWebBaseUrl, FHIR_AUTH: 'none' });
    process.stderr.write(`backfill: no FHIR server configured — using the embedded demo sandboxes (${sandboxes.fhirBaseUrl})\n`);
  }
  const { risk, registry, bulkFhir } = await createStandaloneRisk(config, logger);
  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nbackfill: interrupted — finishing the studies in progress; run the same command again to resume\n');
    controller.abort();
  });
  try {
    const summary = await runBackfill({
      fhir: bulkFhir,
      risk,
      triage: args['no-triage'] ? null : await configuredTriage(config, logger),
      dbPath: args.db ? resolve(args.db) : config.jobs.dbPath,
      // The embedded sandbox listens on a random port: name its runs by what they are, so a resume finds them.
      runId: args.run ?? `${sandboxes ? 'embedded-demo' : config.fhir.baseUrl}|since=${args.since}`,
      since: args.since,
      concurrency,
      ...(limit !== undefined ? { limit } : {}),
      progress: new Progress(),
      signal: controller.signal,
      logger,
    });
    process.stdout.write(
      `backfill ${summary.interrupted ? 'interrupted' : 'done'}: ${summary.total} studies since ${args.since}; ${summary.computed} assessed now, ${summary.reused} reused a cached assessment, ${summary.resumed} already done in an earlier run, ${summary.failed.length} failed; ${summary.triageTasks} FLS triage Tasks created\n` +
        `throughput: ${summary.studiesPerHour.toFixed(0)} studies/hour (${summary.computed} computed in ${summary.seconds.toFixed(1)} s; cached and resumed studies not counted)\n`,
    );
    for (const f of summary.failed.slice(0, 20)) process.stdout.write(`  failed ImagingStudy/${f.studyId}: ${f.reason}\n`);
    return summary.interrupted ? 130 : summary.failed.length ? 1 : 0;
  } finally {
    await registry.close();
    await sandboxes?.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`backfill failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
