/**
 * The order-code ConceptMaps: the shipped CPT / LOINC / SNOMED CT maps, a site's extra folder, and every kind of
 * bad file the loader must refuse with a message naming the file (and, through loadConfig / `npm start`, stop
 * start-up with one message).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import { ConfigError, loadConfig, REPO_ROOT } from '../config.ts';
import { FhirValidator } from '../sandbox/fhir/validate.ts';
import { DXA_CATEGORIES, HIP_RADIOGRAPH_CATEGORIES } from '../cds/hooks.ts';
import { DXA_CPT_CODES } from '../orders/service-requests.ts';
import { CONCEPTMAP_DIR, CPT, LOINC, loadOrderCategories, loadOrderCodeMaps, ORDER_CATEGORY_SYSTEM, OrderCodeMapError, SNOMED_CT } from './conceptmaps.ts';

/** Every CPT code the project ships, with the category it must land in. */
const CPT_EXPECTED: Record<string, string[]> = {
  'hip-xray': ['73501', '73502', '73503', '73521', '73522', '73523'],
  'pelvis-xray': ['72170', '72190'],
  'femur-xray': ['73551', '73552'],
  'lumbar-spine-xray': ['72100', '72110', '72114', '72120'],
  'thoracic-spine-xray': ['72070', '72072', '72074'],
  'lumbar-spine-ct': ['72131', '72132', '72133'],
  'thoracic-spine-ct': ['72128', '72129', '72130'],
  'ct-abdomen-pelvis': ['74176', '74177', '74178'],
  'ct-abdomen': ['74150', '74160', '74170'],
  'ct-pelvis': ['72192', '72193', '72194'],
  'ct-chest': ['71250', '71260', '71270'],
  dxa: ['77080', '77081', '77085'],
  vfa: ['77086'],
};

const tmp = mkdtempSync(join(tmpdir(), 'frcds-conceptmaps-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fresh folder holding `files` (name → JSON value or raw text). */
function folder(files: Record<string, unknown>): string {
  const dir = join(tmp, `site-${n++}`);
  mkdirSync(dir);
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), typeof body === 'string' ? body : JSON.stringify(body));
  return dir;
}

/** A valid site map of `elements` (code → category) in `system`. */
function siteMap(id: string, elements: Record<string, string>, system = 'urn:example:local-procedure-codes'): Record<string, unknown> {
  return {
    resourceType: 'ConceptMap',
    id,
    status: 'draft',
    group: [{ source: system, target: ORDER_CATEGORY_SYSTEM, element: Object.entries(elements).map(([code, cat]) => ({ code, target: [{ code: cat, equivalence: 'equivalent' }] })) }],
  };
}

/** Loads `dir` as the extra folder and returns the error, which must be an OrderCodeMapError naming `file`. */
function refused(dir: string, file: string, detail: RegExp): OrderCodeMapError {
  try {
    loadOrderCodeMaps({ extraDir: dir });
  } catch (err) {
    assert.ok(err instanceof OrderCodeMapError, `expected OrderCodeMapError, got ${String(err)}`);
    assert.ok(err.message.includes(file), `message names ${file}: ${err.message}`);
    assert.match(err.message, detail);
    assert.equal(err.site, true);
    return err;
  }
  assert.fail('the loader accepted a bad folder');
}

describe('shipped ConceptMaps', () => {
  const index = loadOrderCodeMaps();

  test('one map per source: CPT, LOINC, SNOMED CT, each targeting the category CodeSystem', () => {
    assert.deepEqual(index.maps.map((m) => m.systems).flat().sort(), [CPT, LOINC, SNOMED_CT].sort());
    assert.deepEqual(index.maps.map((m) => m.file).sort(), ['fhir-profiles/conceptmaps/cpt.json', 'fhir-profiles/conceptmaps/loinc.json', 'fhir-profiles/conceptmaps/snomed.json']);
    for (const m of index.maps) assert.ok(m.codes > 0, `${m.file} maps codes`);
  });

  test('every shipped CPT code maps to its category, and the CPT map lists nothing else', () => {
    const expected = Object.entries(CPT_EXPECTED).flatMap(([cat, codes]) => codes.map((c) => [c, cat] as const));
    for (const [code, cat] of expected) assert.equal(index.categoryOf(CPT, code), cat, `CPT ${code}`);
    const shipped = [...index.entries.keys()].filter((k) => k.startsWith(`${CPT}|`)).map((k) => k.slice(CPT.length + 1)).sort();
    assert.deepEqual(shipped, expected.map(([c]) => c).sort());
  });

  test('the shipped maps, the example and the category CodeSystem are valid FHIR R4 resources', () => {
    const validator = new FhirValidator();
    const files = [...['cpt.json', 'loinc.json', 'snomed.json', 'examples/site-local.json'].map((f) => join(CONCEPTMAP_DIR, f)), join(REPO_ROOT, 'fhir-profiles/codesystems/frcds-imaging-order-category.json')];
    for (const f of files) assert.doesNotThrow(() => validator.validate(JSON.parse(readFileSync(f, 'utf8')) as Resource), f);
  });

  test('the CPT map carries codes only: no display (CPT descriptors are AMA copyright)', () => {
    const text = readFileSync(join(CONCEPTMAP_DIR, 'cpt.json'), 'utf8');
    const cm = JSON.parse(text) as { group: { element: Record<string, unknown>[] }[] };
    for (const e of cm.group.flatMap((g) => g.element)) assert.deepEqual(Object.keys(e).sort(), ['code', 'target'], `CPT ${String(e['code'])}`);
  });

  test('every code of ValueSet imaging-orders still maps (the hooks no longer read the ValueSet)', () => {
    const vs = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/valuesets/imaging-orders.json'), 'utf8')) as { compose: { include: { system: string; concept: { code: string }[] }[] } };
    for (const inc of vs.compose.include) for (const c of inc.concept) assert.ok(index.categoryOf(inc.system, c.code), `${inc.system}|${c.code}`);
    // The LOINC codes the hooks used to treat as "hip X-ray ordered" still do.
    for (const c of ['24761-9', '24762-7', '26401-0', '26402-8', '28561-9']) assert.ok(HIP_RADIOGRAPH_CATEGORIES.has(index.categoryOf(LOINC, c)!), `LOINC ${c}`);
    for (const c of ['36014-9', '36016-4', '36018-0']) assert.equal(index.categoryOf(LOINC, c), 'hip-ct');
    assert.equal(index.categoryOf(SNOMED_CT, '312681000'), 'dxa');
  });

  test('the categories the hooks rely on exist in the CodeSystem; the DXA CPT list matches the CPT map', () => {
    const cats = loadOrderCategories();
    for (const c of [...HIP_RADIOGRAPH_CATEGORIES, ...DXA_CATEGORIES]) assert.ok(cats.has(c), c);
    assert.deepEqual(index.categories, cats);
    const dxaCpt = [...index.entries].filter(([k, cat]) => k.startsWith(`${CPT}|`) && DXA_CATEGORIES.has(cat)).map(([k]) => k.slice(CPT.length + 1)).sort();
    assert.deepEqual([...DXA_CPT_CODES].sort(), dxaCpt);
  });

  test('an order matches on any of its codings; OID spellings of CPT, LOINC and SNOMED CT match too', () => {
    assert.deepEqual([...index.categoriesOf([{ system: 'urn:epic:proc', code: 'IMG123' }, { system: CPT, code: '73502' }])], ['hip-xray']);
    assert.deepEqual([...index.categoriesOf([{ system: LOINC, code: '26401-0' }, { system: CPT, code: '73502' }])], ['hip-xray'], 'two codings, one category');
    assert.deepEqual([...index.categoriesOf([{ system: CPT, code: '71250' }, { system: CPT, code: '77080' }])].sort(), ['ct-chest', 'dxa']);
    assert.equal(index.categoryOf('urn:oid:2.16.840.1.113883.6.12', '73502'), 'hip-xray');
    assert.equal(index.categoryOf('urn:oid:2.16.840.1.113883.6.1', '28561-9'), 'pelvis-xray');
    assert.equal(index.categoryOf('urn:oid:2.16.840.1.113883.6.96', '169069000'), 'ct-chest');
    assert.equal(index.categoryOf(CPT, '99213'), undefined, 'an office visit is not imaging');
    assert.equal(index.categoryOf(LOINC, '73502'), undefined, 'a CPT code under another system does not match');
    assert.equal(index.categoryOf(undefined, '73502'), undefined);
    assert.equal(index.categoriesOf(undefined).size, 0);
  });

  test('the example site map is not loaded unless its folder is named', () => {
    assert.equal(index.categoryOf('urn:example:local-procedure-codes', 'XR-HIP-2V'), undefined);
    const withSite = loadOrderCodeMaps({ extraDir: join(CONCEPTMAP_DIR, 'examples') });
    assert.equal(withSite.categoryOf('urn:example:local-procedure-codes', 'XR-HIP-2V'), 'hip-xray');
    assert.equal(withSite.categoryOf('urn:example:local-procedure-codes', 'DEXA-AX'), 'dxa');
    assert.equal(withSite.categoryOf(CPT, '73502'), 'hip-xray', 'shipped maps still there');
  });
});

describe('a site folder (ORDER_CODE_MAPS_DIR)', () => {
  test('local codes from every file are added; re-stating a shipped mapping with the same category is fine', () => {
    const dir = folder({
      'a.json': siteMap('site-a', { 'XR HIP 2V': 'hip-xray', 'CT-ABD': 'ct-abdomen' }),
      'b.json': siteMap('site-b', { '73502': 'hip-xray' }, CPT),
      'README.txt': 'not a map: ignored',
    });
    const index = loadOrderCodeMaps({ extraDir: dir });
    assert.equal(index.categoryOf('urn:example:local-procedure-codes', 'XR HIP 2V'), 'hip-xray');
    assert.equal(index.categoryOf('urn:example:local-procedure-codes', 'CT-ABD'), 'ct-abdomen');
    assert.equal(index.maps.length, 5);
  });

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['not JSON', { 'x.json': '{"resourceType": "ConceptMap",' }, 'x.json', /is not valid JSON/],
    ['a ValueSet', { 'x.json': { resourceType: 'ValueSet', id: 'v' } }, 'x.json', /is not a ConceptMap/],
    ['no id', { 'x.json': { ...siteMap('x', { A: 'hip-xray' }), id: undefined } }, 'x.json', /no valid id/],
    ['no group', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [] } }, 'x.json', /has no group/],
    ['group without source', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [{ target: ORDER_CATEGORY_SYSTEM, element: [{ code: 'A', target: [{ code: 'dxa', equivalence: 'equivalent' }] }] }] } }, 'x.json', /group\[0\]\.source/],
    ['group targeting another system', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [{ source: 'urn:x', target: 'http://loinc.org', element: [{ code: 'A', target: [{ code: 'dxa', equivalence: 'equivalent' }] }] }] } }, 'x.json', /group\[0\]\.target must be/],
    ['OID as source', { 'x.json': siteMap('x', { '73502': 'hip-xray' }, 'urn:oid:2.16.840.1.113883.6.12') }, 'x.json', /instead of the OID/],
    ['unknown category', { 'x.json': siteMap('x', { A: 'hip-x-ray' }) }, 'x.json', /"hip-x-ray", which is not a category/],
    ['no equivalence', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [{ source: 'urn:x', target: ORDER_CATEGORY_SYSTEM, element: [{ code: 'A', target: [{ code: 'dxa' }] }] }] } }, 'x.json', /has no equivalence/],
    ['unmatched equivalence', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [{ source: 'urn:x', target: ORDER_CATEGORY_SYSTEM, element: [{ code: 'A', target: [{ code: 'dxa', equivalence: 'unmatched' }] }] }] } }, 'x.json', /equivalence "unmatched"/],
    ['narrower without a comment (R4 cmd-1)', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [{ source: 'urn:x', target: ORDER_CATEGORY_SYSTEM, element: [{ code: 'A', target: [{ code: 'dxa', equivalence: 'narrower' }] }] }] } }, 'x.json', /needs a comment/],
    ['element without target', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [{ source: 'urn:x', target: ORDER_CATEGORY_SYSTEM, element: [{ code: 'A' }] }] } }, 'x.json', /code "A"\) has no target/],
    ['group.unmapped', { 'x.json': { ...siteMap('x', { A: 'dxa' }), group: [{ ...(siteMap('x', { A: 'dxa' })['group'] as object[])[0], unmapped: { mode: 'fixed', code: 'hip-xray' } }] } }, 'x.json', /unmapped is not supported/],
    ['one element, two categories', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [{ source: 'urn:x', target: ORDER_CATEGORY_SYSTEM, element: [{ code: 'A', target: [{ code: 'dxa', equivalence: 'wider' }, { code: 'vfa', equivalence: 'wider' }] }] }] } }, 'x.json', /maps to two categories/],
    ['CPT with a descriptor', { 'x.json': { resourceType: 'ConceptMap', id: 'x', group: [{ source: CPT, target: ORDER_CATEGORY_SYSTEM, element: [{ code: '73502', display: 'anything', target: [{ code: 'hip-xray', equivalence: 'wider' }] }] }] } }, 'x.json', /leave out display/],
    ['a shipped code mapped to another category', { 'local.json': siteMap('x', { '73502': 'femur-xray' }, CPT) }, 'local.json', /maps to "femur-xray", but fhir-profiles\/conceptmaps\/cpt\.json maps it to "hip-xray"/],
    ['two site files disagreeing', { 'a.json': siteMap('a', { K: 'ct-chest' }), 'b.json': siteMap('b', { K: 'ct-abdomen' }) }, 'b.json', /maps to "ct-abdomen", but .*a\.json maps it to "ct-chest"/],
    ['one file disagreeing with itself', { 'x.json': siteMap('x', { K: 'ct-chest' }), 'y.json': { resourceType: 'ConceptMap', id: 'y', group: [{ source: 'urn:y', target: ORDER_CATEGORY_SYSTEM, element: [{ code: 'K', target: [{ code: 'dxa', equivalence: 'wider' }] }, { code: 'K', target: [{ code: 'vfa', equivalence: 'wider' }] }] }] } }, 'y.json', /an earlier element of this file/],
    ['an id used twice', { 'a.json': siteMap('same', { K: 'dxa' }), 'b.json': siteMap('same', { L: 'dxa' }) }, 'b.json', /already used by/],
    ['a shipped id reused', { 'a.json': siteMap('frcds-order-category-cpt', { K: 'dxa' }) }, 'a.json', /already used by fhir-profiles\/conceptmaps\/cpt\.json/],
  ];
  for (const [name, files, file, detail] of cases) test(`refused: ${name}`, () => void refused(folder(files), file, detail));

  test('refused: a folder with no *.json, and a path that is not a folder', () => {
    const empty = folder({ 'notes.txt': 'x' });
    refused(empty, empty, /holds no ConceptMap/);
    refused(join(tmp, 'missing'), join(tmp, 'missing'), /is not a folder/);
  });
});

describe('start-up', () => {
  test('loadConfig: ORDER_CODE_MAPS_DIR is resolved and its maps validated; a bad file is a ConfigError naming it', () => {
    const good = folder({ 'local.json': siteMap('site', { X: 'dxa' }) });
    assert.equal(loadConfig({ ORDER_CODE_MAPS_DIR: good }).cds.orderCodeMapsDir, good);
    assert.equal(loadConfig({}).cds.orderCodeMapsDir, undefined);
    const bad = folder({ 'local.json': siteMap('site', { X: 'no-such-category' }) });
    try {
      loadConfig({ ORDER_CODE_MAPS_DIR: bad });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.deepEqual(err.settings, ['ORDER_CODE_MAPS_DIR']);
      assert.match(err.message, /^Configuration error: ORDER_CODE_MAPS_DIR .*local\.json: .*"no-such-category", which is not a category/);
    }
  });

  test('npm start with a bad site map exits 2 printing one message naming the file', () => {
    const bad = folder({ 'broken.json': '{ not json' });
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'server/index.ts')], {
      env: { ...process.env, ORDER_CODE_MAPS_DIR: bad, PORT: '1', LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 30000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /^Configuration error: ORDER_CODE_MAPS_DIR .*broken\.json: is not valid JSON/);
  });

  test('a broken shipped map is named as such (loader pointed at a copy of the shipped folder)', () => {
    const copy = join(tmp, 'shipped-copy');
    cpSync(CONCEPTMAP_DIR, copy, { recursive: true });
    const cpt = JSON.parse(readFileSync(join(copy, 'cpt.json'), 'utf8')) as { group: { element: { target: { code: string }[] }[] }[] };
    cpt.group[0]!.element[0]!.target[0]!.code = 'hip-xr';
    writeFileSync(join(copy, 'cpt.json'), JSON.stringify(cpt));
    assert.throws(() => loadOrderCodeMaps({ dir: copy }), (err: unknown) => err instanceof OrderCodeMapError && !err.site && err.message.includes('cpt.json') && /"hip-xr"/.test(err.message));
  });
});
