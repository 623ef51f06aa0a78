/**
 * What a 10-year risk means for the next step: for each outcome, the probability that the risk lies at or above
 * its treatment threshold, the tier that follows from the shown values and those probabilities, the recommended
 * action and one plain sentence saying why.
 *
 * The probability comes from the model's own predictive distribution on the log-hazard scale. The 95 % interval the
 * engine shows is η̄ ± f·z·sd (f the manifest's calibrated interval factor, sd the spread over ensemble members), so
 * the predictive distribution of η is normal with mean η̄ and sd s = f·sd; the 10-year risk is
 * 1 − exp(−H0(10)·exp(η)) and P(risk ≥ threshold) = P(η ≥ η_thr) with η_thr = log(−log(1 − threshold) / H0(10)).
 * Major osteoporotic fracture (MOF) includes hip fracture, so its cumulative hazard is the larger of its own and the
 * hip's at every quantile (survival.ts); its probability is then the larger of the two components' probabilities.
 * A clinical-only risk (QFracture-2012) has no interval and no probability (null). A model with another predictive
 * distribution (the T-score mixture of a T-score-mediated model, mediated.ts) hands in its own tail probability as a
 * function of the threshold instead of normal components; the tier rule is the same for both.
 *
 * Tier rule (thresholds in percent, compared on the SHOWN values — numbers.ts — so "3.0%" is never "below 3%"):
 * - high: an outcome's shown risk is at or above its treatment threshold and, when there is an interval, the
 *   probability of being above it is at least `decisionProbability`;
 * - moderate: not high, but an outcome's shown risk is at or above its threshold with less certainty (borderline),
 *   or the shown MOF risk is at or above `mofModerate`, or an outcome's probability of being above its threshold is
 *   at least 1 − `decisionProbability`;
 * - low otherwise.
 *
 * Pure TypeScript without Node imports: the browser bundle imports it too.
 */
import { formatPercent, formatProbability, formatThreshold, shownPercent } from './numbers.ts';

/** The outcomes a decision is made on. */
export type DecisionOutcome = 'hip' | 'mof';

/** What the tier asks for: refer to the fracture liaison service, order a DXA scan, or nothing now. */
export type RecommendedAction = 'refer-fls' | 'order-dxa' | 'none';

/** The risk tier of an assessment. */
export type DecisionTier = 'low' | 'moderate' | 'high';

/** One outcome's 10-year risk against its treatment threshold. */
export interface OutcomeDecision {
  outcome: DecisionOutcome;
  /** Treatment threshold in percent: RISK_TIER_HIP_HIGH (3) for hip, RISK_TIER_MOF_HIGH (20) for MOF. */
  thresholdPercent: number;
  /** The 10-year risk as displayed (numbers.shownPercent). */
  shownPercent: number;
  /** P(10-year risk ≥ threshold) from the model's predictive distribution; null for a clinical-only risk (no interval). */
  probabilityAbove: number | null;
}

/** The decision of an assessment: what the risk means against the guideline thresholds and what to do. */
export interface Decision {
  hip: OutcomeDecision;
  mof: OutcomeDecision;
  /** high → 'refer-fls', moderate → 'order-dxa', low → 'none'. */
  action: RecommendedAction;
  /** True only for tier high: the only case a card may use the 'warning' indicator. */
  actionWarranted: boolean;
  /** One plain sentence, e.g. "Above the 3% hip-fracture treatment threshold (probability 93%)." */
  meaning: string;
  /** Where the thresholds come from (RISK_GUIDELINE_NAME / RISK_GUIDELINE_URL). */
  guideline: { name: string; url: string };
}

/** The settings a decision depends on. */
export interface DecisionSettings {
  /** Tier thresholds on 10-year risks in percent (RISK_TIER_*). */
  tiers: { mofModerate: number; mofHigh: number; hipHigh: number };
  /** Probability of being above a threshold needed to call the risk high (RISK_DECISION_PROBABILITY). */
  decisionProbability: number;
  /** The guideline the thresholds come from (RISK_GUIDELINE_NAME / RISK_GUIDELINE_URL). */
  guideline: { name: string; url: string };
}

/** Defaults of the decision settings not held in the tier thresholds (the README's configuration table). */
export const DECISION_DEFAULTS = {
  decisionProbability: 0.8,
  guideline: {
    name: "Bone Health & Osteoporosis Foundation Clinician's Guide (2022)",
    url: 'https://doi.org/10.1007/s00198-021-05900-y',
  },
} as const;

/**
 * One log-normal component of a 10-year cumulative hazard: H = h0·exp(η + z·s) at the standard-normal quantile z.
 * `s` is the predictive sd on the log-hazard scale (interval factor × ensemble sd); 0 for a point estimate.
 */
export interface HazardComponent {
  /** Baseline cumulative hazard at 10 years. */
  h0: number;
  /** Mean log-hazard (member mean). */
  eta: number;
  /** Predictive sd of the log-hazard. */
  s: number;
}

/** Standard normal upper tail P(Z ≥ x) (complementary error function, Numerical Recipes erfc; |error| < 1.2e-7). */
export function normalUpperTail(x: number): number {
  if (x === Infinity) return 0;
  if (x === -Infinity) return 1;
  const zz = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * zz);
  const erfc = t * Math.exp(-zz * zz - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? erfc / 2 : 1 - erfc / 2;
}

/**
 * P(10-year risk ≥ threshold) when the cumulative hazard is the largest of `components` at every quantile z (one
 * component for hip; MOF and hip for MOF). Each component's hazard rises with z, so the risk crosses the threshold
 * at the smallest of the components' crossing quantiles z_c = (η_thr,c − η_c)/s_c, and P = P(Z ≥ min z_c).
 * `threshold` is a fraction (0.03 for 3 %).
 */
export function probabilityAbove(components: readonly HazardComponent[], threshold: number): number {
  if (!(threshold > 0 && threshold < 1)) throw new RangeError(`threshold must be a fraction in (0, 1), got ${threshold}`);
  const hThr = -Math.log1p(-threshold);
  let zCross = Infinity;
  for (const c of components) {
    if (!(c.h0 > 0)) continue; // no baseline hazard: this component never reaches the threshold
    const etaThr = Math.log(hThr / c.h0);
    const z = c.s > 0 ? (etaThr - c.eta) / c.s : c.eta >= etaThr ? -Infinity : Infinity;
    zCross = Math.min(zCross, z);
  }
  return normalUpperTail(zCross);
}

const OUTCOME_WORDS: Record<DecisionOutcome, string> = { hip: 'hip-fracture', mof: 'major-osteoporotic-fracture' };

/** The tier from the two outcome decisions (rule in the file header). */
export function tierOf(hip: OutcomeDecision, mof: OutcomeDecision, s: Pick<DecisionSettings, 'tiers' | 'decisionProbability'>): DecisionTier {
  const over = (d: OutcomeDecision): boolean => d.shownPercent >= d.thresholdPercent;
  const sure = (d: OutcomeDecision): boolean => d.probabilityAbove === null || d.probabilityAbove >= s.decisionProbability;
  if ([hip, mof].some((d) => over(d) && sure(d))) return 'high';
  if ([hip, mof].some(over)) return 'moderate';
  if (mof.shownPercent >= s.tiers.mofModerate) return 'moderate';
  if ([hip, mof].some((d) => d.probabilityAbove !== null && d.probabilityAbove >= 1 - s.decisionProbability)) return 'moderate';
  return 'low';
}

const ACTION: Record<DecisionTier, RecommendedAction> = { high: 'refer-fls', moderate: 'order-dxa', low: 'none' };

const thresholdWords = (d: OutcomeDecision): string => `${formatThreshold(d.thresholdPercent)} ${OUTCOME_WORDS[d.outcome]}`;
const probabilityWords = (d: OutcomeDecision): string => (d.probabilityAbove === null ? '' : `probability ${formatProbability(d.probabilityAbove)}`);

/** The one plain sentence of a decision (uses numbers.ts for every number). */
export function meaningOf(tier: DecisionTier, hip: OutcomeDecision, mof: OutcomeDecision, s: Pick<DecisionSettings, 'tiers' | 'decisionProbability'>): string {
  const both = [hip, mof];
  const over = both.filter((d) => d.shownPercent >= d.thresholdPercent);
  if (tier === 'high') {
    const sure = over.filter((d) => d.probabilityAbove === null || d.probabilityAbove >= s.decisionProbability);
    const probs = sure.map(probabilityWords).filter((p) => p !== '');
    const which = sure.map(thresholdWords).join(' and ');
    return `Above the ${which} treatment threshold${sure.length > 1 ? 's' : ''}${probs.length ? ` (${probs.join(', ')})` : ''}.`;
  }
  if (tier === 'moderate') {
    if (over.length > 0) {
      const d = over.reduce((a, b) => ((b.probabilityAbove ?? 0) > (a.probabilityAbove ?? 0) ? b : a));
      return `Borderline: ${formatPercent(d.shownPercent)} is at or above the ${thresholdWords(d)} treatment threshold, but the probability of being above it is only ${formatProbability(d.probabilityAbove)}.`;
    }
    const likely = both.filter((d) => d.probabilityAbove !== null && d.probabilityAbove >= 1 - s.decisionProbability);
    if (likely.length > 0) {
      const d = likely.reduce((a, b) => (b.probabilityAbove! > a.probabilityAbove! ? b : a));
      return `Below the ${thresholdWords(d)} treatment threshold (${formatPercent(d.shownPercent)}), but with a ${formatProbability(d.probabilityAbove)} probability of being above it.`;
    }
    return `Below the treatment thresholds; the major osteoporotic fracture risk of ${formatPercent(mof.shownPercent)} is in the moderate band (${formatThreshold(s.tiers.mofModerate)} to ${formatThreshold(s.tiers.mofHigh)}).`;
  }
  const probs = both.filter((d) => d.probabilityAbove !== null).map((d) => formatProbability(d.probabilityAbove));
  return `Below the ${thresholdWords(hip)} and ${thresholdWords(mof)} treatment thresholds${probs.length === 2 ? ` (probability of being above them ${probs.join(' and ')})` : ''}.`;
}

/** P(10-year risk ≥ threshold) of a predictive distribution, `threshold` a fraction (0.03 for 3 %). */
export type ThresholdProbability = (threshold: number) => number;

/**
 * Input of {@link decide}: per outcome, the shown 10-year risk (fraction) and its predictive distribution: normal
 * hazard components on the log-hazard scale ({@link probabilityAbove}), the distribution's own tail probability, or
 * null (clinical-only, no interval).
 */
export interface DecisionInput {
  hip: { risk10: number; components: readonly HazardComponent[] | ThresholdProbability | null };
  mof: { risk10: number; components: readonly HazardComponent[] | ThresholdProbability | null };
}

function probabilityOf(c: readonly HazardComponent[] | ThresholdProbability | null, threshold: number): number | null {
  if (c === null) return null;
  if (typeof c === 'function') {
    if (!(threshold > 0 && threshold < 1)) throw new RangeError(`threshold must be a fraction in (0, 1), got ${threshold}`);
    return Math.min(1, Math.max(0, c(threshold)));
  }
  return probabilityAbove(c, threshold);
}

/** The decision and tier of an assessment from its shown 10-year risks and predictive distributions. */
export function decide(input: DecisionInput, s: DecisionSettings): { decision: Decision; tier: DecisionTier } {
  const one = (o: DecisionOutcome, thresholdPercent: number): OutcomeDecision => {
    const x = input[o];
    return { outcome: o, thresholdPercent, shownPercent: shownPercent(x.risk10), probabilityAbove: probabilityOf(x.components, thresholdPercent / 100) };
  };
  const hip = one('hip', s.tiers.hipHigh);
  const mof = one('mof', s.tiers.mofHigh);
  const tier = tierOf(hip, mof, s);
  return {
    tier,
    decision: { hip, mof, action: ACTION[tier], actionWarranted: tier === 'high', meaning: meaningOf(tier, hip, mof, s), guideline: { name: s.guideline.name, url: s.guideline.url } },
  };
}
