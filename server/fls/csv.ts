/**
 * CSV export of the FLS worklist (`GET /api/fls/worklist.csv`), RFC 4180: CRLF line ends, a header row, fields
 * containing a comma, double quote, CR or LF enclosed in double quotes with inner quotes doubled.
 *
 * Text cells that a spreadsheet would run as a formula (first character `=`, `+`, `-`, `@`, tab or CR) get a leading
 * apostrophe (OWASP "CSV Injection"): a patient name or note is data, never a formula. Numbers are written as
 * numbers (risks rounded as displayed). Every row carries the research-use notice, so a copied row keeps it.
 * @see https://www.rfc-editor.org/rfc/rfc4180
 * @see https://owasp.org/www-community/attacks/CSV_Injection
 */
import { shownPercent } from '../risk/numbers.ts';
import { describeRisk } from './fhir-model.ts';
import { RESEARCH_NOTICE, type WorklistItem } from './types.ts';

type Cell = string | number | boolean | null | undefined;

/** One RFC 4180 field. */
export function csvField(v: Cell): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Columns: identifiers first (MRN, name, birth date — two identifiers for a safe match), then the pathway (step, due
 * date, overdue, owner), the reason for the flag, the risks — each as the rounded number the screens show (percent,
 * `numbers.ts`) and as text ("5.2% (95% interval 1.1–17%)") — and the references.
 */
export const CSV_COLUMNS = [
  'taskId', 'mrn', 'patientName', 'birthDate', 'sex', 'site', 'status', 'step', 'stepSince', 'dueDate', 'dueFor', 'overdue', 'owner', 'flagReason',
  'tier', 'mode', 'hip10', 'hip10Lower', 'hip10Upper', 'hip10Text', 'mof10', 'mof10Lower', 'mof10Upper', 'mof10Text', 'imminent',
  'authoredOn', 'studyDate', 'flsReferralStatus', 'dxaResultDate', 'treatment', 'patientId', 'riskAssessmentId', 'assessmentId', 'serviceRequestId',
  'dismissalReason', 'lastNote', 'warnings', 'notice',
] as const;

const shown = (p: number | null): number | null => (p === null ? null : shownPercent(p / 100));

export function worklistCsv(items: readonly WorklistItem[]): string {
  const rows: Cell[][] = [[...CSV_COLUMNS]];
  for (const it of items) {
    const pw = it.pathway;
    rows.push([
      it.taskId, it.mrn, it.patientName, it.birthDate, it.sex, it.site, it.status, pw.step, pw.stepSince, pw.dueDate, pw.dueFor, pw.overdue,
      pw.owner?.display ?? null, it.flagReason,
      it.tier, it.mode, shown(it.hip10.estimate), shown(it.hip10.lower), shown(it.hip10.upper), describeRisk(it.hip10),
      shown(it.mof10.estimate), shown(it.mof10.lower), shown(it.mof10.upper), describeRisk(it.mof10), it.imminent,
      it.authoredOn, it.studyDate, it.care.flsReferral?.status ?? null, it.care.dxaResult?.date ?? null, it.care.treatment?.name ?? null,
      it.patientId, it.riskAssessmentId, it.assessmentId, it.serviceRequestId, it.dismissalReason, pw.notes.at(-1)?.text ?? null,
      it.warnings.join(' | '), RESEARCH_NOTICE,
    ]);
  }
  return rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}
