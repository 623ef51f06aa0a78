/**
 * The site-check report (JSON + markdown) and the local recalibration file (contract amendment 1) from a run.
 * Aggregates only: no patient ids, dates of single patients or other PHI, so the report can be shared with the
 * model's developers.
 */
import { agreement, type Agreement, type AgreementPair } from '../monitoring/agreement.ts';
import { RECALIBRATION_KIND, type AgreementSummary, type RecalibrationFile } from '../inference/calibration.ts';
import { siteCheckSvg } from './plot.ts';
import { estimateOf, recalibrate, RecalibrationError, type CalibrationParams, type RecalibrationResult } from './recalibrate.ts';
import type { SiteCheckRun } from './site-check.ts';

export interface ReportOptions {
  readonly site: string;
  readonly folds: number;
  readonly seed: number;
  /** Fewest in-distribution pairs for which a recalibration is fitted and written. */
  readonly minPairs: number;
  readonly now: Date;
}

export const METHOD = 'intercept and slope: least squares of measured DXA femoral-neck T-score on the member-average RAW head mean; sd_scale: maximum likelihood of the measured values under the equal-weight member mixture with that intercept and slope. "after": K-fold cross-validation (each pair predicted by parameters fitted without its fold); the parameters written are fitted on all in-distribution pairs.';

export interface SiteCheckReport {
  readonly kind: 'frcds-site-check';
  readonly site: string;
  readonly created: string;
  readonly model: SiteCheckRun['model'];
  readonly counts: {
    readonly dxaPatients: number;
    readonly searched: number;
    readonly withoutImage: number;
    readonly pairs: number;
    readonly processed: number;
    readonly failed: number;
    readonly failures: Record<string, number>;
    readonly ood: number;
    readonly inDistribution: number;
    readonly qualityFlagged: number;
    readonly qualityFlags: Record<string, number>;
  };
  readonly oodRate: number | null;
  readonly qualityFlagRate: number | null;
  readonly windowDays: number;
  /** Median |radiograph − DXA| in days over processed pairs. */
  readonly medianDaysApart: number | null;
  readonly dxaSpan: { from: string; to: string } | null;
  /** The calibration in force, on in-distribution pairs (what the service would show). */
  readonly before: Agreement;
  /** The same on every processed pair, OOD ones included (for information: the service withholds those). */
  readonly beforeAllImages: Agreement;
  /** Also excluding images with a failed quality check. */
  readonly beforeQualityPassed: Agreement;
  readonly recalibration:
    | { readonly status: 'fitted'; readonly params: CalibrationParams; readonly after: Agreement; readonly afterInSample: Agreement; readonly folds: number; readonly seed: number; readonly foldParams: CalibrationParams[]; readonly method: string; readonly file: RecalibrationFile }
    | { readonly status: 'not-fitted'; readonly reason: string };
  readonly seconds: number;
  readonly interrupted: boolean;
}

const round = (x: number | null, d = 4): number | null => (x === null ? null : Number(x.toFixed(d)));
const summary = (a: Agreement): AgreementSummary => ({ n: a.n, r: round(a.r), bias: round(a.bias), coverage: round(a.coverage) });
const count = (xs: readonly string[]): Record<string, number> => Object.fromEntries([...new Set(xs)].sort().map((x) => [x, xs.filter((y) => y === x).length]));

/** `<site>-<yyyymmdd>-<n>`: `n` is one more than the highest already used for this site and day. */
export function recalibrationVersion(site: string, now: Date, existing: readonly string[]): string {
  const day = now.toISOString().slice(0, 10).replace(/-/g, '');
  const prefix = `${site}-${day}-`;
  const used = existing.filter((v) => v.startsWith(prefix)).map((v) => Number(v.slice(prefix.length))).filter(Number.isInteger);
  return `${prefix}${Math.max(0, ...used) + 1}`;
}

export function buildReport(run: SiteCheckRun, o: ReportOptions, existingVersions: readonly string[] = []): SiteCheckReport {
  const ok = run.pairs.filter((p): p is Extract<typeof p, { status: 'ok' }> => p.status === 'ok');
  const failed = run.pairs.filter((p): p is Extract<typeof p, { status: 'failed' }> => p.status === 'failed');
  const inDist = ok.filter((p) => !p.ood);
  const cal: CalibrationParams = { intercept: run.model.calibration.intercept, slope: run.model.calibration.slope, sdScale: run.model.calibration.sdScale };
  const pairOf = (p: (typeof ok)[number]): AgreementPair => ({ ...estimateOf(p.raw, cal), measured: p.measured });
  const days = ok.map((p) => Math.abs(p.daysApart)).sort((a, b) => a - b);
  let recal: SiteCheckReport['recalibration'];
  if (inDist.length < o.minPairs) {
    recal = { status: 'not-fitted', reason: `${inDist.length} in-distribution pairs, fewer than the ${o.minPairs} needed (--min-pairs)` };
  } else {
    try {
      const r: RecalibrationResult = recalibrate(inDist.map((p) => ({ raw: p.raw, measured: p.measured })), cal, { folds: o.folds, seed: o.seed });
      const version = recalibrationVersion(o.site, o.now, existingVersions);
      const dates = inDist.map((p) => p.dxaDate.slice(0, 10)).sort();
      const file: RecalibrationFile = {
        kind: RECALIBRATION_KIND,
        model: run.model.id,
        modelVersion: run.model.version,
        version,
        created: o.now.toISOString(),
        site: o.site,
        intercept: Number(r.params.intercept.toFixed(6)),
        slope: Number(r.params.slope.toFixed(6)),
        sd_scale: Number(r.params.sdScale.toFixed(6)),
        basis: { pairs: inDist.length, from: dates[0]!, to: dates[dates.length - 1]! },
        before: summary(r.before),
        after: summary(r.after),
        method: METHOD,
      };
      recal = { status: 'fitted', params: r.params, after: r.after, afterInSample: r.afterInSample, folds: r.folds, seed: o.seed, foldParams: r.foldParams, method: METHOD, file };
    } catch (err) {
      if (!(err instanceof RecalibrationError)) throw err;
      recal = { status: 'not-fitted', reason: err.message };
    }
  }
  const qualityFlagged = ok.filter((p) => p.qualityFlags.length > 0);
  return {
    kind: 'frcds-site-check',
    site: o.site,
    created: o.now.toISOString(),
    model: run.model,
    counts: {
      dxaPatients: run.dxaPatients,
      searched: run.searched,
      withoutImage: run.withoutImage,
      pairs: run.pairs.length,
      processed: ok.length,
      failed: failed.length,
      failures: count(failed.map((f) => f.code)),
      ood: ok.length - inDist.length,
      inDistribution: inDist.length,
      qualityFlagged: qualityFlagged.length,
      qualityFlags: count(ok.flatMap((p) => p.qualityFlags)),
    },
    oodRate: ok.length ? (ok.length - inDist.length) / ok.length : null,
    qualityFlagRate: ok.length ? qualityFlagged.length / ok.length : null,
    windowDays: run.windowDays,
    medianDaysApart: days.length ? days[Math.floor((days.length - 1) / 2)]! : null,
    dxaSpan: run.span,
    before: agreement(inDist.map(pairOf)),
    beforeAllImages: agreement(ok.map(pairOf)),
    beforeQualityPassed: agreement(inDist.filter((p) => p.qualityFlags.length === 0).map(pairOf)),
    recalibration: recal,
    seconds: run.seconds,
    interrupted: run.interrupted,
  };
}

/**
 * The report's figure (plot.ts): estimate vs DXA and Bland–Altman, before and (when the report fitted one) after the
 * local recalibration, held out — recomputed from the run with the report's own fold seed, so it shows the same pairs.
 */
export function reportSvg(run: SiteCheckRun, report: SiteCheckReport): string {
  const cal = run.model.calibration;
  const current: CalibrationParams = { intercept: cal.intercept, slope: cal.slope, sdScale: cal.sdScale };
  const inDist = run.pairs.filter((p): p is Extract<typeof p, { status: 'ok' }> => p.status === 'ok' && !p.ood);
  const before = inDist.map((p) => ({ ...estimateOf(p.raw, current), measured: p.measured }));
  const series: Parameters<typeof siteCheckSvg>[0][number][] = [{ name: 'before', pairs: before, agreement: report.before }];
  if (report.recalibration.status === 'fitted') {
    const r = recalibrate(inDist.map((p) => ({ raw: p.raw, measured: p.measured })), current, { folds: report.recalibration.folds, seed: report.recalibration.seed });
    series.push({ name: 'after', pairs: r.pairs.after, agreement: r.after });
  }
  return siteCheckSvg(series, `Site check of ${run.model.id} ${run.model.version} at ${report.site}: T-score estimate against measured DXA`);
}

const f = (x: number | null | undefined, d = 2): string => (x === null || x === undefined ? '–' : x.toFixed(d));
const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)} %`);
const row = (label: string, a: Agreement): string =>
  `| ${label} | ${a.n} | ${f(a.r)} | ${f(a.bias)} | ${pct(a.coverage)} | ${a.limits ? `${f(a.limits.lower)} to ${f(a.limits.upper)}` : '–'} | ${f(a.mae)} |`;

/** The report as markdown (for the site's clinical lead and the model's developers). */
export function reportMarkdown(r: SiteCheckReport): string {
  const c = r.counts;
  const cal = r.model.calibration;
  const lines = [
    `# Site check: ${r.model.id} ${r.model.version} at ${r.site}`,
    '',
    `Created ${r.created}${r.interrupted ? ' — INTERRUPTED: figures cover the pairs done before the interruption' : ''}. Radiograph–DXA pairs: each patient's eligible hip radiograph closest to a measured femoral-neck T-score, at most ${r.windowDays} days apart (median ${r.medianDaysApart ?? '–'} days)${r.dxaSpan ? `; DXA dates ${r.dxaSpan.from} to ${r.dxaSpan.to}` : ''}.`,
    '',
    '## Images',
    '',
    `| | n |`,
    `|---|---|`,
    `| patients with a measured femoral-neck T-score | ${c.dxaPatients} |`,
    `| searched for a radiograph | ${c.searched} |`,
    `| no eligible radiograph within ${r.windowDays} days | ${c.withoutImage} |`,
    `| pairs | ${c.pairs} |`,
    `| failed (not read) | ${c.failed}${c.failed ? ` (${Object.entries(c.failures).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''} |`,
    `| read by the model | ${c.processed} |`,
    `| outside the training distribution (OOD; estimate withheld) | ${c.ood} (${pct(r.oodRate)}) |`,
    `| with a failed image-quality check (warning) | ${c.qualityFlagged} (${pct(r.qualityFlagRate)})${c.qualityFlagged ? `: ${Object.entries(c.qualityFlags).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''} |`,
    '',
    '## T-score agreement with measured DXA',
    '',
    '![Estimate against DXA and Bland–Altman plot, before and after](site-check.svg)',
    '',
    `Calibration in force ("before"): ${cal.source === 'local' ? 'local file' : 'manifest'} version ${cal.version} (intercept ${f(cal.intercept, 3)}, slope ${f(cal.slope, 3)}, sd scale ${f(cal.sdScale, 3)}). Estimate = mixture mean over ensemble members; interval = the mixture's 95 % predictive interval; bias = estimate − DXA; limits = Bland–Altman 95 % limits of agreement.`,
    '',
    '| | n | r | bias | 95 % interval coverage | limits of agreement | mean abs. difference |',
    '|---|---|---|---|---|---|---|',
    row('before, in-distribution images (as served)', r.before),
    row('before, in-distribution and quality checks passed', r.beforeQualityPassed),
    row('before, all images read (OOD included)', r.beforeAllImages),
  ];
  if (r.recalibration.status === 'fitted') {
    const rc = r.recalibration;
    const fp = rc.foldParams;
    const range = (k: keyof CalibrationParams): string => `${f(Math.min(...fp.map((p) => p[k])), 3)}–${f(Math.max(...fp.map((p) => p[k])), 3)}`;
    lines.push(
      row(`after local recalibration, held out (${rc.folds}-fold cross-validation)`, rc.after),
      row('after, in-sample (optimistic; for comparison)', rc.afterInSample),
      '',
      '## Local recalibration',
      '',
      `Version **${rc.file.version}**: intercept ${f(rc.params.intercept, 3)}, slope ${f(rc.params.slope, 3)}, sd scale ${f(rc.params.sdScale, 3)}, fitted on ${rc.file.basis.pairs} in-distribution pairs (range over the ${rc.folds} folds: intercept ${range('intercept')}, slope ${range('slope')}, sd scale ${range('sdScale')}; fold seed ${rc.seed}).`,
      '',
      `Method: ${rc.method}`,
      '',
      `To use it, set \`MODEL_TSCORE_CALIBRATION\` to the recalibration file written beside this report; the service refuses it for any other model or version and records the version with every estimate. Production monitoring (the "Model monitoring" view) then follows agreement on new DXA results.`,
    );
  } else {
    lines.push('', '## Local recalibration', '', `Not fitted: ${r.recalibration.reason}.`);
  }
  lines.push('', `Run time ${r.seconds.toFixed(1)} s.`, '');
  return lines.join('\n');
}
