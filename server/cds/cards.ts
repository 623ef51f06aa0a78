/**
 * Builds the CDS Hooks card for an assessment (CDS Hooks 2.0 §Card Attributes): a summary under 140 characters,
 * an indicator by tier, a Markdown detail (MOF risk, top factors, model and version, the research-use notice,
 * warnings in plain words), a source linking the model card, FLS-referral and DXA suggestions as `create` actions
 * of profiled ServiceRequests, override reasons, and links to the SMART app and the model card.
 *
 * Indicator: `warning` for the high tier, `info` otherwise. `critical` is never used: some EHRs show it as a
 * blocking pop-up, and a research tool trained on synthetic data must not interrupt an order.
 * @see https://cds-hooks.hl7.org/2.0/#card-attributes
 */
import { randomUUID } from 'node:crypto';
import type { Coding } from '@medplum/fhirtypes';
import { dxaOrder, flsReferral } from '../orders/service-requests.ts';
import type { Assessment, Tier } from '../risk/assess.ts';
import type { Card, HookContext, Indicator, Link, Suggestion } from './types.ts';

export const RESEARCH_NOTICE = 'Research use — trained on synthetic data';
export const SUMMARY_MAX = 139;

/** Override reasons: the CDS Hooks 3.0-ballot non-adherence categories plus this product's domain reasons. */
export const NON_ADHERENCE = 'http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes';
export const FRCDS_OVERRIDE = 'https://fracture-risk-cds.invalid/fhir/CodeSystem/frcds-override-reasons';
export const OVERRIDE_REASONS: readonly Coding[] = Object.freeze([
  { system: FRCDS_OVERRIDE, code: 'already-on-treatment', display: 'Already on osteoporosis treatment' },
  { system: FRCDS_OVERRIDE, code: 'recent-dxa', display: 'DXA done or booked recently' },
  { system: FRCDS_OVERRIDE, code: 'fls-already-involved', display: 'Already under the fracture liaison service' },
  { system: NON_ADHERENCE, code: 'cds-not-applicable', display: 'PC CDS does not apply to patient' },
  { system: NON_ADHERENCE, code: 'recipient-disagrees-evidence', display: 'Recipient disagrees with recommendation because of issues with the evidence' },
  { system: NON_ADHERENCE, code: 'does-not-align-preferences', display: 'Recommendation does not align with patient preferences or values' },
]);

export type CardKind = 'assessment' | 'clinical-in-progress';

export interface CardInput {
  assessment: Assessment;
  kind: CardKind;
  context: HookContext;
  publicBaseUrl: string;
  /** True when `/api/assessments/{id}` can serve this assessment (the SMART app may open it). */
  retrievable: boolean;
  /** `RiskAssessment/<id>` when it was written to the EHR's FHIR server (then the orders may point at it). */
  riskAssessmentRef?: string;
  /** The draft orders include a hip/pelvis radiograph (order hooks). */
  orderedHipXray?: boolean;
  draftHasDxa?: boolean;
  draftHasFls?: boolean;
  /** Data the EHR did not let the service see (optional prefetch keys). */
  unavailable?: readonly string[];
}

export interface BuiltCard {
  card: Card;
  suggestionIds: { fls?: string; dxa?: string };
}

/** "14%", "4.2%", "0.6%": one decimal below 10 %. */
export function pct(p: number): string {
  const v = p * 100;
  return v >= 10 ? `${Math.round(v)}%` : `${(Math.round(v * 10) / 10).toFixed(1)}%`;
}

const range = (lo: number, hi: number): string => `${pct(lo).replace('%', '')}–${pct(hi)}`;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** "2 Mar 2026" from an ISO date(-time). */
export function shortDate(iso: string): string {
  const [y, m, d] = iso.slice(0, 10).split('-').map(Number) as [number, number, number];
  return `${d} ${MONTHS[m - 1]} ${y}`;
}

const r10 = (a: Assessment, o: 'hip' | 'mof') => a.outcomes[o].risks.find((r) => r.years === 10)!;

export function indicatorFor(tier: Tier): Indicator {
  return tier === 'high' ? 'warning' : 'info';
}

/** The card summary (always under 140 characters). */
export function summaryOf(input: CardInput): string {
  const a = input.assessment;
  const hip = r10(a, 'hip');
  let s: string;
  if (a.mode === 'image-and-clinical' && hip.lower !== null && hip.upper !== null) {
    s = `10-yr hip fracture risk ${pct(hip.risk)} (95% CI ${range(hip.lower, hip.upper)}) from hip X-ray${a.study?.started ? ` ${shortDate(a.study.started)}` : ''}`;
  } else {
    s = `10-yr hip fracture risk ${pct(hip.risk)} from clinical factors only`;
    if (input.kind === 'clinical-in-progress') s += '; X-ray analysis in progress';
    else if (a.ood?.outside) s += '; X-ray outside model range';
    else if (input.orderedHipXray && !a.study) s += '; ordered X-ray will be assessed';
  }
  return s.length <= SUMMARY_MAX ? s : `${s.slice(0, SUMMARY_MAX - 1)}…`;
}

function factorLine(a: Assessment): string {
  const top = a.outcomes.hip.contributions.filter((c) => c.qfracture > 0).slice(0, 3);
  if (top.length === 0) return 'No factor raises the risk above the reference profile.';
  return top.map((c) => (c.factor === 'age' ? `age ${c.value}` : c.factor === 'bmi' ? `BMI ${c.value.toFixed(1)}` : c.label.toLowerCase())).join(', ');
}

/** The card detail (GitHub-flavoured Markdown). */
export function detailOf(input: CardInput): string {
  const a = input.assessment;
  const hip = r10(a, 'hip');
  const mof = r10(a, 'mof');
  const withCi = (r: typeof hip): string => (r.lower !== null && r.upper !== null ? `${pct(r.risk)} (95% CI ${range(r.lower, r.upper)})` : `${pct(r.risk)} (clinical factors only, no interval)`);
  const basis = a.mode === 'image-and-clinical'
    ? `hip radiograph${a.study?.started ? ` of ${shortDate(a.study.started)}` : ''} + clinical factors (QFracture-2012)`
    : 'clinical factors only (QFracture-2012)';
  const lines = [
    `**10-year fracture risk** — ${basis}`,
    '',
    `- Hip fracture: **${withCi(hip)}**`,
    `- Major osteoporotic fracture: **${withCi(mof)}**`,
    `- Tier: **${a.tier.tier}** (${a.tier.rule.replace(/ \(thresholds.*\)$/, '')})`,
    '',
    `**Main factors raising the risk:** ${factorLine(a)}.`,
  ];
  const warnings: string[] = [];
  if (input.kind === 'clinical-in-progress') warnings.push('The radiograph is still being analysed; this estimate uses clinical factors only. Open the chart again shortly for the radiograph-based estimate.');
  if (input.orderedHipXray && !a.study && !a.ood && input.kind === 'assessment') {
    warnings.push('There is no earlier eligible hip radiograph: the one being ordered will be assessed when its report is final.');
  }
  for (const w of a.warnings) if (!(input.kind === 'clinical-in-progress' && w.startsWith('Image analysis in progress'))) warnings.push(w);
  if (input.unavailable && input.unavailable.length > 0) warnings.push(`The EHR did not share ${input.unavailable.join(' or ')}; the estimate is made without them.`);
  if (warnings.length > 0) lines.push('', '**Please note:**', ...warnings.map((w) => `- ${w}`));
  lines.push('', `Model: ${a.model.id} ${a.model.version}${a.mode === 'clinical-only' ? ' (not applied: clinical-only estimate)' : ''}; QFracture-2012 © ClinRisk Ltd.`, '', `_${RESEARCH_NOTICE}. Not for clinical decisions._`);
  return lines.join('\n');
}

export function modelCardUrl(base: string, modelId: string): string {
  return `${base}/models/${encodeURIComponent(modelId)}/card`;
}

/** Builds the card; `suggestionIds` are the uuids feedback will name when a suggestion is accepted. */
export function buildCard(input: CardInput): BuiltCard {
  const a = input.assessment;
  const ctx = input.context;
  const tier = a.tier.tier;
  const summary = summaryOf(input);
  const requesterRef = /^(Practitioner|PractitionerRole)\/[A-Za-z0-9\-.]{1,64}$/.test(ctx.userId) ? ctx.userId : undefined;
  const common = {
    patientId: ctx.patientId,
    reason: summary,
    note: `${RESEARCH_NOTICE}.`,
    ...(requesterRef ? { requesterRef } : {}),
    ...(ctx.encounterId ? { encounterRef: `Encounter/${ctx.encounterId}` } : {}),
    ...(input.riskAssessmentRef ? { riskAssessmentRef: input.riskAssessmentRef } : {}),
  };
  const suggestions: Suggestion[] = [];
  const ids: BuiltCard['suggestionIds'] = {};
  if (!input.draftHasFls) {
    ids.fls = randomUUID();
    suggestions.push({
      label: 'Refer to fracture liaison service',
      uuid: ids.fls,
      isRecommended: tier === 'high',
      actions: [{ type: 'create', description: 'Create a referral to the fracture liaison service', resource: flsReferral(common) }],
    });
  }
  if (!input.draftHasDxa) {
    ids.dxa = randomUUID();
    suggestions.push({
      label: 'Order DXA',
      uuid: ids.dxa,
      isRecommended: tier !== 'low',
      actions: [{ type: 'create', description: 'Order a DXA bone density scan', resource: dxaOrder(common) }],
    });
  }
  const cardUrl = modelCardUrl(input.publicBaseUrl, a.model.id);
  const appContext = JSON.stringify(input.retrievable ? { assessmentId: a.id, patientId: ctx.patientId } : { patientId: ctx.patientId });
  const links: Link[] = [
    { label: 'Open fracture risk details (SMART app)', url: `${input.publicBaseUrl}/app/launch.html`, type: 'smart', appContext },
    { label: `Model card: ${a.model.id} ${a.model.version}`, url: cardUrl, type: 'absolute' },
  ];
  const card: Card = {
    uuid: randomUUID(),
    summary,
    detail: detailOf(input),
    indicator: indicatorFor(tier),
    source: {
      label: 'Fracture Risk CDS (research use)',
      url: cardUrl,
      topic: { system: 'https://fracture-risk-cds.invalid/fhir/CodeSystem/frcds-card-topics', code: 'fracture-risk-10y', display: '10-year fracture risk' },
    },
    ...(suggestions.length > 0 ? { suggestions, selectionBehavior: 'any' as const } : {}),
    overrideReasons: OVERRIDE_REASONS.map((c) => ({ ...c })),
    links,
  };
  return { card, suggestionIds: ids };
}
