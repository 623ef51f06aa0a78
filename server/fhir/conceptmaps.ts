/**
 * Order-code maps: FHIR R4 ConceptMaps (`fhir-profiles/conceptmaps/*.json`, plus a site's own folder) that map the
 * codes EHRs put on imaging orders — CPT, LOINC, SNOMED CT, local procedure codes — to the project's order
 * categories (CodeSystem `frcds-imaging-order-category`, `fhir-profiles/codesystems/`). The CDS hooks ask "which
 * category is this order?" through one {@link OrderCodeIndex}, whatever code system the order came in.
 *
 * Like the ValueSets (`valuesets.ts`), only the part of the resource this project writes is supported, and anything
 * else is a load error naming the file, never a silently empty map: each file is a ConceptMap with an id; each group
 * names its `source` code system and targets the category CodeSystem; each element has a code and exactly the
 * targets it maps to, each a category that exists, with an R4 `equivalence` that says the code is in the category
 * (and the `comment` R4 asks for when that is `narrower` or `inexact`).
 * One source code mapped to two different categories (in one file or across files) is an error.
 *
 * Hand-written rather than a terminology server's `$translate`: the maps are a few hundred codes read once at
 * start-up, and the service must not depend on a terminology server being reachable for a hook to answer.
 *
 * This module reads files only; it does not import `server/config.ts` (config imports it to validate
 * `ORDER_CODE_MAPS_DIR` at start-up).
 * @see https://hl7.org/fhir/R4/conceptmap.html
 * @see https://hl7.org/fhir/R4/valueset-concept-map-equivalence.html
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROFILES_DIR = fileURLToPath(new URL('../../fhir-profiles/', import.meta.url));

/** The ConceptMaps that ship with the project. */
export const CONCEPTMAP_DIR = join(PROFILES_DIR, 'conceptmaps');
/** The category CodeSystem every map targets. */
export const ORDER_CATEGORY_CODESYSTEM_FILE = join(PROFILES_DIR, 'codesystems', 'frcds-imaging-order-category.json');
/** Canonical URL of the category CodeSystem (`group.target` of every map). */
export const ORDER_CATEGORY_SYSTEM = 'https://fracture-risk-cds.invalid/fhir/CodeSystem/frcds-imaging-order-category';

/** The code systems of the shipped maps. */
export const CPT = 'http://www.ama-assn.org/go/cpt';
export const LOINC = 'http://loinc.org';
export const SNOMED_CT = 'http://snomed.info/sct';

/**
 * OIDs some EHRs send in `Coding.system` instead of the FHIR URI of the same code system (R4 "Using Codes":
 * https://hl7.org/fhir/R4/terminologies-systems.html lists both). Matched as the URI.
 */
export const SYSTEM_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  'urn:oid:2.16.840.1.113883.6.12': CPT,
  'urn:oid:2.16.840.1.113883.6.1': LOINC,
  'urn:oid:2.16.840.1.113883.6.96': SNOMED_CT,
});

/**
 * R4 `ConceptMapEquivalence` values that put the source code in the target category. `unmatched` and `disjoint`
 * say the opposite; a map that means "not in this category" should leave the code out instead.
 */
const IN_CATEGORY = new Set(['relatedto', 'equivalent', 'equal', 'wider', 'subsumes', 'narrower', 'specializes', 'inexact']);

/** A category code of CodeSystem `frcds-imaging-order-category` (e.g. `hip-xray`). */
export type OrderCategory = string;

/** One loaded map, for start-up logs and `/readyz`-style summaries. */
export interface ConceptMapSummary {
  /** File the map came from (relative to the repository for shipped maps; as given for a site folder). */
  readonly file: string;
  readonly id: string;
  /** Source code systems of its groups. */
  readonly systems: readonly string[];
  /** Source codes it maps. */
  readonly codes: number;
}

export interface OrderCodeIndex {
  /** The category of `system|code`, or undefined when no map lists it. OID aliases of CPT, LOINC and SNOMED CT match. */
  categoryOf(system: string | undefined, code: string | undefined): OrderCategory | undefined;
  /** The categories of any of `codings` (an order matches on any of its codings). */
  categoriesOf(codings: readonly { system?: string; code?: string }[] | undefined): Set<OrderCategory>;
  /** The codes of the category CodeSystem. */
  readonly categories: ReadonlySet<OrderCategory>;
  /** Every mapped `system|code` → category. */
  readonly entries: ReadonlyMap<string, OrderCategory>;
  readonly maps: readonly ConceptMapSummary[];
}

/** A map or the category CodeSystem is not what this loader accepts. The message names the file. */
export class OrderCodeMapError extends Error {
  override readonly name = 'OrderCodeMapError';
  constructor(
    /** The offending file or folder (relative to the repository when inside it). */
    readonly file: string,
    /** What is wrong with it. */
    readonly detail: string,
    /** True when the file is in the site's folder (`ORDER_CODE_MAPS_DIR`), false for a shipped file. */
    readonly site = false,
  ) {
    super(`${file}: ${detail}`);
  }
}

export interface LoadOrderCodeMapsOptions {
  /** A site's extra folder of ConceptMaps (setting `ORDER_CODE_MAPS_DIR`); every `*.json` in it is loaded. */
  extraDir?: string;
  /** The shipped maps (default {@link CONCEPTMAP_DIR}; tests point this elsewhere). */
  dir?: string;
  /** The category CodeSystem (default {@link ORDER_CATEGORY_CODESYSTEM_FILE}). */
  codeSystemFile?: string;
}

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const URI = /^\S+$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** How a file is named in messages: relative to the repository when it is one of ours, else as given. */
function shown(path: string): string {
  const rel = relative(join(PROFILES_DIR, '..'), path);
  return rel.startsWith('..') ? path : rel;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new OrderCodeMapError(shown(path), `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new OrderCodeMapError(shown(path), `is not valid JSON (${(err as Error).message})`);
  }
}

/** The category codes of CodeSystem `frcds-imaging-order-category`. */
export function loadOrderCategories(file: string = ORDER_CATEGORY_CODESYSTEM_FILE): Set<OrderCategory> {
  const cs = readJson(file);
  const name = shown(file);
  if (!isObject(cs) || cs['resourceType'] !== 'CodeSystem') throw new OrderCodeMapError(name, 'is not a CodeSystem');
  if (cs['url'] !== ORDER_CATEGORY_SYSTEM) throw new OrderCodeMapError(name, `url must be ${ORDER_CATEGORY_SYSTEM}`);
  const concepts = cs['concept'];
  if (!Array.isArray(concepts) || concepts.length === 0) throw new OrderCodeMapError(name, 'lists no concepts');
  const codes = new Set<string>();
  concepts.forEach((c: unknown, i) => {
    if (!isObject(c) || !nonEmptyString(c['code'])) throw new OrderCodeMapError(name, `concept[${i}] has no code`);
    if (codes.has(c['code'])) throw new OrderCodeMapError(name, `concept "${c['code']}" is listed twice`);
    codes.add(c['code']);
  });
  return codes;
}

/** Where each `system|code` was mapped, to name both files in a conflict. */
interface Seen {
  category: OrderCategory;
  file: string;
}

/** Validates one ConceptMap and adds its codes to `into`. */
function addConceptMap(path: string, categories: ReadonlySet<string>, into: Map<string, Seen>, ids: Map<string, string>): ConceptMapSummary {
  const file = shown(path);
  const cm = readJson(path);
  const fail = (detail: string): never => {
    throw new OrderCodeMapError(file, detail);
  };
  if (!isObject(cm) || cm['resourceType'] !== 'ConceptMap') return fail('is not a ConceptMap (resourceType must be "ConceptMap")');
  const id = cm['id'];
  if (!nonEmptyString(id) || !FHIR_ID.test(id)) return fail('has no valid id (1–64 letters, digits, "-" or ".")');
  const other = ids.get(id);
  if (other) return fail(`has id "${id}", already used by ${other}`);
  ids.set(id, file);
  const groups = cm['group'];
  if (!Array.isArray(groups) || groups.length === 0) return fail('has no group');
  const systems: string[] = [];
  let codes = 0;
  groups.forEach((g: unknown, gi) => {
    const at = `group[${gi}]`;
    if (!isObject(g)) return fail(`${at} is not an object`);
    const source = g['source'];
    if (!nonEmptyString(source) || !URI.test(source)) return fail(`${at}.source must name the code system of the order codes (a URI)`);
    if (SYSTEM_ALIASES[source]) return fail(`${at}.source: write ${SYSTEM_ALIASES[source]} instead of the OID ${source}`);
    if (g['target'] !== ORDER_CATEGORY_SYSTEM) return fail(`${at}.target must be ${ORDER_CATEGORY_SYSTEM}`);
    if (g['unmapped'] !== undefined) return fail(`${at}.unmapped is not supported: list every code`);
    const elements = g['element'];
    if (!Array.isArray(elements) || elements.length === 0) return fail(`${at} has no element`);
    systems.push(source);
    elements.forEach((e: unknown, ei) => {
      const where = `${at}.element[${ei}]`;
      if (!isObject(e) || !nonEmptyString(e['code'])) return fail(`${where} has no code`);
      const code = e['code'];
      // CPT descriptors are AMA copyright: the shipped and site maps carry CPT codes only.
      if (source === CPT && e['display'] !== undefined) return fail(`${where} (CPT ${code}): leave out display — CPT descriptors are AMA copyright`);
      const targets = e['target'];
      if (!Array.isArray(targets) || targets.length === 0) return fail(`${where} (code "${code}") has no target`);
      let category: string | undefined;
      targets.forEach((t: unknown, ti) => {
        const tw = `${where}.target[${ti}]`;
        if (!isObject(t) || !nonEmptyString(t['code'])) return fail(`${tw} (code "${code}") has no code`);
        if (!categories.has(t['code'])) return fail(`${tw}: code "${code}" maps to "${t['code']}", which is not a category of CodeSystem frcds-imaging-order-category`);
        const eq = t['equivalence'];
        if (!nonEmptyString(eq)) return fail(`${tw} (code "${code}") has no equivalence`);
        if (!IN_CATEGORY.has(eq)) return fail(`${tw} (code "${code}"): equivalence "${eq}" does not put the code in a category; leave the code out instead`);
        // R4 invariant cmd-1: a narrower or inexact mapping says why.
        if ((eq === 'narrower' || eq === 'inexact') && !nonEmptyString(t['comment'])) return fail(`${tw} (code "${code}"): equivalence "${eq}" needs a comment saying why (FHIR R4 cmd-1)`);
        if (category !== undefined && category !== t['code']) return fail(`${where}: code "${code}" maps to two categories ("${category}" and "${t['code']}")`);
        category = t['code'];
      });
      const key = `${source}|${code}`;
      const seen = into.get(key);
      if (seen && seen.category !== category) {
        return fail(`${where}: ${source} code "${code}" maps to "${category}", but ${seen.file === file ? 'an earlier element of this file' : seen.file} maps it to "${seen.category}"`);
      }
      if (!seen) {
        into.set(key, { category: category!, file });
        codes++;
      }
    });
  });
  return { file, id, systems, codes };
}

function jsonFiles(dir: string, what: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new OrderCodeMapError(dir, `${what} is not a folder`);
  const files = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  if (files.length === 0) throw new OrderCodeMapError(dir, `${what} holds no ConceptMap (*.json) files`);
  return files.map((n) => join(dir, n));
}

let cachedShipped: OrderCodeIndex | undefined;

/**
 * Loads the shipped maps and, when given, a site's extra folder. Files are read in name order, shipped first.
 * @throws OrderCodeMapError naming the first file that is not acceptable.
 */
export function loadOrderCodeMaps(options: LoadOrderCodeMapsOptions = {}): OrderCodeIndex {
  const shipped = options.extraDir === undefined && options.dir === undefined && options.codeSystemFile === undefined;
  if (shipped && cachedShipped) return cachedShipped;
  const categories = loadOrderCategories(options.codeSystemFile);
  const seen = new Map<string, Seen>();
  const ids = new Map<string, string>();
  const maps: ConceptMapSummary[] = [];
  for (const f of jsonFiles(options.dir ?? CONCEPTMAP_DIR, 'the shipped ConceptMap folder')) maps.push(addConceptMap(f, categories, seen, ids));
  if (options.extraDir !== undefined) {
    try {
      for (const f of jsonFiles(options.extraDir, 'ORDER_CODE_MAPS_DIR')) maps.push(addConceptMap(f, categories, seen, ids));
    } catch (err) {
      if (err instanceof OrderCodeMapError) throw new OrderCodeMapError(err.file, err.detail, true);
      throw err;
    }
  }
  const entries = new Map<string, OrderCategory>([...seen].map(([k, v]) => [k, v.category]));
  const categoryOf = (system: string | undefined, code: string | undefined): OrderCategory | undefined =>
    system && code ? entries.get(`${SYSTEM_ALIASES[system] ?? system}|${code}`) : undefined;
  const index: OrderCodeIndex = {
    categoryOf,
    categoriesOf: (codings) => {
      const out = new Set<OrderCategory>();
      for (const c of codings ?? []) {
        const cat = categoryOf(c.system, c.code);
        if (cat) out.add(cat);
      }
      return out;
    },
    categories,
    entries,
    maps,
  };
  if (shipped) cachedShipped = index;
  return index;
}
