/**
 * High availability: two service replicas (child processes started as `npm start` starts the service) sharing
 * PostgreSQL (`DATABASE_URL`) and Redis (`REDIS_URL`), one hospital FHIR server and PACS, behind a round-robin proxy
 * (test/ha/stack.ts). Checks:
 * - a CDS Hooks JWT used on one replica is refused as a replay on the other;
 * - an assessment computed on one replica is served from the cache by the other, and its id resolves there;
 * - under a bounded EHR-like load through the proxy (CDS hooks, feedback, report events, the FLS worklist, the
 *   assessment API; `HA_LOAD_SECONDS`, default 60), one replica is killed (SIGKILL) while it holds a hook call whose
 *   `jti` it has already claimed in the shared cache and not yet answered: no request fails (the proxy retries the
 *   ones in flight on the other replica, which accepts the byte-identical resend of the unanswered call), and no
 *   report-event job (Redis), card feedback or FLS audit event (PostgreSQL) acknowledged to its sender is missing
 *   afterwards.
 * The figures (requests, failures, retried, lost records) are printed at the end.
 *
 * Needs Debian's postgresql and redis-server: skipped with a warning when either is missing outside CI, an error
 * under `CI=true`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import pg from 'pg';
import { buildNotification } from '../../server/events/notification.ts';
import { TOPIC_URL } from '../../server/events/topic.ts';
import { PREFETCH, SERVICE_IDS } from '../../server/cds/services.ts';
import { QUEUE_NAME } from '../../server/jobs/redis-queue.ts';
import { idempotencyKey } from '../../server/jobs/types.ts';
import { postgresInstalled } from '../support/postgres.ts';
import { redisServerInstalled } from '../support/redis.ts';
import { waitFor } from '../support/service-process.ts';
import { runLoad, type LoadOp, type LoadReport, type OpResult } from './load.ts';
import { EHR_ISS, startHaStack, type HaStack } from './stack.ts';

const LOAD_SECONDS = Number(process.env['HA_LOAD_SECONDS'] ?? 60);
const RATE_PER_SEC = 8;
const PATIENTS = ['fx-0001', 'fx-0002', 'fx-0003', 'fx-0004', 'fx-0005', 'fx-0006', 'fx-0007'];
/** The table of the shared FLS audit fallback store (PostgreSQL). */
const AUDIT_TABLE = 'fls_audit_fallback';

const missing = [...(postgresInstalled() ? [] : ['postgresql']), ...(redisServerInstalled() ? [] : ['redis-server'])];
if (missing.length > 0 && process.env['CI'] === 'true') throw new Error(`the HA test needs ${missing.join(' and ')} in CI (installed by .ci/setup)`);
if (missing.length > 0) console.warn(`warning: ${missing.join(' and ')} not installed; skipping the HA test`);

let stack: HaStack;
let db: pg.Pool;
const prefetch = new Map<string, Record<string, Resource | null>>();

const xrayOrder = (patientId: string): Resource => ({
  resourceType: 'ServiceRequest', id: 'ha-xr', status: 'draft', intent: 'order', subject: { reference: `Patient/${patientId}` },
  code: { coding: [{ system: 'http://loinc.org', code: '26401-0', display: 'XR Hip - left Single view' }] },
} as Resource);

function hookBody(hook: 'patient-view' | 'order-select', patientId: string, userId = 'Practitioner/demo-clinician'): string {
  const context: Record<string, unknown> = { userId, patientId };
  if (hook === 'order-select') {
    context['draftOrders'] = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: xrayOrder(patientId) }] };
    context['selections'] = ['ServiceRequest/ha-xr'];
  }
  return JSON.stringify({ hook, hookInstance: crypto.randomUUID(), context, prefetch: prefetch.get(patientId) });
}

const serviceOf = (hook: 'patient-view' | 'order-select'): string => (hook === 'patient-view' ? SERVICE_IDS.patientView : SERVICE_IDS.orderSelect);

/** POSTs a hook call with a fresh JWT to `base` (a replica, or the proxy); the JWT's audience is the public URL. */
async function callHook(base: string, hook: 'patient-view' | 'order-select', patientId: string, token?: string): Promise<{ status: number; cards: { uuid: string }[]; token: string }> {
  const id = serviceOf(hook);
  const jwt = token ?? (await stack.ehrJwt(`${stack.proxy.url}/cds-services/${id}`));
  const res = await fetch(`${base}/cds-services/${id}`, { method: 'POST', headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' }, body: hookBody(hook, patientId) });
  const text = await res.text();
  let cards: { uuid: string }[] = [];
  try {
    cards = (JSON.parse(text) as { cards?: { uuid: string }[] }).cards ?? [];
  } catch {
    // not JSON (an error page): no cards
  }
  return { status: res.status, cards, token: jwt };
}

const skip = missing.length > 0;

before(async () => {
  if (skip) return;
  stack = await startHaStack();
  db = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });
  const token = await stack.systemToken();
  for (const p of PATIENTS) {
    const out: Record<string, Resource | null> = {};
    for (const [k, t] of Object.entries(PREFETCH)) {
      const res = await fetch(`${stack.hospital.fhirBase}/${t.replaceAll('{{context.patientId}}', p)}`, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/fhir+json' } });
      assert.equal(res.status, 200, `prefetch ${k} of ${p}`);
      const b = (await res.json()) as Resource & { entry?: unknown[] };
      out[k] = b.resourceType === 'Bundle' && !(b.entry ?? []).length ? null : b;
    }
    prefetch.set(p, out);
  }
}, { timeout: 600_000 });

after(async () => {
  await db?.end();
  await stack?.close();
});

describe('two replicas behind a round-robin proxy', { skip, timeout: 900_000 }, () => {
  test('a CDS Hooks jti used on one replica is refused on the other', async () => {
    const [a, b] = stack.replicas;
    const first = await callHook(a!.url, 'patient-view', 'fx-0001');
    assert.equal(first.status, 200, 'the token is good on replica A');
    // The same token at the same replica is a replay (so the check below is about sharing, not about the token).
    assert.equal((await callHook(a!.url, 'patient-view', 'fx-0001', first.token)).status, 401, 'replayed to replica A');
    const second = await callHook(b!.url, 'patient-view', 'fx-0001', first.token);
    assert.equal(second.status, 401, `the jti used on replica A must be refused by replica B (got ${second.status})`);
    // A fresh token is accepted by B: the refusal was the replay, nothing else.
    assert.equal((await callHook(b!.url, 'patient-view', 'fx-0001')).status, 200);
  });

  test('an assessment computed on one replica is served from the cache by the other, and its id resolves there', async () => {
    const [a, b] = stack.replicas;
    const headers = { Authorization: `Bearer ${await stack.systemToken()}`, 'Content-Type': 'application/json' };
    const post = (base: string): Promise<Response> => fetch(`${base}/api/assessments`, { method: 'POST', headers, body: JSON.stringify({ patient: 'fx-0002' }) });
    const onA = await post(a!.url);
    const bodyA = (await onA.json()) as { assessment: { id: string }; source: string };
    assert.equal(onA.status, 201, `computed on A: ${JSON.stringify(bodyA).slice(0, 300)}`);
    assert.equal(bodyA.source, 'new');
    const onB = await post(b!.url);
    const bodyB = (await onB.json()) as { assessment: { id: string }; source: string };
    assert.equal(onB.headers.get('x-assessment-source'), 'cache', `replica B must serve A's result from the shared cache (source: ${bodyB.source})`);
    assert.equal(onB.status, 200);
    assert.equal(bodyB.assessment.id, bodyA.assessment.id, 'the same assessment');
    const byId = await fetch(`${b!.url}/api/assessments/${bodyA.assessment.id}`, { headers });
    assert.equal(byId.status, 200, 'the id computed on A resolves on B');
    assert.equal(((await byId.json()) as { assessment: { id: string } }).assessment.id, bodyA.assessment.id);
  });

  test(`one replica killed during ${LOAD_SECONDS} s of EHR-like load: no failed request, no lost job, feedback or audit event`, async () => {
    const [a, b] = stack.replicas;
    const proxy = stack.proxy.url;
    const systemToken = await stack.systemToken();
    const coordinator = await stack.coordinatorToken();
    const run = Date.now().toString(36);
    const cards: string[] = [];
    const feedbackSent: string[] = []; // `${card}|${timestamp}`, acknowledged with 200
    const jobKeys: string[] = []; // idempotency keys of report events acknowledged with 200
    let flsViews = 0; // FLS worklist views answered 200: each must leave one audit event
    const auditBefore = await countAudit();
    const status = (res: Response, detail: string): OpResult => (res.ok ? { ok: true, status: res.status } : { ok: false, status: res.status, detail });

    const ops: ((i: number) => LoadOp)[] = [
      (i) => ({ kind: 'patient-view', run: () => hook('patient-view', PATIENTS[i % PATIENTS.length]!) }),
      (i) => ({ kind: 'patient-view', run: () => hook('patient-view', PATIENTS[(i + 3) % PATIENTS.length]!) }),
      (i) => ({ kind: 'order-select', run: () => hook('order-select', PATIENTS[i % PATIENTS.length]!) }),
      (i) => ({
        kind: 'feedback',
        run: async () => {
          const card = cards[i % Math.max(1, cards.length)];
          if (!card) return hook('patient-view', PATIENTS[i % PATIENTS.length]!);
          const ts = new Date(Date.UTC(2026, 0, 1) + i).toISOString();
          const id = SERVICE_IDS.patientView;
          const jwt = await stack.ehrJwt(`${proxy}/cds-services/${id}/feedback`);
          const res = await fetch(`${proxy}/cds-services/${id}/feedback`, {
            method: 'POST', headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ feedback: [{ card, outcome: 'overridden', outcomeTimestamp: ts }] }),
          });
          await res.text();
          if (res.ok) feedbackSent.push(`${card}|${ts}`);
          return status(res, 'feedback refused');
        },
      }),
      (i) => ({
        kind: 'report-event',
        run: async () => {
          const reportId = `ha-${run}-${i}`;
          const bundle = buildNotification({
            subscriptionUrl: `${stack.hospital.fhirBase}/Subscription/ha`, topic: TOPIC_URL, type: 'event-notification', status: 'active', eventsSinceStart: i,
            events: [{ number: i, timestamp: new Date().toISOString(), focusUrl: `${stack.hospital.fhirBase}/DiagnosticReport/${reportId}/_history/1` }],
          });
          const res = await fetch(`${proxy}/api/events/notifications`, {
            method: 'POST', headers: { 'X-Subscription-Secret': stack.eventsSecret, 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(bundle),
          });
          await res.text();
          if (res.ok) jobKeys.push(idempotencyKey(reportId, '1'));
          return status(res, 'notification refused');
        },
      }),
      () => ({
        kind: 'fls-worklist',
        run: async () => {
          const res = await fetch(`${proxy}/api/fls/worklist`, { headers: { Authorization: `Bearer ${coordinator}` } });
          await res.text();
          if (res.ok) flsViews++;
          return status(res, 'worklist refused');
        },
      }),
      (i) => ({
        kind: 'assessment-api',
        run: async () => {
          const res = await fetch(`${proxy}/api/assessments`, {
            method: 'POST', headers: { Authorization: `Bearer ${systemToken}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ patient: PATIENTS[(i + 1) % PATIENTS.length] }),
          });
          await res.text();
          return status(res, 'assessment refused');
        },
      }),
    ];
    async function hook(kind: 'patient-view' | 'order-select', patientId: string): Promise<OpResult> {
      const r = await callHook(proxy, kind, patientId);
      for (const c of r.cards) if (cards.length < 500) cards.push(c.uuid);
      return r.status === 200 ? { ok: true, status: 200 } : { ok: false, status: r.status, detail: `${kind} answered ${r.status}` };
    }

    // The kill: a third into the load, once the proxy has handed replica B a hook call in full, SIGKILL to B the
    // moment B has claimed that call's jti in Redis (value `f|…`: in flight, see server/state/replay.ts) — B holds a
    // claimed, unanswered call, which the proxy must retry on replica A and A must accept. When B answers before
    // the claim is seen in flight, the next hook call handed to B is tried.
    const killAtMs = (LOAD_SECONDS * 1000) / 3;
    let armed = false;
    let watching = false;
    let killed: { request: string; atMs: number; jtiKey: string } | undefined;
    const t0 = performance.now();
    const watcher = new Redis(stack.redis.url, { maxRetriesPerRequest: 2 });
    stack.proxy.onForwarded((upstream, method, path, headers) => {
      if (!armed || killed || watching || upstream !== b!.url || method !== 'POST' || !path.startsWith('/cds-services/') || path.endsWith('/feedback')) return;
      const jti = decodeJwt(String(headers.authorization ?? '').replace(/^Bearer\s+/i, '')).jti;
      if (!jti) return;
      const jtiKey = `frcds:jti:${EHR_ISS}|${jti}`;
      watching = true;
      void (async () => {
        const until = performance.now() + 1000;
        while (performance.now() < until) {
          const v = await watcher.get(jtiKey);
          if (v?.startsWith('f|')) {
            b!.handle.child.kill('SIGKILL');
            killed = { request: `${method} ${path}`, atMs: Math.round(performance.now() - t0), jtiKey };
            return;
          }
          if (v !== null) return; // answered already: wait for the next call
        }
      })().catch(() => undefined).finally(() => (watching = false));
    });
    const report: LoadReport = await runLoad({
      durationMs: LOAD_SECONDS * 1000,
      ratePerSec: RATE_PER_SEC,
      maxInFlight: 64,
      next: (i) => ops[i % ops.length]!(i),
      onTick: (ms) => void (armed = ms >= killAtMs),
    });
    stack.proxy.onForwarded(undefined);
    assert.ok(killed, 'replica B was killed during the load, holding a claimed hook call');
    await b!.handle.exited;
    const proxyStats = stack.proxy.stats();
    // The call B had claimed was answered by A through the proxy's resend: its claim is now marked answered.
    const killedClaim = await watcher.get(killed.jtiKey);
    watcher.disconnect();

    // Every acknowledged report event is a job in Redis, and every one ends (replica A re-runs the ones B held).
    const redis = new Redis(stack.redis.url, { maxRetriesPerRequest: 2 });
    let unfinished: string[] = [];
    try {
      await waitFor('the report-event jobs to finish', async () => {
        unfinished = [];
        for (const key of jobKeys) {
          const finishedOn = await redis.hget(`bull:${QUEUE_NAME}:${key.replace(/:/g, '_')}`, 'finishedOn');
          if (!finishedOn) unfinished.push(key);
        }
        return unfinished.length === 0;
      }, 60_000, 500).catch(() => undefined);
    } finally {
      redis.disconnect();
    }
    const stored = await feedbackKeys();
    const lostFeedback = stored ? feedbackSent.filter((k) => !stored.has(k)).length : feedbackSent.length;
    const auditAfter = await countAudit();
    const auditAdded = auditAfter === undefined || auditBefore === undefined ? 0 : auditAfter - auditBefore;
    const lostAudit = Math.max(0, flsViews - auditAdded);
    const figures = {
      seconds: LOAD_SECONDS, requests: report.sent, failures: report.failed, viaProxy: proxyStats.requests,
      retried: proxyStats.retriedInFlight + proxyStats.retriedRefused, retriedInFlight: proxyStats.retriedInFlight, retriedRefused: proxyStats.retriedRefused,
      killedWith: killed.request, killedAtMs: killed.atMs, killedClaimFinally: killedClaim === 'a' ? 'answered' : killedClaim, retriedInFlightRequests: proxyStats.retriedInFlightRequests,
      records: { jobs: jobKeys.length, feedback: feedbackSent.length, audit: flsViews },
      lost: { jobs: unfinished.length, feedback: lostFeedback, audit: lostAudit },
      byKind: report.byKind,
    };
    console.log(`HA figures: ${report.sent} requests in ${LOAD_SECONDS} s, ${report.failed} failed, ${figures.retried} retried by the proxy `
      + `(${proxyStats.retriedInFlight} in flight on the killed replica, ${proxyStats.retriedRefused} refused connections), `
      + `killed at ${(killed.atMs / 1000).toFixed(1)} s with ${killed.request} claimed and in flight (claim finally ${figures.killedClaimFinally}); lost records: jobs ${unfinished.length}/${jobKeys.length}, feedback ${lostFeedback}/${feedbackSent.length}, audit ${lostAudit}/${flsViews}`);
    console.log(`HA figures (JSON): ${JSON.stringify(figures)}`);

    assert.ok(proxyStats.retriedInFlight > 0, 'the proxy retried requests that were in flight on the killed replica');
    assert.equal(killedClaim, 'a', 'the hook call replica B had claimed was resent to replica A, accepted and answered');
    assert.deepEqual(report.failures, [], 'no request failed');
    assert.equal(a!.handle.child.exitCode, null, 'replica A still runs');
    assert.ok(jobKeys.length > 0 && feedbackSent.length > 0 && flsViews > 0, 'every kind of record was sent');
    assert.deepEqual(unfinished, [], 'every acknowledged report event is a finished job in Redis');
    assert.ok(stored, 'the card log is in PostgreSQL (table cds_feedback)');
    assert.equal(lostFeedback, 0, 'every acknowledged feedback entry is in PostgreSQL');
    assert.ok(auditAfter !== undefined, `the FLS audit fallback is in PostgreSQL (table ${AUDIT_TABLE})`);
    assert.ok(auditAdded >= flsViews, `every FLS worklist view left an audit event in PostgreSQL (${auditAdded} for ${flsViews})`);
  });
});

/** PostgreSQL's "undefined_table": the store is not (yet) in the shared database. */
const isMissingTable = (err: unknown): boolean => (err as { code?: string }).code === '42P01';

/** FLS audit events kept in the shared audit fallback store; undefined when the database has no such store. */
async function countAudit(): Promise<number | undefined> {
  try {
    const r = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${AUDIT_TABLE}`);
    return Number(r.rows[0]!.n);
  } catch (err) {
    if (isMissingTable(err)) return undefined;
    throw err;
  }
}

/** `card|outcomeTimestamp` of every feedback entry in the shared card log; undefined when it is not in PostgreSQL. */
async function feedbackKeys(): Promise<Set<string> | undefined> {
  try {
    const r = await db.query<{ k: string }>("SELECT card_uuid || '|' || outcome_timestamp AS k FROM cds_feedback");
    return new Set(r.rows.map((row) => row.k));
  } catch (err) {
    if (isMissingTable(err)) return undefined;
    throw err;
  }
}
