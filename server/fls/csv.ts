/**
 * CSV export of the FLS worklist (`GET /api/fls/worklist.csv`), RFC 4180: CRLF line ends, a header row, fields
 * containing a comma, double quote, CR or LF enclosed in double quotes with inner quotes doubled.
 *
 * Text cells that a spreadsheet would run as a formula (first character `=`, `+`, `-`, `@`, tab or CR) get a leading
 * apostrophe (OWASP "CSV Injection"): a patient name or note is data, never a formula. Numbers are written as
 * numbers. Every row carries the research-use notice, so a copied row keeps it.
 * @see https://www.rfc-editor.org/rfc/rfc4180
 * @see https://owasp.org/www-community/attacks/CSV_Injection
 */
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

export const CSV_COLUMNS = [
  'taskId', 'status', 'patientId', 'patientName', 'birthDate', 'sex', 'site', 'tier', 'mode',
  'hip10', 'hip10Lower', 'hip10Upper', 'mof10', 'mof10Lower', 'mof10Upper', 'imminent',
  'authoredOn', 'studyDate', 'riskAssessmentId', 'assessmentId', 'serviceRequestId', 'dismissalReason', 'warnings', 'notice',
] as const;

export function worklistCsv(items: readonly WorklistItem[]): string {
  const rows: Cell[][] = [[...CSV_COLUMNS]];
  for (const it of items) {
    rows.push([
      it.taskId, it.status, it.patientId, it.patientName, it.birthDate, it.sex, it.site, it.tier, it.mode,
      it.hip10.estimate, it.hip10.lower, it.hip10.upper, it.mof10.estimate, it.mof10.lower, it.mof10.upper, it.imminent,
      it.authoredOn, it.studyDate, it.riskAssessmentId, it.assessmentId, it.serviceRequestId, it.dismissalReason, it.warnings.join(' | '), RESEARCH_NOTICE,
    ]);
  }
  return rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}
