/**
 * The summary to print or to show the patient, fit for shared decision-making: two identifiers (name, birth date
 * and MRN from the Patient resource), the risk in natural frequencies ("About 14 in 100 people like you…") with an
 * icon array of 100 people, the next steps for the tier, the caveats and the research notice; then, for the
 * clinician reading the printout, the numbers with their intervals, the decision and the main factors.
 * `variant="print"` is shown only when printing (print CSS); `variant="screen"` is the app's patient view.
 */
import type { Patient } from '@medplum/fhirtypes';
import { iconCounts, patientExplanation, patientNextSteps, recommendation } from '../decision-text.ts';
import { factorRows } from '../factor-rows.ts';
import { ctOf, leadingAction } from '../ct-findings.ts';
import { formatDate, formatInterval, formatRisk, outcomeLabel, tierLabel } from '../format.ts';
import type { Assessment, Outcome } from '../types.ts';
import { displayName, mrnOf } from './banner.tsx';
import { IconArray } from './icon-array.tsx';

export function PatientSummary(props: { assessment: Assessment; patient: Patient | null; knownName?: string; variant: 'print' | 'screen'; curveImage?: string | null }) {
  const a = props.assessment;
  const p = props.patient;
  const v = props.variant;
  const counts = iconCounts(a);
  const hip10 = a.outcomes.hip.risks.find((r) => r.years === 10)!;
  const mof10 = a.outcomes.mof.risks.find((r) => r.years === 10)!;
  const factors = factorRows(a, 'mof')
    .filter((f) => f.effect === 'raises')
    .slice(0, 3);
  const H = v === 'print' ? 'h1' : 'h2';
  return (
    <section class={v === 'print' ? 'print-only patient-summary' : 'card patient-summary patient-view'} aria-labelledby={`${v}-ps-title`} data-testid={`patient-summary-${v}`}>
      <H id={`${v}-ps-title`}>Your bone health: fracture risk summary</H>
      <p class="research-notice">
        <strong>Research use — trained on synthetic data.</strong> Not for clinical decisions.
      </p>
      <dl class="ids">
        <dt>Name</dt>
        <dd data-testid="ps-name">{p ? displayName(p) : props.knownName ?? 'not available'}</dd>
        <dt>Born</dt>
        <dd data-testid="ps-birth">{formatDate(p?.birthDate)}</dd>
        <dt>MRN</dt>
        <dd data-testid="ps-mrn">{(p && mrnOf(p)) ?? '–'}</dd>
        <dt>Assessed</dt>
        <dd>{formatDate(a.createdAt)}</dd>
      </dl>
      <h2>What the result means</h2>
      <p class="explanation" data-testid="ps-explanation">
        {patientExplanation(a)}
      </p>
      <IconArray counts={counts} idPrefix={v} />
      <h2>Next steps</h2>
      <ul>
        {patientNextSteps(leadingAction(a)).map((t) => (
          <li key={t}>{t}</li>
        ))}
      </ul>
      <h2>Please keep in mind</h2>
      <ul>
        <li>
          This is an estimate from a computer model, not a certainty: it describes people like you, not what will happen to you.
          {mof10.lower !== null && mof10.upper !== null ? ` The model’s range for the chance of any of these fractures is ${formatInterval(mof10.lower * 100, mof10.upper * 100)}.` : ''}
        </li>
        {a.caveat && <li>A note for your doctor about this result: {a.caveat}</li>}
        <li>Research use — trained on synthetic data: this tool is being tested and its numbers must not decide your care on their own.</li>
      </ul>
      <div class="for-clinician">
        <h2>For the clinician</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">10-year risk</th>
              <th scope="col">Estimate</th>
              <th scope="col">95% interval</th>
            </tr>
          </thead>
          <tbody>
            {(['hip', 'mof'] as Outcome[]).map((o) => {
              const r = o === 'hip' ? hip10 : mof10;
              return (
                <tr key={o}>
                  <th scope="row">{outcomeLabel(o)}</th>
                  <td>{formatRisk(r.risk)}</td>
                  <td>{r.lower === null || r.upper === null ? '–' : formatInterval(r.lower * 100, r.upper * 100)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        <p>
          {tierLabel(a.tier.tier)} risk. {a.decision.meaning} Recommended: {recommendation(leadingAction(a)).title.toLowerCase()} (thresholds: {a.decision.guideline.name}).
        </p>
        {factors.length > 0 && <p>Main factors: {factors.map((f) => `${f.name} (${f.effectText})`).join('; ')}.</p>}
        {props.curveImage && <img src={props.curveImage} alt="Fracture-free probability over 10 years" class="print-curve" />}
        <p class="small">
          {a.mode === 'clinical-only' ? 'Clinical factors only (QFracture-2012)' : ctOf(a) ? 'CT + clinical factors' : 'Radiograph + clinical factors'}; model {a.model.id} v{a.model.version}; assessment {a.id} of {formatDate(a.createdAt)}. {a.attribution}
        </p>
      </div>
    </section>
  );
}
