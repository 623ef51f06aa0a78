/**
 * Typed errors of the imaging layer. Every failure to get pixels out of a PACS or a DICOM file ends in one of
 * these, so callers (the risk engine, the CDS service) can tell "bad image" from "PACS trouble" and decide whether
 * to retry, fall back to clinical-only risk, or report.
 *
 * Two texts per error:
 * - `message` is for operators and logs: which request (as a route template such as
 *   `GET /studies/{study}/series/{series}/instances/{instance}/frames/1`), which status, which codec error. It never
 *   carries patient data, instance UIDs, query strings or the PACS host.
 * - `userMessage` is for the clinician who reads the warning (and the RiskAssessment note): what happened in plain
 *   words, without URLs, UIDs or text copied from the PACS.
 * `code` is stable and machine-readable; logs carry it next to `message`.
 */
import { syntaxName } from './transfer-syntax.ts';

/** Base class: `code` is stable and machine-readable; `message` is for operators; `userMessage` for clinicians. */
export abstract class ImagingError extends Error {
  abstract readonly code: string;
  /** Whether trying the same request again later may succeed (PACS trouble) or not (bad data). */
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
  /** What happened, in plain words, for warnings shown to clinicians. Subclasses say more. */
  get userMessage(): string {
    return 'the image could not be read';
  }
}

/** The bytes are not a readable DICOM Part 10 file or data set (truncated, corrupt, not DICOM at all). */
export class DicomParseError extends ImagingError {
  readonly code = 'DICOM_PARSE';
  readonly retryable = false;
  override get userMessage(): string {
    return 'the image file is corrupt or is not a readable DICOM file';
  }
}

/** A DICOM attribute the operation needs is absent or has an unusable value (e.g. no Pixel Data, Rows = 0). */
export class MissingAttributeError extends ImagingError {
  readonly code = 'DICOM_MISSING_ATTRIBUTE';
  readonly retryable = false;
  constructor(
    readonly attribute: string,
    message?: string,
  ) {
    super(message ?? `DICOM attribute ${attribute} is missing or empty`);
  }
  override get userMessage(): string {
    return `the image's DICOM header lacks ${this.attribute}`;
  }
}

/** Pixel module values that are inconsistent or beyond what the service will allocate memory for. */
export class InvalidPixelModuleError extends ImagingError {
  readonly code = 'DICOM_INVALID_PIXEL_MODULE';
  readonly retryable = false;
  // The messages are built here from header numbers (sizes, bit depths): safe and useful to show.
  override get userMessage(): string {
    return `the image's DICOM header describes pixels this service does not read (${this.message})`;
  }
}

/** A transfer syntax the local decoders cannot handle (the caller may ask the PACS to transcode). */
export class UnsupportedTransferSyntaxError extends ImagingError {
  readonly code = 'UNSUPPORTED_TRANSFER_SYNTAX';
  readonly retryable = false;
  constructor(
    readonly transferSyntaxUid: string,
    message?: string,
  ) {
    super(message ?? `transfer syntax ${transferSyntaxUid} cannot be decoded locally`);
  }
  override get userMessage(): string {
    return `the image is stored as ${syntaxName(this.transferSyntaxUid)}, which this service cannot decode, and the PACS did not convert it`;
  }
}

/**
 * A codec failed on the compressed bytes, or produced a different geometry than the DICOM header announces.
 * `reason`: what is wrong with the data in plain words when the codec says (e.g. from a CharLS error code).
 */
export class DecodeError extends ImagingError {
  readonly code = 'DECODE_FAILED';
  readonly retryable = false;
  readonly reason: string | undefined;
  constructor(
    readonly transferSyntaxUid: string,
    message: string,
    options?: { cause?: unknown; reason?: string },
  ) {
    super(message, options);
    this.reason = options?.reason;
  }
  override get userMessage(): string {
    return `the image file is corrupt (${this.reason ?? `the ${syntaxName(this.transferSyntaxUid)} data could not be decoded`})`;
  }
}

const NETWORK_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  UND_ERR_SOCKET: 'connection closed',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name not found',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  EHOSTUNREACH: 'network unreachable',
  ENETUNREACH: 'network unreachable',
};

/** The PACS could not be reached (connection refused, DNS failure, reset). `networkCode`: Node's error code. */
export class PacsUnavailableError extends ImagingError {
  readonly code = 'PACS_UNAVAILABLE';
  readonly retryable = true;
  readonly networkCode: string | undefined;
  constructor(message: string, options?: { cause?: unknown; networkCode?: string }) {
    super(message, options);
    this.networkCode = options?.networkCode || undefined;
  }
  override get userMessage(): string {
    const words = this.networkCode ? NETWORK_WORDS[this.networkCode] : undefined;
    return `the PACS could not be reached${words ? ` (${words})` : ''}`;
  }
}

/** The PACS did not answer within the configured time. */
export class PacsTimeoutError extends ImagingError {
  readonly code = 'PACS_TIMEOUT';
  readonly retryable = true;
  constructor(
    readonly timeoutMs: number,
    message?: string,
  ) {
    super(message ?? `PACS did not answer within ${timeoutMs} ms`);
  }
  override get userMessage(): string {
    return `the PACS did not answer within ${Math.round(this.timeoutMs / 100) / 10} s`;
  }
}

/**
 * HTTP statuses after which the same GET may succeed if tried again shortly: 408 (the server dropped an idle
 * request), 429 (rate limited), 502/503/504 (a gateway or an overloaded or restarting server). 500 is NOT among
 * them: DICOMweb servers answer 500 when they fail on this particular instance (a file they cannot parse or
 * transcode — Orthanc, the sandbox), which fails the same way every time; 501/505 and every other 4xx are
 * answers about the request itself.
 */
export const TRANSIENT_HTTP_STATUSES: ReadonlySet<number> = new Set([408, 429, 502, 503, 504]);

/**
 * The PACS answered with an HTTP error status; retryable only for {@link TRANSIENT_HTTP_STATUSES}.
 * `url` is the request's route template (no UIDs, no query); `pacsDetail` a short excerpt of what the PACS said
 * (for logs — never shown to clinicians); `retryAfterMs` the Retry-After header, when there was one.
 */
export class PacsHttpError extends ImagingError {
  readonly code = 'PACS_HTTP_ERROR';
  readonly retryable: boolean;
  readonly pacsDetail: string | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(
    readonly status: number,
    readonly url: string,
    message?: string,
    details: { pacsDetail?: string; retryAfterMs?: number } = {},
  ) {
    super(message ?? `PACS answered HTTP ${status} for ${url}`);
    this.retryable = TRANSIENT_HTTP_STATUSES.has(status);
    this.pacsDetail = details.pacsDetail || undefined;
    this.retryAfterMs = details.retryAfterMs;
  }
  override get userMessage(): string {
    if (this.status === 404) return 'the PACS does not have the image (HTTP 404)';
    if (this.retryable) return `the PACS is busy or unavailable (HTTP ${this.status})`;
    return `the PACS refused the image request (HTTP ${this.status})`;
  }
}

/** The PACS refused the credentials (401/403). `url`: the route template. */
export class PacsAuthError extends ImagingError {
  readonly code = 'PACS_AUTH';
  readonly retryable = false;
  constructor(
    readonly status: number,
    readonly url: string,
  ) {
    super(`PACS refused the credentials (HTTP ${status}) for ${url}`);
  }
  override get userMessage(): string {
    return `the PACS refused this service's credentials (HTTP ${this.status})`;
  }
}

/** The PACS answered 406: it cannot deliver any of the representations asked for. */
export class NotAcceptableError extends ImagingError {
  readonly code = 'PACS_NOT_ACCEPTABLE';
  readonly retryable = false;
  override get userMessage(): string {
    return 'the PACS cannot deliver the image in a form this service reads (HTTP 406)';
  }
}

/** A response body (or one multipart part) is larger than the configured limit. */
export class ResponseTooLargeError extends ImagingError {
  readonly code = 'RESPONSE_TOO_LARGE';
  readonly retryable = false;
  constructor(
    readonly limitBytes: number,
    message?: string,
  ) {
    super(message ?? `response is larger than the limit of ${limitBytes} bytes`);
  }
  override get userMessage(): string {
    return 'the PACS answer is larger than this service accepts';
  }
}

/** The PACS answered 2xx but the body is not what DICOMweb promises (bad JSON, broken multipart, wrong type). */
export class MalformedResponseError extends ImagingError {
  readonly code = 'PACS_MALFORMED_RESPONSE';
  readonly retryable = false;
  override get userMessage(): string {
    return 'the PACS sent an answer that is not valid DICOMweb';
  }
}

/**
 * Series/instance selection found nothing that satisfies the model's DICOM selection rule. The message names the
 * attributes that did not fit (e.g. "BodyPartExamined is KNEE") and series by number, never by UID.
 */
export class NoMatchingImageError extends ImagingError {
  readonly code = 'NO_MATCHING_IMAGE';
  readonly retryable = false;
  override get userMessage(): string {
    return this.message;
  }
}

/** The image cannot go through the model's preprocessing recipe (photometric, spacing, unknown recipe...). */
export class PreprocessError extends ImagingError {
  readonly code = 'PREPROCESS';
  readonly retryable = false;
  // Built here from header values and recipe names.
  override get userMessage(): string {
    return `the image cannot be prepared for the model (${this.message})`;
  }
}

/**
 * An imaging worker thread (worker-pool.ts) died, timed out or was shut down while it held the job. The frame
 * itself may be fine, so trying again later may succeed.
 */
export class ImagingWorkerError extends ImagingError {
  readonly code = 'IMAGING_WORKER_FAILED';
  readonly retryable = true;
  // The pool's own texts ("the imaging worker pool is closed", "... did not answer within 60000 ms").
  override get userMessage(): string {
    return this.message;
  }
}
