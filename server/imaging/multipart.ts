/**
 * multipart/related bodies (RFC 2387 over RFC 2046 §5.1) as DICOMweb uses them for WADO-RS and STOW-RS
 * (PS3.18 §8.6.1.2).
 *
 * Hand-written on purpose: the maintained JavaScript DICOMweb client needs an XMLHttpRequest polyfill in Node and
 * drops each part's Content-Type, which carries the transfer syntax we must know to decode a frame; general
 * multipart packages parse only multipart/form-data. The format is small and fully specified, and owning it lets
 * us enforce part-count and part-size limits against a misbehaving PACS.
 */
import { randomUUID } from 'node:crypto';
import { MalformedResponseError, ResponseTooLargeError } from './errors.ts';
import { formatMediaType, parseMediaType } from './media-type.ts';

export interface MultipartPart {
  /** Header names lower-cased. */
  readonly headers: Readonly<Record<string, string>>;
  /** The part's Content-Type ('' when the part has none; RFC 2046 then implies text/plain, DICOMweb never does). */
  readonly contentType: string;
  readonly body: Uint8Array;
}

export interface ParseLimits {
  /** Largest part body accepted (bytes). */
  maxPartBytes?: number;
  /** Largest number of parts accepted. */
  maxParts?: number;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** Extracts the boundary from a multipart Content-Type header, or throws MalformedResponseError. */
export function boundaryOf(contentType: string): string {
  const mt = parseMediaType(contentType);
  if (!mt.type.startsWith('multipart/')) {
    throw new MalformedResponseError(`expected a multipart body, got Content-Type "${mt.type || '(none)'}"`);
  }
  const boundary = mt.params.boundary;
  if (!boundary || boundary.length > 200) {
    throw new MalformedResponseError('multipart Content-Type has no usable boundary parameter');
  }
  return boundary;
}

/**
 * Parses a complete multipart body. Part bodies are views into `body` (no copies).
 * @see RFC 2046 §5.1.1 (delimiters, preamble, epilogue)
 */
export function parseMultipart(body: Uint8Array, contentType: string, limits: ParseLimits = {}): MultipartPart[] {
  const boundary = boundaryOf(contentType);
  const maxParts = limits.maxParts ?? 10_000;
  const maxPartBytes = limits.maxPartBytes ?? Number.MAX_SAFE_INTEGER;
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const view = new Uint8Array(body.buffer, body.byteOffset, body.byteLength); // parts are plain Uint8Array views
  const dash = Buffer.from(`--${boundary}`);
  const delim = Buffer.from(`\r\n--${boundary}`);

  // The first delimiter may sit at the very start (no preceding CRLF) or after a preamble.
  let pos: number;
  if (buf.subarray(0, dash.length).equals(dash)) pos = dash.length;
  else {
    const i = buf.indexOf(delim);
    if (i < 0) throw new MalformedResponseError('multipart body contains no boundary delimiter');
    pos = i + delim.length;
  }

  const parts: MultipartPart[] = [];
  for (;;) {
    // After a delimiter: "--" closes the body; otherwise optional transport padding then CRLF.
    if (buf[pos] === 0x2d && buf[pos + 1] === 0x2d) return parts;
    while (buf[pos] === 0x20 || buf[pos] === 0x09) pos++;
    if (!buf.subarray(pos, pos + 2).equals(CRLF)) {
      throw new MalformedResponseError('multipart delimiter is not followed by CRLF (truncated or malformed body)');
    }
    pos += 2;
    const headers: Record<string, string> = {};
    let bodyStart: number;
    if (buf.subarray(pos, pos + 2).equals(CRLF)) bodyStart = pos + 2; // part without headers
    else {
      const headerEnd = buf.indexOf(HEADER_END, pos);
      if (headerEnd < 0 || headerEnd - pos > 16_384) {
        throw new MalformedResponseError('multipart part headers are not terminated by an empty line');
      }
      for (const line of buf.toString('latin1', pos, headerEnd).split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0) throw new MalformedResponseError(`malformed multipart part header line "${line.slice(0, 80)}"`);
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      bodyStart = headerEnd + 4;
    }
    const next = buf.indexOf(delim, bodyStart);
    if (next < 0) throw new MalformedResponseError('multipart body ends without a closing boundary (truncated?)');
    if (next - bodyStart > maxPartBytes) throw new ResponseTooLargeError(maxPartBytes, `multipart part is larger than ${maxPartBytes} bytes`);
    if (parts.length >= maxParts) throw new ResponseTooLargeError(maxParts, `multipart body has more than ${maxParts} parts`);
    parts.push({ headers, contentType: headers['content-type'] ?? '', body: view.subarray(bodyStart, next) });
    pos = next + delim.length;
  }
}

export interface PartInput {
  readonly contentType: string;
  readonly body: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Builds a multipart/related body. `type` is the root media type parameter DICOMweb requires
 * (PS3.18 §8.6.1.2: e.g. application/dicom, application/octet-stream).
 */
export function writeMultipart(
  parts: readonly PartInput[],
  type: string,
  extraParams: Readonly<Record<string, string>> = {},
): { contentType: string; body: Buffer } {
  const { contentType, chunks } = multipartChunks(parts, type, extraParams);
  return { contentType, body: Buffer.concat(chunks) };
}

/** Like writeMultipart, but returns the chunks (part bodies are not copied) for streaming large bodies. */
export function multipartChunks(
  parts: readonly PartInput[],
  type: string,
  extraParams: Readonly<Record<string, string>> = {},
): { contentType: string; chunks: Uint8Array[]; length: number } {
  const boundary = `frcds-${randomUUID()}`;
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Type: ${p.contentType}\r\n`;
    for (const [k, v] of Object.entries(p.headers ?? {})) head += `${k}: ${v}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`, 'latin1'), Buffer.from(p.body.buffer, p.body.byteOffset, p.body.byteLength), CRLF);
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return {
    contentType: formatMediaType('multipart/related', { type, ...extraParams, boundary }),
    chunks,
    length: chunks.reduce((n, c) => n + c.byteLength, 0),
  };
}
