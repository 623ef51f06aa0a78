/**
 * Risks of a T-score-mediated model (manifest `risk_model.kind = "tscore-mediated"`, schema 2.x; the hip-xray-v2
 * contract): member m of the ensemble gives, per outcome k, a base log-hazard b_mk (the clinical term and a small
 * image term, without the T-score) and the femoral-neck T-score enters linearly, η_mk(T) = b_mk + γ_mk·T, with
 * risk_k(t) = 1 − exp(−H0_k(t)·exp(η)). The T-score is uncertain: member m's calibrated predictive distribution
 * N(μ_m, σ_m) from the radiograph, or — when the chart has a recent measured DXA T-score — N(DXA, DXA precision sd)
 * for every member. The predictive distribution of a risk is the equal-weight mixture over members of the risk
 * under that member's T-score distribution. No random numbers:
 *
 * - **Point estimate** = the mixture mean of the risk (the predictive probability of a fracture), by the manifest's
 *   probabilists' Gauss-Hermite rule (`uncertainty.gauss_hermite_nodes`, 16: exact for polynomials in T up to degree
 *   31) per member: mean = Σ_m Σ_j (w_j / M)·risk(b_m + γ_m·(μ_m + σ_m·x_j)).
 * - **95 % interval** = the 2.5 and 97.5 percentiles of the mixture. Within a member the risk is monotone in T, so
 *   P(risk ≥ r) = Σ_m (1/M)·P_m(T on the side of T*_m(r) where the risk is ≥ r), a sum of normal tails: the mixture's
 *   CDF is known exactly and each percentile is found by bisection on it. (Percentiles of the discrete node mixture
 *   converge to these; with 16 nodes they step by up to half a node spacing, ≈ 0.3 sd of T, which is why the CDF is
 *   used.) The same tail sum gives P(10-year risk ≥ threshold) for the decision.
 * - **MOF is never below hip** (survival.ts, "Composite outcomes"): at every time and for every member and T the MOF
 *   cumulative hazard is max(H_mof, H_hip). A member's MOF risk is then ≥ r exactly when its MOF head or its hip head
 *   alone is, so the tail is that of the union of the two T-sets; the mean, every percentile, every curve point and
 *   the threshold probability of MOF are therefore at least the hip's.
 * - **Spread** of the log-hazard = its sd over the mixture (members × nodes; the quadrature is exact for it), for the
 *   manifest's low-confidence rule.
 *
 * **Unmeasured determinants** (manifest `uncertainty.unmeasured_log_hazard_sd` = σ; absent or 0: none, and every
 * number is exactly as without the term). A person's hazard also depends on what neither the chart, nor the DXA, nor
 * the model measures (bone quality beyond BMD, errors in the chart), so the T-score mixture alone makes the interval
 * too narrow for the person's true risk. One log-hazard offset u ~ N(−σ²/2, σ), independent of T, is shared by every
 * head and every member: η_mk(T, u) = b_mk + γ_mk·T + u. It is centred so that E exp(u) = 1: the mean hazard is
 * unchanged and the Breslow baselines stay valid; only the spread grows.
 * - the mean adds u's Gauss-Hermite rule (the same node count) to each member's T nodes; the MOF floor is applied per
 *   (member, T, u) node, so the mean of MOF stays at least the hip's.
 * - the tail is exact: within a member, each head's log cumulative hazard log H0_k + b_k + γ_k·T + u is normal
 *   (mean log H0_k + b_k + γ_k·μ − σ²/2, variance γ_k²σ_T² + σ²), so P(H ≥ h) is a normal tail for one head and,
 *   for MOF with its hip floor, P(hip) + P(MOF head and not hip) = P(hip) + P(MOF head) − P(both), with P(both) a
 *   bivariate normal probability (correlation (γ_mof·γ_hip·σ_T² + σ²) / (sd_mof·sd_hip); {@link bivariateUpperTail}).
 *   The hip term is computed exactly as for hip alone and the second term is clamped at 0, so MOF's tail is at least
 *   the hip's in floating point too. (Integrating u over the Gauss-Hermite nodes of the T-tail instead makes the CDF a
 *   staircase when the T-score is nearly known — a measured DXA: with σ_T·|γ| = 0.08 and σ = 0.3 its error reaches
 *   0.01 in probability, 0.15 for a point mass — which the threshold probability cannot afford.)
 * - the log-hazard spread: its mean moves by −σ²/2 and its variance grows by σ².
 *
 * Pure and synchronous; no Node imports.
 */
import { baselineAt } from './survival.ts';
import { normalUpperTail } from './decision.ts';
import type { CurvePoint, RiskWithInterval } from './survival.ts';

/** A normal distribution of the T-score (one ensemble member's, or a measured DXA value with its precision). */
export interface TscoreNormal {
  mean: number;
  sd: number;
}

/** One outcome head of a T-score-mediated model. */
export interface MediatedHead {
  /** Baseline cumulative hazard on its grid (years). */
  grid: readonly number[];
  h0: readonly number[];
  /** Per member: log-hazard without the T-score term. */
  base: readonly number[];
  /** Per member: log-hazard per T-score unit (γ, normally negative). */
  gamma: readonly number[];
}

/** Probabilists' Gauss-Hermite rule: nodes x_j and weights w_j (Σ w_j = 1) with E f(Z) ≈ Σ w_j f(x_j), Z ~ N(0, 1). */
export interface GaussHermiteRule {
  nodes: readonly number[];
  weights: readonly number[];
}

const rules = new Map<number, GaussHermiteRule>();

/**
 * The n-point probabilists' Gauss-Hermite rule: the physicists' rule (weight e^{−x²}) by Newton iteration on the
 * orthonormal Hermite recurrence (Numerical Recipes §4.5, `gauher`), then x = √2·x_phys and w = w_phys/√π.
 */
export function gaussHermite(n: number): GaussHermiteRule {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError(`Gauss-Hermite nodes must be an integer in 1..64, got ${n}`);
  const hit = rules.get(n);
  if (hit) return hit;
  const PIM4 = 0.7511255444649425; // π^(−1/4)
  const x = new Array<number>(n).fill(0);
  const w = new Array<number>(n).fill(0);
  const m = (n + 1) >> 1;
  let z = 0;
  for (let i = 0; i < m; i++) {
    if (i === 0) z = Math.sqrt(2 * n + 1) - 1.85575 * (2 * n + 1) ** -0.16667;
    else if (i === 1) z -= (1.14 * n ** 0.426) / z;
    else if (i === 2) z = 1.86 * z - 0.86 * x[0]!;
    else if (i === 3) z = 1.91 * z - 0.91 * x[1]!;
    else z = 2 * z - x[i - 2]!;
    let pp = 0;
    for (let its = 0; its < 100; its++) {
      let p1 = PIM4;
      let p2 = 0;
      for (let j = 0; j < n; j++) {
        const p3 = p2;
        p2 = p1;
        p1 = z * Math.sqrt(2 / (j + 1)) * p2 - Math.sqrt(j / (j + 1)) * p3;
      }
      pp = Math.sqrt(2 * n) * p2;
      const z1 = z;
      z = z1 - p1 / pp;
      if (Math.abs(z - z1) <= 1e-15 * Math.max(1, Math.abs(z))) break;
    }
    x[i] = z;
    x[n - 1 - i] = -z;
    w[i] = 2 / (pp * pp);
    w[n - 1 - i] = w[i]!;
  }
  const rule = { nodes: x.map((v) => v * Math.SQRT2).reverse(), weights: w.map((v) => v / Math.sqrt(Math.PI)).reverse() };
  rules.set(n, rule);
  return rule;
}

/** The n-point Gauss-Legendre rule on [−1, 1] (Newton on the Legendre recurrence), cached. */
const legendreRules = new Map<number, GaussHermiteRule>();
function gaussLegendre(n: number): GaussHermiteRule {
  const hit = legendreRules.get(n);
  if (hit) return hit;
  const nodes: number[] = [];
  const weights: number[] = [];
  for (let i = 0; i < n; i++) {
    let z = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
    let dp = 0;
    for (let its = 0; its < 100; its++) {
      let p0 = 1;
      let p1 = z;
      for (let j = 2; j <= n; j++) [p0, p1] = [p1, ((2 * j - 1) * z * p1 - (j - 1) * p0) / j];
      dp = (n * (z * p1 - p0)) / (z * z - 1);
      const z1 = z;
      z = z1 - p1 / dp;
      if (Math.abs(z - z1) <= 1e-15) break;
    }
    nodes.push(z);
    weights.push(2 / ((1 - z * z) * dp * dp));
  }
  const rule = { nodes, weights };
  legendreRules.set(n, rule);
  return rule;
}

/**
 * P(X > h, Y > k) for a standard bivariate normal (X, Y) with correlation r: the method of Drezner & Wesolowsky
 * (1990, J Stat Comput Simul 35:101–107) with Genz's double-precision changes (Genz 2004, Stat Comput 14:251–260,
 * §2.2). For |r| < 0.925 the integral of the density over the correlation from 0 to r (Gauss-Legendre with 6, 12
 * or 20 nodes as |r| grows); above, the integral over √(1 − r²) from the perfectly correlated limit, its leading
 * terms in closed form and the remainder by 20-node Gauss-Legendre. Accurate to the normal tail it uses
 * (`normalUpperTail`, 1.2e-7 relative).
 */
export function bivariateUpperTail(h: number, k: number, r: number): number {
  if (h === Infinity || k === Infinity) return 0;
  if (h === -Infinity) return k === -Infinity ? 1 : normalUpperTail(k);
  if (k === -Infinity) return normalUpperTail(h);
  const rho = Math.min(1, Math.max(-1, r));
  const ar = Math.abs(rho);
  let p: number;
  if (ar < 0.925) {
    const { nodes, weights } = gaussLegendre(ar < 0.3 ? 6 : ar < 0.75 ? 12 : 20);
    const hk = h * k;
    const hs = (h * h + k * k) / 2;
    const asr = Math.asin(rho);
    let s = 0;
    for (let i = 0; i < nodes.length; i++) {
      const sn = Math.sin((asr * (nodes[i]! + 1)) / 2);
      s += weights[i]! * Math.exp((sn * hk - hs) / (1 - sn * sn));
    }
    p = (s * asr) / (4 * Math.PI) + normalUpperTail(h) * normalUpperTail(k);
  } else {
    const kk = rho < 0 ? -k : k;
    const hk = h * kk;
    let integral = 0;
    if (ar < 1) {
      // The density's integral from the perfectly correlated limit: √(1 − x²)-expansion to x⁴ in closed form, the
      // remainder numerically.
      const as = (1 - rho) * (1 + rho);
      const a = Math.sqrt(as);
      const bs = (h - kk) ** 2;
      const c = (4 - hk) / 8;
      const d = (12 - hk) / 16;
      const e0 = -(bs / as + hk) / 2;
      if (e0 > -100) integral = a * Math.exp(e0) * (1 - (c * (bs - as) * (1 - (d * bs) / 5)) / 3 + (c * d * as * as) / 5);
      if (hk > -100) {
        const b = Math.sqrt(bs);
        integral -= Math.exp(-hk / 2) * Math.sqrt(2 * Math.PI) * normalUpperTail(b / a) * b * (1 - (c * bs * (1 - (d * bs) / 5)) / 3);
      }
      const { nodes, weights } = gaussLegendre(20);
      for (let i = 0; i < nodes.length; i++) {
        const xs = ((a * (1 + nodes[i]!)) / 2) ** 2;
        const e = -(bs / xs + hk) / 2;
        if (!(e > -100)) continue;
        const rs = Math.sqrt(1 - xs);
        const ep = Math.exp((-hk * (1 - rs)) / (2 * (1 + rs))) / rs;
        integral += (a / 2) * weights[i]! * Math.exp(e) * (ep - (1 + c * xs * (1 + d * xs)));
      }
      integral /= -2 * Math.PI;
    }
    p = rho > 0 ? integral + normalUpperTail(Math.max(h, kk)) : -integral + Math.max(0, normalUpperTail(h) - normalUpperTail(kk));
  }
  return Math.min(1, Math.max(0, p));
}

/** Standard normal CDF at (t − μ)/σ; σ = 0: a point mass at μ. */
const below = (t: number, tn: TscoreNormal): number =>
  t === -Infinity ? 0 : t === Infinity ? 1 : tn.sd > 0 ? 1 - normalUpperTail((t - tn.mean) / tn.sd) : tn.mean <= t ? 1 : 0;

/** Options of a {@link MediatedOutcome}. */
export interface MediatedOptions {
  /**
   * σ of the unmeasured-determinants log-hazard offset u ~ N(−σ²/2, σ) shared by all heads and members (header);
   * 0 (default): none.
   */
  unmeasuredLogHazardSd?: number;
}

/**
 * The predictive distribution of one outcome's risk (MOF: with the hip head as its floor) under the T-score
 * mixture, and the unmeasured-determinants offset when σ > 0: its mean, percentiles and tail probabilities at any
 * time.
 */
export class MediatedOutcome {
  readonly #heads: readonly MediatedHead[];
  readonly #tscore: readonly TscoreNormal[];
  readonly #rule: GaussHermiteRule;
  readonly #sigma: number;
  /** σ > 0: exp(u_i) at u's Gauss-Hermite nodes u_i = −σ²/2 + σ·x_i. */
  readonly #expU: readonly number[];

  /**
   * @param heads the outcome's own head first, then any head that is its floor (hip for MOF); with σ > 0 at most
   *   one floor.
   * @param tscore per member, the T-score distribution that member's risk is computed under.
   * @param nodes Gauss-Hermite nodes per member's T-score (and for u).
   */
  constructor(heads: readonly MediatedHead[], tscore: readonly TscoreNormal[], nodes: number, options: MediatedOptions = {}) {
    const M = tscore.length;
    if (M === 0) throw new RangeError('no ensemble member');
    for (const h of heads) if (h.base.length !== M || h.gamma.length !== M) throw new RangeError(`a head has ${h.base.length} base log-hazards and ${h.gamma.length} T-score coefficients for ${M} members`);
    for (const t of tscore) if (!(Number.isFinite(t.mean) && t.sd >= 0)) throw new RangeError(`T-score distribution needs a finite mean and sd ≥ 0, got ${t.mean}, ${t.sd}`);
    const sigma = options.unmeasuredLogHazardSd ?? 0;
    if (!(Number.isFinite(sigma) && sigma >= 0)) throw new RangeError(`the unmeasured log-hazard sd must be finite and ≥ 0, got ${sigma}`);
    // The exact tail is a bivariate normal for a head and its floor; more floors would need higher dimensions.
    if (sigma > 0 && heads.length > 2) throw new RangeError(`an unmeasured log-hazard term supports a head and one floor, got ${heads.length} heads`);
    this.#heads = heads;
    this.#tscore = tscore;
    this.#rule = gaussHermite(nodes);
    this.#sigma = sigma;
    this.#expU = sigma > 0 ? this.#rule.nodes.map((x) => Math.exp(-sigma * sigma / 2 + sigma * x)) : [];
  }

  /** Each head's baseline cumulative hazard at t. */
  #baselines(t: number): number[] {
    return this.#heads.map((x) => baselineAt(x.grid, x.h0, t));
  }

  /**
   * Mixture mean of the risk given the heads' baselines (Gauss-Hermite over each member's T-score and, σ > 0, over
   * u: exp(u) multiplies every head's hazard alike, so the floor's max is taken before it).
   */
  #mean(h0: readonly number[]): number {
    const M = this.#tscore.length;
    const { nodes, weights } = this.#rule;
    const expU = this.#expU;
    let s = 0;
    for (let m = 0; m < M; m++) {
      const tn = this.#tscore[m]!;
      for (let j = 0; j < nodes.length; j++) {
        const T = tn.mean + tn.sd * nodes[j]!;
        let h = 0;
        for (let k = 0; k < h0.length; k++) h = Math.max(h, h0[k]! * Math.exp(this.#heads[k]!.base[m]! + this.#heads[k]!.gamma[m]! * T));
        if (expU.length === 0) {
          s += (weights[j]! / M) * -Math.expm1(-h);
          continue;
        }
        let su = 0;
        for (let i = 0; i < expU.length; i++) su += weights[i]! * -Math.expm1(-h * expU[i]!);
        s += (weights[j]! / M) * su;
      }
    }
    return s;
  }

  /**
   * P(cumulative hazard ≥ exp(logH)) under the mixture, given the heads' baselines. Member m's head k reaches it
   * where γT ≥ logH − log H0 − b: T ≤ c/γ for γ < 0, T ≥ c/γ for γ > 0; the MOF floor makes it the union over heads
   * (two half-lines pointing the same way: the wider; opposite ways: both tails, or everything when they overlap).
   */
  #tail(h0: readonly number[], logH: number): number {
    if (this.#sigma > 0) return this.#tailWithU(h0, logH);
    const M = this.#tscore.length;
    let p = 0;
    for (let m = 0; m < M; m++) {
      let le = -Infinity;
      let ge = Infinity;
      let all = false;
      for (let k = 0; k < h0.length; k++) {
        if (!(h0[k]! > 0)) continue;
        const head = this.#heads[k]!;
        const c = logH - Math.log(h0[k]!) - head.base[m]!;
        const g = head.gamma[m]!;
        if (g < 0) le = Math.max(le, c / g);
        else if (g > 0) ge = Math.min(ge, c / g);
        else if (c <= 0) all = true;
      }
      const tn = this.#tscore[m]!;
      p += (all || le >= ge ? 1 : below(le, tn) + 1 - below(ge, tn)) / M;
    }
    return Math.min(1, Math.max(0, p));
  }

  /**
   * σ > 0: P(cumulative hazard ≥ exp(logH)) with T and u (header). Per member, head k's log cumulative hazard is
   * N(a_k, s_k²), a_k = log H0_k + b_k + γ_k·μ − σ²/2, s_k² = γ_k²σ_T² + σ²; one head: its normal tail; a head and
   * its floor: P(floor) + max(0, P(head) − P(both)), the floor's term computed exactly as for the floor alone.
   */
  #tailWithU(h0: readonly number[], logH: number): number {
    const M = this.#tscore.length;
    const sigma = this.#sigma;
    const half = (sigma * sigma) / 2;
    let p = 0;
    for (let m = 0; m < M; m++) {
      const tn = this.#tscore[m]!;
      // z-score and sd of the active heads, own head first (the floor last).
      let zOwn = NaN;
      let sOwn = 0;
      let gOwn = 0;
      let zFloor = NaN;
      let sFloor = 0;
      let gFloor = 0;
      for (let k = 0; k < h0.length; k++) {
        if (!(h0[k]! > 0)) continue;
        const head = this.#heads[k]!;
        const g = head.gamma[m]!;
        const sd = Math.hypot(g * tn.sd, sigma);
        const z = (logH - (Math.log(h0[k]!) + head.base[m]! + g * tn.mean - half)) / sd;
        if (k === h0.length - 1) [zFloor, sFloor, gFloor] = [z, sd, g];
        else [zOwn, sOwn, gOwn] = [z, sd, g];
      }
      let pm = 0;
      if (!Number.isNaN(zFloor)) pm = normalUpperTail(zFloor);
      if (!Number.isNaN(zOwn)) {
        const own = normalUpperTail(zOwn);
        if (Number.isNaN(zFloor)) pm = own;
        else pm += Math.max(0, own - bivariateUpperTail(zOwn, zFloor, (gOwn * gFloor * tn.sd * tn.sd + sigma * sigma) / (sOwn * sFloor)));
      }
      p += pm / M;
    }
    return Math.min(1, Math.max(0, p));
  }

  /** The q-quantile of the risk given the heads' baselines: bisection on the log cumulative hazard. */
  #quantile(h0: readonly number[], q: number): number {
    if (!h0.some((h) => h > 0)) return 0;
    // Bracket: every head of every member between T = μ ∓ 9σ (beyond, the tails are below 1e-18); with u, between
    // its log cumulative hazard's mean ∓ 9 sd.
    let lo = Infinity;
    let hi = -Infinity;
    const sigma = this.#sigma;
    for (let k = 0; k < h0.length; k++) {
      if (!(h0[k]! > 0)) continue;
      const head = this.#heads[k]!;
      this.#tscore.forEach((tn, m) => {
        if (sigma > 0) {
          const centre = Math.log(h0[k]!) + head.base[m]! + head.gamma[m]! * tn.mean - (sigma * sigma) / 2;
          const sd = Math.hypot(head.gamma[m]! * tn.sd, sigma);
          lo = Math.min(lo, centre - 9 * sd);
          hi = Math.max(hi, centre + 9 * sd);
          return;
        }
        for (const T of [tn.mean - 9 * tn.sd, tn.mean + 9 * tn.sd]) {
          const x = Math.log(h0[k]!) + head.base[m]! + head.gamma[m]! * T;
          lo = Math.min(lo, x);
          hi = Math.max(hi, x);
        }
      });
    }
    lo -= 1e-9;
    hi += 1e-9;
    if (sigma > 0) return -Math.expm1(-Math.exp(this.#root(h0, q, lo, hi)));
    // CDF(x) = 1 − P(log H ≥ x) is non-decreasing: the smallest x with CDF(x) ≥ q, to 1e-7 on the log scale (a
    // relative 1e-7 in the hazard, far below the 0.1-point rounding of a shown risk).
    while (hi - lo > 1e-7) {
      const mid = (lo + hi) / 2;
      if (1 - this.#tail(h0, mid) >= q) hi = mid;
      else lo = mid;
    }
    return -Math.expm1(-Math.exp((lo + hi) / 2));
  }

  /**
   * σ > 0: the x in [lo, hi] with CDF(x) = q, to the same 1e-7 bracket on the log scale as the bisection. With u the
   * CDF is continuous and smooth, so the Illinois variant of regula falsi (the end kept twice has its value halved)
   * gets there in about a third of the bisection's evaluations, each costing a bivariate normal for MOF; a step
   * never lands closer than a quarter of the tolerance to an end, so the bracket always shrinks.
   */
  #root(h0: readonly number[], q: number, lo: number, hi: number): number {
    const tol = 1e-7;
    // On the logit scale of the CDF (monotone: the same root), which is nearly linear in x near a normal's centre and
    // grows only quadratically in its tails, where the CDF itself is flat.
    const target = Math.log(q) - Math.log1p(-q);
    const f = (x: number): number => {
      const tail = this.#tail(h0, x);
      return Math.log(Math.max(1 - tail, 1e-16)) - Math.log(Math.max(tail, 1e-16)) - target;
    };
    let flo = f(lo);
    let fhi = f(hi);
    let kept = 0;
    while (hi - lo > tol) {
      let x = fhi > flo ? lo - (flo * (hi - lo)) / (fhi - flo) : (lo + hi) / 2;
      if (!(x >= lo + tol / 4)) x = lo + tol / 4;
      if (!(x <= hi - tol / 4)) x = hi - tol / 4;
      const fx = f(x);
      if (fx >= 0) {
        hi = x;
        fhi = fx;
        if (kept === -1) flo /= 2;
        kept = -1;
      } else {
        lo = x;
        flo = fx;
        if (kept === 1) fhi /= 2;
        kept = 1;
      }
    }
    return (lo + hi) / 2;
  }

  /** Mixture mean of the risk at t (Gauss-Hermite over each member's T-score). */
  meanRisk(t: number): number {
    return this.#mean(this.#baselines(t));
  }

  /** P(risk at t ≥ r) under the mixture (exact: a sum of normal tails; header). */
  probabilityAtLeast(t: number, r: number): number {
    if (!(r > 0)) return 1;
    if (!(r < 1)) return 0;
    return this.#tail(this.#baselines(t), Math.log(-Math.log1p(-r)));
  }

  /** The q-quantile of the risk at t (bisection on the mixture CDF, to 1e-7 on the log cumulative hazard). */
  quantile(t: number, q: number): number {
    return this.#quantile(this.#baselines(t), q);
  }

  /** Risk (mixture mean) with its 95 % interval (2.5 / 97.5 percentiles) at t. */
  riskAt(t: number): RiskWithInterval {
    const h0 = this.#baselines(t);
    return { years: t, risk: this.#mean(h0), lower: this.#quantile(h0, 0.025), upper: this.#quantile(h0, 0.975) };
  }

  /** Survival curve with its 95 % band on the own head's grid (lower = pessimistic, as survival.ts). */
  curve(): CurvePoint[] {
    return this.#heads[0]!.grid.map((t) => {
      const r = this.riskAt(t);
      return { years: t, survival: 1 - r.risk, lower: 1 - r.upper, upper: 1 - r.lower };
    });
  }

  /**
   * Mean and sd of the own head's log-hazard over the mixture (members × nodes); with σ > 0 the mean moves by −σ²/2
   * and the variance grows by σ² (u is independent of T).
   */
  logHazardSpread(): { mean: number; sd: number } {
    const own = this.#heads[0]!;
    const M = this.#tscore.length;
    let s = 0;
    let ss = 0;
    for (let m = 0; m < M; m++) {
      const tn = this.#tscore[m]!;
      this.#rule.nodes.forEach((x, j) => {
        const eta = own.base[m]! + own.gamma[m]! * (tn.mean + tn.sd * x);
        const w = this.#rule.weights[j]! / M;
        s += w * eta;
        ss += w * eta * eta;
      });
    }
    if (this.#sigma > 0) return { mean: s - (this.#sigma * this.#sigma) / 2, sd: Math.sqrt(Math.max(0, ss - s * s) + this.#sigma * this.#sigma) };
    return { mean: s, sd: Math.sqrt(Math.max(0, ss - s * s)) };
  }

  /**
   * True when the floor (hip for MOF) raised some number of `composite` — this outcome's curve as {@link curve} gave
   * it: a point estimate or bound above the own head's alone by more than 1e-7 in risk. A floor that binds only at
   * T-score nodes of negligible weight changes no number and does not count.
   */
  floorRaised(composite: readonly CurvePoint[]): boolean {
    if (this.#heads.length < 2) return false;
    const alone = new MediatedOutcome([this.#heads[0]!], this.#tscore, this.#rule.nodes.length, { unmeasuredLogHazardSd: this.#sigma });
    return alone.curve().some((p, i) => {
      const c = composite[i]!;
      return p.survival - c.survival > 1e-7 || p.lower - c.lower > 1e-7 || p.upper - c.upper > 1e-7;
    });
  }
}

/** The T-score predictive mixture as one summary: mean, sd and 95 % interval (2.5 / 97.5 percentiles; bisection). */
export function tscoreSummary(tscore: readonly TscoreNormal[]): { mean: number; sd: number; low: number; high: number } {
  const M = tscore.length;
  const mean = tscore.reduce((a, t) => a + t.mean, 0) / M;
  const variance = tscore.reduce((a, t) => a + t.sd ** 2 + (t.mean - mean) ** 2, 0) / M;
  const cdf = (x: number): number => tscore.reduce((a, t) => a + (t.sd > 0 ? 1 - normalUpperTail((x - t.mean) / t.sd) : t.mean <= x ? 1 : 0), 0) / M;
  const q = (p: number): number => {
    let lo = Math.min(...tscore.map((t) => t.mean - 10 * t.sd)) - 1;
    let hi = Math.max(...tscore.map((t) => t.mean + 10 * t.sd)) + 1;
    for (let i = 0; i < 80 && hi - lo > 1e-9; i++) {
      const mid = (lo + hi) / 2;
      if (cdf(mid) >= p) hi = mid;
      else lo = mid;
    }
    return (lo + hi) / 2;
  };
  return { mean, sd: Math.sqrt(variance), low: q(0.025), high: q(0.975) };
}
