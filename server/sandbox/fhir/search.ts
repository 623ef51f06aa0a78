/**
 * Search requests of the sandbox FHIR server: checking and normalising the query before Medplum's router sees it,
 * and the paging links it does not produce (issue 4; FHIR R4 http.html#search and search.html#count).
 *
 * - Unknown search parameters are rejected with 400 instead of silently matching nothing (Medplum's behaviour),
 *   as is the unsupported chaining / `_has` / `_cursor` — a CDS service must never read "no data" from a typo.
 * - Reference parameters given a bare id (`ImagingStudy?patient=123`) find nothing in Medplum; FHIR says a bare id
 *   matches any target type, so it is rewritten to `Patient/123` (single target) or to an OR over every target type.
 * - `_count` gets a default and a ceiling (smart-config/sandbox.json); `self`/`first`/`next`/`previous`/`last` links
 *   carry `_count` and `_offset`.
 * - `_include` / `_revinclude` (not iterated) are checked here and carried out by {@link addIncludes}, because
 *   Medplum's MemoryRepository parses but ignores them.
 */
import { badRequest, evalFhirPath, Operator, OperationOutcomeError } from '@medplum/core';
import type { FhirRepository } from '@medplum/fhir-router';
import type { Bundle, BundleEntry, BundleLink, Reference, Resource } from '@medplum/fhirtypes';
import { searchParamsOf } from './definitions.ts';

export interface PageSettings {
  readonly defaultPageSize: number;
  readonly maxPageSize: number;
}

/** `_include=<type>:<param>[:<target>]` or `_revinclude=<type>:<param>[:<target>]`. */
export interface IncludeSpec {
  readonly resourceType: string;
  readonly param: string;
  readonly target?: string;
}

export interface NormalisedSearch {
  /** The query to hand to Medplum's router (normalised values, `_count`/`_offset` set). */
  readonly params: URLSearchParams;
  readonly count: number;
  readonly offset: number;
  readonly include: readonly IncludeSpec[];
  readonly revInclude: readonly IncludeSpec[];
}

/** Largest number of resources `_include`/`_revinclude` may add to one page. */
const MAX_INCLUDED = 1000;

function parseInclude(searched: string, name: '_include' | '_revinclude', value: string, modifier: string | undefined): IncludeSpec {
  if (modifier) fail(`${name}:${modifier} is not supported by the sandbox`, name);
  const [type, param, target, ...rest] = value.split(':');
  if (!type || !param || rest.length > 0) fail(`${name} must look like <Type>:<parameter>[:<targetType>], got ${JSON.stringify(value)}`, name);
  if (name === '_include' && type !== searched) fail(`_include=${value} does not start with the searched type ${searched}`, name);
  const sp = Object.hasOwn(searchParamsOf(type), param) ? searchParamsOf(type)[param] : undefined;
  if (!sp || sp.type !== 'reference') fail(`${name}=${value}: ${type} has no reference search parameter "${param}"`, name);
  if (target && !(sp.target as readonly string[] | undefined)?.includes(target)) fail(`${name}=${value}: ${target} is not a target of ${type}.${param}`, name);
  if (name === '_revinclude' && !(sp.target as readonly string[] | undefined)?.includes(searched)) fail(`_revinclude=${value}: ${type}.${param} cannot refer to ${searched}`, name);
  return { resourceType: type, param, ...(target ? { target } : {}) };
}

/** Result parameters handled here or passed through to Medplum unchanged. */
const PASS_THROUGH = new Set(['_sort', '_total', '_elements', '_summary']);
const DROPPED = new Set(['_pretty', '_format', '_']);
const UNSUPPORTED: Record<string, string> = {
  _has: 'reverse chaining (_has) is not supported by the sandbox',
  _cursor: 'cursor paging is not supported; use _offset',
  _type: '_type is only meaningful for a system-level search',
  _contained: '_contained is not supported by the sandbox',
  _containedType: '_containedType is not supported by the sandbox',
  _query: 'named queries (_query) are not supported by the sandbox',
  _filter: '_filter is not supported by the sandbox',
  _text: '_text is not supported by the sandbox',
  _content: '_content is not supported by the sandbox',
  _list: '_list is not supported by the sandbox',
};
const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json']);

function fail(message: string, expression?: string): never {
  throw new OperationOutcomeError(badRequest(message, expression));
}

function nonNegativeInt(name: string, value: string): number {
  if (!/^\d{1,9}$/.test(value)) fail(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`, name);
  return Number(value);
}

/** Rewrites a bare id in a reference search value to typed references (see file header). */
function normaliseReference(value: string, targets: readonly string[], typeModifier: string | undefined): string {
  return value
    .split(',')
    .map((v) => {
      if (v === '' || v.includes('/') || v.includes(':')) return v; // typed, absolute or a URN: leave as is
      if (typeModifier) return `${typeModifier}/${v}`;
      return targets.map((t) => `${t}/${v}`).join(',');
    })
    .join(',');
}

/**
 * Checks and normalises the query of `GET [base]/[type]?...`.
 * @throws OperationOutcomeError (400) naming the offending parameter.
 */
export function normaliseSearch(resourceType: string, query: URLSearchParams, page: PageSettings): NormalisedSearch {
  const known = searchParamsOf(resourceType);
  const params = new URLSearchParams();
  let count = page.defaultPageSize;
  let offset = 0;
  const include: IncludeSpec[] = [];
  const revInclude: IncludeSpec[] = [];
  for (const [key, value] of query) {
    const colon = key.indexOf(':');
    const code = colon >= 0 ? key.slice(0, colon) : key;
    const modifier = colon >= 0 ? key.slice(colon + 1) : undefined;
    if (DROPPED.has(code)) {
      if (code === '_format' && !JSON_FORMATS.has(value)) fail(`_format=${value} is not supported; the sandbox speaks JSON only`, '_format');
      continue;
    }
    if (Object.hasOwn(UNSUPPORTED, code)) fail(UNSUPPORTED[code]!, code);
    if (key.includes('.')) fail(`chained search (${key}) is not supported by the sandbox`, key);
    if (code === '_count') {
      count = Math.min(nonNegativeInt('_count', value), page.maxPageSize);
      continue;
    }
    if (code === '_offset') {
      offset = nonNegativeInt('_offset', value);
      continue;
    }
    if (code === '_include' || code === '_revinclude') {
      (code === '_include' ? include : revInclude).push(parseInclude(resourceType, code, value, modifier));
      params.append(key, value);
      continue;
    }
    if (code === '_sort') {
      for (const field of value.split(',')) {
        const sortCode = field.replace(/^-/, '');
        if (!Object.hasOwn(known, sortCode)) fail(`Unknown sort parameter "${sortCode}" for ${resourceType}`, '_sort');
      }
    }
    if (code === '_summary' && value === 'count') count = 0;
    if (PASS_THROUGH.has(code)) {
      params.append(key, value);
      continue;
    }
    const param = Object.hasOwn(known, code) ? known[code] : undefined;
    if (!param) fail(`Unknown search parameter "${code}" for ${resourceType}`, code);
    if (param.type === 'reference' && modifier !== 'missing' && modifier !== 'identifier') {
      const targets = param.target ?? [];
      const typeModifier = modifier && /^[A-Z]/.test(modifier) ? modifier : undefined;
      if (typeModifier && !(targets as readonly string[]).includes(typeModifier)) fail(`${code}:${typeModifier} is not a target type of ${resourceType}.${code}`, key);
      params.append(typeModifier ? code : key, normaliseReference(value, targets as readonly string[], typeModifier));
      continue;
    }
    params.append(key, value);
  }
  params.set('_count', String(count));
  params.set('_offset', String(offset));
  return { params, count, offset, include, revInclude };
}

/** The query Medplum's router gets: without `_include`/`_revinclude`, which {@link addIncludes} handles. */
export function routerQuery(search: NormalisedSearch): string {
  const p = new URLSearchParams(search.params);
  p.delete('_include');
  p.delete('_revinclude');
  return p.toString();
}

/**
 * Appends the resources named by `_include` / `_revinclude` to a searchset page (search.mode `include`), once each.
 * @see https://hl7.org/fhir/R4/search.html#include
 */
export async function addIncludes(bundle: Bundle, search: NormalisedSearch, repo: FhirRepository): Promise<void> {
  if (search.include.length === 0 && search.revInclude.length === 0) return;
  const matches = (bundle.entry ?? []).map((e) => e.resource).filter((r): r is Resource & { id: string } => !!r?.id);
  const have = new Set(matches.map((r) => `${r.resourceType}/${r.id}`));
  const added: BundleEntry[] = [];
  const add = (r: Resource): void => {
    const key = `${r.resourceType}/${r.id}`;
    if (have.has(key) || added.length >= MAX_INCLUDED) return;
    have.add(key);
    added.push({ resource: r, search: { mode: 'include' } });
  };
  for (const inc of search.include) {
    const expression = searchParamsOf(inc.resourceType)[inc.param]?.expression;
    if (!expression) continue;
    for (const r of matches) {
      for (const value of evalFhirPath(expression, r)) {
        const ref = (value as Reference | undefined)?.reference;
        if (typeof ref !== 'string' || !/^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(ref)) continue; // local references only
        if (inc.target && !ref.startsWith(`${inc.target}/`)) continue;
        if (have.has(ref)) continue;
        try {
          add(await repo.readReference({ reference: ref }));
        } catch {
          // a dangling reference includes nothing (FHIR: include what exists)
        }
      }
    }
  }
  for (const rev of search.revInclude) {
    for (const r of matches) {
      const found = await repo.search({
        resourceType: rev.resourceType as Resource['resourceType'],
        filters: [{ code: rev.param, operator: Operator.EQUALS, value: `${r.resourceType}/${r.id}` }],
        count: MAX_INCLUDED,
      });
      for (const e of found.entry ?? []) if (e.resource) add(e.resource);
    }
  }
  if (added.length > 0) bundle.entry = [...(bundle.entry ?? []), ...added];
}

/**
 * The paging links of a searchset: the request as run (`self`), `first`, `previous`/`next` when they exist, `last`.
 * @see https://hl7.org/fhir/R4/http.html#paging
 */
export function pagingLinks(typeUrl: string, search: NormalisedSearch, total: number): BundleLink[] {
  const at = (offset: number): string => {
    const p = new URLSearchParams(search.params);
    p.set('_offset', String(offset));
    return `${typeUrl}?${p.toString()}`;
  };
  const { count, offset } = search;
  const links: BundleLink[] = [{ relation: 'self', url: at(offset) }];
  if (count === 0) return links;
  links.push({ relation: 'first', url: at(0) });
  if (offset > 0) links.push({ relation: 'previous', url: at(Math.max(0, offset - count)) });
  if (offset + count < total) links.push({ relation: 'next', url: at(offset + count) });
  links.push({ relation: 'last', url: at(total > 0 ? Math.floor((total - 1) / count) * count : 0) });
  return links;
}
