/**
 * FHIR JSON media types (FHIR R4 http.html#mime-type), for the service's FHIR client (answers of other servers) and
 * the sandbox FHIR server (content negotiation).
 *
 * - `application/fhir+json` is the R4 type; servers and clients SHALL use it.
 * - `application/json+fhir` is the DSTU2 type ("implementations MAY also support the older mime types, and are
 *   encouraged to do so"): EHR clients and servers of that era still send it.
 * - `application/json` is what generic HTTP tools send and some servers answer; `_format=json` means the same.
 * - The `fhirVersion` parameter (http.html#version-parameter) names the FHIR version as major.minor; this code
 *   speaks R4, so `4.0` (and a full `4.0.1`) fits, other versions do not.
 *
 * Parsing reuses the RFC 9110 helpers of `server/imaging/media-type.ts` (generic media-type and Accept parsing).
 * @see https://hl7.org/fhir/R4/http.html#mime-type
 * @see https://hl7.org/fhir/R4/http.html#version-parameter
 */
import { parseAccept, parseMediaType } from '../imaging/media-type.ts';

export const FHIR_JSON = 'application/fhir+json';
/** The DSTU2-era FHIR JSON type. */
export const FHIR_JSON_LEGACY = 'application/json+fhir';
/** The FHIR version this code reads and writes, as the `fhirVersion` media-type parameter names it. */
export const FHIR_VERSION = '4.0';

/**
 * `Accept` of the service's FHIR client: the R4 type first, then the DSTU2 type and plain JSON for servers that
 * know only those (a server answering 406 to a bare `application/fhir+json` would otherwise be unusable).
 */
export const FHIR_JSON_ACCEPT = `${FHIR_JSON}, ${FHIR_JSON_LEGACY};q=0.9, application/json;q=0.8`;

/** Content-Types (any parameters) of request bodies the sandbox parses as JSON; express/type-is syntax. */
export const FHIR_JSON_BODY_TYPES = ['application/json', FHIR_JSON, FHIR_JSON_LEGACY, 'application/*+json'] as const;

/** Whether a `fhirVersion` parameter value (absent = unspecified) is the R4 this code speaks. */
export function isR4Version(version: string | undefined): boolean {
  return version === undefined || version === FHIR_VERSION || version.startsWith(`${FHIR_VERSION}.`);
}

export type FhirJsonAnswerCheck = { ok: true } | { ok: false; reason: string };

/**
 * Checks the Content-Type of a FHIR server's answer: FHIR JSON in any of its spellings (the three types above, or
 * another `+json` type), with any parameters (`charset`, `fhirVersion=4.0`). A missing Content-Type is let through
 * (the body is then parsed and must be JSON). Refused: XML, HTML and other non-JSON types (typically a proxy's login
 * page or an XML-only server), and a `fhirVersion` other than R4.
 */
export function checkFhirJsonAnswer(contentType: string | null | undefined): FhirJsonAnswerCheck {
  if (!contentType || !contentType.trim()) return { ok: true };
  const { type, params } = parseMediaType(contentType);
  const json = type === FHIR_JSON || type === FHIR_JSON_LEGACY || type === 'application/json' || /^application\/[a-z0-9.!#$&^_-]+\+json$/.test(type);
  if (!json) return { ok: false, reason: `answered ${type}, not FHIR JSON (${FHIR_JSON})` };
  const version = params['fhirversion'];
  if (!isR4Version(version)) return { ok: false, reason: `answered FHIR version ${version}; this client reads R4 (fhirVersion=${FHIR_VERSION})` };
  return { ok: true };
}

export type FhirNegotiation = { ok: true; type: typeof FHIR_JSON | typeof FHIR_JSON_LEGACY } | { ok: false; message: string };

/** `_format` values (FHIR R4 http.html#mime-type) for formats the sandbox does not produce, for a clear refusal. */
const OTHER_FORMATS = new Set(['xml', 'text/xml', 'application/xml', 'application/fhir+xml', 'application/xml+fhir', 'ttl', 'text/turtle', 'html', 'text/html']);

/**
 * Chooses the answer type of a JSON-only FHIR server from the `_format` query parameter (which overrides `Accept`,
 * http.html#mime-type) or else the `Accept` header.
 *
 * The answer is `application/fhir+json` whenever the client can take it: `Accept` names it (with no `fhirVersion`
 * or an R4 one), `application/json`, `application/*` or `*\/*`, or `Accept` is missing. Only a client whose
 * sole acceptable FHIR type is `application/json+fhir` (or that sent `_format=application/json+fhir`) gets that
 * type echoed: R4 says the correct type SHALL be used, so the DSTU2 type is kept for the clients that know no
 * other, and such a client may pick its parser from the Content-Type and not recognise the R4 name.
 *
 * `_format` values: `json`, `application/json`, `application/fhir+json` → the R4 type; `application/json+fhir` →
 * the DSTU2 type. In a URL an unencoded `+` arrives as a space (`_format=application/fhir+json`), so spaces are
 * read as `+`.
 */
export function negotiateFhirJson(accept: string | undefined, format: string | undefined): FhirNegotiation {
  if (format !== undefined && format.trim() !== '') {
    const { type, params } = parseMediaType(format.trim().replace(/ /g, '+'));
    if (!isR4Version(params['fhirversion'])) return { ok: false, message: `_format asks for FHIR version ${params['fhirversion']}; this server speaks R4 (fhirVersion=${FHIR_VERSION}) only` };
    if (type === 'json' || type === 'application/json' || type === FHIR_JSON) return { ok: true, type: FHIR_JSON };
    if (type === FHIR_JSON_LEGACY) return { ok: true, type: FHIR_JSON_LEGACY };
    if (OTHER_FORMATS.has(type)) return { ok: false, message: `_format=${type} is not served: this server answers JSON only (${FHIR_JSON}); use _format=json or leave it out` };
    return { ok: false, message: `_format=${type} is not a FHIR format this server knows; it answers JSON only (_format=json, ${FHIR_JSON})` };
  }
  if (accept === undefined || accept.trim() === '') return { ok: true, type: FHIR_JSON };
  const entries = parseAccept(accept);
  if (entries.some((e) => ['*/*', 'application/*', 'application/json'].includes(e.type) || (e.type === FHIR_JSON && isR4Version(e.params['fhirversion'])))) {
    return { ok: true, type: FHIR_JSON };
  }
  if (entries.some((e) => e.type === FHIR_JSON_LEGACY && isR4Version(e.params['fhirversion']))) return { ok: true, type: FHIR_JSON_LEGACY };
  const otherVersion = entries.find((e) => (e.type === FHIR_JSON || e.type === FHIR_JSON_LEGACY) && !isR4Version(e.params['fhirversion']));
  if (otherVersion) return { ok: false, message: `Accept asks for FHIR version ${otherVersion.params['fhirversion']}; this server speaks R4 (fhirVersion=${FHIR_VERSION}) only` };
  return { ok: false, message: `This server answers JSON only (${FHIR_JSON}, ${FHIR_JSON_LEGACY} or application/json); Accept was "${accept.slice(0, 200)}"` };
}
