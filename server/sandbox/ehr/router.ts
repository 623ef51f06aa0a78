/**
 * The demo EHR (`/sandbox/ehr`, demo only: mounted when the sandbox FHIR server is on). It plays the EHR's part
 * with the real protocols: charts read over FHIR, CDS Hooks calls made from the server side (as an EHR's back end
 * makes them) with a signed JWT, cards rendered as EHRs render them, suggestions written back over FHIR, feedback
 * sent to the service, and SMART apps launched in an iframe with a launch context.
 * @see https://cds-hooks.hl7.org/2.0/
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import express, { Router, type Request, type Response } from 'express';
import type { Bundle, Condition, Patient, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../../config.ts';
import { hashPatientId, type Logger } from '../../logging.ts';
import { browserBundle, ehrCss } from './assets.ts';
import type { EhrAuthorization } from './auth.ts';
import { CardStore, renderCardList, topicKey, type ShownCard } from './cards.ts';
import { CdsCallError, CdsClient } from './cds-client.ts';
import type { CdsServiceDescriptor, FeedbackItem } from './cds-types.ts';
import { loadChart } from './chart.ts';
import { EhrFhir, EhrFhirError } from './fhir-access.ts';
import { html } from './html.ts';
import { chartPage, errorPage, patientListPage, type OrderableStudy, type PageContext } from './pages.ts';
import { assessmentForReport, finaliseReport, FinaliseError, patientsWithPendingReports } from './reports.ts';
import { createCdsClientSigner, type CdsClientSigner } from './signing.ts';

/** The demo user (engineer B seeds this Practitioner in the sandbox). */
export const DEMO_USER = { ref: 'Practitioner/demo-clinician', name: 'Dr Demo Clinician' } as const;

export interface EhrOptions {
  /** Where the EHR is mounted (`/sandbox/ehr`). */
  mountPath: string;
  /** `PUBLIC_BASE_URL`: the EHR's JWT issuer is `${publicBaseUrl}${mountPath}`, the CDS services are at `${publicBaseUrl}/cds-services`. */
  publicBaseUrl: string;
  /** FHIR base the EHR's server side calls (the sandbox over loopback). */
  fhirBaseUrl: string;
  /** FHIR base as published: sent as `fhirServer` and as the SMART `iss`. */
  fhirPublicBaseUrl: string;
  /** The SMART app's launch URL for the plain "Open Fracture Risk app" button. */
  appLaunchUrl: string;
  auth: EhrAuthorization;
  logger: Logger;
  /** How long the EHR waits for a CDS hook (default 5000 ms; EHRs drop slower services). */
  hookTimeoutMs?: number;
  fhirTimeoutMs?: number;
  /** Override the CDS services root (default `${publicBaseUrl}/cds-services`). */
  cdsServicesUrl?: string;
  signer?: CdsClientSigner;
}

export interface DemoEhr {
  router: Router;
  signer: CdsClientSigner;
  cds: CdsClient;
}

interface Draft {
  patientId: string;
  resource: ServiceRequest & { id: string };
}

const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const PAGE_SIZE = 20;

/** Study types the user can order: the imaging-order ValueSet (`fhir-profiles/valuesets/imaging-orders.json`). */
export function orderableStudies(): OrderableStudy[] {
  const vs = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/valuesets/imaging-orders.json'), 'utf8')) as {
    compose: { include: { system: string; concept: { code: string; display: string }[] }[] };
  };
  return vs.compose.include.flatMap((inc) => inc.concept.map((c) => ({ system: inc.system, code: c.code, display: c.display })));
}

/** What a created resource is, in words: "Referral to fracture liaison service created (draft, to sign)". */
export function createdWords(r: Resource): string {
  if (r.resourceType === 'ServiceRequest') {
    const sr = r as ServiceRequest;
    const what = sr.code?.text ?? sr.code?.coding?.find((c) => c.display)?.display ?? 'Order';
    return `${what} created${sr.status === 'draft' ? ' (draft, to sign)' : ''}`;
  }
  if (r.resourceType === 'Condition') {
    // A problem-list entry a card proposed: say that it is provisional until the clinician confirms it.
    const c = r as Condition;
    const provisional = c.verificationStatus?.coding?.some((x) => x.code === 'provisional' || x.code === 'unconfirmed');
    return `Problem-list entry added: ${c.code?.text ?? c.code?.coding?.find((x) => x.display)?.display ?? 'condition'}${provisional ? ' (provisional until you confirm it)' : ''}`;
  }
  return `${r.resourceType} created`;
}

/** A draft imaging ServiceRequest as an EHR puts it in `draftOrders`. */
export function draftImagingOrder(patientId: string, study: OrderableStudy, reason: string | undefined, requester: string): ServiceRequest & { id: string } {
  return {
    resourceType: 'ServiceRequest',
    id: randomUUID(),
    status: 'draft',
    intent: 'order',
    category: [{ coding: [{ system: 'http://snomed.info/sct', code: '363679005', display: 'Imaging' }] }],
    code: { coding: [{ system: study.system, code: study.code, display: study.display }], text: study.display },
    subject: { reference: `Patient/${patientId}` },
    requester: { reference: requester },
    authoredOn: new Date().toISOString(),
    ...(reason ? { reasonCode: [{ text: reason }] } : {}),
  };
}

/** The SMART app's FLS worklist launch: a standalone user-level launch against the EHR's FHIR server (client/src/launch-options.ts). */
export function worklistLaunchUrl(o: Pick<EhrOptions, 'appLaunchUrl' | 'publicBaseUrl' | 'fhirPublicBaseUrl'>): string {
  const u = new URL(o.appLaunchUrl, `${o.publicBaseUrl}/`);
  u.searchParams.set('mode', 'worklist');
  u.searchParams.set('iss', o.fhirPublicBaseUrl);
  return u.toString();
}

export async function createDemoEhr(o: EhrOptions): Promise<DemoEhr> {
  const logger = o.logger.child({ component: 'demo-ehr' });
  const base = o.mountPath;
  const signer = o.signer ?? (await createCdsClientSigner(`${o.publicBaseUrl}${base}`));
  const fhir = new EhrFhir({ baseUrl: o.fhirBaseUrl, timeoutMs: o.fhirTimeoutMs ?? 5000, token: o.auth.ehrFhirToken });
  const cds = new CdsClient({
    servicesUrl: o.cdsServicesUrl ?? `${o.publicBaseUrl}/cds-services`,
    signer,
    fhir,
    fhirServer: o.fhirPublicBaseUrl,
    timeoutMs: o.hookTimeoutMs ?? 5000,
    logger,
  });
  const studies = orderableStudies();
  const cards = new CardStore();
  const drafts = new Map<string, Draft>();
  const ctx: PageContext = { base, user: { name: DEMO_USER.name, ref: DEMO_USER.ref }, assetVersion: randomUUID().slice(0, 8), worklistUrl: worklistLaunchUrl(o) };

  const router = Router();
  router.use(express.json({ limit: '16kb' }));

  // Same-origin JSON only: a cross-site form cannot send application/json without a CORS preflight we never grant.
  const jsonOnly = (req: Request, res: Response, next: () => void): void => {
    if (!req.is('application/json')) {
      res.status(415).json({ error: 'Content-Type must be application/json' });
      return;
    }
    next();
  };

  // The EHR frames the SMART app (frame-src 'self') but is never framed itself: a page that signs reports and
  // places orders must not be overlaid by another site (clickjacking).
  const sendHtml = (res: Response, status: number, body: string): void => {
    res.status(status).type('html').set({ 'Cache-Control': 'no-store', 'Content-Security-Policy': "default-src 'self'; img-src 'self' data: https: http:; frame-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'" }).send(body);
  };

  router.get('/.well-known/jwks.json', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').json(signer.jwks());
  });

  router.get('/assets/ehr.js', async (_req, res) => {
    try {
      res.type('text/javascript').set('Cache-Control', 'public, max-age=3600').send(await browserBundle());
    } catch (err) {
      logger.error({ err }, 'demo EHR: browser bundle failed to build');
      res.status(500).type('text/plain').send('bundle failed');
    }
  });
  router.get('/assets/ehr.css', (_req, res) => {
    res.type('text/css').set('Cache-Control', 'public, max-age=3600').send(ehrCss());
  });

  router.get('/', async (req, res) => {
    const query = typeof req.query['q'] === 'string' ? req.query['q'].trim().slice(0, 80) : '';
    const offset = Math.max(0, Math.min(10_000, Number.parseInt(String(req.query['offset'] ?? '0'), 10) || 0));
    const params: Record<string, string> = { _count: String(PAGE_SIZE), _offset: String(offset), _total: 'accurate' };
    // An MRN looks like letters followed by digits; anything else is a name search.
    if (/^[A-Za-z]{3,6}\d{2,}$/.test(query)) params['identifier'] = query.toUpperCase();
    else if (query) params['name'] = query;
    // `?pending=1`: only patients with an imaging report awaiting sign-off (found from the reports, then by _id).
    const pendingOnly = req.query['pending'] === '1';
    try {
      let pending: Set<string> | undefined;
      if (pendingOnly) {
        pending = await patientsWithPendingReports(fhir);
        if (pending.size === 0) return sendHtml(res, 200, patientListPage(ctx, { patients: [], query, offset, pageSize: PAGE_SIZE, total: 0, pending, pendingOnly }));
        params['_id'] = [...pending].join(',');
      }
      const found = await fhir.search<Patient>('Patient', params);
      const patients = found.resources.sort((a, b) => (a.id ?? '').localeCompare(b.id ?? ''));
      // The badge is a convenience: the list still shows when its search fails.
      pending ??= await patientsWithPendingReports(fhir, patients.map((pt) => pt.id ?? '').filter((id) => ID.test(id))).catch((err: Error) => {
        logger.warn({ err: err.message }, 'demo EHR: pending-report search failed (no badges)');
        return new Set<string>();
      });
      sendHtml(res, 200, patientListPage(ctx, { patients, query, offset, pageSize: PAGE_SIZE, pending, pendingOnly, ...(found.total !== undefined ? { total: found.total } : {}) }));
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'demo EHR: patient search failed');
      sendHtml(res, 502, patientListPage(ctx, { patients: [], query, offset, pageSize: PAGE_SIZE, pendingOnly, error: (err as Error).message }));
    }
  });

  router.get('/patients/:id', async (req, res) => {
    const id = String(req.params['id']);
    if (!ID.test(id)) return sendHtml(res, 404, errorPage(ctx, 'No such patient', 'That is not a valid patient id.'));
    try {
      const chart = await loadChart(fhir, id);
      sendHtml(res, 200, chartPage(ctx, chart, studies));
    } catch (err) {
      if (err instanceof EhrFhirError && err.notFound) return sendHtml(res, 404, errorPage(ctx, 'No such patient', 'The FHIR server has no patient with that id.'));
      logger.warn({ patientIdHash: hashPatientId(id), err: (err as Error).message }, 'demo EHR: chart failed to load');
      sendHtml(res, 502, errorPage(ctx, 'The chart could not be loaded', (err as Error).message));
    }
  });

  /** Re-rendered chart (the browser swaps in a section after an order or an accepted suggestion). */
  router.get('/patients/:id/sections/:section', async (req, res) => {
    const id = String(req.params['id']);
    const section = String(req.params['section']);
    if (!ID.test(id) || !/^[a-z]+$/.test(section)) return void res.status(404).end();
    try {
      const page = chartPage(ctx, await loadChart(fhir, id), studies);
      const m = new RegExp(`<section class="panel" aria-labelledby="${section}-h" id="${section}">[\\s\\S]*?</section>`).exec(page);
      if (!m) return void res.status(404).end();
      res.type('html').set('Cache-Control', 'no-store').send(m[0]);
    } catch (err) {
      res.status(502).type('text/plain').send((err as Error).message);
    }
  });

  // --- Imaging reports: "Finalise report" (the radiologist's sign-off) and finding the assessment it triggers. ---

  const reportParam = (req: Request, res: Response): string | undefined => {
    const id = String(req.params['reportId']);
    if (!ID.test(id)) {
      res.status(400).json({ error: 'invalid report id' });
      return undefined;
    }
    return id;
  };

  /**
   * Marks the report `final` on the FHIR server with the EHR's own token. Nothing else: the FHIR server's
   * Subscription tells the CDS service, whose background job writes the RiskAssessment (server/events/README.md).
   */
  router.post('/api/patients/:id/reports/:reportId/finalise', jsonOnly, async (req, res) => {
    const patientId = patientParam(req, res);
    if (!patientId) return;
    const reportId = reportParam(req, res);
    if (!reportId) return;
    try {
      const done = await finaliseReport(fhir, patientId, reportId);
      logger.info({ patientIdHash: hashPatientId(patientId), versionId: done.versionId }, 'demo EHR: imaging report finalised');
      res.json({ ...done, status: 'final' });
    } catch (err) {
      if (err instanceof FinaliseError) return void res.status(err.kind === 'not-found' ? 404 : 409).json({ error: err.message });
      logger.warn({ patientIdHash: hashPatientId(patientId), err: (err as Error).message }, 'demo EHR: finalising a report failed');
      res.status(502).json({ error: `The report could not be finalised: ${(err as Error).message}` });
    }
  });

  /** The RiskAssessment based on the report and written since `since` (the browser polls this after finalising). */
  router.get('/api/patients/:id/reports/:reportId/assessment', async (req, res) => {
    const patientId = patientParam(req, res);
    if (!patientId) return;
    const reportId = reportParam(req, res);
    if (!reportId) return;
    const since = typeof req.query['since'] === 'string' && !Number.isNaN(Date.parse(req.query['since'])) ? req.query['since'] : undefined;
    try {
      const ra = await assessmentForReport(fhir, patientId, reportId, since);
      res.set('Cache-Control', 'no-store').json(ra?.id ? { found: true, riskAssessment: `RiskAssessment/${ra.id}`, id: ra.id } : { found: false });
    } catch (err) {
      res.status(502).json({ error: (err as Error).message });
    }
  });

  /** Calls every service discovered for `hook`, in parallel; one failing service does not hide the others. */
  async function runHook(hook: string, patientId: string, context: Record<string, unknown>): Promise<{ html: string; cards: number; topics: string[]; services: unknown[] }> {
    let services: CdsServiceDescriptor[];
    try {
      services = await cds.servicesFor(hook);
    } catch (err) {
      const e = err as CdsCallError;
      logger.warn({ hook, kind: e.kind, status: e.status, err: e.message }, 'demo EHR: CDS discovery failed');
      return { html: html`<p class="cds__note" role="status">Decision support is unavailable (discovery failed: ${e.message}).</p>`.value, cards: 0, topics: [], services: [] };
    }
    const fhirAuthorization = await o.auth.cdsFhirAuthorization(patientId).catch((err: Error) => {
      logger.warn({ err: err.message }, 'demo EHR: no fhirAuthorization for the CDS call (the service must use prefetch)');
      return undefined;
    });
    const results = await Promise.all(
      services.map(async (s) => {
        try {
          const { response, ms, prefetchMs } = await cds.call(s, context, { userId: DEMO_USER.ref }, fhirAuthorization);
          const shown = response.cards.map((c) => cards.add(s.id, patientId, c));
          return { service: s, shown, ms, prefetchMs };
        } catch (err) {
          const e = err as CdsCallError;
          logger.warn({ service: s.id, kind: e.kind, status: e.status, err: e.message }, 'demo EHR: CDS call failed');
          return { service: s, shown: [] as ShownCard[], error: e.kind === 'http' ? `HTTP ${e.status ?? '?'}` : e.kind };
        }
      }),
    );
    const shown = results.flatMap((r) => r.shown);
    const notes = results.filter((r) => 'error' in r).map((r) => html`<p class="cds__note" role="status">${r.service.title ?? r.service.id} did not answer (${(r as { error: string }).error}).</p>`);
    return {
      html: html`${renderCardList(shown)}${notes}`.value,
      cards: shown.length,
      // What the cards are about: the page shows one card per topic (an order card replaces the sidebar's).
      topics: [...new Set(shown.map((c) => topicKey(c.card)))],
      services: results.map((r) => ({ id: r.service.id, cards: r.shown.length, ...('error' in r ? { error: r.error } : { ms: Math.round(r.ms ?? 0), prefetchMs: Math.round(r.prefetchMs ?? 0) }) })),
    };
  }

  const patientParam = (req: Request, res: Response): string | undefined => {
    const id = String(req.params['id']);
    if (!ID.test(id)) {
      res.status(400).json({ error: 'invalid patient id' });
      return undefined;
    }
    return id;
  };

  router.post('/api/patients/:id/patient-view', jsonOnly, async (req, res) => {
    const patientId = patientParam(req, res);
    if (!patientId) return;
    res.json(await runHook('patient-view', patientId, { userId: DEMO_USER.ref, patientId }));
  });

  router.post('/api/patients/:id/order-select', jsonOnly, async (req, res) => {
    const patientId = patientParam(req, res);
    if (!patientId) return;
    const b = req.body as { study?: unknown; reason?: unknown };
    const study = typeof b.study === 'number' ? studies[b.study] : undefined;
    if (!study) return void res.status(400).json({ error: 'study must be an index into the orderable studies' });
    const reason = typeof b.reason === 'string' ? b.reason.slice(0, 120) : undefined;
    const draft = draftImagingOrder(patientId, study, reason, DEMO_USER.ref);
    drafts.set(draft.id, { patientId, resource: draft });
    while (drafts.size > 500) drafts.delete(drafts.keys().next().value as string);
    const draftOrders: Bundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: draft }] };
    const out = await runHook('order-select', patientId, { userId: DEMO_USER.ref, patientId, selections: [`ServiceRequest/${draft.id}`], draftOrders });
    res.json({ ...out, draft: draft.id });
  });

  const draftParam = (req: Request, res: Response, patientId: string): Draft | undefined => {
    const d = drafts.get(String((req.body as { draft?: unknown }).draft));
    if (!d || d.patientId !== patientId) {
      res.status(404).json({ error: 'no such draft order (choose the study again)' });
      return undefined;
    }
    return d;
  };

  router.post('/api/patients/:id/order-sign', jsonOnly, async (req, res) => {
    const patientId = patientParam(req, res);
    if (!patientId) return;
    const d = draftParam(req, res, patientId);
    if (!d) return;
    const draftOrders: Bundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: d.resource }] };
    res.json({ ...(await runHook('order-sign', patientId, { userId: DEMO_USER.ref, patientId, draftOrders })), draft: d.resource.id });
  });

  /** Places the signed order: the draft becomes an active ServiceRequest on the FHIR server. */
  router.post('/api/patients/:id/orders', jsonOnly, async (req, res) => {
    const patientId = patientParam(req, res);
    if (!patientId) return;
    const d = draftParam(req, res, patientId);
    if (!d) return;
    try {
      const { id: _draftId, ...rest } = d.resource;
      const created = await fhir.create<ServiceRequest>({ ...rest, status: 'active', authoredOn: new Date().toISOString() });
      drafts.delete(d.resource.id);
      logger.info({ patientIdHash: hashPatientId(patientId), order: created.id }, 'demo EHR: imaging order placed');
      res.status(201).json({ created: `ServiceRequest/${created.id ?? ''}`, display: created.code?.text ?? created.code?.coding?.[0]?.display ?? 'Imaging order' });
    } catch (err) {
      res.status(502).json({ error: `The order could not be saved: ${(err as Error).message}` });
    }
  });

  const cardParam = (req: Request, res: Response): ShownCard | undefined => {
    const c = cards.get(String(req.params['key']));
    if (!c) {
      res.status(404).json({ error: 'this card is no longer available; reload the chart' });
      return undefined;
    }
    return c;
  };

  const sendFeedback = async (c: ShownCard, item: Omit<FeedbackItem, 'card' | 'outcomeTimestamp'>): Promise<string | undefined> => {
    // Feedback needs the card's uuid; a card without one cannot be reported (CDS Hooks 2.0 §Feedback).
    if (!c.card.uuid) return 'the card has no uuid, so no feedback was sent';
    try {
      await cds.feedback(c.serviceId, [{ card: c.card.uuid, outcomeTimestamp: new Date().toISOString(), ...item }]);
      return undefined;
    } catch (err) {
      logger.warn({ service: c.serviceId, err: (err as Error).message }, 'demo EHR: feedback failed');
      return `feedback failed: ${(err as Error).message}`;
    }
  };

  /** Accepting a suggestion performs its actions on the FHIR server, then tells the service (outcome accepted). */
  router.post('/api/cards/:key/accept', jsonOnly, async (req, res) => {
    const c = cardParam(req, res);
    if (!c) return;
    const i = (req.body as { suggestion?: unknown }).suggestion;
    const s = typeof i === 'number' ? c.card.suggestions?.[i] : undefined;
    if (!s || typeof i !== 'number') return void res.status(400).json({ error: 'suggestion must be an index into the card suggestions' });
    if (c.accepted.has(i)) return void res.status(409).json({ error: 'this suggestion was already accepted' });
    if (c.card.selectionBehavior === 'at-most-one' && c.accepted.size > 0) return void res.status(409).json({ error: 'only one suggestion of this card may be accepted' });
    const done: string[] = [];
    const said: string[] = [];
    try {
      for (const a of s.actions ?? []) {
        if (a.type === 'create' && a.resource) {
          const created = await fhir.create<Resource>(a.resource);
          done.push(`${created.resourceType}/${created.id ?? ''}`);
          said.push(createdWords(created));
        } else if (a.type === 'update' && a.resource?.id) {
          const updated = await fhir.update<Resource>(a.resource as Resource & { id: string });
          done.push(`${updated.resourceType}/${updated.id ?? ''}`);
        } else if (a.type === 'delete' && a.resourceId) {
          await fhir.delete(a.resourceId);
          done.push(a.resourceId);
        }
      }
    } catch (err) {
      return void res.status(502).json({ error: `The suggestion could not be carried out: ${(err as Error).message}`, done });
    }
    c.accepted.add(i);
    const feedbackError = await sendFeedback(c, { outcome: 'accepted', ...(s.uuid ? { acceptedSuggestions: [{ id: s.uuid }] } : {}) });
    logger.info({ service: c.serviceId, patientIdHash: hashPatientId(c.patientId), resources: done.length }, 'demo EHR: suggestion accepted');
    // `message` is what the user reads: what was created, in words (the references stay for scripts).
    res.json({ done, message: said.length > 0 ? `${said.join('; ')}.` : 'Done.', ...(feedbackError ? { feedbackError } : {}) });
  });

  router.post('/api/cards/:key/dismiss', jsonOnly, async (req, res) => {
    const c = cardParam(req, res);
    if (!c) return;
    if (c.dismissed) return void res.status(409).json({ error: 'already dismissed' });
    const b = req.body as { reason?: unknown; comment?: unknown };
    const reason = typeof b.reason === 'number' ? c.card.overrideReasons?.[b.reason] : undefined;
    if (b.reason !== undefined && b.reason !== null && b.reason !== '' && !reason) return void res.status(400).json({ error: 'reason must be an index into the card override reasons' });
    const comment = typeof b.comment === 'string' && b.comment.trim() ? b.comment.trim().slice(0, 200) : undefined;
    c.dismissed = true;
    const feedbackError = await sendFeedback(c, {
      outcome: 'overridden',
      ...(reason || comment ? { overrideReason: { ...(reason ? { reason } : {}), ...(comment ? { userComment: comment } : {}) } } : {}),
    });
    res.json({ dismissed: true, ...(feedbackError ? { feedbackError } : {}) });
  });

  const launchUrl = async (patientId: string, appUrl: string, appContext: string | undefined): Promise<string> => {
    const launch = await o.auth.createLaunch({ patient: patientId, user: DEMO_USER.ref, needPatientBanner: false, ...(appContext !== undefined ? { appContext } : {}) });
    const u = new URL(appUrl, `${o.publicBaseUrl}/`);
    u.searchParams.set('iss', o.fhirPublicBaseUrl);
    u.searchParams.set('launch', launch);
    return u.toString();
  };

  /** A card's SMART link: a launch context with the link's appContext, then the app's URL with iss and launch. */
  router.post('/api/cards/:key/launch', jsonOnly, async (req, res) => {
    const c = cardParam(req, res);
    if (!c) return;
    const i = (req.body as { link?: unknown }).link;
    const link = typeof i === 'number' ? c.card.links?.[i] : undefined;
    if (!link || link.type !== 'smart') return void res.status(400).json({ error: 'link must be an index of a SMART link of the card' });
    try {
      res.json({ url: await launchUrl(c.patientId, link.url, link.appContext) });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'demo EHR: SMART launch failed');
      res.status(502).json({ error: `The app could not be launched: ${(err as Error).message}` });
    }
  });

  /** The plain "Open Fracture Risk app" button: EHR launch without appContext. */
  router.post('/api/patients/:id/launch', jsonOnly, async (req, res) => {
    const patientId = patientParam(req, res);
    if (!patientId) return;
    try {
      res.json({ url: await launchUrl(patientId, o.appLaunchUrl, undefined) });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'demo EHR: SMART launch failed');
      res.status(502).json({ error: `The app could not be launched: ${(err as Error).message}` });
    }
  });

  return { router, signer, cds };
}
