/**
 * Subscriptions Backport (R4, IG 1.1.0) notification Bundles: validation (ajv) and parsing on the receiving side,
 * and building on the sending side (the sandbox FHIR server's notifier uses the same code, so both ends agree).
 *
 * A notification is a `Bundle` of type `history` whose first entry is a `Parameters` resource (profile
 * `backport-subscription-status-r4`) with `subscription`, `topic`, `status`, `type`,
 * `events-since-subscription-start` and one `notification-event` part per event (`event-number`, `timestamp`,
 * `focus`). With `full-resource`, the focus resources follow as further entries.
 * @see https://hl7.org/fhir/uv/subscriptions-backport/STU1.1/notifications.html
 */
import { Ajv, type ErrorObject } from 'ajv';
import type { Bundle, BundleEntry, DiagnosticReport, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { BACKPORT_URLS, type NotificationType } from './topic.ts';

/** A notification the receiver cannot read; `message` says what is wrong (no PHI: structure only). */
export class MalformedNotificationError extends Error {
  override readonly name = 'MalformedNotificationError';
}

const ID = '^[A-Za-z0-9\\-.]{1,64}$';
const ajv = new Ajv({ allErrors: false, strict: true });

const bundleSchema = {
  type: 'object',
  required: ['resourceType', 'type', 'entry'],
  properties: {
    resourceType: { const: 'Bundle' },
    type: { const: 'history' },
    entry: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['resource'],
        properties: {
          fullUrl: { type: 'string' },
          resource: { type: 'object', required: ['resourceType'], properties: { resourceType: { type: 'string', minLength: 1 } } },
        },
      },
    },
  },
} as const;

const parameterSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1 }, part: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } },
} as const;

const statusSchema = {
  type: 'object',
  required: ['resourceType', 'parameter'],
  properties: { resourceType: { const: 'Parameters' }, parameter: { type: 'array', minItems: 1, items: parameterSchema } },
} as const;

/** What a DiagnosticReport needs for a job (the FHIR server validated the rest). */
export const diagnosticReportSchema = {
  type: 'object',
  required: ['resourceType', 'id', 'status'],
  properties: {
    resourceType: { const: 'DiagnosticReport' },
    id: { type: 'string', pattern: ID },
    status: { type: 'string', minLength: 1 },
    meta: { type: 'object', properties: { versionId: { type: 'string', pattern: ID }, lastUpdated: { type: 'string' } } },
  },
} as const;

const validateBundle = ajv.compile(bundleSchema);
const validateStatus = ajv.compile(statusSchema);
export const validateDiagnosticReport = ajv.compile(diagnosticReportSchema);

export function describeAjv(errors: readonly ErrorObject[] | null | undefined, where: string): string {
  const e = errors?.[0];
  if (!e) return `${where} is invalid`;
  return `${where}${e.instancePath} ${e.message ?? 'is invalid'}`;
}

export interface NotificationEvent {
  readonly eventNumber?: string;
  readonly timestamp?: string;
  /** The focus reference as sent (absolute, relative or versioned). */
  readonly focus?: string;
  /** The focus resource (full-resource payloads). */
  readonly resource?: DiagnosticReport | { resourceType: string; id?: string };
}

export interface ParsedNotification {
  readonly type: NotificationType;
  readonly topic: string | undefined;
  readonly subscription: string | undefined;
  readonly status: string | undefined;
  readonly eventsSinceStart: string | undefined;
  readonly events: NotificationEvent[];
}

const TYPES: ReadonlySet<string> = new Set(['handshake', 'heartbeat', 'event-notification', 'query-status', 'query-event']);

/** A parameter's value as a string (R4 Backport 1.1.0 sends counters as strings; 1.0 used unsignedInt). */
function valueOf(p: ParametersParameter | undefined): string | undefined {
  if (!p) return undefined;
  const v = p.valueString ?? p.valueCode ?? p.valueCanonical ?? p.valueUri ?? p.valueInstant ?? p.valueDateTime ?? p.valueReference?.reference;
  if (v !== undefined) return v;
  const n = p.valueUnsignedInt ?? p.valueInteger ?? p.valuePositiveInt ?? (p as { valueInteger64?: number | string }).valueInteger64;
  return n === undefined ? undefined : String(n);
}

/** `Type/id` (with optional `/_history/vid`) at the end of a reference or URL. */
export function referenceParts(ref: string | undefined): { type: string; id: string; versionId?: string } | null {
  if (!ref) return null;
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?\/?$/.exec(ref);
  if (!m) return null;
  return m[3] ? { type: m[1]!, id: m[2]!, versionId: m[3] } : { type: m[1]!, id: m[2]! };
}

/**
 * Validates and parses a notification Bundle.
 * @throws MalformedNotificationError naming the first structural problem.
 */
export function parseNotification(body: unknown): ParsedNotification {
  if (!validateBundle(body)) throw new MalformedNotificationError(describeAjv(validateBundle.errors, 'Bundle'));
  const bundle = body as Bundle;
  const entries = bundle.entry as BundleEntry[];
  const first = entries[0]!.resource;
  if (!validateStatus(first)) throw new MalformedNotificationError(describeAjv(validateStatus.errors, 'Bundle.entry[0].resource (SubscriptionStatus Parameters)'));
  const params = (first as Parameters).parameter ?? [];
  const get = (name: string): ParametersParameter | undefined => params.find((p) => p.name === name);
  const type = valueOf(get('type'));
  if (!type || !TYPES.has(type)) throw new MalformedNotificationError(`SubscriptionStatus parameter "type" is ${type === undefined ? 'missing' : `"${type}", not a notification type`}`);

  const byUrl = new Map<string, BundleEntry>();
  for (const e of entries.slice(1)) if (e.fullUrl) byUrl.set(e.fullUrl, e);
  const rest = entries.slice(1).map((e) => e.resource!);
  const events: NotificationEvent[] = [];
  for (const p of params.filter((x) => x.name === 'notification-event')) {
    const part = (name: string): ParametersParameter | undefined => p.part?.find((x) => x.name === name);
    const focus = valueOf(part('focus'));
    let resource = focus ? byUrl.get(focus)?.resource : undefined;
    if (!resource && focus) {
      const ref = referenceParts(focus);
      resource = ref ? rest.find((r) => r.resourceType === ref.type && r.id === ref.id) : undefined;
    }
    events.push({
      ...(valueOf(part('event-number')) !== undefined ? { eventNumber: valueOf(part('event-number')) } : {}),
      ...(valueOf(part('timestamp')) !== undefined ? { timestamp: valueOf(part('timestamp')) } : {}),
      ...(focus ? { focus } : {}),
      ...(resource ? { resource: resource as NotificationEvent['resource'] } : {}),
    });
  }
  // Some servers send full resources without notification-event parts (allowed for event-notification in 1.0).
  if (type === 'event-notification' && events.length === 0) {
    for (const r of rest) events.push({ resource: r as NotificationEvent['resource'], ...(r.id ? { focus: `${r.resourceType}/${r.id}` } : {}) });
  }
  return {
    type: type as NotificationType,
    topic: valueOf(get('topic')),
    subscription: valueOf(get('subscription')),
    status: valueOf(get('status')),
    eventsSinceStart: valueOf(get('events-since-subscription-start')),
    events,
  };
}

export interface BuildNotificationInput {
  /** Absolute URL of the Subscription (`{base}/Subscription/{id}`). */
  subscriptionUrl: string;
  topic: string;
  type: NotificationType;
  status: string;
  eventsSinceStart: number;
  events: { number: number; timestamp: string; focusUrl: string; resource?: DiagnosticReport }[];
}

/** Builds a Backport R4 notification Bundle (`full-resource` when events carry their resources). */
export function buildNotification(input: BuildNotificationInput): Bundle {
  const status: Parameters = {
    resourceType: 'Parameters',
    meta: { profile: [BACKPORT_URLS.statusProfile] },
    parameter: [
      { name: 'subscription', valueReference: { reference: input.subscriptionUrl } },
      { name: 'topic', valueCanonical: input.topic },
      { name: 'status', valueCode: input.status },
      { name: 'type', valueCode: input.type },
      { name: 'events-since-subscription-start', valueString: String(input.eventsSinceStart) },
      ...input.events.map((e) => ({
        name: 'notification-event',
        part: [
          { name: 'event-number', valueString: String(e.number) },
          { name: 'timestamp', valueInstant: e.timestamp },
          { name: 'focus', valueReference: { reference: e.focusUrl } },
        ],
      })),
    ],
  };
  return {
    resourceType: 'Bundle',
    type: 'history',
    timestamp: new Date().toISOString(),
    entry: [
      { fullUrl: `urn:uuid:${crypto.randomUUID()}`, resource: status, request: { method: 'GET', url: `${input.subscriptionUrl}/$status` }, response: { status: '200' } },
      ...input.events
        .filter((e) => e.resource)
        .map((e) => ({ fullUrl: e.focusUrl.replace(/\/_history\/[^/]+$/, ''), resource: e.resource!, request: { method: 'PUT' as const, url: `DiagnosticReport/${e.resource!.id}` }, response: { status: '200' } })),
    ],
  };
}
