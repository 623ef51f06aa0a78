/**
 * Structured JSON logging (pino) that carries no PHI (issue 4, item 7; project rule "Logs carry no PHI").
 *
 * pino's built-in `redact` only matches fixed paths (one `*` level), but PHI can sit at any depth of whatever object
 * a caller logs (a FHIR Patient, a DICOM JSON dataset). So every log object is walked by {@link scrubPhi} in the
 * `formatters.log` hook: keys that carry names, identifiers, contact details or credentials are replaced by
 * `[REDACTED]`, and keys that carry a patient id are replaced by a salted hash (`patientIdHash`), so log lines about
 * one patient can still be correlated without revealing the id. A Patient resource's `id` and any `Patient/<id>`
 * reference are hashed too. String values, and the message and stack of logged errors, have the ids of FHIR
 * references in them hashed ({@link redactIds}): error texts quote request URLs such as
 * `GET https://fhir/DiagnosticReport/123`. Message strings are not scanned: callers must not interpolate PHI into
 * them (the tests check the components here do not).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Keys (case-insensitive) whose values are PHI or secrets and are never logged. */
const REDACTED_KEYS = new Set(
  [
    // people and their contact details (FHIR and DICOM JSON spellings)
    'name', 'given', 'family', 'prefix', 'suffix', 'div', 'patientName', 'PatientName', '00100010',
    'birthDate', 'PatientBirthDate', '00100030', 'address', 'telecom', 'email', 'phone', 'contact',
    // identifiers
    'identifier', 'mrn', 'PatientID', '00100020', 'OtherPatientIDs', '00101000', 'accession', 'accessionNumber',
    'AccessionNumber', '00080050', 'ssn', 'nhsNumber',
    // credentials
    'authorization', 'cookie', 'set-cookie', 'token', 'access_token', 'accessToken', 'id_token', 'refresh_token',
    'password', 'secret', 'clientSecret', 'client_secret', 'jwt', 'apiKey', 'x-api-key',
  ].map((k) => k.toLowerCase()),
);

/**
 * Keys (exact spelling) whose values are FHIR patient ids: logged as a salted hash under `<key>Hash`. Checked before
 * {@link REDACTED_KEYS}, so `patientId` is hashed while DICOM's `PatientID` (the MRN) is redacted, and a count keyed
 * by resource type (`{ Patient: 7 }`) is left alone.
 */
const PATIENT_ID_KEYS = new Set(['patientId', 'patient_id', 'patient', 'subjectId']);

export const REDACTED = '[REDACTED]';

/** Hashes patient ids for logs. One salt per process unless configured, see `LOG_HASH_SALT`. */
export class PatientIdHasher {
  readonly #salt: string;
  constructor(salt?: string) {
    this.#salt = salt ?? randomBytes(32).toString('hex');
  }
  /** HMAC-SHA256 of the id, truncated to 16 hex characters (64 bits: collisions are negligible at cohort scale). */
  hash(patientId: string): string {
    return createHmac('sha256', this.#salt).update(patientId, 'utf8').digest('hex').slice(0, 16);
  }
}

let defaultHasher = new PatientIdHasher();

/** Sets the process-wide salt (called once by {@link createLogger}). */
export function setPatientIdSalt(salt: string | undefined): void {
  defaultHasher = new PatientIdHasher(salt);
}

/**
 * The value to log instead of a patient id. Accepts a bare id or a reference (`Patient/123`): both hash the same.
 */
export function hashPatientId(patientId: string): string {
  return defaultHasher.hash(patientId.replace(/^Patient\//, ''));
}

/**
 * Resource types whose ids say nothing about a patient (definitions, infrastructure, the service's own model
 * Device): left readable in free text, where they help an operator.
 */
const PLAIN_ID_TYPES = new Set([
  'CapabilityStatement', 'CodeSystem', 'ConceptMap', 'Device', 'Endpoint', 'NamingSystem', 'OperationDefinition',
  'SearchParameter', 'StructureDefinition', 'Subscription', 'SubscriptionTopic', 'ValueSet',
]);

/** `Type/id` in free text: a FHIR resource type (a capitalised word, so `HTTP/1.1` is not one) and a FHIR id. */
const REFERENCE_IN_TEXT = /\b([A-Z][a-z][A-Za-z]{1,62})\/([A-Za-z0-9\-.]{1,64})(?![A-Za-z0-9\-.])/g;

/**
 * `text` with the id of every FHIR reference in it replaced by `#` and its salted hash ({@link hashPatientId}), e.g.
 * `GET https://fhir/DiagnosticReport/r1: HTTP 500` → `GET https://fhir/DiagnosticReport/#3f…: HTTP 500`. The hash
 * is the one `reportHash`/`patientIdHash` fields carry, so lines about one resource still correlate. Ids of
 * definitional types ({@link PLAIN_ID_TYPES}) and version ids after `_history/` are kept.
 */
export function redactIds(text: string): string {
  return text.replace(REFERENCE_IN_TEXT, (whole, type: string, id: string) => (PLAIN_ID_TYPES.has(type) ? whole : `${type}/#${hashPatientId(id)}`));
}

/** The error itself when its texts hold no reference; else a copy (same prototype and fields) with them hashed. */
function redactError(err: Error): Error {
  const message = redactIds(err.message);
  const stack = err.stack === undefined ? undefined : redactIds(err.stack);
  if (message === err.message && stack === err.stack) return err;
  const copy = Object.assign(Object.create(Object.getPrototypeOf(err) as object) as Error, err);
  Object.defineProperty(copy, 'message', { value: message, enumerable: false, writable: true, configurable: true });
  Object.defineProperty(copy, 'stack', { value: stack, enumerable: false, writable: true, configurable: true });
  return copy;
}

const MAX_DEPTH = 8;

/** Returns a copy of `value` with PHI keys redacted and patient ids hashed (see file header). */
export function scrubPhi(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactIds(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[Truncated]';
  if (value instanceof Error) return redactError(value); // pino's err serializer then writes its type, message and stack
  if (Array.isArray(value)) return value.map((v) => scrubPhi(v, depth + 1));
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  const out: Record<string, unknown> = {};
  const isPatient = (value as { resourceType?: unknown }).resourceType === 'Patient';
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (isPatient && key === 'id' && typeof v === 'string') {
      out['idHash'] = hashPatientId(v);
    } else if (key === 'reference' && typeof v === 'string' && v.startsWith('Patient/')) {
      out['referenceHash'] = hashPatientId(v);
    } else if (PATIENT_ID_KEYS.has(key) && (typeof v === 'string' || typeof v === 'number')) {
      out[`${key}Hash`] = hashPatientId(String(v));
    } else if (PATIENT_ID_KEYS.has(key) && v && typeof v === 'object' && typeof (v as { reference?: unknown }).reference === 'string') {
      out[`${key}Hash`] = hashPatientId((v as { reference: string }).reference);
    } else if (PATIENT_ID_KEYS.has(key) || REDACTED_KEYS.has(key.toLowerCase())) {
      out[key] = REDACTED;
    } else {
      out[key] = scrubPhi(v, depth + 1);
    }
  }
  return out;
}

export interface LoggerOptions {
  readonly level: string;
  readonly hashSalt?: string | undefined;
  /** Where to write; stdout when absent. Tests pass a capturing stream. */
  readonly destination?: DestinationStream;
}

/** Creates the service logger: pino JSON lines, PHI scrubbed, error objects serialised with their type and stack. */
export function createLogger(options: LoggerOptions): Logger {
  setPatientIdSalt(options.hashSalt);
  return pino(
    {
      level: options.level,
      base: { service: 'frcds' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => scrubPhi(obj) as Record<string, unknown>,
      },
      // Second line of defence for the common fixed paths (cheap, and covers the `err` object which scrubPhi skips).
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'err.config.headers.authorization'],
        censor: REDACTED,
      },
    },
    options.destination,
  );
}
