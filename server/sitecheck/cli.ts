/**
 * `npm run site-check -- [--fhir <FHIR base URL> --dicomweb <DICOMweb root> | --sandbox <cohort folder>]
 *   [--model <id>] [--site <name>] [--out <folder>] [--max <n>] [--window-days <n>] [--concurrency <n>]
 *   [--timeout-ms <n>] [--folds <k>] [--seed <n>] [--min-pairs <n>]` (`--help`: usage, exit 0)
 *
 * Checks a T-score-mediated model (hip-xray-v2) on a hospital's own radiographs and DXA results before use
 * (site-check.ts: pairs, model runs; report.ts: figures, recalibration) and writes into `--out`:
 * `site-check.json`, `site-check.md`, `site-check.svg` (estimate vs DXA and Bland–Altman, before and after) and,
 * when enough pairs are in distribution, the local recalibration `tscore-recalibration-<version>.json` (for
 * `MODEL_TSCORE_CALIBRATION`). Nothing is written to the FHIR server.
 * Without `--fhir` (and `FHIR_BASE_URL`) the embedded sandboxes serve `--sandbox <folder>` (a cohort folder with
 * `fhir/` and `dicom/`, e.g. from bench/vendor-c-site.py; default `SANDBOX_DATA_DIR`) over loopback HTTP.
 * Credentials, time-outs and the models folder come from the service's settings (`FHIR_AUTH`, `DICOMWEB_AUTH`,
 * `MODELS_DIR`, `MODEL_TSCORE_CALIBRATION` …). Exit codes: 0 report written, 2 bad arguments or configuration,
 * 3 no radiograph–DXA pair found, 130 interrupted (a partial report is written).
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig, loadConfigForCli } from '../config.ts';
import { ModelRegistry } from '../inference/registry.ts';
import { createLogger } from '../logging.ts';
import { startEmbeddedSandboxes, type EmbeddedSandboxes } from '../risk/embedded.ts';
import { configuredDicomWebClient, configuredFhirClient } from '../risk/wiring.ts';
import { buildReport, reportMarkdown, reportSvg, type SiteCheckReport } from './report.ts';
import { runSiteCheck, SiteCheckError } from './site-check.ts';

const USAGE = 'usage: npm run site-check -- [--fhir <url> --dicomweb <url> | --sandbox <folder>] [--model <id>] [--site <name>] [--out <folder>] [--max <n>] [--window-days <n>] [--concurrency <n>] [--timeout-ms <n>] [--folds <k>] [--seed <n>] [--min-pairs <n>]\n';

export const HELP = `${USAGE}
Runs a T-score-mediated model on this site's hip radiographs of patients with a measured DXA femoral-neck T-score,
reports OOD share, image-quality flags and agreement with DXA (r, bias, 95 % interval coverage, Bland-Altman), and
fits a local recalibration of the T-score head, measured by cross-validation. Writes site-check.json, site-check.md
and tscore-recalibration-<version>.json (use it with MODEL_TSCORE_CALIBRATION) into --out.

options:
  --fhir <url>           FHIR base URL (default FHIR_BASE_URL; neither: the embedded sandboxes)
  --dicomweb <url>       DICOMweb root (default DICOMWEB_BASE_URL)
  --sandbox <folder>     cohort folder the embedded sandboxes serve (fhir/, dicom/) when no FHIR server is given
  --model <id>           model to check (default hip-xray-v2)
  --site <name>          site name in the report and the recalibration version (letters, digits, . _ -; default site)
  --out <folder>         output folder (default site-check-<site>)
  --max <n>              at most n radiograph-DXA pairs
  --window-days <n>      largest gap between radiograph and DXA scan, either side (default 730)
  --concurrency <n>      pairs processed at once, 1-32 (default 4)
  --timeout-ms <n>       time limit of one pair (chart, PACS, model), ms (default 120000)
  --folds <k>            cross-validation folds for the held-out "after" figures, 2-20 (default 5)
  --seed <n>             seed of the fold assignment (default 1)
  --min-pairs <n>        fewest in-distribution pairs to fit a recalibration (default 30)
  -h, --help             print this help and exit

exit codes: 0 report written, 2 bad arguments or configuration, 3 no pair found, 130 interrupted
`;

/** Parses a whole number option within [min, max]; undefined when absent; NaN when invalid. */
function int(v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= min && n <= max ? n : NaN;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        fhir: { type: 'string' }, dicomweb: { type: 'string' }, sandbox: { type: 'string' }, model: { type: 'string' }, site: { type: 'string' }, out: { type: 'string' },
        max: { type: 'string' }, 'window-days': { type: 'string' }, concurrency: { type: 'string' }, 'timeout-ms': { type: 'string' }, folds: { type: 'string' },
        seed: { type: 'string' }, 'min-pairs': { type: 'string' }, help: { type: 'boolean', short: 'h' },
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
  const nums = {
    max: int(args.max, 1, 1_000_000),
    windowDays: int(args['window-days'], 1, 3650) ?? 730,
    concurrency: int(args.concurrency, 1, 32) ?? 4,
    timeoutMs: int(args['timeout-ms'], 1000, 3_600_000) ?? 120_000,
    folds: int(args.folds, 2, 20) ?? 5,
    seed: int(args.seed, 0, 2 ** 31) ?? 1,
    minPairs: int(args['min-pairs'], 3, 1_000_000) ?? 30,
  };
  const bad = Object.entries(nums).filter(([, v]) => Number.isNaN(v)).map(([k]) => k);
  const site = args.site ?? 'site';
  if (bad.length > 0 || !/^[A-Za-z0-9._-]{1,60}$/.test(site) || (args.fhir && args.sandbox)) {
    process.stderr.write(`${bad.length ? `bad value of ${bad.join(', ')}\n` : ''}${!/^[A-Za-z0-9._-]{1,60}$/.test(site) ? '--site: letters, digits, . _ - only\n' : ''}${args.fhir && args.sandbox ? '--sandbox serves a folder when no FHIR server is given; not both\n' : ''}${USAGE}`);
    return 2;
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...(args.fhir ? { FHIR_BASE_URL: args.fhir } : {}),
    ...(args.dicomweb ? { DICOMWEB_BASE_URL: args.dicomweb } : {}),
    ...(args.sandbox ? { SANDBOX_DATA_DIR: resolve(args.sandbox) } : {}),
  };
  const configured = loadConfigForCli(env);
  if (!configured) return 2;
  let config = configured;
  const logger = createLogger({ level: process.env['LOG_LEVEL'] ? config.log.level : 'warn', destination: process.stderr });
  let sandboxes: EmbeddedSandboxes | undefined;
  if (config.fhir.sandbox) {
    sandboxes = await startEmbeddedSandboxes(config, logger);
    config = loadConfig({ ...env, FHIR_BASE_URL: sandboxes.fhirBaseUrl, DICOMWEB_BASE_URL: sandboxes.dicomWebBaseUrl, FHIR_AUTH: 'none' });
    process.stderr.write(`site-check: no FHIR server configured — serving ${config.sandboxDataDir} through the embedded sandboxes\n`);
  }
  const registry = await ModelRegistry.load(config.inference, logger.child({ component: 'inference' }));
  const controller = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\nsite-check: interrupted — finishing the pairs in progress and writing a partial report\n');
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  try {
    const modelId = args.model ?? 'hip-xray-v2';
    let model;
    try {
      model = registry.get(modelId);
    } catch (err) {
      process.stderr.write(`site-check: ${(err as Error).message}; ${registry.status().detail}\n`);
      return 2;
    }
    let last = 0;
    let run;
    try {
      run = await runSiteCheck({
        fhir: configuredFhirClient(config, { timeoutMs: Math.max(config.fhir.timeoutMs, 60_000), maxResources: 10_000_000 }),
        dicomweb: configuredDicomWebClient(config),
        model,
        imagePatientIdSystems: config.risk.imagePatientIdSystems,
        windowDays: nums.windowDays,
        ...(nums.max !== undefined ? { max: nums.max } : {}),
        concurrency: nums.concurrency,
        timeoutMs: nums.timeoutMs,
        signal: controller.signal,
        logger,
        onPair: (done, total) => {
          if (done === total || performance.now() - last > 10_000) {
            last = performance.now();
            process.stderr.write(`site-check: ${done}/${total} pairs\n`);
          }
        },
      });
    } catch (err) {
      // A model without a T-score head: the operator's mistake, said plainly.
      if (!(err instanceof SiteCheckError)) throw err;
      process.stderr.write(`site-check: ${err.message}\n`);
      return 2;
    }
    if (run.pairs.length === 0 && !run.interrupted) {
      process.stderr.write(`site-check: no radiograph–DXA pair: ${run.dxaPatients} patients with a measured femoral-neck T-score, none with an eligible radiograph within ${nums.windowDays} days\n`);
      return 3;
    }
    const out = resolve(args.out ?? `site-check-${site}`);
    mkdirSync(out, { recursive: true });
    const existing = readdirSync(out).map((n) => /^tscore-recalibration-(.+)\.json$/.exec(n)?.[1]).filter((v): v is string => !!v);
    const report: SiteCheckReport = buildReport(run, { site, folds: nums.folds, seed: nums.seed, minPairs: nums.minPairs, now: new Date() }, existing);
    writeFileSync(join(out, 'site-check.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(out, 'site-check.md'), reportMarkdown(report));
    writeFileSync(join(out, 'site-check.svg'), reportSvg(run, report));
    const files = ['site-check.json', 'site-check.md', 'site-check.svg'];
    // An interrupted run's recalibration rests on a part of the pairs: it is reported, not written for use.
    if (report.recalibration.status === 'fitted' && !run.interrupted) {
      const name = `tscore-recalibration-${report.recalibration.file.version}.json`;
      writeFileSync(join(out, name), `${JSON.stringify(report.recalibration.file, null, 2)}\n`);
      files.push(name);
    }
    const b = report.before;
    const a = report.recalibration.status === 'fitted' ? report.recalibration.after : null;
    process.stdout.write(
      `site-check ${run.interrupted ? 'interrupted' : 'done'}: ${report.counts.processed} images read (${report.counts.failed} failed), OOD ${report.counts.ood} (${((report.oodRate ?? 0) * 100).toFixed(1)} %), quality flags ${report.counts.qualityFlagged}\n` +
        `before: n ${b.n}, r ${b.r?.toFixed(2) ?? '–'}, bias ${b.bias?.toFixed(2) ?? '–'}, coverage ${b.coverage === null ? '–' : (100 * b.coverage).toFixed(1) + ' %'}\n` +
        (a ? `after (held out): n ${a.n}, r ${a.r?.toFixed(2) ?? '–'}, bias ${a.bias?.toFixed(2) ?? '–'}, coverage ${a.coverage === null ? '–' : (100 * a.coverage).toFixed(1) + ' %'}\n` : `recalibration not fitted: ${report.recalibration.status === 'not-fitted' ? report.recalibration.reason : ''}\n`) +
        `wrote ${files.map((n) => join(out, n)).join(', ')}\n`,
    );
    return run.interrupted ? 130 : 0;
  } finally {
    process.off('SIGINT', onSigint);
    await registry.close();
    await sandboxes?.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`site-check failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
