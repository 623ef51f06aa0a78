/**
 * Typed errors of the imaging layer. Every failure to get pixels out of a PACS or a DICOM file ends in one of
 * these, so callers (the risk engine, the CDS service) can tell "bad image" from "PACS trouble" and decide whether
 * to retry, fall back to clinical-only risk, or report. Messages never carry PHI: they name UIDs, tags, sizes and
 * syntaxes, not patient data.
 */

/** Base class: `code` is stable and machine-readable; `message` is for people. */
export abstract class ImagingError extends Error {
  abstract readonly code: string;
  /** Whether trying the same request again later may succeed (PACS trouble) or not (bad data). */
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The bytes are not a readable DICOM Part 10 file or data set (truncated, corrupt, not DICOM at all). */
export class DicomParseError extends ImagingError {
  readonly code = 'DICOM_PARSE';
  readonly retryable = false;
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
}

/** Pixel module values that are inconsistent or beyond what the service will allocate memory for. */
export class InvalidPixelModuleError extends ImagingError {
  readonly code = 'DICOM_INVALID_PIXEL_MODULE';
  readonly retryable = false;
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
}

/** A codec failed on the compressed bytes, or produced a different geometry than the DICOM header announces. */
export class DecodeError extends ImagingError {
  readonly code = 'DECODE_FAILED';
  readonly retryable = false;
  constructor(
    readonly transferSyntaxUid: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The PACS could not be reached (connection refused, DNS failure, reset). */
export class PacsUnavailableError extends ImagingError {
  readonly code = 'PACS_UNAVAILABLE';
  readonly retryable = true;
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
}

/** The PACS answered with an HTTP error status. 5xx are retryable, 4xx are not. */
export class PacsHttpError extends ImagingError {
  readonly code = 'PACS_HTTP_ERROR';
  readonly retryable: boolean;
  constructor(
    readonly status: number,
    readonly url: string,
    message?: string,
  ) {
    super(message ?? `PACS answered HTTP ${status} for ${url}`);
    this.retryable = status >= 500 || status === 429;
  }
}

/** The PACS refused the credentials (401/403). */
export class PacsAuthError extends ImagingError {
  readonly code = 'PACS_AUTH';
  readonly retryable = false;
  constructor(
    readonly status: number,
    readonly url: string,
  ) {
    super(`PACS refused the credentials (HTTP ${status}) for ${url}`);
  }
}

/** The PACS answered 406: it cannot deliver any of the representations asked for. */
export class NotAcceptableError extends ImagingError {
  readonly code = 'PACS_NOT_ACCEPTABLE';
  readonly retryable = false;
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
}

/** The PACS answered 2xx but the body is not what DICOMweb promises (bad JSON, broken multipart, wrong type). */
export class MalformedResponseError extends ImagingError {
  readonly code = 'PACS_MALFORMED_RESPONSE';
  readonly retryable = false;
}

/** Series/instance selection found nothing that satisfies the model's DICOM selection rule. */
export class NoMatchingImageError extends ImagingError {
  readonly code = 'NO_MATCHING_IMAGE';
  readonly retryable = false;
}

/** The image cannot go through the model's preprocessing recipe (photometric, spacing, unknown recipe...). */
export class PreprocessError extends ImagingError {
  readonly code = 'PREPROCESS';
  readonly retryable = false;
}

/**
 * An imaging worker thread (worker-pool.ts) died, timed out or was shut down while it held the job. The frame
 * itself may be fine, so trying again later may succeed.
 */
export class ImagingWorkerError extends ImagingError {
  readonly code = 'IMAGING_WORKER_FAILED';
  readonly retryable = true;
}
