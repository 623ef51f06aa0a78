import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DiagnosticReport } from '@medplum/fhirtypes';
import { buildNotification, MalformedNotificationError, parseNotification, referenceParts } from './notification.ts';
import { toReportEvent } from './receiver.ts';
import { becameFinal, TOPIC_URL } from './topic.ts';

const report: DiagnosticReport = { resourceType: 'DiagnosticReport', id: 'r1', status: 'final', code: { text: 'XR' }, meta: { versionId: 'v7', lastUpdated: '2026-01-01T00:00:00Z' }, imagingStudy: [{ reference: 'ImagingStudy/s1' }] };
const sub = 'http://fhir.example/Subscription/9';

describe('Backport notification bundles', () => {
  it('round-trips an id-only event notification', () => {
    const b = buildNotification({ subscriptionUrl: sub, topic: TOPIC_URL, type: 'event-notification', status: 'active', eventsSinceStart: 3, events: [{ number: 3, timestamp: '2026-01-01T00:00:00Z', focusUrl: 'http://fhir.example/DiagnosticReport/r1/_history/v7' }] });
    assert.equal(b.entry?.length, 1);
    const n = parseNotification(b);
    assert.equal(n.type, 'event-notification');
    assert.equal(n.topic, TOPIC_URL);
    assert.equal(n.subscription, sub);
    assert.equal(n.eventsSinceStart, '3');
    assert.equal(n.events[0]!.eventNumber, '3');
    const ev = toReportEvent(n.events[0]!, sub);
    assert.ok('event' in ev);
    assert.deepEqual([ev.event.reportId, ev.event.versionId, ev.event.source], ['r1', 'v7', 'backport-id-only']);
  });

  it('round-trips a full-resource event notification (the resource travels with its version)', () => {
    const b = buildNotification({ subscriptionUrl: sub, topic: TOPIC_URL, type: 'event-notification', status: 'active', eventsSinceStart: 1, events: [{ number: 1, timestamp: '2026-01-01T00:00:00Z', focusUrl: 'http://fhir.example/DiagnosticReport/r1/_history/v7', resource: report }] });
    assert.equal(b.entry?.length, 2);
    const ev = toReportEvent(parseNotification(b).events[0]!, sub);
    assert.ok('event' in ev);
    assert.equal(ev.event.source, 'backport-full-resource');
    assert.equal(ev.event.resource?.status, 'final');
    assert.equal(ev.event.versionId, 'v7');
  });

  it('reads IG 1.0-style integer counters and handshakes', () => {
    const n = parseNotification({
      resourceType: 'Bundle', type: 'history',
      entry: [{ resource: { resourceType: 'Parameters', parameter: [{ name: 'topic', valueCanonical: TOPIC_URL }, { name: 'type', valueCode: 'handshake' }, { name: 'events-since-subscription-start', valueUnsignedInt: 0 }] } }],
    });
    assert.equal(n.type, 'handshake');
    assert.equal(n.eventsSinceStart, '0');
    assert.equal(n.events.length, 0);
  });

  it('rejects what is not a notification, saying why', () => {
    assert.throws(() => parseNotification({ resourceType: 'Bundle', type: 'searchset', entry: [] }), MalformedNotificationError);
    assert.throws(() => parseNotification({ resourceType: 'Bundle', type: 'history', entry: [{ resource: { resourceType: 'Parameters', parameter: [{ name: 'type', valueCode: 'gossip' }] } }] }), /not a notification type/);
    assert.throws(() => parseNotification('nope'), MalformedNotificationError);
  });

  it('parses references: relative, absolute, versioned', () => {
    assert.deepEqual(referenceParts('DiagnosticReport/a.1'), { type: 'DiagnosticReport', id: 'a.1' });
    assert.deepEqual(referenceParts('https://x/fhir/DiagnosticReport/a/_history/3'), { type: 'DiagnosticReport', id: 'a', versionId: '3' });
    assert.equal(referenceParts('urn:uuid:1234'), null);
  });

  it('the topic fires when an imaging report becomes final, not on other writes', () => {
    const prelim = { ...report, status: 'preliminary' as const };
    assert.equal(becameFinal(undefined, report), true);
    assert.equal(becameFinal(prelim, report), true);
    assert.equal(becameFinal(report, report), false);
    assert.equal(becameFinal(report, prelim), false);
    assert.equal(becameFinal(undefined, { ...report, imagingStudy: [], category: [{ coding: [{ code: 'LAB' }] }] }), false);
  });
});
