/**
 * The R4 `Subscription` resources the service asks a FHIR server to hold (Subscriptions Backport IG 1.1.0 for
 * topic-based ones; plain R4 criteria otherwise). Used by `npm run subscribe` and by the sandbox at start-up.
 * @see https://hl7.org/fhir/uv/subscriptions-backport/STU1.1/StructureDefinition-backport-subscription.html
 */
import type { Subscription } from '@medplum/fhirtypes';
import { BACKPORT_URLS, R4_CRITERIA, TOPIC_URL, type PayloadContent } from './topic.ts';

export interface SubscriptionSpec {
  /** Notification endpoint, e.g. `https://cds.example.org/api/events/notifications`. */
  endpoint: string;
  /** `topic` (Backport, default) or `criteria` (plain R4 `DiagnosticReport?status=final`). */
  mode?: 'topic' | 'criteria';
  /** Backport payload content (default `id-only`: no report content travels in the notification). */
  payload?: Exclude<PayloadContent, 'empty'>;
  /** Header the server must send with each notification (`Name: value`), e.g. the shared secret. */
  headers?: string[];
  /** Optional Backport heartbeat period in seconds. */
  heartbeatSeconds?: number;
  /** Optional Backport filter, e.g. `DiagnosticReport?patient=Patient/123`. */
  filter?: string;
  id?: string;
  /** When the subscription lapses (ISO), if it should. */
  end?: string;
}

export function buildSubscription(spec: SubscriptionSpec): Subscription {
  const mode = spec.mode ?? 'topic';
  const channel: Subscription['channel'] = {
    type: 'rest-hook',
    endpoint: spec.endpoint,
    payload: 'application/fhir+json',
    ...(spec.headers?.length ? { header: spec.headers } : {}),
  };
  if (mode === 'topic') {
    (channel as unknown as Record<string, unknown>)['_payload'] = { extension: [{ url: BACKPORT_URLS.payloadContent, valueCode: spec.payload ?? 'id-only' }] };
    if (spec.heartbeatSeconds) channel.extension = [{ url: BACKPORT_URLS.heartbeatPeriod, valueUnsignedInt: spec.heartbeatSeconds }];
  }
  const sub: Subscription = {
    resourceType: 'Subscription',
    ...(spec.id ? { id: spec.id } : {}),
    ...(mode === 'topic' ? { meta: { profile: [BACKPORT_URLS.subscriptionProfile] } } : {}),
    status: 'requested',
    reason: 'Fracture Risk CDS: assess hip radiographs when their report becomes final (research use — trained on synthetic data)',
    criteria: mode === 'topic' ? TOPIC_URL : R4_CRITERIA,
    channel,
    ...(spec.end ? { end: spec.end } : {}),
  };
  if (mode === 'topic' && spec.filter) {
    (sub as unknown as Record<string, unknown>)['_criteria'] = { extension: [{ url: BACKPORT_URLS.filterCriteria, valueString: spec.filter }] };
  }
  return sub;
}

/** The Backport payload content of a Subscription (`id-only` when it does not say). */
export function payloadContentOf(sub: Subscription): PayloadContent {
  const ext = ((sub.channel as unknown as Record<string, unknown> | undefined)?.['_payload'] as { extension?: { url: string; valueCode?: string }[] } | undefined)?.extension;
  const v = ext?.find((e) => e.url === BACKPORT_URLS.payloadContent)?.valueCode;
  return v === 'empty' || v === 'full-resource' || v === 'id-only' ? v : 'id-only';
}

/** The Backport filter criteria of a Subscription, if any. */
export function filterCriteriaOf(sub: Subscription): string | undefined {
  const ext = ((sub as unknown as Record<string, unknown>)['_criteria'] as { extension?: { url: string; valueString?: string }[] } | undefined)?.extension;
  return ext?.find((e) => e.url === BACKPORT_URLS.filterCriteria)?.valueString;
}

/** The Backport heartbeat period (seconds) of a Subscription, if any. */
export function heartbeatSecondsOf(sub: Subscription): number | undefined {
  const v = sub.channel?.extension?.find((e) => e.url === BACKPORT_URLS.heartbeatPeriod)?.valueUnsignedInt;
  return typeof v === 'number' && v > 0 ? v : undefined;
}
