/**
 * Server-rendered pages of the demo EHR: the patient list (with search) and the chart. Card areas are filled by
 * the browser script (`browser/ehr.ts`) from the EHR's own JSON endpoints, which call the CDS service server-side.
 */
import type { CodeableConcept, Condition, DiagnosticReport, ImagingStudy, MedicationRequest, Observation, Patient, RiskAssessment, ServiceRequest } from '@medplum/fhirtypes';
import { ageYears, displayName, mrn, type Chart, type Section } from './chart.ts';
import { html, SafeHtml } from './html.ts';
import { awaitsFinal } from './reports.ts';
import { formatInterval, formatRisk } from '../../risk/numbers.ts';

/** Research-use notice, verbatim (brief: wherever a model's output is shown). */
export const RESEARCH_NOTICE = 'Research use — trained on synthetic data';

export interface PageContext {
  /** Mount path of the EHR, e.g. `/sandbox/ehr`. */
  base: string;
  /** Display name and reference of the signed-in (demo) user. */
  user: { name: string; ref: string };
  /** Asset version for cache busting. */
  assetVersion: string;
  /** The SMART app's FLS worklist launch (`…/app/launch.html?mode=worklist&iss=<FHIR base>`), linked in the header. */
  worklistUrl: string;
}

export interface OrderableStudy {
  system: string;
  code: string;
  display: string;
}

function layout(ctx: PageContext, title: string, body: SafeHtml, pageData?: Record<string, unknown>): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Demo EHR</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${ctx.base}/assets/ehr.css?v=${ctx.assetVersion}">
<script type="module" src="${ctx.base}/assets/ehr.js?v=${ctx.assetVersion}"></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="topbar">
  <a class="topbar__brand" href="${ctx.base}/"><span class="topbar__logo" aria-hidden="true">+</span> Demo EHR <span class="topbar__tag">sandbox</span></a>
  <nav class="topbar__nav" aria-label="Main"><a href="${ctx.base}/">Patients</a><a href="${ctx.worklistUrl}" target="_blank" rel="noopener" data-link="fls-worklist">FLS worklist <span aria-hidden="true">↗</span><span class="visually-hidden">(opens in a new tab)</span></a></nav>
  <span class="topbar__user">Signed in as <strong>${ctx.user.name}</strong></span>
</header>
<p class="notice" role="note">Demo EHR for trying the Fracture Risk CDS service with synthetic patients. ${RESEARCH_NOTICE}. Not for clinical decisions.</p>
${body}
${pageData ? html`<script type="application/json" id="page-data">${new SafeHtml(JSON.stringify(pageData).replace(/</g, '\\u003c'))}</script>` : ''}
</body>
</html>`.value;
}

function text(cc: CodeableConcept | undefined): string {
  return cc?.text ?? cc?.coding?.find((c) => c.display)?.display ?? cc?.coding?.[0]?.code ?? '—';
}

function date(d: string | undefined): string {
  if (!d) return '—';
  const t = new Date(d);
  if (Number.isNaN(t.getTime())) return d;
  return t.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
}

function sexLabel(g: Patient['gender']): string {
  return g === 'female' ? 'Female' : g === 'male' ? 'Male' : g === 'other' ? 'Other' : 'Unknown';
}

export interface PatientListPage {
  patients: Patient[];
  query: string;
  total?: number;
  offset: number;
  pageSize: number;
  error?: string;
  /** Patients (ids) with an imaging report awaiting sign-off: they get a badge. */
  pending?: ReadonlySet<string>;
  /** The list is filtered to those patients (`?pending=1`). */
  pendingOnly?: boolean;
}

export function patientListPage(ctx: PageContext, p: PatientListPage): string {
  const prev = p.offset > 0 ? Math.max(0, p.offset - p.pageSize) : undefined;
  const next = p.total !== undefined ? (p.offset + p.pageSize < p.total ? p.offset + p.pageSize : undefined) : p.patients.length === p.pageSize ? p.offset + p.pageSize : undefined;
  const qs = (offset: number): string => `?${new URLSearchParams({ ...(p.query ? { q: p.query } : {}), ...(p.pendingOnly ? { pending: '1' } : {}), offset: String(offset) }).toString()}`;
  const body = html`<main id="main" class="page page--list">
  <h1>Patients</h1>
  <form class="search" role="search" method="get" action="${ctx.base}/">
    <label for="q">Search by name or MRN</label>
    <input id="q" name="q" type="search" value="${p.query}" placeholder="e.g. Khan or DEMOA0022" autocomplete="off">
    <button class="btn btn--primary" type="submit">Search</button>
    ${p.query ? html`<a class="btn btn--quiet" href="${ctx.base}/">Clear</a>` : ''}
    ${p.pendingOnly
      ? html`<a class="btn btn--secondary" href="${ctx.base}/" data-filter="pending">Show all patients</a>`
      : html`<a class="btn btn--secondary" href="${ctx.base}/?pending=1" data-filter="pending">Only patients with a preliminary report</a>`}
  </form>
  ${p.error ? html`<p class="error" role="alert">The patient list could not be loaded: ${p.error}</p>` : ''}
  <p class="muted" aria-live="polite">${p.total !== undefined ? `${p.total} patient${p.total === 1 ? '' : 's'}` : ''}${p.query ? ` matching “${p.query}”` : ''}${p.pendingOnly ? ' with a preliminary imaging report' : ''}</p>
  <table class="table patients">
    <caption class="visually-hidden">Patients</caption>
    <thead><tr><th scope="col">Name</th><th scope="col">MRN</th><th scope="col">Sex</th><th scope="col">Date of birth</th><th scope="col">Age</th></tr></thead>
    <tbody>
      ${p.patients.map(
        (pt) => html`<tr>
        <td><a href="${ctx.base}/patients/${pt.id ?? ''}" data-patient="${pt.id ?? ''}">${displayName(pt)}</a>${p.pending?.has(pt.id ?? '') ? html` <span class="badge badge--pending" data-badge="preliminary-report" title="An imaging report awaits sign-off: open the chart to finalise it">Preliminary report</span>` : ''}</td>
        <td>${mrn(pt) ?? '—'}</td><td>${sexLabel(pt.gender)}</td><td>${date(pt.birthDate)}</td><td>${ageYears(pt.birthDate) ?? '—'}</td>
      </tr>`,
      )}
      ${p.patients.length === 0 && !p.error ? html`<tr><td colspan="5">No patients found.</td></tr>` : ''}
    </tbody>
  </table>
  <nav class="pager" aria-label="Pages">
    ${prev !== undefined ? html`<a class="btn btn--secondary" href="${ctx.base}/${qs(prev)}" rel="prev">Previous</a>` : ''}
    ${next !== undefined ? html`<a class="btn btn--secondary" href="${ctx.base}/${qs(next)}" rel="next">Next</a>` : ''}
  </nav>
</main>`;
  return layout(ctx, 'Patients', body);
}

function sectionBlock<T>(id: string, title: string, s: Section<T>, empty: string, head: string[], row: (t: T) => SafeHtml): SafeHtml {
  return html`<section class="panel" aria-labelledby="${id}-h" id="${id}">
  <h2 id="${id}-h">${title} <span class="count">${s.items.length}</span></h2>
  ${s.error ? html`<p class="error" role="alert">Could not load: ${s.error}</p>` : ''}
  ${s.items.length === 0 && !s.error
    ? html`<p class="muted">${empty}</p>`
    : html`<table class="table"><thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead><tbody>${s.items.map(row)}</tbody></table>`}
</section>`;
}

/** Report statuses after sign-off (FHIR R4 diagnostic-report-status). */
const SIGNED_OFF: readonly DiagnosticReport['status'][] = ['final', 'amended', 'corrected', 'appended'];

function obsValue(o: Observation): string {
  if (o.valueQuantity) return `${o.valueQuantity.value ?? ''} ${o.valueQuantity.unit ?? o.valueQuantity.code ?? ''}`.trim();
  if (o.valueCodeableConcept) return text(o.valueCodeableConcept);
  if (o.valueString !== undefined) return o.valueString;
  if (o.valueBoolean !== undefined) return o.valueBoolean ? 'Yes' : 'No';
  if (o.valueInteger !== undefined) return String(o.valueInteger);
  return '—';
}

/** A risk (fraction) as every view writes it (server/risk/numbers.ts). */
function pct(p: number | undefined): string {
  return formatRisk(p);
}

/** The 95 % interval a prediction carries in an extension with `lower`/`upper` sub-extensions (as the service writes it). */
function interval(pr: NonNullable<RiskAssessment['prediction']>[number]): [number, number] | undefined {
  for (const e of pr.extension ?? []) {
    const lo = e.extension?.find((x) => x.url === 'lower')?.valueDecimal;
    const hi = e.extension?.find((x) => x.url === 'upper')?.valueDecimal;
    if (lo !== undefined && hi !== undefined) return [lo, hi];
  }
  return undefined;
}

/** The 10-year predictions (all of them when none is marked 10-year), with their interval. */
function predictionRows(ra: RiskAssessment): SafeHtml {
  const all = ra.prediction ?? [];
  const tenYear = all.filter((pr) => pr.whenRange?.high?.value === 10);
  return html`${(tenYear.length > 0 ? tenYear : all).map((pr) => {
    const ci = interval(pr);
    return html`<div>${text(pr.outcome)}${pr.whenRange?.high?.value === 10 ? ', 10-year' : ''}: <strong>${pct(pr.probabilityDecimal)}</strong>${ci ? ` (95% interval ${formatInterval(ci[0] * 100, ci[1] * 100)})` : ''}</div>`;
  })}`;
}

export function chartPage(ctx: PageContext, chart: Chart, studies: readonly OrderableStudy[]): string {
  const p = chart.patient;
  const id = p.id ?? '';
  const name = displayName(p);
  const age = ageYears(p.birthDate);
  const body = html`<div class="banner" role="region" aria-label="Patient banner">
  <div class="banner__who">
    <h1 class="banner__name">${name}</h1>
    <dl class="banner__facts">
      <div><dt>Sex</dt><dd>${sexLabel(p.gender)}</dd></div>
      <div><dt>Born</dt><dd>${date(p.birthDate)}${age !== undefined ? ` (${age} y)` : ''}</dd></div>
      <div><dt>MRN</dt><dd>${mrn(p) ?? '—'}</dd></div>
      <div><dt>FHIR id</dt><dd><code>${id}</code></dd></div>
    </dl>
  </div>
  <div class="banner__actions">
    <button type="button" class="btn btn--primary" data-action="open-order" aria-controls="order-panel" aria-expanded="false">Order imaging</button>
    <button type="button" class="btn btn--secondary" data-action="open-app">Open Fracture Risk app</button>
  </div>
</div>
<div class="workspace">
<!-- Decision support first in the page: in a narrow EHR panel it comes before the chart sections, not after them. -->
<aside class="cds" aria-labelledby="cds-h">
  <h2 id="cds-h">Decision support</h2>
  <div class="cds__cards" data-hook="patient-view" aria-live="polite" aria-busy="true"><p class="muted">Checking decision support…</p></div>
</aside>
<main id="main" class="chart">
  <section class="panel order" id="order-panel" aria-labelledby="order-h" hidden>
    <!-- Not a <form>: the cards shown inside carry their own override forms, and forms cannot nest. -->
    <h2 id="order-h">Order imaging</h2>
    <div class="order__form">
      <fieldset>
        <legend>Study</legend>
        <div class="order__choices">
        ${studies.map(
          (s, i) => html`<label class="choice"><input type="radio" name="study" value="${i}" data-code="${s.code}"> ${s.display} <span class="muted code">${s.system.includes('loinc') ? 'LOINC' : 'SNOMED CT'} ${s.code}</span></label>`,
        )}
        </div>
      </fieldset>
      <label class="order__reason">Reason for study <input name="reason" type="text" maxlength="120" value="Hip pain after a fall" autocomplete="off"></label>
      <div class="order__cards" aria-live="polite" aria-label="Decision support for this order"></div>
      <div class="order__actions">
        <button type="button" class="btn btn--primary" data-action="sign" disabled>Sign order</button>
        <button type="button" class="btn btn--primary" data-action="place" hidden>Place order anyway</button>
        <button type="button" class="btn btn--quiet" data-action="cancel-order">Cancel</button>
        <span class="order__status" role="status" aria-live="polite"></span>
      </div>
    </div>
  </section>
  ${sectionBlock('problems', 'Problems', chart.problems, 'No problems recorded.', ['Problem', 'Status', 'Onset'], (c: Condition) =>
    // A provisional or unconfirmed entry (e.g. a fracture a card proposed from a CT) says so next to its status.
    html`<tr><td>${text(c.code)}</td><td>${text(c.clinicalStatus)}${c.verificationStatus?.coding?.some((x) => x.code === 'provisional' || x.code === 'unconfirmed') ? ' (provisional)' : ''}</td><td>${date(c.onsetDateTime ?? c.recordedDate)}</td></tr>`,
  )}
  ${sectionBlock('medicines', 'Medicines', chart.medicines, 'No medicines recorded.', ['Medicine', 'Status', 'Since'], (m: MedicationRequest) =>
    html`<tr><td>${text(m.medicationCodeableConcept)}</td><td>${m.status ?? '—'}</td><td>${date(m.authoredOn)}</td></tr>`,
  )}
  ${sectionBlock('imaging', 'Imaging studies', chart.imaging, 'No imaging studies.', ['Study', 'Modality', 'Date', 'Status'], (s: ImagingStudy) =>
    html`<tr><td>${s.description ?? text(s.procedureCode?.[0])}</td><td>${(s.modality ?? []).map((m) => m.code).join(', ') || '—'}</td><td>${date(s.started)}</td><td>${s.status}</td></tr>`,
  )}
  <div class="reports-status" id="reports-status" role="status" aria-live="polite"></div>
  ${sectionBlock('reports', 'Imaging reports', chart.reports, 'No imaging reports.', ['Report', 'Status', 'Date', 'Conclusion', 'Sign-off'], (r: DiagnosticReport) =>
    html`<tr data-report="${r.id ?? ''}"><td>${text(r.code)}</td><td><span class="status status--${awaitsFinal(r) ? 'pending' : r.status}">${r.status}</span></td><td>${date(r.effectiveDateTime ?? r.issued)}</td><td class="conclusion">${r.conclusion ?? '—'}</td><td>${
      awaitsFinal(r) && r.id
        ? html`<button type="button" class="btn btn--primary btn--small" data-action="finalise-report" data-report="${r.id}">Finalise report</button>`
        : html`<span class="muted">${r.issued && SIGNED_OFF.includes(r.status) ? `Signed off ${date(r.issued)}` : '—'}</span>`
    }</td></tr>`,
  )}
  ${sectionBlock('orders', 'Orders and referrals', chart.orders, 'No orders.', ['Order', 'Status', 'Authored'], (o: ServiceRequest) =>
    html`<tr data-order="${o.id ?? ''}"><td>${text(o.code)}</td><td>${o.status}</td><td>${date(o.authoredOn)}</td></tr>`,
  )}
  ${sectionBlock('assessments', 'Fracture risk assessments', chart.assessments, 'No risk assessments on file.', ['Date', 'Result', 'Method'], (r: RiskAssessment) =>
    html`<tr data-ra="${r.id ?? ''}"><td>${date(r.occurrenceDateTime)}</td><td>${predictionRows(r)}</td><td>${text(r.method)}</td></tr>`,
  )}
  ${sectionBlock('observations', 'Observations', chart.observations, 'No observations.', ['Observation', 'Value', 'Date'], (o: Observation) =>
    html`<tr><td>${text(o.code)}</td><td>${obsValue(o)}</td><td>${date(o.effectiveDateTime)}</td></tr>`,
  )}
</main>
</div>
<section class="app-panel" id="app-panel" aria-labelledby="app-h" hidden>
  <div class="app-panel__bar"><h2 id="app-h">Fracture Risk app</h2><span class="muted">${RESEARCH_NOTICE}</span><button type="button" class="btn btn--secondary" data-action="close-app">Close app</button></div>
  <iframe class="app-panel__frame" title="Fracture Risk app" name="smart-app"></iframe>
</section>`;
  return layout(ctx, name, body, { patientId: id, base: ctx.base });
}

/** A small page for errors (unknown patient, sandbox FHIR failing). */
export function errorPage(ctx: PageContext, title: string, message: string): string {
  return layout(ctx, title, html`<main id="main" class="page"><h1>${title}</h1><p>${message}</p><p><a href="${ctx.base}/">Back to the patient list</a></p></main>`);
}
