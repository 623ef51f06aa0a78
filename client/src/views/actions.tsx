/**
 * The orders the app can create: refer to the fracture liaison service, order a DXA. Only the order that carries
 * out the tier's action is a prominent button (high → FLS referral, moderate → DXA); the other orders wait behind
 * "Other orders", so a low-risk patient is not offered the same buttons as a high-risk one.
 *
 * Before an order is shown for confirmation the care status is read again; when the same kind of order is already
 * open, the dialog asks first, naming the patient ("An FLS referral for … is already active since 12 Nov 2026.
 * Create another?"). The ServiceRequest is built with the shared pure builders (server/orders/service-requests.ts —
 * the resources the CDS card suggests) and created through fhirclient with the user's token (SMART scope
 * `patient/ServiceRequest.c`) only after confirmation.
 */
import type { Patient } from '@medplum/fhirtypes';
import { useEffect, useRef, useState } from 'preact/hooks';
import { dxaOrder, flsReferral, type ServiceRequest } from '../../../server/orders/service-requests.ts';
import { RESEARCH_NOTICE } from '../../../server/fls/types.ts';
import { getCareStatus } from '../api.ts';
import { leadingAction } from '../ct-findings.ts';
import { duplicateQuestion, existingOrder, orderFor, type OrderKind } from '../decision-text.ts';
import { formatDate, formatRiskWithInterval } from '../format.ts';
import type { Session } from '../session.ts';
import type { AssessmentResponse, CareStatus } from '../types.ts';
import { mrnOf } from './banner.tsx';

export type ActionKind = OrderKind;

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
const BUTTONS: Record<ActionKind, string> = { fls: 'Refer to fracture liaison service…', dxa: 'Order DXA…' };
const WHAT: Record<ActionKind, string> = { fls: 'FLS referral', dxa: 'DXA order' };

type Result = { kind: ActionKind; id: string } | { kind: ActionKind; error: string };
interface Pending {
  kind: ActionKind;
  sr: ServiceRequest;
  existing: { id: string; status: string; since: string | null } | null;
  /** The care status could not be read just now: the user is told to look in the chart. */
  checkFailed: boolean;
}

export interface OrderActionsProps {
  session: Session;
  response: AssessmentResponse;
  /** The patient's name for questions (never a FHIR id) and the Patient resource for the order preview. */
  patientName: string;
  patient: Patient | null;
  careStatus: CareStatus | null;
  /** Fresh care status read before an order, and after one was created. */
  onCareStatus: (c: CareStatus) => void;
}

export function OrderActions(props: OrderActionsProps) {
  const { session, response } = props;
  const a = response.assessment;
  const primary = orderFor(leadingAction(a));
  const others = (['fls', 'dxa'] as ActionKind[]).filter((k) => k !== primary);
  const [pending, setPending] = useState<Pending | null>(null);
  const [checking, setChecking] = useState<ActionKind | null>(null);
  const [busy, setBusy] = useState(false);
  const [results, setResults] = useState<Result[]>([]);
  const dialog = useRef<HTMLDialogElement>(null);

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (pending && !d.open) d.showModal();
    if (!pending && d.open) d.close();
  }, [pending]);

  const refreshCare = async (): Promise<CareStatus> => {
    const c = (await getCareStatus(session, a.patientId)).careStatus;
    props.onCareStatus(c);
    return c;
  };

  const open = async (kind: ActionKind): Promise<void> => {
    let sr: ServiceRequest;
    try {
      sr = buildOrder(kind, response, session);
    } catch (err) {
      setResults((r) => [...r, { kind, error: (err as Error).message }]);
      return;
    }
    setChecking(kind);
    let care: CareStatus | null = null;
    let checkFailed = false;
    try {
      care = await refreshCare();
    } catch {
      checkFailed = true;
    } finally {
      setChecking(null);
    }
    setPending({ kind, sr, existing: existingOrder(kind, care), checkFailed });
  };

  const confirm = async (): Promise<void> => {
    if (!pending) return;
    setBusy(true);
    try {
      const created = await session.createServiceRequest(pending.sr);
      setResults((r) => [...r, { kind: pending.kind, id: created.id ?? '(no id returned)' }]);
      await refreshCare().catch(() => undefined);
    } catch (err) {
      const status = (err as { status?: number }).status;
      const msg = status === 401 || status === 403 ? 'your sign-in does not allow creating orders (scope ServiceRequest.c)' : (err as Error).message;
      setResults((r) => [...r, { kind: pending.kind, error: msg }]);
    } finally {
      setBusy(false);
      setPending(null);
    }
  };

  const button = (kind: ActionKind, prominent: boolean) => {
    const open_ = existingOrder(kind, props.careStatus);
    return (
      <button type="button" key={kind} class={`btn ${prominent && !open_ ? 'btn-primary btn-action' : ''}`} data-order={kind} onClick={() => void open(kind)} disabled={checking !== null || busy}>
        {checking === kind ? 'Checking existing orders…' : BUTTONS[kind]}
      </button>
    );
  };

  const p = props.patient;
  return (
    <div class="actions" aria-label="Orders" role="group">
      {primary && <div class="action-buttons primary-action">{button(primary, true)}</div>}
      <details class="other-orders">
        <summary>{primary ? 'Other orders' : 'Orders (not suggested for this risk)'}</summary>
        <div class="action-buttons">{others.map((k) => button(k, false))}</div>
      </details>
      <div role="status" aria-live="polite" class="action-results">
        {results.map((r, i) =>
          'id' in r ? (
            <p class="ok" key={i}>
              {WHAT[r.kind]} created for {props.patientName} (order <span data-testid={`created-${r.kind}`}>{r.id}</span>).
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
          <form
            method="dialog"
            onSubmit={(e) => {
              e.preventDefault();
              void confirm();
            }}
          >
            <h2 id="confirm-title">{pending.existing ? `Create another ${WHAT[pending.kind]}?` : `${TITLES[pending.kind]}?`}</h2>
            {pending.existing && (
              <p class="duplicate-warning" data-testid="duplicate-question">
                {duplicateQuestion(pending.kind, pending.existing, props.patientName)}
              </p>
            )}
            {pending.checkFailed && <p class="duplicate-warning">Existing orders could not be checked just now: look in the chart before creating this one.</p>}
            <p>This creates the following order in the EHR:</p>
            <dl class="order-preview">
              <dt>Order</dt>
              <dd>{pending.sr.code?.text}</dd>
              <dt>Patient</dt>
              <dd>
                {props.patientName}
                {p?.birthDate ? `, born ${formatDate(p.birthDate)}` : ''}
                {p && mrnOf(p) ? `, MRN ${mrnOf(p)}` : ''}
              </dd>
              <dt>Reason</dt>
              <dd>{pending.sr.reasonCode?.[0]?.text}</dd>
              <dt>Requester</dt>
              <dd>{session.fhirUser ? 'you (signed-in user)' : 'you'}</dd>
            </dl>
            <p class="research-notice">
              <strong>Research use — trained on synthetic data.</strong> Check the result before acting on it.
            </p>
            <div class="dialog-buttons">
              <button type="button" class="btn" onClick={() => setPending(null)} disabled={busy}>
                Cancel
              </button>
              <button type="submit" class="btn btn-primary" disabled={busy}>
                {busy ? 'Creating…' : pending.existing ? 'Create another' : 'Confirm and create'}
              </button>
            </div>
          </form>
        )}
      </dialog>
    </div>
  );
}
