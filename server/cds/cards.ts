/**
 * Builds the CDS Hooks card for an assessment (CDS Hooks 2.0 §Card Attributes). A card has to earn the clinician's
 * attention, so it says three things and links the rest:
 *
 * - summary (< 140 characters): the tier and the 10-year hip risk with its 95% interval;
 * - detail, at most three short lines: what the risk means against the treatment threshold (the decision's
 *   sentence, with the probability) and the MOF risk; the main reasons in plain words; what to do — or what is
 *   already in place (an open FLS referral, a DXA order or recent result, current treatment). Then the single most
 *   important caveat, if any, and the research-use notice;
 * - everything else (model and version, QFracture copyright, the tier rule, interval-width notes, defaults used for
 *   missing factors) is behind the SMART app link and the model card link.
 *
 * Indicator: `warning` only when the decision says action is warranted and that action is not already under way;
 * `info` otherwise. `critical` is never used: some EHRs show it as a blocking pop-up, and a research tool trained on
 * synthetic data must not interrupt an order.
 *
 * Suggestions follow the decision's action: "Refer to fracture liaison service" for `refer-fls`, "Order DXA" for
 * `order-dxa`, none for a low risk — and none that would duplicate existing care, or when existing care could not
 * be checked in time (the card says so instead).
 *
 * A CT assessment (`Assessment.ct`) adds one sentence of what the CT showed (ct-words.ts). A moderate or severe
 * prevalent vertebral fracture (`ct.imminentRisk`) warrants an FLS referral whatever the tier — it is itself an
 * indication for assessment and treatment — and, when the problem list does not record it, a suggestion to add a
 * provisional problem-list entry that the clinician confirms by accepting it (never written by the service).
 * An order for a CT the CT pathway reads says the CT will be assessed when reported.
 * @see https://cds-hooks.hl7.org/2.0/#card-attributes
 */
import { randomUUID } from 'node:crypto';
import type { Coding } from '@medplum/fhirtypes';
import type { CareStatus } from '../orders/care-status.ts';
import { dxaOrder, flsReferral } from '../orders/service-requests.ts';
import type { Assessment, OutcomeResult, Tier } from '../risk/assess.ts';
import type { Decision } from '../risk/decision.ts';
import { formatBmi, formatRiskWithInterval, tscoreText } from '../risk/numbers.ts';
import { ctFindingsSentence, ctOf, imminentReasonOf, problemListCondition, suggestsProblemListEntry } from './ct-words.ts';
import type { Card, HookContext, Indicator, Link, Suggestion } from './types.ts';

export const RESEARCH_NOTICE = 'Research use — trained on synthetic data';
export const SUMMARY_MAX = 139;

/** `source.topic` of every fracture-risk card: an EHR can tell two cards about the same thing apart from others. */
export const CARD_TOPIC: Readonly<Coding> = Object.freeze({ system: 'https://fracture-risk-cds.invalid/fhir/CodeSystem/frcds-card-topics', code: 'fracture-risk-10y', display: '10-year fracture risk' });

/**
 * Override reasons: this product's domain reasons plus categories of the CDS Hooks 3.0-ballot non-adherence code
 * system. The displays are what the clinician reads in the dismiss dialog, so they are plain sentences (ValueSet
 * `cds-override-reasons` carries the same displays for this context).
 */
export const NON_ADHERENCE = 'http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes';
export const FRCDS_OVERRIDE = 'https://fracture-risk-cds.invalid/fhir/CodeSystem/frcds-override-reasons';
export const OVERRIDE_REASONS: readonly Coding[] = Object.freeze([
  { system: FRCDS_OVERRIDE, code: 'already-on-treatment', display: 'Already on osteoporosis treatment' },
  { system: FRCDS_OVERRIDE, code: 'recent-dxa', display: 'DXA done or booked recently' },
  { system: FRCDS_OVERRIDE, code: 'fls-already-involved', display: 'Already under the fracture liaison service' },
  { system: NON_ADHERENCE, code: 'cds-not-applicable', display: 'Does not apply to this patient' },
  { system: NON_ADHERENCE, code: 'recipient-disagrees-evidence', display: 'I disagree with the evidence behind this advice' },
  { system: NON_ADHERENCE, code: 'does-not-align-preferences', display: "Not in line with the patient's wishes" },
]);

/**
 * A DXA result younger than this makes a new scan unnecessary for the card: repeat DXA within two years rarely
 * changes management (BHOF and NOGG advise repeat scanning at 2 years at the earliest for most patients).
 */
export const DXA_RECENT_DAYS = 730;

export type CardKind = 'assessment' | 'clinical-in-progress';

/** An assessment with the decision and caveat the risk engine attaches (contract B). */
export type DecidedAssessment = Assessment & { decision: Decision; caveat: string | null };

/** Existing care as the card knows it: read in time, or not (then the card says so and suggests nothing). */
export type CareKnowledge = { known: true; status: CareStatus } | { known: false; reason: 'timeout' | 'failed' };

export interface CardInput {
  assessment: DecidedAssessment;
  kind: CardKind;
  context: HookContext;
  publicBaseUrl: string;
  /** True when `/api/assessments/{id}` can serve this assessment (the SMART app may open it). */
  retrievable: boolean;
  /** `RiskAssessment/<id>` when it was written to the EHR's FHIR server (then the orders may point at it). */
  riskAssessmentRef?: string;
  /** The draft orders include a hip/pelvis radiograph (order hooks). */
  orderedHipXray?: boolean;
  /** The draft orders include a chest/abdomen/spine CT the CT spine pathway reads (order hooks). */
  orderedCt?: boolean;
  draftHasDxa?: boolean;
  draftHasFls?: boolean;
  /** Data the EHR did not let the service see (optional prefetch keys). */
  unavailable?: readonly string[];
  /** Existing referrals, DXA and treatment. */
  care: CareKnowledge;
  /** For "recent" DXA (default: now). */
  now?: Date;
}

export interface BuiltCard {
  card: Card;
  suggestionIds: { fls?: string; dxa?: string; problemList?: string };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** "2 Mar 2026" from an ISO date(-time). */
export function shortDate(iso: string): string {
  const [y, m, d] = iso.slice(0, 10).split('-').map(Number) as [number, number, number];
  return `${d} ${MONTHS[m - 1]} ${y}`;
}

const r10 = (a: Assessment, o: 'hip' | 'mof'): OutcomeResult['risks'][number] => a.outcomes[o].risks.find((r) => r.years === 10)!;
const riskText = (r: OutcomeResult['risks'][number]): string => formatRiskWithInterval(r.risk, r.lower, r.upper);
const TIER_WORD: Record<Tier, string> = { high: 'High', moderate: 'Moderate', low: 'Low' };

/** Words of a Markdown text as a reader counts them (markup and lone punctuation removed). */
export function wordCount(markdown: string): number {
  return markdown.replace(/[*_`#>[\]()]/g, ' ').split(/\s+/).filter((w) => /[\p{L}\p{N}]/u.test(w)).length;
}

/** What the card says about existing care, and which suggestions that leaves. */
interface CarePlan {
  /** The action line (Markdown). */
  line: string;
  fls: boolean;
  dxa: boolean;
  /** The recommended action is already under way (or cannot be, like a referral for a treated patient). */
  handled: boolean;
}

function recentDxa(care: CareStatus, now: Date): CareStatus['dxaResult'] {
  const r = care.dxaResult;
  if (!r?.date) return null;
  const age = (now.getTime() - Date.parse(r.date)) / 86_400_000;
  return age <= DXA_RECENT_DAYS ? r : null;
}

const tScoreText = (t: number | null): string => (t === null ? '' : ` (T-score ${t.toFixed(1).replace('-', '−')})`);
const since = (d: string | null, word = 'since'): string => (d ? ` ${word} ${shortDate(d)}` : '');
const REFERRAL_STATE: Record<string, string> = { active: 'active', 'on-hold': 'on hold', draft: 'drafted' };

/** The action line and suggestions, from the decision's action and the care already in place. */
export function carePlan(input: CardInput): CarePlan {
  const action = ctOf(input.assessment)?.imminentRisk ? 'refer-fls' : input.assessment.decision.action;
  const now = input.now ?? new Date();
  if (input.draftHasFls) return { line: 'An FLS referral is among the orders being placed.', fls: false, dxa: false, handled: true };
  if (!input.care.known) {
    if (action === 'none') return { line: 'No action needed now.', fls: false, dxa: false, handled: false };
    const what = action === 'refer-fls' ? 'an FLS referral' : 'a DXA';
    return { line: `Existing referrals, DXA and treatment could not be checked${input.care.reason === 'timeout' ? ' in time' : ''}: check the chart before ordering ${what}.`, fls: false, dxa: false, handled: false };
  }
  const care = input.care.status;
  if (care.flsReferral) {
    const r = care.flsReferral;
    return { line: `FLS referral ${REFERRAL_STATE[r.status] ?? r.status}${since(r.since)} — no new referral needed.`, fls: false, dxa: false, handled: true };
  }
  if (care.treatment) {
    const t = care.treatment;
    return { line: `On ${t.name}${since(t.since)} — review treatment and adherence rather than refer.`, fls: false, dxa: false, handled: true };
  }
  const dxaOrdered = care.dxaOrder;
  const dxaDone = recentDxa(care, now);
  const dxaNote = input.draftHasDxa
    ? 'A DXA is among the orders being placed.'
    : dxaOrdered
      ? `DXA ordered${since(dxaOrdered.since, 'on')}.`
      : dxaDone
        ? `DXA done${since(dxaDone.date, 'on')}${tScoreText(dxaDone.tScore)}.`
        : null;
  if (action === 'refer-fls') {
    return { line: `**Recommended: refer to the fracture liaison service** (it arranges DXA and treatment).${dxaNote ? ` ${dxaNote}` : ''}`, fls: true, dxa: false, handled: false };
  }
  if (action === 'order-dxa') {
    if (dxaNote) return { line: `${dxaNote} No new scan needed${dxaDone && !dxaOrdered && !input.draftHasDxa ? '; review the result' : ''}.`, fls: false, dxa: false, handled: true };
    return { line: '**Recommended: order a DXA scan.**', fls: false, dxa: true, handled: false };
  }
  return { line: `No action needed now.${dxaNote ? ` ${dxaNote}` : ''}`, fls: false, dxa: false, handled: true };
}

/** `warning` only when action is warranted and not already under way; never `critical`. */
export function indicatorFor(decision: Pick<Decision, 'actionWarranted'>, handled: boolean, imminentRisk = false): Indicator {
  return (decision.actionWarranted || imminentRisk) && !handled ? 'warning' : 'info';
}

/** The card summary (always under 140 characters). */
export function summaryOf(input: CardInput): string {
  const a = input.assessment;
  const hip = r10(a, 'hip');
  let s = `${TIER_WORD[a.tier.tier]} fracture risk — 10-year hip ${riskText(hip)}`;
  if (a.mode !== 'image-and-clinical') s += input.kind === 'clinical-in-progress' ? ', clinical factors only (image analysis in progress)' : ', clinical factors only';
  return s.length <= SUMMARY_MAX ? s : `${s.slice(0, SUMMARY_MAX - 1)}…`;
}

/** Plain words for a factor that raises the risk; `raw` the value as charted (a clamped BMI says both). */
function factorWords(c: OutcomeResult['contributions'][number], raw?: number | string): string {
  if (c.factor === 'age') return `age ${c.value}`;
  if (c.factor === 'bmi') return typeof raw === 'number' && raw !== c.value ? `BMI ${formatBmi(raw)} (${c.value} used)` : `BMI ${c.value.toFixed(1)}`;
  if (c.factor === 'smoke_cat') return 'smoking';
  if (c.factor === 'alcohol_cat6') return 'alcohol intake';
  if (c.factor === 'ethrisk') return 'ethnic background';
  if (c.factor === 'b_fracture4') return 'a previous fracture';
  return c.label.charAt(0).toLowerCase() + c.label.slice(1);
}

/** The top two or three factors raising the hip risk, in plain words. */
export function reasonsOf(a: Assessment): string[] {
  return a.outcomes.hip.contributions.filter((c) => c.qfracture > 0).slice(0, 3).map((c) => factorWords(c, a.factors?.records.find((r) => r.factor === c.factor)?.raw));
}

/** A T-score-mediated model's femoral-neck T-score for the reasons line (estimate and measured DXA), or ''. */
export function tscoreReason(a: Assessment): string {
  const text = a.tscore ? tscoreText(a.tscore, shortDate) : '';
  return text ? ` Femoral-neck T-score: ${text}.` : '';
}

/** The single caveat line: the in-progress note, else the engine's caveat, else data the EHR did not share. */
function caveatOf(input: CardInput): string | null {
  // "Image", not "X-ray": the study being analysed may be a hip radiograph or a CT, and the card does not know which yet.
  if (input.kind === 'clinical-in-progress') return 'Image analysis in progress: open the chart again shortly for the image-based estimate.';
  if (input.assessment.caveat) return input.assessment.caveat;
  if (input.unavailable && input.unavailable.length > 0) return `Made without the ${input.unavailable.join(' or ')} the EHR did not share.`;
  return null;
}

/** The card detail (Markdown): three short lines, the caveat, the notice. */
export function detailOf(input: CardInput, plan: CarePlan = carePlan(input)): string {
  const a = input.assessment;
  const mof = r10(a, 'mof');
  // The summary already says "clinical factors only" when no X-ray was used; the X-ray's date is said here.
  const ct = ctOf(a);
  const basis = ct
    ? ''
    : a.mode === 'image-and-clinical' && a.study?.started
      ? ` Uses the hip X-ray of ${shortDate(a.study.started)}.`
      : input.orderedHipXray && !a.study && input.kind === 'assessment'
        ? ' The X-ray being ordered will be assessed when reported.'
        : '';
  const ctOrder = input.orderedCt && input.kind === 'assessment' ? ' The CT being ordered will be assessed for bone density and vertebral fractures when reported.' : '';
  const reasons = reasonsOf(a);
  const lines = [
    `${a.decision.meaning} Major osteoporotic fracture: ${riskText(mof)}.`,
    `${ct ? `${ctFindingsSentence(ct, a.study?.started ? shortDate(a.study.started) : undefined)} ` : ''}${reasons.length > 0 ? `Main reasons: ${reasons.join(', ')}.` : 'No single factor stands out.'}${ct ? '' : tscoreReason(a)}${basis}${ctOrder}`,
    plan.line,
  ];
  const caveat = caveatOf(input);
  if (caveat) lines.push(`⚠ ${caveat}`);
  lines.push(`_${RESEARCH_NOTICE}._`);
  return lines.join('\n\n');
}

export function modelCardUrl(base: string, modelId: string): string {
  return `${base}/models/${encodeURIComponent(modelId)}/card`;
}

/** Builds the card; `suggestionIds` are the uuids feedback will name when a suggestion is accepted. */
export function buildCard(input: CardInput): BuiltCard {
  const a = input.assessment;
  const ctx = input.context;
  const plan = carePlan(input);
  const summary = summaryOf(input);
  const requesterRef = /^(Practitioner|PractitionerRole)\/[A-Za-z0-9\-.]{1,64}$/.test(ctx.userId) ? ctx.userId : undefined;
  const hip = r10(a, 'hip');
  const ctReason = imminentReasonOf(ctOf(a));
  const common = {
    patientId: ctx.patientId,
    reason: `${ctReason ? `${ctReason.charAt(0).toUpperCase()}${ctReason.slice(1)}; 10` : '10'}-year hip fracture risk ${riskText(hip)}; ${a.decision.meaning}`,
    note: `${RESEARCH_NOTICE}.`,
    ...(requesterRef ? { requesterRef } : {}),
    ...(ctx.encounterId ? { encounterRef: `Encounter/${ctx.encounterId}` } : {}),
    ...(input.riskAssessmentRef ? { riskAssessmentRef: input.riskAssessmentRef } : {}),
  };
  const suggestions: Suggestion[] = [];
  const ids: BuiltCard['suggestionIds'] = {};
  if (plan.fls) {
    ids.fls = randomUUID();
    suggestions.push({
      label: 'Refer to fracture liaison service',
      uuid: ids.fls,
      isRecommended: true,
      actions: [{ type: 'create', description: 'Create a referral to the fracture liaison service', resource: flsReferral(common) }],
    });
  }
  if (plan.dxa) {
    ids.dxa = randomUUID();
    suggestions.push({
      label: 'Order DXA',
      uuid: ids.dxa,
      isRecommended: true,
      actions: [{ type: 'create', description: 'Order a DXA bone density scan', resource: dxaOrder(common) }],
    });
  }
  const ct = ctOf(a);
  if (ct && suggestsProblemListEntry(ct)) {
    ids.problemList = randomUUID();
    suggestions.push({
      label: `Add ${ct.worstLevel} vertebral fracture to the problem list (provisional, check the images)`,
      uuid: ids.problemList,
      isRecommended: false,
      actions: [{
        type: 'create',
        description: 'Create a provisional problem-list entry for the vertebral fracture seen on CT; you confirm it by accepting',
        resource: problemListCondition({
          patientId: ctx.patientId,
          ct,
          ...(ctx.encounterId ? { encounterRef: `Encounter/${ctx.encounterId}` } : {}),
          ...(input.riskAssessmentRef ? { riskAssessmentRef: input.riskAssessmentRef } : {}),
          note: `Measured by software on CT (${RESEARCH_NOTICE}); confirm on the images.`,
        }),
      }],
    });
  }
  const cardUrl = modelCardUrl(input.publicBaseUrl, a.model.id);
  const appContext = JSON.stringify(input.retrievable ? { assessmentId: a.id, patientId: ctx.patientId } : { patientId: ctx.patientId });
  const links: Link[] = [
    { label: 'Details, reasons and caveats (Fracture Risk app)', url: `${input.publicBaseUrl}/app/launch.html`, type: 'smart', appContext },
    { label: 'How the estimate is made (model card)', url: cardUrl, type: 'absolute' },
  ];
  if (/^https?:\/\//.test(a.decision.guideline.url)) links.push({ label: 'Where the treatment thresholds come from', url: a.decision.guideline.url, type: 'absolute' });
  const card: Card = {
    uuid: randomUUID(),
    summary,
    detail: detailOf(input, plan),
    indicator: indicatorFor(a.decision, plan.handled, ct?.imminentRisk ?? false),
    source: {
      label: 'Fracture Risk CDS (research use)',
      url: cardUrl,
      topic: { ...CARD_TOPIC },
    },
    ...(suggestions.length > 0 ? { suggestions, selectionBehavior: 'any' as const } : {}),
    overrideReasons: OVERRIDE_REASONS.map((c) => ({ ...c })),
    links,
  };
  return { card, suggestionIds: ids };
}
