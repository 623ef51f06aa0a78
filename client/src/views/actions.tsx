/**
 * Actions (issue 7): refer to the fracture liaison service, order a DXA. The ServiceRequest is built with the
 * shared pure builders (server/orders/service-requests.ts — the same resources the CDS card suggests), shown to
 * the user in a confirmation dialog, and created on the FHIR server through fhirclient with the user's token
 * (SMART scope `patient/ServiceRequest.c`) only after they confirm.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { dxaOrder, flsReferral, type ServiceRequest } from '../../../server/orders/service-requests.ts';
import { RESEARCH_NOTICE } from '../../../server/fls/types.ts';
import { formatRiskWithInterval } from '../format.ts';
import type { Session } from '../session.ts';
import type { AssessmentResponse } from '../types.ts';

export type ActionKind = 'fls' | 'dxa';

/** The ServiceRequest an action creates. Pure, for the unit tests. */
export function buildOrder(kind: ActionKind, res: AssessmentResponse, session: Pick<Session, 'fhirUser' | 'encounterId'>, now: Date = new Date()): ServiceRequest {
  const a = res.assessment;
  const r10 = (o: 'hip' | 'mof') => a.outcomes[o].risks.find((r) => r.years === 10)!;
  const hip = r10('hip');
  const mof = r10('mof');
  const reason = `10-year hip fracture risk ${formatRiskWithInterval(hip.risk, hip.lower, hip.upper)}; major osteoporotic fracture ${formatRiskWithInterval(mof.risk, mof.lower, mof.upper)}; tier ${a.tier.tier} (${a.mode === 'clinical-only' ? 'clinical-only, QFracture-2012' : 'radiograph + clinical'}).`;
  const raId = res.fhir.riskAssessment.id;
  const input = {
    patientId: a.patientId,
    status: 'active' as const,
    authoredOn: now.toISOString(),
    reason,
    note: `${RESEARCH_NOTICE}. Assessment ${a.id}, model ${a.model.id} v${a.model.version}.`,
    // Only point at the RiskAssessment when it was written to the FHIR server (RISK_WRITE_BACK); else it would dangle.
    ...(res.writeBack?.written && raId ? { riskAssessmentRef: `RiskAssessment/${raId}` } : {}),
    ...(session.fhirUser ? { requesterRef: session.fhirUser } : {}),
    ...(session.encounterId ? { encounterRef: `Encounter/${session.encounterId}` } : {}),
  };
  return kind === 'fls' ? flsReferral(input) : dxaOrder(input);
}

const TITLES: Record<ActionKind, string> = { fls: 'Refer to the fracture liaison service', dxa: 'Order a DXA scan' };

type Outcome = { kind: ActionKind; id: string } | { kind: ActionKind; error: string };

export function Actions(props: { session: Session; response: AssessmentResponse }) {
  const [pending, setPending] = useState<{ kind: ActionKind; sr: ServiceRequest } | null>(null);
  const [busy, setBusy] = useState(false);
  const [results, setResults] = useState<Outcome[]>([]);
  const dialog = useRef<HTMLDialogElement>(null);

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (pending && !d.open) d.showModal();
    if (!pending && d.open) d.close();
  }, [pending]);

  const open = (kind: ActionKind): void => {
    try {
      setPending({ kind, sr: buildOrder(kind, props.response, props.session) });
    } catch (err) {
      setResults((r) => [...r, { kind, error: (err as Error).message }]);
    }
  };

  const confirm = async (): Promise<void> => {
    if (!pending) return;
    setBusy(true);
    try {
      const created = await props.session.createServiceRequest(pending.sr);
      setResults((r) => [...r, { kind: pending.kind, id: created.id ?? '(no id returned)' }]);
    } catch (err) {
      const status = (err as { status?: number }).status;
      const msg = status === 401 || status === 403 ? 'your sign-in does not allow creating orders (scope ServiceRequest.c)' : (err as Error).message;
      setResults((r) => [...r, { kind: pending.kind, error: msg }]);
    } finally {
      setBusy(false);
      setPending(null);
    }
  };

  const done = (kind: ActionKind): boolean => results.some((r) => r.kind === kind && 'id' in r);
  return (
    <section class="card actions" aria-labelledby="actions-title">
      <h2 id="actions-title">Actions</h2>
      <div class="action-buttons">
        <button type="button" class="btn btn-primary" onClick={() => open('fls')} disabled={done('fls')}>
          {done('fls') ? 'Referred to FLS ✓' : 'Refer to fracture liaison service…'}
        </button>
        <button type="button" class="btn" onClick={() => open('dxa')} disabled={done('dxa')}>
          {done('dxa') ? 'DXA ordered ✓' : 'Order DXA…'}
        </button>
      </div>
      <div role="status" aria-live="polite" class="action-results">
        {results.map((r, i) =>
          'id' in r ? (
            <p class="ok" key={i}>
              {TITLES[r.kind]}: created ServiceRequest/<span data-testid={`created-${r.kind}`}>{r.id}</span>.
            </p>
          ) : (
            <p class="fail" key={i}>
              {TITLES[r.kind]} failed: {r.error}
            </p>
          ),
        )}
      </div>
      <dialog ref={dialog} aria-labelledby="confirm-title" onClose={() => setPending(null)}>
        {pending && (
          <form method="dialog" onSubmit={(e) => { e.preventDefault(); void confirm(); }}>
            <h2 id="confirm-title">{TITLES[pending.kind]}?</h2>
            <p>This creates the following order in the EHR:</p>
            <dl class="order-preview">
              <dt>Order</dt>
              <dd>{pending.sr.code?.text}</dd>
              <dt>Patient</dt>
              <dd>{pending.sr.subject?.reference}</dd>
              <dt>Reason</dt>
              <dd>{pending.sr.reasonCode?.[0]?.text}</dd>
              <dt>Requester</dt>
              <dd>{pending.sr.requester?.reference ?? 'you'}</dd>
            </dl>
            <p class="research-notice">
              <strong>Research use — trained on synthetic data.</strong> Check the result before acting on it.
            </p>
            <div class="dialog-buttons">
              <button type="button" class="btn" onClick={() => setPending(null)} disabled={busy}>
                Cancel
              </button>
              <button type="submit" class="btn btn-primary" disabled={busy}>
                {busy ? 'Creating…' : 'Confirm and create'}
              </button>
            </div>
          </form>
        )}
      </dialog>
    </section>
  );
}
