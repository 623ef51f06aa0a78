/**
 * The embedded FHIR R4 server at `/sandbox/fhir` (issue 4, item 3): Medplum's `FhirRouter` over a
 * {@link SandboxRepository}, behind an Express adapter that adds what the router lacks (platform-notes, "Embedded
 * FHIR R4 server"): `/metadata`, `Bundle.link` paging and `entry.fullUrl` with the public base URL, `Location`/`ETag`
 * headers, OperationOutcome errors with the right status codes, validation (in the repository), normalised searches,
 * and content negotiation of the FHIR JSON media types (`server/fhir/media-type.ts`: `application/fhir+json`, the
 * DSTU2 `application/json+fhir`, `application/json`, `_format`; XML and Turtle get a 406 OperationOutcome).
 * @see https://hl7.org/fhir/R4/http.html
 * @see https://hl7.org/fhir/R4/http.html#mime-type
 */
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { getStatus, isOk, normalizeOperationOutcome, notFound, badRequest, OperationOutcomeError } from '@medplum/core';
import { FhirRouter, type FhirRequest, type HttpMethod } from '@medplum/fhir-router';
import type { Bundle, CapabilityStatement, CapabilityStatementRestSecurity, OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { FHIR_JSON_BODY_TYPES, FHIR_VERSION, isR4Version, negotiateFhirJson } from '../../fhir/media-type.ts';
import { parseMediaType } from '../../imaging/media-type.ts';
import type { Logger } from '../../logging.ts';
import { buildCapabilityStatement } from './capability.ts';
import { SandboxRepository } from './repo.ts';
import { addIncludes, normaliseSearch, pagingLinks, routerQuery, type PageSettings } from './search.ts';
import { FhirValidator } from './validate.ts';

export const FHIR_JSON = 'application/fhir+json';

export interface FhirSandboxOptions {
  /** Public base URL of the sandbox (e.g. `http://localhost:8080/sandbox/fhir`), used in fullUrls, links, Location. */
  readonly baseUrl: string;
  readonly page: PageSettings;
  readonly maxRequestBytes: number;
  readonly logger: Logger;
  /** Software version shown in the CapabilityStatement. */
  readonly version?: string;
  /** `rest.security` of the CapabilityStatement (SMART oauth-uris, issue 7: server/sandbox/smart/). */
  readonly security?: CapabilityStatementRestSecurity;
}

export interface FhirSandboxResult {
  readonly status: number;
  readonly body: Resource;
  readonly headers: Record<string, string>;
}

export interface FhirSandbox {
  readonly router: Router;
  readonly repo: SandboxRepository;
  readonly capabilityStatement: CapabilityStatement;
  /**
   * Runs one FHIR interaction without HTTP (seeding, tests). `path` is relative to the base, with its query,
   * e.g. `Patient?_count=5`.
   */
  handle(method: HttpMethod, path: string, body?: unknown, headers?: Record<string, string>): Promise<FhirSandboxResult>;
}

function outcome(status: number, code: OperationOutcomeIssue['code'], text: string): [number, OperationOutcome] {
  return [status, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] }];
}

const RESOURCE_INTERACTIONS = new Set(['_history', '_search']);

/**
 * Deepest nesting of JSON objects and arrays a request body may have. Real resources stay far below it (a
 * transaction Bundle entry's resource with nested extensions or Questionnaire items is a few dozen levels); far
 * deeper bodies only serve to exhaust the stack of the recursive validator and indexer.
 */
export const MAX_JSON_DEPTH = 100;

/**
 * Whether `value` nests objects/arrays deeper than `max` (the top-level value is depth 1). Walks with an explicit
 * stack, so the check itself cannot overflow however deep the value is.
 */
export function jsonDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** The query string without its `_format` parameters (handled by content negotiation, not a search parameter). */
function withoutFormat(query: string): string {
  return query
    .split('&')
    .filter((part) => {
      const key = part.split('=', 1)[0]!;
      try {
        return decodeURIComponent(key.replace(/\+/g, ' ')) !== '_format';
      } catch {
        return true; // malformed escapes: left for the search parser to refuse
      }
    })
    .join('&');
}

/** The first `_format` of a query string, decoded (`+` as a space, as URLSearchParams reads it). */
function formatOf(query: string): string | undefined {
  return new URLSearchParams(query).get('_format') ?? undefined;
}

/**
 * Creates the sandbox (indexes the definitions and compiles the validator: ≈4 s on first call in a process).
 */
export function createFhirSandbox(options: FhirSandboxOptions): FhirSandbox {
  const validator = new FhirValidator();
  validator.warmUp(['Patient', 'Observation', 'Condition', 'ImagingStudy', 'Endpoint', 'MedicationStatement', 'Bundle']);
  const repo = new SandboxRepository(validator);
  const fhirRouter = new FhirRouter();
  const base = options.baseUrl.replace(/\/+$/, '');
  const capabilityStatement = buildCapabilityStatement(base, options.version ?? '0.0.0', new Date().toISOString(), options.security);
  const log = options.logger.child({ component: 'sandbox-fhir' });

  const fullUrl = (r: Resource): string | undefined => (r.id ? `${base}/${r.resourceType}/${r.id}` : undefined);

  /** Adds fullUrl (and search.mode) to searchset/history entries; absolute locations to transaction responses. */
  function decorateBundle(bundle: Bundle, searchedType?: string): void {
    for (const entry of bundle.entry ?? []) {
      if (entry.resource && !entry.fullUrl) {
        const url = fullUrl(entry.resource);
        if (url) entry.fullUrl = url;
      }
      if (searchedType && entry.resource && bundle.type === 'searchset') {
        entry.search ??= { mode: entry.resource.resourceType === searchedType ? 'match' : 'include' };
      }
      if (entry.response?.location && !/^https?:/.test(entry.response.location)) {
        entry.response.location = `${base}/${entry.response.location.replace(/^\/+/, '')}`;
      }
    }
  }

  async function handle(method: HttpMethod, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<FhirSandboxResult> {
    const [pathPart = '', queryPart = ''] = path.replace(/^\/+/, '').split(/\?(.*)/s, 2);
    const segments = pathPart.split('/').filter(Boolean);
    const type = segments[0];
    const respond = (status: number, resource: Resource, extra: Record<string, string> = {}): FhirSandboxResult => ({ status, body: resource, headers: extra });

    if (method === 'GET' && pathPart === 'metadata') return respond(200, capabilityStatement);
    if (segments.some((seg) => seg.startsWith('$'))) {
      const [s, o] = outcome(400, 'not-supported', `Operations (${segments.find((seg) => seg.startsWith('$'))}) are not supported by the sandbox`);
      return respond(s, o);
    }
    if (type && !validator.isResourceType(type)) {
      const [s, o] = outcome(404, 'not-supported', `Unknown resource type "${type}"`);
      return respond(s, o);
    }
    if (segments.length === 0 && method !== 'POST') {
      const [s, o] = outcome(400, 'not-supported', 'System-level interactions other than batch/transaction are not supported; search a resource type, e.g. Patient?_count=10');
      return respond(s, o);
    }
    const isTypeSearch = (method === 'GET' && segments.length === 1) || (method === 'POST' && segments.length === 2 && segments[1] === '_search');
    if (segments.length >= 2 && !RESOURCE_INTERACTIONS.has(segments[1]!) && !/^[A-Za-z0-9\-.]{1,64}$/.test(segments[1]!)) {
      const [s, o] = outcome(400, 'invalid', `"${segments[1]}" is not a valid resource id`);
      return respond(s, o);
    }

    let url = pathPart;
    let search: ReturnType<typeof normaliseSearch> | undefined;
    let requestBody = body;
    try {
      if (isTypeSearch) {
        const query = new URLSearchParams(queryPart);
        if (method === 'POST' && body && typeof body === 'object') {
          for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
            for (const item of Array.isArray(v) ? v : [v]) query.append(k, String(item));
          }
        }
        search = normaliseSearch(type!, query, options.page);
        url = `${type}?${routerQuery(search)}`;
        method = 'GET';
        requestBody = undefined;
      } else if (segments.length === 1 && method !== 'POST') {
        // Conditional update/patch/delete: the same checks as a search, so a typo cannot match nothing (and create).
        if (!queryPart) throw new OperationOutcomeError(badRequest(`${method} ${type} needs search criteria (conditional ${method === 'DELETE' ? 'delete' : 'update'})`));
        const criteria = normaliseSearch(type!, new URLSearchParams(queryPart), options.page).params;
        criteria.delete('_count');
        criteria.delete('_offset');
        url = `${pathPart}?${criteria.toString()}`;
      } else if (queryPart) {
        url = `${pathPart}?${queryPart}`;
      }
      if (method === 'POST' && segments.length === 1 && requestBody && typeof requestBody === 'object') {
        // create: the server assigns the id (FHIR http.html#create); Medplum's MemoryRepository would keep the client's.
        const { id: _ignored, ...rest } = requestBody as Resource;
        requestBody = rest;
      }
      if ((method === 'POST' && segments.length === 0) && (requestBody as Bundle | undefined)?.resourceType !== 'Bundle') {
        throw new OperationOutcomeError(badRequest('POST to the base must be a batch or transaction Bundle'));
      }
    } catch (err) {
      const oo = normalizeOperationOutcome(err);
      return respond(getStatus(oo), oo);
    }

    let existedBefore = false;
    if (method === 'PUT' && segments.length === 2) {
      try {
        await repo.readResource(type!, segments[1]!);
        existedBefore = true;
      } catch {
        existedBefore = false;
      }
    }

    const req: FhirRequest = {
      method,
      url,
      pathname: '',
      params: {},
      query: {},
      body: requestBody,
      headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
      config: { transactions: true },
    };
    const [oo, resource] = await fhirRouter.handleRequest(req, repo);
    let status = getStatus(oo);
    if (!isOk(oo) || !resource) {
      if (status >= 500) {
        // The engine's own error text (library internals, stack-overflow messages) is logged, never answered.
        log.error({ status, issue: oo.issue?.[0]?.details?.text }, 'sandbox FHIR interaction failed');
        return respond(status, outcome(status, 'exception', 'Internal error in the sandbox FHIR server')[1]);
      }
      return respond(status, oo.id === notFound.id ? outcome(404, 'not-found', `${pathPart} not found`)[1] : oo);
    }
    const extra: Record<string, string> = {};
    if (resource.resourceType === 'Bundle') {
      const bundle = resource as Bundle;
      if (search && bundle.type === 'searchset') await addIncludes(bundle, search, repo);
      decorateBundle(bundle, search ? type : undefined);
      if (search && bundle.type === 'searchset') {
        bundle.link = pagingLinks(`${base}/${type}`, search, bundle.total ?? 0);
      }
    }
    const created = status === 201 || (method === 'PUT' && segments.length === 2 && !existedBefore);
    if (created) status = 201;
    if (resource.id && resource.meta?.versionId && resource.resourceType !== 'Bundle' && resource.resourceType !== 'OperationOutcome') {
      extra['ETag'] = `W/"${resource.meta.versionId}"`;
      if (resource.meta.lastUpdated) extra['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
      if (created || method === 'PUT') {
        extra[created ? 'Location' : 'Content-Location'] = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
      }
    }
    return respond(status, resource, extra);
  }

  const router = Router();
  // CORS: the sandbox is read by browser apps (the SMART app) served from other origins in development.
  router.use((req, res, next) => {
    res.set('Access-Control-Allow-Origin', '*');
    res.set('Access-Control-Expose-Headers', 'Location, Content-Location, ETag, Last-Modified');
    if (req.method === 'OPTIONS') {
      res.set('Access-Control-Allow-Methods', 'GET, POST, PUT, PATCH, DELETE, OPTIONS');
      res.set('Access-Control-Allow-Headers', 'Authorization, Content-Type, Accept, If-Match, If-None-Exist, Prefer');
      res.set('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  });
  router.use(
    express.json({
      limit: options.maxRequestBytes,
      type: [...FHIR_JSON_BODY_TYPES, 'application/json-patch+json'],
    }),
  );
  router.use(express.urlencoded({ extended: false, limit: options.maxRequestBytes }));
  // Checked on the parsed body, whoever parsed it (the SMART guard in front parses some bodies itself).
  router.use((req: Request, res: Response, next: NextFunction) => {
    if (req.body !== null && typeof req.body === 'object' && jsonDeeperThan(req.body, MAX_JSON_DEPTH)) {
      sendOutcome(res, ...outcome(400, 'structure', `The body nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`));
      return;
    }
    next();
  });

  router.use(async (req: Request, res: Response, next: NextFunction) => {
    try {
      const method = req.method.toUpperCase();
      if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'].includes(method)) {
        sendOutcome(res, ...outcome(405, 'not-supported', `Method ${method} is not supported`));
        return;
      }
      const rawQuery = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?') + 1) : '';
      // `_format` of a POST _search form body counts like one in the URL (FHIR http.html#search).
      const formBody = req.path.endsWith('/_search') && req.is('application/x-www-form-urlencoded') && req.body && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : undefined;
      const bodyFormat = formBody && typeof formBody['_format'] === 'string' ? formBody['_format'] : undefined;
      const negotiated = negotiateFhirJson(req.get('accept'), formatOf(rawQuery) ?? bodyFormat);
      res.vary('Accept');
      if (!negotiated.ok) {
        sendOutcome(res, ...outcome(406, 'not-supported', negotiated.message));
        return;
      }
      if (['POST', 'PUT', 'PATCH'].includes(method) && !req.path.endsWith('/_search') && (req.body === undefined || req.body === null || typeof req.body !== 'object')) {
        sendOutcome(res, ...outcome(415, 'structure', 'The body must be JSON (Content-Type: application/fhir+json)'));
        return;
      }
      const contentType = ['POST', 'PUT', 'PATCH'].includes(method) ? req.get('content-type') : undefined;
      const bodyVersion = contentType ? parseMediaType(contentType).params['fhirversion'] : undefined;
      if (!isR4Version(bodyVersion)) {
        sendOutcome(res, ...outcome(415, 'not-supported', `The body is FHIR version ${bodyVersion}; this server takes R4 (fhirVersion=${FHIR_VERSION}) only`));
        return;
      }
      let body: unknown = req.body;
      if (formBody && '_format' in formBody) {
        const { _format: _dropped, ...rest } = formBody;
        body = rest;
      }
      const headers: Record<string, string> = {};
      for (const h of ['if-match', 'if-none-exist', 'prefer']) {
        const v = req.get(h);
        if (v) headers[h] = v;
      }
      const query = withoutFormat(rawQuery);
      const result = await handle((method === 'HEAD' ? 'GET' : method) as HttpMethod, `${req.path}${query ? `?${query}` : ''}`, body, headers);
      res.status(result.status).set(result.headers).type(negotiated.type).send(JSON.stringify(result.body));
    } catch (err) {
      next(err);
    }
  });

  // Errors from the body parser (bad JSON, too large) and anything unexpected, as OperationOutcomes.
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.too.large') {
      sendOutcome(res, ...outcome(413, 'too-costly', `The body exceeds ${options.maxRequestBytes} bytes`));
    } else if (e.type === 'entity.parse.failed') {
      sendOutcome(res, ...outcome(400, 'structure', 'The body is not valid JSON'));
    } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      sendOutcome(res, ...outcome(e.status, 'invalid', e.message ?? 'Bad request'));
    } else {
      log.error({ err }, 'unexpected error in sandbox FHIR server');
      sendOutcome(res, ...outcome(500, 'exception', 'Internal error in the sandbox FHIR server'));
    }
  });

  return { router, repo, capabilityStatement, handle };
}

function sendOutcome(res: Response, status: number, body: OperationOutcome): void {
  res.status(status).type(FHIR_JSON).send(JSON.stringify(body));
}
