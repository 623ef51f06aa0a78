/**
 * One hook call from request to cards: when to speak, the deadline, and the card.
 *
 * Deadline: the answer leaves within the budget whatever the FHIR server or PACS do.
 * 1. An identical recent request is answered from memory (no I/O).
 * 2. Otherwise the full assessment starts, and next to it the clinical-only estimate (both read the chart through
 *    one memoised {@link HookFhirSource}, so the chart is read once).
 * 3. At the deadline: the full assessment if it finished; else the clinical-only estimate ("image analysis in
 *    progress") if the chart could be read; else no card. The full assessment keeps running in the background and
 *    is cached by the risk service, so the next call is answered from it.
 * 4. Existing care (open FLS referral, DXA, treatment) is read next to the assessment and waited for only until
 *    the same deadline; when it is not known by then, the card says so and suggests no order.
 * @see https://cds-hooks.hl7.org/2.0/#http-response
 */
import type { ServiceRequest } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import type { OrderCategory, OrderCodeIndex } from '../fhir/conceptmaps.ts';
import { hashPatientId, type Logger } from '../logging.ts';
import { IMAGING_CATEGORY, isDxaOrder, isFlsReferral } from '../orders/service-requests.ts';
import type { Assessment, Tier } from '../risk/assess.ts';
import type { RiskService } from '../risk/service.ts';
import type { CareStatus } from '../orders/care-status.ts';
import { ctOf } from './ct-words.ts';
import { buildCard, type CardKind, type CareKnowledge, type DecidedAssessment } from './cards.ts';
import type { CardLogStore } from '../state/types.ts';
import type { Card, HookRequest, ServiceDefinition } from './types.ts';

/**
 * Order categories (CodeSystem `frcds-imaging-order-category`) of the studies the hip radiograph model reads: hip and
 * pelvis radiographs. An order in one of them is "an ordered hip X-ray" on the card.
 */
export const HIP_RADIOGRAPH_CATEGORIES: ReadonlySet<OrderCategory> = new Set(['hip-xray', 'pelvis-xray']);

/**
 * Order categories of the CTs the CT spine pathway reads (L1 in the usual field): chest, abdomen, abdomen-pelvis and
 * thoracic or lumbar spine CT. A pelvis or hip CT rarely reaches L1, so it is not one of them.
 */
export const CT_SPINE_CATEGORIES: ReadonlySet<OrderCategory> = new Set(['ct-chest', 'ct-abdomen', 'ct-abdomen-pelvis', 'thoracic-spine-ct', 'lumbar-spine-ct']);

/** Order categories that make a draft count as "already has a DXA" (VFA is done on the DXA scanner, in the same visit). */
export const DXA_CATEGORIES: ReadonlySet<OrderCategory> = new Set(['dxa', 'vfa']);

/** What a free-text order name says when it is imaging: modality words (radiograph, CT, DXA, MRI, ...). */
const IMAGING_TEXT = /\b(x-?rays?|xr|radiograph\w*|radiolog\w*|ct|cat scan|computed tomography|tomograph\w*|dxa|dexa|densitometry|bone density|mri|imaging)\b/i;

const TIER_RANK: Record<Tier, number> = { low: 0, moderate: 1, high: 2 };

export interface HookSettings {
  publicBaseUrl: string;
  deadlineMs: number;
  orderMinTier: Tier;
  patientViewMinTier: Tier;
}

export interface OrderFacts {
  /** The orders the hook reacts to: those with an order category (see {@link orderFacts}). */
  imaging: ServiceRequest[];
  /** Their categories. */
  categories: OrderCategory[];
  /** One of them is a study the hip radiograph model reads ({@link HIP_RADIOGRAPH_CATEGORIES}). */
  hipXray: boolean;
  /** One of them is a CT the CT spine pathway reads ({@link CT_SPINE_CATEGORIES}). */
  ctSpine: boolean;
  /** Some draft (selected or not) is already a DXA or VFA. */
  dxa: boolean;
  /** Some draft is already an FLS referral. */
  fls: boolean;
  /** Orders the hook would look at that look like imaging but carry no coding (only `code.text`): no card, logged. */
  uncoded: number;
}

/** True for an order with no usable coding whose category or text says imaging. */
function uncodedImaging(r: ServiceRequest): boolean {
  if ((r.code?.coding ?? []).some((c) => c.system && c.code)) return false;
  const imagingCategory = (r.category ?? []).some((cc) => (cc.coding ?? []).some((c) => c.system === IMAGING_CATEGORY.system && c.code === IMAGING_CATEGORY.code));
  return imagingCategory || IMAGING_TEXT.test(r.code?.text ?? '');
}

/**
 * The imaging orders a hook should react to: order-sign → all drafts; order-select → the selected drafts only. An
 * order is imaging when ANY of its codings (CPT, LOINC, SNOMED CT, a site's local code) has an order category in
 * the ConceptMaps (`fhir-profiles/conceptmaps/`, plus `ORDER_CODE_MAPS_DIR`).
 */
export function orderFacts(req: HookRequest, orderCodes: OrderCodeIndex): OrderFacts {
  const all = (req.context.draftOrders?.entry ?? []).map((e) => e.resource).filter((r): r is ServiceRequest => r?.resourceType === 'ServiceRequest');
  const selected = req.hook === 'order-select' ? all.filter((r) => (req.context.selections ?? []).includes(`ServiceRequest/${r.id}`)) : all;
  const categoriesOf = (r: ServiceRequest): Set<OrderCategory> => orderCodes.categoriesOf(r.code?.coding);
  const imaging = selected.filter((r) => categoriesOf(r).size > 0);
  const categories = [...new Set(imaging.flatMap((r) => [...categoriesOf(r)]))];
  return {
    imaging,
    categories,
    hipXray: categories.some((c) => HIP_RADIOGRAPH_CATEGORIES.has(c)),
    ctSpine: categories.some((c) => CT_SPINE_CATEGORIES.has(c)),
    dxa: all.some((r) => isDxaOrder(r) || [...categoriesOf(r)].some((c) => DXA_CATEGORIES.has(c))),
    fls: all.some((r) => isFlsReferral(r)),
    uncoded: selected.filter(uncodedImaging).length,
  };
}

export type Outcome =
  | { kind: 'assessment'; assessment: Assessment; retrievable: boolean; riskAssessmentRef?: string; source: 'peek' | 'memo' | 'cache' | 'new' }
  | { kind: 'clinical-in-progress'; assessment: Assessment }
  | { kind: 'none'; reason: 'deadline' };

const settle = <T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));

/**
 * Assesses within the deadline (`deadlineAt`, a `performance.now()` time). Throws what the chart read throws
 * (FHIR errors, {@link PrefetchUnavailableError}, FactorError) when that is known before the deadline.
 */
export async function assessWithin(risk: RiskService, patientId: string, fhir: FhirDataSource, deadlineAt: number, logger: Logger): Promise<Outcome> {
  const req = { patientId };
  const peeked = risk.peek(req, { fhir });
  if (peeked) return { kind: 'assessment', assessment: peeked.assessment, retrievable: true, ...(peeked.writeBack?.written ? { riskAssessmentRef: `RiskAssessment/${peeked.fhir.riskAssessment.id}` } : {}), source: 'peek' };

  const t0 = performance.now();
  const full = settle(risk.assess(req, { fhir }));
  const clinical = settle(risk.clinicalEstimate(req, { fhir }));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), Math.max(0, deadlineAt - performance.now()));
  });
  const first = await Promise.race([full, deadline]);
  if (first !== 'deadline') {
    clearTimeout(timer);
    if (!first.ok) throw first.error;
    const s = first.value.stored;
    return { kind: 'assessment', assessment: s.assessment, retrievable: true, ...(s.writeBack?.written ? { riskAssessmentRef: `RiskAssessment/${s.fhir.riskAssessment.id}` } : {}), source: first.value.source };
  }
  // Past the deadline: the full assessment finishes in the background and lands in the risk service's cache.
  const log = logger.child({ patient: hashPatientId(patientId) });
  void full.then((r) => {
    if (r.ok) log.info({ ms: Math.round(performance.now() - t0), mode: r.value.stored.assessment.mode }, 'cds: background assessment finished; cached for the next call');
    else log.warn({ err: (r.error as Error).message }, 'cds: background assessment failed');
  });
  const c = await Promise.race([clinical, Promise.resolve('pending' as const)]);
  if (c !== 'pending' && c.ok) return { kind: 'clinical-in-progress', assessment: c.value.assessment };
  if (c !== 'pending' && !c.ok) throw c.error;
  return { kind: 'none', reason: 'deadline' };
}

/**
 * How long an order-select card counts as "on the order screen": an order-sign call for the same patient, user and
 * risk within this time answers no card, so the same risk is not shown twice while one order is placed.
 */
export const ORDER_SESSION_MS = 30 * 60_000;

export interface SpeakInput {
  service: ServiceDefinition;
  outcome: Exclude<Outcome, { kind: 'none' }>;
  settings: HookSettings;
  store: CardLogStore;
  /** Where the chart came from (patient ids are only unique per FHIR server). */
  sourceId: string;
  patientId: string;
  /** `context.userId` of the call (order-sign is silent when the same user saw the same risk at order-select). */
  userId?: string;
  /** For the order session (default: now). */
  now?: Date;
}

/** What identifies "the same risk" between order-select and order-sign: the assessment, and whether it is provisional. */
const riskKeyOf = (o: SpeakInput['outcome']): string => `${o.kind}|${o.assessment.cacheKey}`;

/**
 * When to speak: order hooks at or above `orderMinTier` — except order-sign right after an order-select card with
 * the same risk for the same user and patient (one card per order screen); patient-view at or above
 * `patientViewMinTier`, or with news since it last spoke for this patient (tier changed, or the radiograph-based
 * result arrived after a clinical-only one). A moderate or severe vertebral fracture on CT (`ct.imminentRisk`)
 * warrants action whatever the tier, so it passes both tier gates. Records what patient-view and order-select said.
 */
export async function shouldSpeak(x: SpeakInput): Promise<boolean> {
  const a = x.outcome.assessment;
  const tier = a.tier.tier;
  const imminent = ctOf(a)?.imminentRisk ?? false;
  if (x.service.hook !== 'patient-view') {
    if (TIER_RANK[tier] < TIER_RANK[x.settings.orderMinTier] && !imminent) return false;
    const now = x.now ?? new Date();
    const user = x.userId ?? '';
    if (x.service.hook === 'order-sign' && await x.store.orderCardShownSince(x.sourceId, x.patientId, user, riskKeyOf(x.outcome), new Date(now.getTime() - ORDER_SESSION_MS))) return false;
    if (x.service.hook === 'order-select') await x.store.recordOrderCard(x.sourceId, x.patientId, user, riskKeyOf(x.outcome), now);
    return true;
  }
  const key = x.outcome.kind === 'clinical-in-progress' ? `in-progress|${tier}` : a.cacheKey;
  const last = await x.store.lastSpoken(x.service.id, x.sourceId, x.patientId);
  const news = !!last && last.assessmentKey !== key && (last.tier !== tier || (last.mode !== a.mode && a.mode === 'image-and-clinical'));
  const speak = TIER_RANK[tier] >= TIER_RANK[x.settings.patientViewMinTier] || imminent || news;
  if (speak) await x.store.recordSpoken(x.service.id, x.sourceId, x.patientId, { assessmentKey: key, tier, mode: a.mode });
  return speak;
}

/** The one card of a hook call (or none): CDS Hooks cards per context, never two copies of the same risk. */
export async function cardsFor(x: SpeakInput & { req: HookRequest; facts?: OrderFacts; unavailable: readonly string[]; care: CareKnowledge }): Promise<Card[]> {
  if (!(await shouldSpeak(x))) return [];
  const o = x.outcome;
  const kind: CardKind = o.kind;
  const built = buildCard({
    assessment: o.assessment as DecidedAssessment,
    kind,
    context: x.req.context,
    publicBaseUrl: x.settings.publicBaseUrl,
    retrievable: o.kind === 'assessment' && o.retrievable,
    ...(o.kind === 'assessment' && o.riskAssessmentRef ? { riskAssessmentRef: o.riskAssessmentRef } : {}),
    orderedHipXray: x.facts?.hipXray ?? false,
    orderedCt: x.facts?.ctSpine ?? false,
    draftHasDxa: x.facts?.dxa ?? false,
    draftHasFls: x.facts?.fls ?? false,
    unavailable: x.unavailable,
    care: x.care,
    ...(x.now ? { now: x.now } : {}),
  });
  await x.store.recordCard({ uuid: built.card.uuid!, serviceId: x.service.id, patientId: x.patientId, tier: o.assessment.tier.tier, mode: o.assessment.mode, kind, assessmentId: o.assessment.id, suggestions: built.suggestionIds });
  return [built.card];
}

/**
 * Existing care read within the deadline (`deadlineAt`, a `performance.now()` time): the status if `pending` settles
 * in time, else "not known" (the read is aborted). A failed read is "not known" too: the card then says it could not
 * check, rather than suggest an order that may already exist.
 */
export async function careWithin(pending: Promise<CareStatus>, deadlineAt: number, abort?: AbortController): Promise<{ care: CareKnowledge; outcome: 'read' | 'timeout' | 'failed'; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), Math.max(0, deadlineAt - performance.now()));
  });
  const r = await Promise.race([pending.then((status) => ({ ok: true as const, status }), (error: unknown) => ({ ok: false as const, error })), late]);
  clearTimeout(timer);
  if (r === 'late') {
    abort?.abort();
    return { care: { known: false, reason: 'timeout' }, outcome: 'timeout' };
  }
  return r.ok ? { care: { known: true, status: r.status }, outcome: 'read' } : { care: { known: false, reason: 'failed' }, outcome: 'failed', error: r.error };
}
