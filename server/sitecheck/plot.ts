/**
 * The site check's figure (`site-check.svg`): left, the T-score estimate against measured DXA (line of identity);
 * right, the Bland–Altman plot (difference against mean, bias and 95 % limits of agreement) — each with the
 * calibration in force ("before") and the local recalibration held out by cross-validation ("after"). Plain SVG
 * text, no dependency; points are numbers only (no ids).
 */
import type { Agreement, AgreementPair } from '../monitoring/agreement.ts';

const W = 360;
const H = 300;
const M = { l: 46, r: 12, t: 28, b: 40 };
const COLOURS = { before: '#b34a2a', after: '#1f5f9e' } as const;

interface Series {
  readonly name: 'before' | 'after';
  readonly pairs: readonly AgreementPair[];
  readonly agreement: Agreement;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const f = (x: number): string => x.toFixed(1);

/** Rounded-out axis range covering `values` (at least 1 unit wide). */
function range(values: number[]): [number, number] {
  const lo = Math.floor(Math.min(...values) * 2) / 2;
  const hi = Math.ceil(Math.max(...values) * 2) / 2;
  return hi - lo < 1 ? [lo - 0.5, hi + 0.5] : [lo, hi];
}

function panel(x0: number, title: string, xr: [number, number], yr: [number, number], xLabel: string, yLabel: string, body: (sx: (v: number) => number, sy: (v: number) => number) => string): string {
  const sx = (v: number): number => x0 + M.l + ((v - xr[0]) / (xr[1] - xr[0])) * (W - M.l - M.r);
  const sy = (v: number): number => M.t + (1 - (v - yr[0]) / (yr[1] - yr[0])) * (H - M.t - M.b);
  const ticks = (r: [number, number]): number[] => {
    const step = r[1] - r[0] > 6 ? 2 : r[1] - r[0] > 3 ? 1 : 0.5;
    const out: number[] = [];
    for (let v = Math.ceil(r[0] / step) * step; v <= r[1] + 1e-9; v += step) out.push(Number(v.toFixed(2)));
    return out;
  };
  const axes = [
    `<rect x="${x0 + M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#999"/>`,
    ...ticks(xr).map((v) => `<text x="${f(sx(v))}" y="${H - M.b + 14}" text-anchor="middle">${v}</text>`),
    ...ticks(yr).map((v) => `<text x="${x0 + M.l - 4}" y="${f(sy(v) + 4)}" text-anchor="end">${v}</text>`),
    `<text x="${x0 + M.l + (W - M.l - M.r) / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(${x0 + 12} ${M.t + (H - M.t - M.b) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    `<text x="${x0 + M.l}" y="${M.t - 10}" font-weight="bold">${esc(title)}</text>`,
  ];
  return `<g>${axes.join('')}${body(sx, sy)}</g>`;
}

/** The two-panel SVG for the series given (before, and after when fitted). */
export function siteCheckSvg(series: readonly Series[], caption: string): string {
  const all = series.flatMap((s) => s.pairs);
  if (all.length === 0) return '';
  const tr = range(all.flatMap((p) => [p.mean, p.measured]));
  const scatter = panel(0, 'Estimate vs measured DXA', tr, tr, 'Measured DXA T-score', 'Radiograph estimate', (sx, sy) =>
    [`<line x1="${f(sx(tr[0]))}" y1="${f(sy(tr[0]))}" x2="${f(sx(tr[1]))}" y2="${f(sy(tr[1]))}" stroke="#666" stroke-dasharray="4 3"/>`,
      ...series.flatMap((s) => s.pairs.map((p) => `<circle cx="${f(sx(p.measured))}" cy="${f(sy(p.mean))}" r="2.5" fill="${COLOURS[s.name]}" fill-opacity="0.6"/>`))].join(''));
  const means = all.map((p) => (p.mean + p.measured) / 2);
  const diffs = all.map((p) => p.mean - p.measured);
  const limits = series.flatMap((s) => (s.agreement.limits ? [s.agreement.limits.lower, s.agreement.limits.upper] : []));
  const mr = range(means);
  const dr = range([...diffs, ...limits]);
  const ba = panel(W, 'Bland–Altman', mr, dr, 'Mean of estimate and DXA', 'Estimate − DXA', (sx, sy) =>
    [`<line x1="${f(sx(mr[0]))}" y1="${f(sy(0))}" x2="${f(sx(mr[1]))}" y2="${f(sy(0))}" stroke="#666"/>`,
      ...series.flatMap((s) => [
        ...s.pairs.map((p) => `<circle cx="${f(sx((p.mean + p.measured) / 2))}" cy="${f(sy(p.mean - p.measured))}" r="2.5" fill="${COLOURS[s.name]}" fill-opacity="0.6"/>`),
        ...(s.agreement.bias === null ? [] : [s.agreement.bias, ...(s.agreement.limits ? [s.agreement.limits.lower, s.agreement.limits.upper] : [])].map((y, i) =>
          `<line x1="${f(sx(mr[0]))}" y1="${f(sy(y))}" x2="${f(sx(mr[1]))}" y2="${f(sy(y))}" stroke="${COLOURS[s.name]}"${i === 0 ? '' : ' stroke-dasharray="5 3"'}/>`)),
      ])].join(''));
  const legend = series.map((s, i) => {
    const a = s.agreement;
    const text = `${s.name === 'before' ? 'before (calibration in force)' : 'after (local recalibration, held out)'}: n ${a.n}, r ${a.r?.toFixed(2) ?? '–'}, bias ${a.bias?.toFixed(2) ?? '–'}, coverage ${a.coverage === null ? '–' : (100 * a.coverage).toFixed(1) + ' %'}`;
    return `<circle cx="${M.l}" cy="${H + 14 + i * 16}" r="4" fill="${COLOURS[s.name]}"/><text x="${M.l + 10}" y="${H + 18 + i * 16}">${esc(text)}</text>`;
  });
  const height = H + 24 + series.length * 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${height}" viewBox="0 0 ${2 * W} ${height}" font-family="sans-serif" font-size="11" role="img" aria-label="${esc(caption)}"><title>${esc(caption)}</title><rect width="100%" height="100%" fill="#fff"/>${scatter}${ba}${legend.join('')}</svg>\n`;
}
