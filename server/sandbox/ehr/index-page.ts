/**
 * `GET /` for browsers: the links `npm start` logs, with the demo EHR first (the place to start), and the
 * research-use notice. API clients (no `Accept: text/html`) keep getting the JSON index.
 */
import { html } from './html.ts';

const LABELS: Record<string, string> = {
  demoEhr: 'Demo EHR — start here: patient list, chart, CDS Hooks cards, SMART app launch',
  app: 'Fracture Risk SMART app (standalone launch)',
  fhirPatients: 'Sandbox FHIR server: demo patients',
  fhirMetadata: 'Sandbox FHIR server: CapabilityStatement',
  dicomWebStudies: 'Sandbox DICOMweb server: studies',
  assessments: 'Risk assessment API',
  readiness: 'Readiness',
  health: 'Liveness',
  metrics: 'Metrics (Prometheus)',
};

export function indexPage(links: Record<string, string>, notice: string): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Fracture Risk CDS</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:760px;margin:32px auto;padding:0 16px;color:#1b2430}a{color:#0b5cad}.notice{background:#fff4d6;border:1px solid #ecd9a0;padding:8px 12px;border-radius:4px}.start{font-size:18px;font-weight:600}li{margin:4px 0}</style></head>
<body><main><h1>Fracture Risk CDS</h1><p class="notice" role="note">${notice}</p>
${links['demoEhr'] ? html`<p class="start"><a href="${links['demoEhr']}">Open the demo EHR</a> to try the service as a clinician would.</p>` : ''}
<ul>${Object.entries(links).map(([k, u]) => html`<li><a href="${u}">${LABELS[k] ?? k}</a> <code>${u}</code></li>`)}</ul></main></body></html>`.value;
}
