/**
 * Subscription notifications from the sandbox FHIR server (issue 8, item 1: "the sandbox FHIR server sends these
 * notifications when a DiagnosticReport becomes final"), over real HTTP like any FHIR server implementing the
 * Subscriptions Backport IG 1.1.0 (R4) rest-hook channel:
 * - a Subscription written with status `requested` gets a `handshake`; a 2xx answer makes it `active`, anything
 *   else `error` (with the reason in `Subscription.error`);
 * - topic-based Subscriptions on the project topic get an `event-notification` when a DiagnosticReport becomes
 *   final (`id-only` or `full-resource`), plus `heartbeat`s when the heartbeat-period extension asks for them;
 * - plain R4 criteria Subscriptions (`DiagnosticReport?status=final`) get the resource PUT to
 *   `{endpoint}/DiagnosticReport/{id}` (or an empty POST without payload) on every write that matches.
 * Deliveries to one Subscription are sent in order, each retried a few times with back-off; events are numbered
 * per Subscription (`events-since-subscription-start`). Demo only: the state lives in memory.
 *
 * Authentication of the deliveries: whatever the Subscription's `channel.header` lists (a shared secret), and — when
 * the composition root hands over a signer (`EVENTS_AUTH=jwt`) — `Authorization: Bearer <JWT>` signed afresh for
 * every attempt (a retry must not look like a replay), with `aud` the Subscription's endpoint.
 * @see https://hl7.org/fhir/uv/subscriptions-backport/STU1.1/
 */
import type { DiagnosticReport, Resource, Subscription } from '@medplum/fhirtypes';
import type { Logger } from '../../logging.ts';
import { buildNotification } from '../../events/notification.ts';
import { filterCriteriaOf, heartbeatSecondsOf, payloadContentOf } from '../../events/subscription.ts';
import { becameFinal, TOPIC_URL } from '../../events/topic.ts';
import type { SandboxRepository } from './repo.ts';

export interface SandboxNotifierOptions {
  /** Public base URL of the sandbox FHIR server (for `fullUrl`s and the Subscription reference). */
  readonly baseUrl: string;
  readonly logger: Logger;
  /** Per-delivery time-out, ms (default 10 s). */
  readonly timeoutMs?: number;
  /** Delivery attempts per notification (default 4: 0.2 s, 1 s, 3 s apart). */
  readonly attempts?: number;
  /**
   * Signs a bearer token for one delivery attempt to `endpoint` (the Subscription's `channel.endpoint`, without a
   * trailing slash). Absent: deliveries carry only the Subscription's own headers.
   */
  readonly sign?: (endpoint: string, sub: Subscription) => Promise<string>;
}

export interface SandboxNotifier {
  /** Resolves when every delivery queued so far has finished (tests). */
  idle(): Promise<void>;
  close(): void;
}

/** The demo's reports that start `preliminary`, so the demo can mark them final (see server/events/README.md). */
export const DEMO_PRELIMINARY_REPORTS: readonly string[] = [
  'demo-a-022-xr-report',
  'demo-a-003-xr-report',
  'demo-a-010-xr-report',
  'demo-a-031-xr-report',
  'demo-b-002-xr-report',
  // a CT report too: finalising it has the CT study assessed in the background like a radiograph
  'demo-ct-002-ct-report',
];

/** Sets the given demo reports to `preliminary` (at start-up, before any Subscription exists). Returns how many. */
export async function markReportsPreliminary(repo: SandboxRepository, ids: readonly string[] = DEMO_PRELIMINARY_REPORTS): Promise<number> {
  let n = 0;
  for (const id of ids) {
    try {
      const r = await repo.readResource<DiagnosticReport>('DiagnosticReport', id);
      if (r.status !== 'preliminary') {
        await repo.updateResource<DiagnosticReport>({ ...r, status: 'preliminary' });
        n++;
      }
    } catch {
      // not in this cohort: nothing to do
    }
  }
  return n;
}

const DELAYS = [200, 1000, 3000, 5000];

/** Does a plain R4 criteria string (`DiagnosticReport?status=final`) match the resource? Supports `status`. */
export function matchesR4Criteria(criteria: string, r: Resource): boolean {
  const [type, query = ''] = criteria.split('?', 2);
  if (type !== r.resourceType) return false;
  for (const [k, v] of new URLSearchParams(query)) {
    if (k === 'status' && !v.split(',').includes(String((r as { status?: string }).status))) return false;
    if (k !== 'status') return false; // unsupported criteria match nothing rather than everything
  }
  return true;
}

/** Does a Backport filter (`DiagnosticReport?patient=Patient/1`) admit the report? Supports `patient`/`subject`. */
function passesFilter(filter: string | undefined, r: DiagnosticReport): boolean {
  if (!filter) return true;
  const query = filter.includes('?') ? filter.slice(filter.indexOf('?') + 1) : filter;
  for (const [k, v] of new URLSearchParams(query)) {
    if ((k === 'patient' || k === 'subject') && r.subject?.reference !== (v.startsWith('Patient/') ? v : `Patient/${v}`)) return false;
  }
  return true;
}

export function attachSubscriptionNotifier(repo: SandboxRepository, options: SandboxNotifierOptions): SandboxNotifier {
  const base = options.baseUrl.replace(/\/+$/, '');
  const log = options.logger.child({ component: 'sandbox-subscriptions' });
  const subs = new Map<string, Subscription>();
  const counters = new Map<string, number>();
  const chains = new Map<string, Promise<void>>();
  const heartbeats = new Map<string, NodeJS.Timeout>();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const attempts = options.attempts ?? 4;
  let closed = false;

  /** The Subscription's `channel.header` lines, plus a freshly signed bearer token when there is a signer. */
  const headersOf = async (sub: Subscription, body: boolean): Promise<Headers> => {
    const h = new Headers();
    for (const line of sub.channel?.header ?? []) {
      const i = line.indexOf(':');
      // An invalid header value makes Headers throw with the value in its message: skip it instead (it may be a secret).
      if (i > 0) {
        try {
          h.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
        } catch {
          log.warn('a Subscription channel.header line is not a valid HTTP header: not sent');
        }
      }
    }
    if (options.sign) h.set('Authorization', `Bearer ${await options.sign(sub.channel.endpoint!.replace(/\/+$/, ''), sub)}`);
    if (body) h.set('Content-Type', 'application/fhir+json');
    return h;
  };

  /** One HTTP delivery with retries; returns the final status (0 = no answer). */
  async function deliver(sub: Subscription, method: 'POST' | 'PUT', url: string, body: unknown): Promise<number> {
    let status = 0;
    for (let attempt = 0; attempt < attempts && !closed; attempt++) {
      try {
        const res = await fetch(url, {
          method,
          headers: await headersOf(sub, body !== undefined),
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        status = res.status;
        // 4xx other than 408/429 will not change on a retry.
        if (res.ok || (status >= 400 && status < 500 && status !== 408 && status !== 429)) return status;
      } catch {
        status = 0;
      }
      await new Promise((r) => setTimeout(r, DELAYS[attempt] ?? 5000));
    }
    return status;
  }

  function enqueue(subId: string, task: () => Promise<void>): void {
    const prev = chains.get(subId) ?? Promise.resolve();
    const next = prev.then(task).catch((err: unknown) => log.warn({ error: (err as Error).message }, 'subscription delivery failed'));
    chains.set(subId, next);
  }

  async function setStatus(sub: Subscription, status: Subscription['status'], error?: string): Promise<void> {
    try {
      const cur = await repo.readResource<Subscription>('Subscription', sub.id!);
      await repo.updateResource<Subscription>({ ...cur, status, ...(error ? { error } : {}) });
    } catch (err) {
      log.warn({ error: (err as Error).message }, 'could not update the Subscription status');
    }
  }

  function topicNotification(sub: Subscription, type: 'handshake' | 'heartbeat' | 'event-notification', report?: DiagnosticReport): unknown {
    const subscriptionUrl = `${base}/Subscription/${sub.id}`;
    const count = counters.get(sub.id!) ?? 0;
    if (type !== 'event-notification' || !report) {
      return buildNotification({ subscriptionUrl, topic: TOPIC_URL, type, status: type === 'handshake' ? 'requested' : 'active', eventsSinceStart: count, events: [] });
    }
    const number = count + 1;
    counters.set(sub.id!, number);
    const full = payloadContentOf(sub) === 'full-resource';
    return buildNotification({
      subscriptionUrl,
      topic: TOPIC_URL,
      type,
      status: 'active',
      eventsSinceStart: number,
      events: [{ number, timestamp: new Date().toISOString(), focusUrl: `${base}/DiagnosticReport/${report.id}/_history/${report.meta?.versionId ?? '1'}`, ...(full ? { resource: report } : {}) }],
    });
  }

  function scheduleHeartbeat(sub: Subscription): void {
    const seconds = heartbeatSecondsOf(sub);
    const old = heartbeats.get(sub.id!);
    if (old) clearInterval(old);
    heartbeats.delete(sub.id!);
    if (!seconds || sub.status !== 'active' || sub.criteria !== TOPIC_URL) return;
    const t = setInterval(() => {
      const cur = subs.get(sub.id!);
      if (!cur || cur.status !== 'active') return;
      enqueue(cur.id!, async () => void (await deliver(cur, 'POST', cur.channel.endpoint!, topicNotification(cur, 'heartbeat'))));
    }, seconds * 1000);
    t.unref();
    heartbeats.set(sub.id!, t);
  }

  function onSubscription(sub: Subscription): void {
    if (!sub.id) return;
    subs.set(sub.id, sub);
    scheduleHeartbeat(sub);
    if (sub.status !== 'requested' || sub.channel?.type !== 'rest-hook' || !sub.channel.endpoint) return;
    counters.set(sub.id, 0);
    enqueue(sub.id, async () => {
      if (sub.criteria !== TOPIC_URL) {
        // Plain R4 criteria subscriptions have no handshake: they are active at once.
        await setStatus(sub, 'active');
        return;
      }
      const status = await deliver(sub, 'POST', sub.channel.endpoint!, topicNotification(sub, 'handshake'));
      const ok = status >= 200 && status < 300;
      await setStatus(sub, ok ? 'active' : 'error', ok ? undefined : `handshake failed (HTTP ${status || 'no answer'})`);
      log.info({ status, active: ok }, 'subscription handshake');
    });
  }

  function onReport(report: DiagnosticReport, prior: DiagnosticReport | undefined): void {
    const became = becameFinal(prior, report);
    for (const sub of subs.values()) {
      if (sub.status !== 'active' || sub.channel?.type !== 'rest-hook' || !sub.channel.endpoint) continue;
      const endpoint = sub.channel.endpoint.replace(/\/+$/, '');
      if (sub.criteria === TOPIC_URL) {
        if (!became || !passesFilter(filterCriteriaOf(sub), report)) continue;
        const body = topicNotification(sub, 'event-notification', report);
        enqueue(sub.id!, async () => {
          const status = await deliver(sub, 'POST', endpoint, body);
          if (status < 200 || status >= 300) log.warn({ status }, 'event notification not accepted');
        });
      } else if (sub.criteria && matchesR4Criteria(sub.criteria, report)) {
        enqueue(sub.id!, async () => {
          const status = sub.channel.payload
            ? await deliver(sub, 'PUT', `${endpoint}/DiagnosticReport/${report.id}`, report)
            : await deliver(sub, 'POST', endpoint, undefined);
          if (status < 200 || status >= 300) log.warn({ status }, 'R4 rest-hook notification not accepted');
        });
      }
    }
  }

  const detach = repo.onWrite((current, prior) => {
    if (closed) return;
    if (current.resourceType === 'Subscription') onSubscription(current as Subscription);
    else if (current.resourceType === 'DiagnosticReport') onReport(current as DiagnosticReport, prior as DiagnosticReport | undefined);
  });

  return {
    async idle() {
      for (;;) {
        const pending = [...chains.values()];
        await Promise.all(pending);
        if ([...chains.values()].every((c, i) => c === pending[i]) && chains.size === pending.length) return;
      }
    },
    close() {
      closed = true;
      detach();
      for (const t of heartbeats.values()) clearInterval(t);
      heartbeats.clear();
    },
  };
}
