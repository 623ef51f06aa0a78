/**
 * Words the app puts around the risk engine's decision: the recommendation for the tier (clinician and patient
 * versions), the care already in place ("FLS referral active since 12 Nov 2026"), the question asked before a
 * duplicate order, what the heatmap shows and does not, and the counts of the patient's icon array. Pure, for the
 * unit tests; the decision itself (tier, action, meaning, guideline) comes from the service and is never recomputed.
 */
import { formatDate, inHundred } from './format.ts';
import type { Assessment, CareStatus, RecommendedAction } from './types.ts';

/** An order the app can create. */
export type OrderKind = 'fls' | 'dxa';

/** The order that carries out a recommended action; null when nothing is pushed. */
export function orderFor(action: RecommendedAction): OrderKind | null {
  return action === 'refer-fls' ? 'fls' : action === 'order-dxa' ? 'dxa' : null;
}

/** The clinician's recommendation for the action of the tier. */
export interface Recommendation {
  title: string;
  text: string;
}

const RECOMMENDATIONS: Record<RecommendedAction, Recommendation> = {
  'refer-fls': {
    title: 'Refer to the fracture liaison service',
    text: 'Above the treatment threshold: the FLS assesses bone health, arranges DXA where it changes management, starts bone-protective treatment and follows up.',
  },
  'order-dxa': {
    title: 'Measure bone density (DXA)',
    text: 'Close to the treatment threshold: a DXA scan shows whether treatment is indicated; reassess the risk with the result.',
  },
  none: {
    title: 'No scan or treatment suggested now',
    text: 'Below the treatment thresholds: advise on activity, calcium and vitamin D, smoking, alcohol and falls; reassess if risk factors change.',
  },
};

/** The recommendation shown under the risk for the tier's action. */
export function recommendation(action: RecommendedAction): Recommendation {
  return RECOMMENDATIONS[action];
}

/** The patient's next steps for the tier's action, in plain words. */
export function patientNextSteps(action: RecommendedAction): string[] {
  if (action === 'refer-fls') {
    return [
      'Your doctor suggests a referral to the fracture liaison service, a team that looks after bone health.',
      'They may arrange a bone density scan (DXA) and talk with you about medicine that makes bones stronger.',
      'Staying active, getting enough calcium and vitamin D, not smoking and preventing falls also help.',
    ];
  }
  if (action === 'order-dxa') {
    return [
      'Your doctor suggests a bone density scan (DXA): a short, painless X-ray scan of the hip and spine.',
      'The result shows whether medicine to strengthen the bones would help you.',
      'Staying active, getting enough calcium and vitamin D, not smoking and preventing falls also help.',
    ];
  }
  return [
    'No scan or treatment is needed now.',
    'Staying active, getting enough calcium and vitamin D, not smoking and preventing falls keep bones strong.',
    'Your doctor may check again if your health changes, for example after a fall or a broken bone.',
  ];
}

const STATUS_WORDS: Record<string, string> = { active: 'active', draft: 'drafted', 'on-hold': 'on hold' };

/** "FLS referral active since 12 Nov 2026" (or "on hold", "drafted"; no date when the server gave none). */
export function openOrderText(kind: OrderKind, order: { status: string; since: string | null }): string {
  const what = kind === 'fls' ? 'FLS referral' : 'DXA order';
  const status = STATUS_WORDS[order.status] ?? order.status;
  return `${what} ${status}${order.since ? ` since ${formatDate(order.since)}` : ''}`;
}

/** The care already in place, one line each, for the summary. */
export function careLines(c: CareStatus): string[] {
  const lines: string[] = [];
  if (c.flsReferral) lines.push(openOrderText('fls', c.flsReferral));
  if (c.dxaOrder) lines.push(openOrderText('dxa', c.dxaOrder));
  if (c.dxaResult) {
    const t = c.dxaResult.tScore;
    lines.push(`DXA result${c.dxaResult.date ? ` of ${formatDate(c.dxaResult.date)}` : ''}${t !== null ? `: T-score ${t.toFixed(1).replace('-', '−')}` : ''}`);
  }
  if (c.treatment) lines.push(`On ${c.treatment.name}${c.treatment.since ? ` since ${formatDate(c.treatment.since)}` : ''}`);
  return lines;
}

/** The open order of the same kind, if any: an FLS referral for a referral, a DXA order for a DXA. */
export function existingOrder(kind: OrderKind, c: CareStatus | null): { id: string; status: string; since: string | null } | null {
  if (!c) return null;
  return kind === 'fls' ? c.flsReferral : c.dxaOrder;
}

/**
 * The question asked before creating an order that already exists, naming the patient:
 * "An FLS referral for Wei Synthetic-Khan is already active since 12 Nov 2026. Create another?"
 */
export function duplicateQuestion(kind: OrderKind, order: { status: string; since: string | null }, patientName: string): string {
  const what = kind === 'fls' ? 'An FLS referral' : 'A DXA order';
  const status = STATUS_WORDS[order.status] ?? order.status;
  return `${what} for ${patientName} is already ${status}${order.since ? ` since ${formatDate(order.since)}` : ''}. Create another?`;
}

/** What the heatmap shows and does not, for the result on screen. */
export function heatmapExplanation(a: Assessment, hasHeatmap: boolean): string[] {
  if (!hasHeatmap) {
    return [`No heatmap: the radiograph was not used for this result (${a.ood?.outside ? 'it is outside the model’s training distribution' : 'no usable hip radiograph'}), so the risk rests on the clinical factors alone.`];
  }
  const out = ['Highlights the image regions that moved the estimate most (Grad-CAM); not a diagnosis and not a fracture finding.'];
  if (a.tier.tier === 'low') {
    out.push('The risk is low: the model always highlights where it looked most, so warm areas here — even on soft tissue or outside the bone — do not point to a problem.');
  }
  return out;
}

/** The icon array's counts out of 100: people with a major osteoporotic fracture, of them with a hip fracture. */
export interface IconCounts {
  mof: number;
  hip: number;
  none: number;
  /** Text alternative of the array. */
  label: string;
}

/** Counts for 100 people "like you" from the 10-year risks (hip is part of major osteoporotic fractures). */
export function iconCounts(a: Assessment): IconCounts {
  const r10 = (o: 'hip' | 'mof'): number => a.outcomes[o].risks.find((r) => r.years === 10)!.risk;
  const mofRisk = r10('mof');
  const hipRisk = r10('hip');
  const mof = Math.min(100, Math.max(0, Math.round(mofRisk * 100)));
  const hip = Math.min(mof, Math.max(0, Math.round(hipRisk * 100)));
  const label = `Picture of 100 people: ${mof === 0 ? 'fewer than 1' : `about ${mof}`} of them break a bone from osteoporosis in 10 years${hip > 0 ? `, about ${hip} of them a hip` : ''}; ${100 - mof} do not.`;
  return { mof, hip, none: 100 - mof, label };
}

/** The plain-language sentence of the patient summary ("About 14 in 100 people like you…"). */
export function patientExplanation(a: Assessment): string {
  const r10 = (o: 'hip' | 'mof'): number => a.outcomes[o].risks.find((r) => r.years === 10)!.risk;
  const mof = inHundred(r10('mof'));
  const hip = inHundred(r10('hip'));
  return `${mof.charAt(0).toUpperCase()}${mof.slice(1)} people like you will break a bone because of weak bones (hip, wrist, spine or shoulder) in the next 10 years; ${hip} will break a hip.`;
}
