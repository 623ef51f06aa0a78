/**
 * What a clinician reads when the radiograph cannot be used, end to end: the demo stack (FHIR and DICOMweb sandboxes)
 * behind a DICOMweb proxy that misbehaves like real PACSes do — Orthanc's JSON error body (with the request URI and
 * its UIDs) on a 500, a corrupt JPEG-LS frame. The assessment's warning and the RiskAssessment.note say what happened
 * in plain words, with no URL, UID or PACS text; the operator's log line carries the code, status and a scrubbed
 * excerpt of what the PACS said, and no UID.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../../server/config.ts';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { parseMultipart, writeMultipart } from '../../server/imaging/multipart.ts';
import { ModelRegistry } from '../../server/inference/registry.ts';
import { createLogger } from '../../server/logging.ts';
import { assess, type AssessDeps } from '../../server/risk/assess.ts';
import { toFhir } from '../../server/risk/fhir-output.ts';
import { startDemoStack, type DemoStack } from '../support/demo-stack.ts';

const AT = new Date('2026-11-27T12:00:00Z');
const SETTINGS = { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 }, maxIntervalWidth: 10 };
const PATIENT = 'demo-a-001'; // its radiograph is stored as JPEG-LS

type Mode = 'pacs-500' | 'corrupt-frame';

let stack: DemoStack;
let registry: ModelRegistry;
let proxy: Server;
let proxyUrl = '';
let mode: Mode = 'pacs-500';
const seen: string[] = [];
const logLines: string[] = [];

/** Text that must never reach a clinician: addresses, DICOM UIDs, routes, what the PACS wrote. */
const LEAKS = /https?:|\/studies\/|\b\d+(?:\.\d+){3,}\b|Orthanc|HttpError|Bad file format|CharLS error|\{study\}/;

before(async () => {
  stack = await startDemoStack();
  registry = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'test/fixtures/models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  // Forwards to the sandbox DICOMweb; frames (and, for the 500 case, whole instances) fail as configured.
  proxy = createServer((req, res) => {
    void (async () => {
      const path = req.url!.replace(/^\/dicom-web/, '');
      const route = path.split('?')[0]!;
      seen.push(route.replace(/^.*\/(metadata|frames\/\d+)$/, '$1').replace(/^.*\/instances\/[^/]+$/, 'instance'));
      const isFrames = /\/frames\//.test(route);
      const isInstance = /\/instances\/[^/]+$/.test(route);
      if (mode === 'pacs-500' && (isFrames || isInstance)) {
        // Orthanc's error body, verbatim in shape: it repeats the request URI with every UID.
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({
          HttpError: 'Internal Server Error', HttpStatus: 500, Message: 'Bad file format', Method: 'GET', OrthancError: 'Bad file format', OrthancStatus: 15, Uri: `/dicom-web${route}`,
        }, null, 2));
        return;
      }
      const upstream = await fetch(`${stack.dicomWebBaseUrl}${path}`, { headers: { accept: req.headers.accept ?? '*/*' } });
      const body = new Uint8Array(await upstream.arrayBuffer());
      const type = upstream.headers.get('content-type') ?? 'application/octet-stream';
      if (mode === 'corrupt-frame' && isFrames && upstream.ok) {
        const [part] = parseMultipart(body, type);
        const bad = new Uint8Array(part!.body);
        bad.fill(0x55, 40);
        const mp = writeMultipart([{ contentType: part!.contentType, body: bad }], part!.contentType.split(';')[0]!);
        res.writeHead(200, { 'content-type': mp.contentType }).end(mp.body);
        return;
      }
      res.writeHead(upstream.status, { 'content-type': type }).end(body);
    })().catch((e: unknown) => res.writeHead(502).end(String(e)));
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}/dicom-web`;
});

after(async () => {
  proxy?.closeAllConnections();
  await new Promise((r) => proxy?.close(r));
  await registry?.close();
  await stack?.close();
});

function deps(): AssessDeps {
  const logger = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => (logLines.push(String(c)), cb()) }) });
  return {
    fhir: stack.fhirClient({ timeoutMs: 10_000 }),
    dicomweb: new DicomWebClient({ baseUrl: proxyUrl, timeoutMs: 10_000, retries: 2, retryBaseDelayMs: 5, logger }),
    registry,
    settings: SETTINGS,
    logger,
  };
}

describe('an unusable radiograph, as the clinician and the operator see it', () => {
  it('PACS answers 500 with its JSON error: plain-words warning and note, not retried; the log has code, status and a scrubbed excerpt', async () => {
    mode = 'pacs-500';
    seen.length = 0;
    logLines.length = 0;
    const result = await assess(deps(), { patientId: PATIENT, at: AT });
    const a = result.assessment;
    assert.equal(a.mode, 'clinical-only');
    const warning = a.warnings.find((w) => /could not be used/.test(w));
    assert.equal(warning, 'The radiograph could not be used (the PACS refused the image request (HTTP 500)): clinical-only (QFracture-2012) risk.');
    const notes = (toFhir(result, { binaries: false }).riskAssessment.note ?? []).map((n) => n.text ?? '');
    assert.ok(notes.includes(warning!), 'the warning is in RiskAssessment.note');
    for (const text of [...a.warnings, ...notes]) assert.doesNotMatch(text, LEAKS, text);
    assert.deepEqual(seen.filter((s) => s !== 'metadata'), ['frames/1', 'instance'], 'a 500 is not retried; the whole instance was tried once');

    const line = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'image not usable; clinical-only assessment');
    assert.ok(line, logLines.join('\n'));
    assert.equal(line['code'], 'PACS_HTTP_ERROR');
    assert.equal(line['status'], 500);
    assert.equal(line['route'], '/studies/{study}/series/{series}/instances/{instance}/frames/1');
    assert.equal(line['pacs'], 'Bad file format');
    const all = logLines.join('\n');
    assert.doesNotMatch(all, /2\.25\.\d{6,}/, 'no DICOM UID in the logs');
    assert.doesNotMatch(all, new RegExp(PATIENT), 'no patient id in the logs');
  });

  it('a corrupt JPEG-LS frame: "the image file is corrupt" with CharLS\'s meaning, the codec code in the log only', async () => {
    mode = 'corrupt-frame';
    logLines.length = 0;
    const result = await assess(deps(), { patientId: PATIENT, at: AT });
    const a = result.assessment;
    assert.equal(a.mode, 'clinical-only');
    assert.ok(a.warnings.includes('The radiograph could not be used (the image file is corrupt (the JPEG-LS compressed data is invalid)): clinical-only (QFracture-2012) risk.'), a.warnings.join(' | '));
    for (const n of toFhir(result, { binaries: false }).riskAssessment.note ?? []) assert.doesNotMatch(n.text ?? '', LEAKS, n.text);
    const line = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'image not usable; clinical-only assessment');
    assert.equal(line?.['code'], 'DECODE_FAILED');
    assert.match(String(line?.['detail']), /CharLS error 5 invalid_encoded_data/);

    // Second line of defence: an address that slips into a warning does not reach the chart.
    const leaky = { ...result, assessment: { ...a, warnings: [...a.warnings, `See ${proxyUrl}/studies/1.2.3/series/4.5 (retry later).`] } };
    const notes = (toFhir(leaky, { binaries: false }).riskAssessment.note ?? []).map((n) => n.text ?? '');
    assert.ok(notes.includes('See (address withheld) (retry later).'), notes.join(' | '));
  });
});
