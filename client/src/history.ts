/**
 * The history panel's logic: the patient's past assessments (from `GET /api/patients/{id}/assessments`, newest
 * first) joined with the one on screen, and what changed since the previous one ("Hip 10-year 4.1% → 5.2% since
 * 12 Oct 2026"). Pure, for the unit tests; every number goes through the shared format (server/risk/numbers.ts).
 */
import { formatDate, formatPercent, shownPercent } from './format.ts';
import type { Assessment, AssessmentHistoryItem, Tier } from './types.ts';

/** One point of the trend: an assessment's date and its 10-year risks in percent. */
export interface TrendPoint {
  assessmentId: string;
  date: string;
  hip: number | null;
  mof: number | null;
  tier: Tier | null;
  mode: AssessmentHistoryItem['mode'];
  /** The assessment on screen. */
  current: boolean;
}

/** The assessment on screen as a trend point (10-year risks in percent). */
export function currentPoint(a: Assessment): TrendPoint {
  const r10 = (o: 'hip' | 'mof'): number => a.outcomes[o].risks.find((r) => r.years === 10)!.risk * 100;
  return { assessmentId: a.id, date: a.createdAt, hip: r10('hip'), mof: r10('mof'), tier: a.tier.tier, mode: a.mode, current: true };
}

/**
 * Past assessments and the current one, oldest first (for the trend line). The current assessment replaces its own
 * copy in the history (when it was written back); assessments dated after it are kept in order.
 */
export function trendPoints(a: Assessment, history: readonly AssessmentHistoryItem[]): TrendPoint[] {
  const past: TrendPoint[] = history
    .filter((h) => h.assessmentId !== a.id)
    .map((h) => ({ assessmentId: h.assessmentId, date: h.date, hip: h.hip10?.estimate ?? null, mof: h.mof10?.estimate ?? null, tier: h.tier, mode: h.mode, current: false }));
  return [...past, currentPoint(a)].sort((x, y) => Date.parse(x.date) - Date.parse(y.date));
}

/** One outcome's change between two assessments, in the shared format. */
export interface OutcomeChange {
  outcome: 'hip' | 'mof';
  from: string;
  to: string;
  direction: 'up' | 'down' | 'same';
}

/** What changed since the previous assessment; null when there is none. */
export interface HistoryChange {
  since: string;
  changes: OutcomeChange[];
  tierFrom: Tier | null;
  tierTo: Tier;
  /** "Hip 10-year 4.1% → 5.2%, major osteoporotic 12% → 14% since 12 Oct 2026". */
  text: string;
}

const NAMES = { hip: 'Hip 10-year', mof: 'major osteoporotic' } as const;

/** The change from the most recent past assessment made before the one on screen. */
export function historyChange(a: Assessment, history: readonly AssessmentHistoryItem[]): HistoryChange | null {
  const points = trendPoints(a, history);
  const i = points.findIndex((p) => p.current);
  const prev = i > 0 ? points[i - 1]! : null;
  if (!prev) return null;
  const cur = points[i]!;
  const changes: OutcomeChange[] = [];
  for (const o of ['hip', 'mof'] as const) {
    const from = prev[o];
    const to = cur[o];
    if (from === null || to === null) continue;
    const f = shownPercent(from / 100);
    const t = shownPercent(to / 100);
    changes.push({ outcome: o, from: formatPercent(from), to: formatPercent(to), direction: t > f ? 'up' : t < f ? 'down' : 'same' });
  }
  const parts = changes.map((c, k) => {
    const name = k === 0 ? NAMES[c.outcome] : NAMES[c.outcome].replace(' 10-year', '');
    return c.direction === 'same' ? `${name} unchanged at ${c.to}` : `${name} ${c.from} → ${c.to}`;
  });
  const tierPart = prev.tier && prev.tier !== cur.tier ? `; tier ${prev.tier} → ${cur.tier}` : '';
  return { since: prev.date, changes, tierFrom: prev.tier, tierTo: a.tier.tier, text: `${parts.join(', ')}${tierPart} since ${formatDate(prev.date)}` };
}

/** Top of the trend's y axis: the largest risk drawn (either outcome), at least 5 %. */
export function trendMax(points: readonly TrendPoint[]): number {
  return Math.max(5, ...points.flatMap((p) => [p.hip ?? 0, p.mof ?? 0]));
}

/**
 * The polyline of a trend (one outcome) in a `width` × `height` box with `pad` inside: x by date, y by risk from 0
 * to `max` (default {@link trendMax}). Null below two points.
 */
export function trendPath(points: readonly TrendPoint[], outcome: 'hip' | 'mof', width: number, height: number, pad = 4, max = trendMax(points)): { x: number; y: number; p: TrendPoint }[] | null {
  const pts = points.filter((p) => p[outcome] !== null);
  if (pts.length < 2) return null;
  const t0 = Date.parse(pts[0]!.date);
  const t1 = Date.parse(pts[pts.length - 1]!.date);
  return pts.map((p, k) => ({
    x: pad + (t1 > t0 ? ((Date.parse(p.date) - t0) / (t1 - t0)) * (width - 2 * pad) : (k / (pts.length - 1)) * (width - 2 * pad)),
    y: height - pad - (p[outcome]! / max) * (height - 2 * pad),
    p,
  }));
}
