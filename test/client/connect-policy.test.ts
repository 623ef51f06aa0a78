/**
 * The SMART app's pure checks of which servers it may reach (client/src/connect-policy.ts: the launch `iss` against
 * config.json `connectSrc`, the message of a CSP violation) and the headers of every API call (client/src/api.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { apiHeaders } from '../../client/src/api.ts';
import { blockedConnectionMessage, connectAllowed, launchNotAllowedMessage, sourceAllows } from '../../client/src/connect-policy.ts';

const SELF = 'https://cds.example.org';

describe('connect-src checks (launch page)', () => {
  const connectSrc = ["'self'", 'https://fhir.example.org', 'https://*.ehr.example', 'http://localhost:8080', 'https://auth.example:8443/oauth2'];

  test('origins in the list are allowed, whatever the path; others are not', () => {
    assert.ok(connectAllowed('https://fhir.example.org/r4', connectSrc, SELF));
    assert.ok(connectAllowed('https://cds.example.org/sandbox/fhir', connectSrc, SELF), "'self' is the page's origin");
    assert.ok(connectAllowed('https://tenant1.ehr.example/api/FHIR/R4', connectSrc, SELF));
    assert.ok(connectAllowed('http://localhost:8080/launcher/fhir', connectSrc, SELF));
    assert.ok(connectAllowed('https://auth.example:8443/token', connectSrc, SELF));
    assert.ok(!connectAllowed('https://ehr.example/fhir', connectSrc, SELF), 'the *. wildcard needs a subdomain');
    assert.ok(!connectAllowed('http://fhir.example.org/r4', connectSrc, SELF), 'scheme counts');
    assert.ok(!connectAllowed('http://localhost:9090/fhir', connectSrc, SELF), 'port counts');
    assert.ok(!connectAllowed('https://auth.example/token', connectSrc, SELF), 'default port is not 8443');
    assert.ok(!connectAllowed('https://launcher.example/fhir', connectSrc, SELF));
    assert.ok(!connectAllowed('not a url', connectSrc, SELF));
  });

  test('source expressions: scheme-only, explicit default port, keywords other than self', () => {
    assert.ok(sourceAllows('https:', new URL('https://any.example/'), SELF));
    assert.ok(sourceAllows('https://x.example:443', new URL('https://x.example/fhir'), SELF));
    assert.ok(!sourceAllows("'none'", new URL('https://x.example/'), SELF));
  });

  test('the messages name the origin and the settings to change', () => {
    const m = launchNotAllowedMessage('https://launcher.example:4013/v/r4/fhir');
    assert.match(m, /https:\/\/launcher\.example:4013 is not allowed/);
    assert.match(m, /smart-config\/token-verification\.json \("servers"\)/);
    assert.match(m, /APP_CONNECT_SRC/);
    const b = blockedConnectionMessage({ blockedURI: 'https://auth.other.example/oauth/token', effectiveDirective: 'connect-src' });
    assert.match(b ?? '', /blocked a connection to https:\/\/auth\.other\.example \(/);
    assert.match(b ?? '', /APP_CONNECT_SRC/);
    assert.equal(blockedConnectionMessage({ blockedURI: 'inline', effectiveDirective: 'script-src-elem' }), null);
    assert.equal(blockedConnectionMessage({ blockedURI: 'eval', effectiveDirective: 'connect-src' }), null);
  });
});

describe('API call headers', () => {
  test('bearer token, X-FHIR-Server always, X-SMART-Patient only with a launch patient', () => {
    const base = { accessToken: 'tok', apiBase: 'https://cds.example.org/api', fhirBaseUrl: 'https://ehr.example/fhir' };
    assert.deepEqual(apiHeaders({ ...base, patientId: 'p-1' }), { Authorization: 'Bearer tok', 'X-FHIR-Server': 'https://ehr.example/fhir', 'X-SMART-Patient': 'p-1' });
    assert.deepEqual(apiHeaders({ ...base, patientId: null }), { Authorization: 'Bearer tok', 'X-FHIR-Server': 'https://ehr.example/fhir' });
  });
});
