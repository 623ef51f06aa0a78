import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeFrame } from './decode/index.ts';
import { parseDicomFile } from './dicom.ts';
import { DecodeError, ImagingError, ImagingWorkerError, PreprocessError, UnsupportedTransferSyntaxError } from './errors.ts';
import { preprocessPixels, type PreprocessRecipe } from './preprocess.ts';
import { createImagingExecutor, ImagingPool, inlineImaging } from './worker-pool.ts';
import { fixturePath, REPO } from '../../test/support/dicom-fixtures.ts';

const DIR = join(REPO, 'test/fixtures/preprocess');
const recipe = JSON.parse(readFileSync(join(DIR, 'recipe.json'), 'utf8')) as PreprocessRecipe;
const FAULTS = new URL('../../test/support/imaging-worker-faults.ts', import.meta.url);

describe('imaging worker pool (IMAGING_WORKERS)', () => {
  const pool = new ImagingPool({ size: 2 });
  after(() => pool.close());

  it('decodes and preprocesses every parity fixture exactly as the main thread does (and as Python does)', async () => {
    const fixtures = readdirSync(DIR).filter((f) => f.endsWith('.json') && f !== 'recipe.json').sort();
    assert.ok(fixtures.length >= 3);
    await Promise.all(fixtures.map(async (name) => {
      const fx = JSON.parse(readFileSync(join(DIR, name), 'utf8')) as { dicom: string; tensorBase64: string };
      const file = parseDicomFile(readFileSync(join(REPO, fx.dicom)));
      const pm = file.pixelModule;
      const laterality = file.string('00200062') ?? file.string('00200060');
      const inlineStored = await decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
      const inlineWorking = preprocessPixels({ stored: inlineStored, pixelModule: pm, laterality }, recipe);

      const stored = await pool.decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
      assert.equal(stored.constructor, inlineStored.constructor, `${name}: same typed array class`);
      assert.deepEqual(stored, inlineStored, `${name}: stored values`);
      const out = await pool.preprocess({ stored, pixelModule: pm, laterality }, recipe);
      assert.deepEqual(out.working, inlineWorking, `${name}: model input bit-identical to the inline one`);
      assert.deepEqual(out.stored, inlineStored, `${name}: stored array comes back intact`);
      const b = Buffer.from(fx.tensorBase64, 'base64');
      const expected = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      const mad = out.working.reduce((s, x, i) => s + Math.abs(x - expected[i]!), 0) / expected.length;
      assert.ok(mad <= 1e-3, `${name}: mean |Δ| to Python = ${mad}`);
    }));
  });

  it('moves buffers instead of copying them: what was handed over is detached on this thread', async () => {
    const file = parseDicomFile(readFileSync(fixturePath('explicit-le-16.dcm')));
    const pm = file.pixelModule;
    const owned = new Uint8Array(file.frame(0)); // a buffer of its own (a slice of a larger one would be copied)
    const stored = await pool.decodeFrame(file.transferSyntaxUid, owned, pm);
    assert.equal(owned.byteLength, 0, 'the frame bytes were transferred, not cloned');
    const storedBytes = stored.byteLength;
    const out = await pool.preprocess({ stored, pixelModule: pm, laterality: 'R' }, recipe);
    assert.equal(stored.byteLength, 0, 'the stored array went to the worker by transfer');
    assert.equal(out.stored.byteLength, storedBytes, 'and came back the same way');
  });

  it('rebuilds the typed imaging errors on the main thread (retrieve.ts falls back on UnsupportedTransferSyntaxError)', async () => {
    const file = parseDicomFile(readFileSync(fixturePath('explicit-le-16.dcm')));
    const pm = file.pixelModule;
    await assert.rejects(pool.decodeFrame('1.2.3.4.5', file.frame(0), pm), (e: unknown) =>
      e instanceof UnsupportedTransferSyntaxError && e.transferSyntaxUid === '1.2.3.4.5');
    await assert.rejects(pool.decodeFrame('1.2.840.10008.1.2.5', new Uint8Array(64), pm), DecodeError);
    // A codec's plain-words reason survives the thread boundary (it is what the clinician's warning says).
    const jls = parseDicomFile(readFileSync(fixturePath('jpeg-ls-80-12.dcm')));
    const corrupt = new Uint8Array(jls.frame(0));
    corrupt.fill(0x55, 40);
    await assert.rejects(pool.decodeFrame(jls.transferSyntaxUid, corrupt, jls.pixelModule), (e: unknown) =>
      e instanceof DecodeError && e.userMessage === 'the image file is corrupt (the JPEG-LS compressed data is invalid)' && /CharLS error 5/.test(e.message));
    const stored = await pool.decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
    await assert.rejects(pool.preprocess({ stored, pixelModule: { ...pm, pixelSpacingMm: undefined }, laterality: 'R' }, recipe), PreprocessError);
  });

  it('IMAGING_WORKERS=0 is the inline executor', async () => {
    assert.equal(createImagingExecutor(0), inlineImaging);
    const file = parseDicomFile(readFileSync(fixturePath('explicit-le-16.dcm')));
    const stored = await inlineImaging.decodeFrame(file.transferSyntaxUid, file.frame(0), file.pixelModule);
    const out = await inlineImaging.preprocess({ stored, pixelModule: file.pixelModule, laterality: 'R' }, recipe);
    assert.equal(out.stored, stored);
    assert.equal(out.working.length, recipe.constants.S ** 2);
  });
});

describe('imaging worker pool faults: a job never hangs', () => {
  const file = parseDicomFile(readFileSync(fixturePath('explicit-le-16.dcm')));
  const pm = file.pixelModule;

  for (const fault of ['exit', 'throw'] as const) {
    it(`a worker that dies (${fault}) fails its job with ImagingWorkerError; the next job gets a new worker`, async () => {
      const pool = new ImagingPool({ size: 1, entry: FAULTS });
      try {
        const err = await pool.decodeFrame(`fault:${fault}`, new Uint8Array(8), pm).then(() => null, (e: unknown) => e);
        assert.ok(err instanceof ImagingWorkerError, String(err));
        assert.ok(err instanceof ImagingError && err.retryable, 'an ImagingError: assessments fall back to clinical-only');
        const stored = await pool.decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
        assert.equal(stored.length, pm.rows * pm.columns);
      } finally {
        await pool.close();
      }
    });
  }

  it('a worker that never answers is killed after jobTimeoutMs; queued jobs still run', async () => {
    // The queued job runs on the replacement worker, whose start (tsx, codecs) counts against its own timeout:
    // 1.5 s was too short on a loaded 2-core machine (load ≈ 15), hence 5 s.
    const pool = new ImagingPool({ size: 1, entry: FAULTS, jobTimeoutMs: 5000 });
    try {
      const hung = pool.decodeFrame('fault:hang', new Uint8Array(8), pm);
      const queued = pool.decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
      await assert.rejects(hung, (e: unknown) => e instanceof ImagingWorkerError && /did not answer/.test(e.message));
      assert.equal((await queued).length, pm.rows * pm.columns);
    } finally {
      await pool.close();
    }
  });

  it('close() rejects the job in flight and every later one', async () => {
    const pool = new ImagingPool({ size: 1, entry: FAULTS });
    const hung = pool.decodeFrame('fault:hang', new Uint8Array(8), pm);
    const queued = pool.decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
    const rejected = Promise.all([assert.rejects(hung, ImagingWorkerError), assert.rejects(queued, ImagingWorkerError)]);
    await pool.close();
    await rejected;
    await assert.rejects(pool.decodeFrame(file.transferSyntaxUid, file.frame(0), pm), ImagingWorkerError);
  });
});
