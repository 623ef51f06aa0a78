/**
 * CT spine accuracy against the Python phantom's truth on an unseen seed (the issue's "Must show"): L1 HU mean
 * absolute error (clean = non-contrast; noise/contrast = all, portal-venous adjusted by `--offset`), level labels
 * right, per-vertebra grade ≥ 2 sensitivity and specificity, Genant weighted kappa, refusals by code, and the
 * measurement speed. The comparison rules are in `server/pathways/ct-spine/accuracy.ts`.
 *
 *   node --import tsx bench/ct-accuracy.ts --patients 120 --seed 7700 [--work <folder>] [--keep] [--offset 10] [--json <file>]
 *   node --import tsx bench/ct-accuracy.ts --dir <folder written by frcds.ct.cli>
 *
 * Without `--dir` it first writes the studies with `sh models/training/run -m frcds.ct.cli --out <work> --patients
 * N --seed S` (full size: 512² matrices, 0.625–5 mm slices, both phases and vendors, chest and abdomen fields;
 * about 80 MB and 5–15 s per study on 2 cores) into `--work` (a temporary folder, removed afterwards unless
 * `--keep`). The seed must not be one the CT model was trained or tuned on.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compareStudy, parseTruth, summarise, type StudyComparison } from '../server/pathways/ct-spine/accuracy.ts';
import { measureStudy, studyFolders } from '../server/pathways/ct-spine/measure-cli.ts';
import { writeFileSync } from 'node:fs';

const { values: a } = parseArgs({
  options: {
    dir: { type: 'string' },
    patients: { type: 'string', default: '100' },
    seed: { type: 'string', default: '7700' },
    work: { type: 'string' },
    keep: { type: 'boolean', default: false },
    offset: { type: 'string', default: '10' },
    json: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});

const offset = Number(a.offset);
let dir = a.dir;
let generatedSeconds: number | null = null;
let cleanup = false;
if (!dir) {
  dir = a.work ?? mkdtempSync(join(tmpdir(), 'ct-accuracy-'));
  cleanup = !a.keep;
  const t0 = performance.now();
  execFileSync('sh', ['models/training/run', '-m', 'frcds.ct.cli', '--out', dir, '--patients', String(Number(a.patients)), '--seed', String(Number(a.seed))], { stdio: ['ignore', 'ignore', 'inherit'] });
  generatedSeconds = (performance.now() - t0) / 1000;
}

const rows: StudyComparison[] = [];
let measureSeconds = 0;
const perStudy: number[] = [];
try {
  for (const name of studyFolders(dir)) {
    const { volume: _v, ...m } = await measureStudy(join(dir, name), name);
    measureSeconds += m.seconds;
    perStudy.push(m.seconds);
    const truth = parseTruth(JSON.parse(readFileSync(join(dir, name, 'truth.json'), 'utf8')));
    const row = compareStudy(m, truth, offset);
    rows.push(row);
    if (a.verbose) process.stderr.write(`${JSON.stringify({ ...row, protocol: truth.protocol, thicknessMm: truth.thicknessMm, scoliosisMm: truth.scoliosisMm, hardware: truth.hardwareLevel })}\n`);
  }
} finally {
  if (cleanup) rmSync(dir, { recursive: true, force: true });
}

const s = summarise(rows);
const sorted = [...perStudy].sort((x, y) => x - y);
const report = {
  seed: a.dir ? null : Number(a.seed),
  offsetHu: offset,
  generatedSeconds: generatedSeconds === null ? null : Math.round(generatedSeconds),
  measure: { seconds: Math.round(measureSeconds * 10) / 10, studiesPerSecond: Math.round((rows.length / measureSeconds) * 100) / 100, medianSeconds: sorted[sorted.length >> 1] ?? null },
  ...s,
};
if (a.json) writeFileSync(a.json, `${JSON.stringify(report, null, 1)}\n`);
const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const ci = (c: [number, number]): string => `${f(c[0], 2)}–${f(c[1], 2)}`;
process.stdout.write(
  [
    `studies ${s.studies}; refusals ${JSON.stringify(s.refusals)} (not justified by the truth: ${s.wrongRefusals}; accepted although L1 and L2 incomplete: ${s.wrongAcceptances})`,
    `L1 HU MAE clean (non-contrast) ${f(s.hu.clean.mae)} HU (bias ${f(s.hu.clean.bias)}, n ${s.hu.clean.n}) [target ≤ 5]`,
    `L1 HU MAE noise/contrast (all; portal-venous − ${offset} HU) ${f(s.hu.noiseContrast.mae)} HU (bias ${f(s.hu.noiseContrast.bias)}, n ${s.hu.noiseContrast.n}) [target ≤ 10]`,
    `portal-venous unadjusted MAE ${f(s.hu.contrastUnadjusted.mae)} HU; observed offset ${f(s.hu.observedPortalVenousOffset.mean)} ± ${f(s.hu.observedPortalVenousOffset.sd)} HU (n ${s.hu.observedPortalVenousOffset.n})`,
    `labels right ${s.labels.right}/${s.labels.total} = ${f(100 * s.labels.fraction)} % [target ≥ 98 %]`,
    `grade ≥ 2: sensitivity ${f(s.grades.sensitivity, 2)} (${ci(s.grades.sensitivityCi)}, ${s.grades.positives} positive levels), specificity ${f(s.grades.specificity, 3)} (${ci(s.grades.specificityCi)}, ${s.grades.levels - s.grades.positives} levels) [targets ≥ 0.90 at ≥ 0.95]`,
    `Genant weighted kappa: linear ${f(s.grades.kappaLinear, 3)}, quadratic ${f(s.grades.kappaQuadratic, 3)} [target ≥ 0.8]; confusion (rows truth 0–3, columns measured) ${JSON.stringify(s.grades.confusion)}`,
    `heights measured − true (anterior, middle, posterior): bias ${s.heights.bias.map((x) => f(x, 2)).join(', ')} mm; MAE ${s.heights.mae.map((x) => f(x, 2)).join(', ')} mm`,
    `measurement ${report.measure.seconds} s, ${report.measure.studiesPerSecond} studies/s (median ${report.measure.medianSeconds} s/study)${generatedSeconds === null ? '' : `; generation ${report.generatedSeconds} s`}`,
  ].join('\n') + '\n',
);
