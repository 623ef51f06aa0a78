/**
 * Audit of every FLS worklist action: each view, export, accept, step, assignment, note and
 * dismiss becomes a FHIR `AuditEvent` written to the FHIR server. When that write fails the event is kept in the audit
 * fallback store so nothing is lost — a local SQLite file (`FLS_AUDIT_DB`) by default, or PostgreSQL shared by the
 * replicas with `DATABASE_URL` (server/state/audit-*.ts). {@link AuditLog.forwardPending} re-sends kept events, each
 * once even when several replicas forward at the same time; it runs after every later successful write, at a fixed
 * interval when one is set (so a replica that never writes still forwards what another one kept), and can be called
 * by an operator task.
 *
 * Event shape follows the R4 AuditEvent resource and the IHE Basic Audit Log Patterns (BALP) conventions:
 * `type` = `rest` (audit-event-type) with a `restful-interaction` subtype, or DICOM 110106 "Export" for the CSV;
 * one `agent` (the SMART user, requestor) and one `source` (this service); `entity` = the Task, the Patient(s),
 * the ServiceRequest created, and for searches the query. The kept copy holds the same JSON (patient references,
 * no names): protect the file or table as you would the audit trail.
 * @see https://hl7.org/fhir/R4/auditevent.html
 * @see https://profiles.ihe.net/ITI/BALP/
 */
import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import type { Logger } from '../logging.ts';
import { SqliteAuditFallback } from '../state/audit-sqlite.ts';
import type { AuditFallbackStore, KeptAuditEvent } from '../state/types.ts';

/** Who did it: the verified SMART access token's claims (server/auth SmartAccess). */
export interface AuditActor {
  subject: string;
  fhirUser?: string;
  /** The OAuth client the user acted through, when known. */
  clientId?: string;
}

/**
 * What was done: list views and exports, one item's view, KPI views and exports, the owner list, and the updates
 * (accept, step, assign, note, dismiss; bulk actions are recorded per item).
 */
export type FlsAction =
  | 'worklist-view' | 'worklist-export' | 'item-view' | 'kpi-view' | 'kpi-export' | 'owners-view'
  | 'accept' | 'step' | 'assign' | 'note' | 'dismiss';

export interface AuditRecord {
  action: FlsAction;
  actor: AuditActor;
  /** '0' success, '4' minor failure (refused request), '8' serious failure (server error). */
  outcome: '0' | '4' | '8';
  outcomeDesc?: string;
  taskId?: string;
  patientIds?: readonly string[];
  serviceRequestId?: string;
  /** The query string of a search/export. */
  query?: string;
  /** Dismissal reason code. */
  reason?: string;
  /** Pathway step recorded (action `step`), or the owner reference (action `assign`). */
  detail?: string;
  /** Client network address. */
  address?: string;
}

const SOURCE_OBSERVER = 'Fracture Risk CDS — FLS worklist';
/** At most this many Patient entities per view/export event (a longer list is summarised in the query entity). */
const MAX_PATIENT_ENTITIES = 500;

const TYPE_REST = { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' };
const TYPE_EXPORT = { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110106', display: 'Export' };
const INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';

/** Builds the AuditEvent of one action. */
export function buildAuditEvent(r: AuditRecord, recorded: Date): AuditEvent {
  const search = { system: INTERACTION, code: 'search-type', display: 'search type' };
  const update = { system: INTERACTION, code: 'update', display: 'update' };
  const read = { system: INTERACTION, code: 'read', display: 'read' };
  const subtype = {
    'worklist-view': search, 'worklist-export': search, 'kpi-view': search, 'kpi-export': search, 'owners-view': search,
    'item-view': read,
    accept: update, step: update, assign: update, note: update, dismiss: update,
  }[r.action];
  const exported = r.action === 'worklist-export' || r.action === 'kpi-export';
  const action: AuditEvent['action'] = r.action === 'worklist-view' || r.action === 'kpi-view' || r.action === 'owners-view' ? 'E' : exported || r.action === 'item-view' ? 'R' : 'U';
  const entity: AuditEventEntity[] = [];
  if (r.taskId) {
    entity.push({ what: { reference: `Task/${r.taskId}` }, type: { system: ENTITY_TYPE, code: '2', display: 'System Object' }, role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' }, description: 'FLS triage Task' });
  }
  if (r.serviceRequestId) {
    entity.push({ what: { reference: `ServiceRequest/${r.serviceRequestId}` }, type: { system: ENTITY_TYPE, code: '2', display: 'System Object' }, role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' }, description: 'FLS referral created' });
  }
  for (const pid of (r.patientIds ?? []).slice(0, MAX_PATIENT_ENTITIES)) {
    entity.push({ what: { reference: `Patient/${pid}` }, type: { system: ENTITY_TYPE, code: '1', display: 'Person' }, role: { system: OBJECT_ROLE, code: '1', display: 'Patient' } });
  }
  if (r.query !== undefined) {
    const n = r.patientIds?.length ?? 0;
    entity.push({
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
      query: Buffer.from(r.query, 'utf8').toString('base64'),
      description: `FLS ${r.action.startsWith('kpi') ? 'KPIs' : 'worklist'}${exported ? ' CSV export' : ''}: ${n} patient(s)${n > MAX_PATIENT_ENTITIES ? `, first ${MAX_PATIENT_ENTITIES} listed` : ''}`,
    });
  }
  const who = r.actor.fhirUser && /^(?:[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}|https?:\/\/\S+)$/.test(r.actor.fhirUser)
    ? { reference: r.actor.fhirUser }
    : { identifier: { value: r.actor.subject } };
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    type: exported ? TYPE_EXPORT : TYPE_REST,
    subtype: [subtype],
    action,
    recorded: recorded.toISOString(),
    outcome: r.outcome,
    agent: [{
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP', display: 'information recipient' }] },
      who,
      altId: r.actor.subject,
      requestor: true,
      ...(r.address ? { network: { address: r.address, type: '2' as const } } : {}),
    }],
    source: { observer: { display: SOURCE_OBSERVER }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
    ...(entity.length ? { entity } : {}),
  };
  if (r.outcomeDesc) event.outcomeDesc = r.outcomeDesc;
  if (r.reason) event.purposeOfEvent = [{ text: `dismissal reason: ${r.reason}` }];
  if (r.detail) event.outcomeDesc = [event.outcomeDesc, `${r.action}: ${r.detail}`].filter((x) => !!x).join('; ');
  return event;
}

/** One kept event (the fallback store's row). */
export type LocalAuditRow = KeptAuditEvent;

export interface AuditLogOptions {
  fhir: FhirDataSource;
  /**
   * Where refused events are kept: a store (PostgreSQL shared by the replicas, server/state/audit-postgres.ts), or
   * the path of a SQLite file (created with its folder when missing; ':memory:' for tests). Exactly one is needed.
   */
  store?: AuditFallbackStore;
  dbPath?: string;
  logger: Logger;
  now?: () => Date;
  /** Also forward kept events every this many ms (default: only after a successful write, or when asked). */
  forwardIntervalMs?: number;
}

/** Where an event ended up. */
export type AuditOutcome = { stored: 'fhir'; id: string | undefined } | { stored: 'local'; localId: number; error: string };

export class AuditLog {
  readonly #fhir: FhirDataSource;
  readonly #store: AuditFallbackStore;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #timer: NodeJS.Timeout | undefined;
  #forwarding: Promise<number> | undefined;

  constructor(opts: AuditLogOptions) {
    this.#fhir = opts.fhir;
    this.#logger = opts.logger.child({ component: 'fls-audit' });
    this.#now = opts.now ?? (() => new Date());
    if (opts.store) this.#store = opts.store;
    else if (opts.dbPath !== undefined) this.#store = new SqliteAuditFallback(opts.dbPath);
    else throw new TypeError('AuditLog needs a fallback store or a dbPath');
    if (opts.forwardIntervalMs !== undefined) {
      this.#timer = setInterval(() => void this.forwardPending().catch(() => undefined), opts.forwardIntervalMs);
      this.#timer.unref();
    }
  }

  /** The backend of the fallback store (`sqlite` or `postgres`). */
  get backend(): AuditFallbackStore['backend'] {
    return this.#store.backend;
  }

  /**
   * Writes the AuditEvent to the FHIR server, or keeps it in the fallback store when that fails. Never throws for a
   * FHIR failure; rejects (StateUnavailableError) only when the event can be written neither to the FHIR server nor
   * to the fallback store, so the caller's request fails rather than go unaudited.
   */
  async record(r: AuditRecord): Promise<AuditOutcome> {
    const event = buildAuditEvent(r, this.#now());
    try {
      const stored = await this.#fhir.write(event);
      void this.forwardPending().catch(() => undefined);
      return { stored: 'fhir', id: stored.id };
    } catch (err) {
      const error = (err as Error).message;
      let localId: number;
      try {
        localId = await this.#store.keep({ recorded: event.recorded, action: r.action, event, error });
      } catch (keepErr) {
        this.#logger.error({ action: r.action, err: error, storeErr: (keepErr as Error).message }, 'AuditEvent NOT recorded: the FHIR write and the audit fallback store both failed');
        throw keepErr;
      }
      this.#logger.warn({ action: r.action, localId, backend: this.#store.backend, err: error }, 'AuditEvent kept in the audit fallback store: the FHIR write failed');
      return { stored: 'local', localId, error };
    }
  }

  /** Events kept and not yet forwarded, oldest first. */
  pending(): Promise<LocalAuditRow[]> {
    return this.#store.pending();
  }

  /** Every kept event (forwarded ones included: the fallback log is append-only). */
  rows(): Promise<LocalAuditRow[]> {
    return this.#store.rows();
  }

  /**
   * Re-sends kept events to the FHIR server (oldest first, stops at the first failure); resolves to how many this
   * call sent. One run at a time in this process; across processes the store makes each event go once.
   */
  forwardPending(): Promise<number> {
    this.#forwarding ??= this.#forward().finally(() => {
      this.#forwarding = undefined;
    });
    return this.#forwarding;
  }

  async #forward(): Promise<number> {
    const sent = await this.#store.forward(async (row) => {
      await this.#fhir.write(row.event);
    }, this.#now);
    if (sent) this.#logger.info({ sent, backend: this.#store.backend }, 'kept audit events forwarded to the FHIR server');
    return sent;
  }

  /** Stops the interval, lets a forwarding run finish, and closes the store. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#forwarding?.catch(() => undefined);
    await this.#store.close();
  }
}
