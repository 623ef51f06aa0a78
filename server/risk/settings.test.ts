/** The risk engine's settings in server/config.ts: defaults, parsing, and errors that name the setting. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, REPO_ROOT } from '../config.ts';

describe('risk engine settings', () => {
  test('defaults', () => {
    const c = loadConfig({});
    assert.equal(c.inference.modelsDir, join(REPO_ROOT, 'models'));
    assert.deepEqual({ ...c.inference, modelsDir: undefined }, { modelsDir: undefined, device: 'auto', threads: 2, maxBatch: 8, maxWaitMs: 2 });
    assert.deepEqual(c.risk, { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 }, maxIntervalWidth: 10, writeBack: false, cacheSize: 500, imagePatientIdSystems: [] });
  });

  test('values are parsed', () => {
    const c = loadConfig({ MODELS_DIR: 'test/fixtures/models', INFERENCE_DEVICE: 'cpu', INFERENCE_BATCH_MAX: '4', RISK_TIER_HIP_HIGH: '2.5', RISK_WRITE_BACK: 'true', RISK_LOOKBACK_DAYS: '365' });
    assert.equal(c.inference.modelsDir, join(REPO_ROOT, 'test/fixtures/models'));
    assert.equal(c.inference.device, 'cpu');
    assert.equal(c.inference.maxBatch, 4);
    assert.equal(c.risk.tiers.hipHigh, 2.5);
    assert.deepEqual(loadConfig({ IMAGE_PATIENT_ID_SYSTEMS: 'urn:oid:1.2.3 urn:pacs:ids' }).risk.imagePatientIdSystems, ['urn:oid:1.2.3', 'urn:pacs:ids']);
    assert.equal(c.risk.writeBack, true);
    assert.equal(c.risk.lookbackDays, 365);
  });

  test('wrong values name the setting', () => {
    for (const [env, value] of [['INFERENCE_DEVICE', 'gpu'], ['INFERENCE_BATCH_MAX', '0'], ['RISK_TIER_MOF_HIGH', '-1'], ['RISK_WRITE_BACK', 'yes'], ['RISK_LOOKBACK_DAYS', 'soon']] as const) {
      assert.throws(() => loadConfig({ [env]: value }), (e: unknown) => e instanceof ConfigError && e.settings.includes(env) && e.message.includes(env), `${env}=${value}`);
    }
    assert.throws(() => loadConfig({ RISK_TIER_MOF_MODERATE: '25' }), (e: unknown) => e instanceof ConfigError && e.message.includes('below RISK_TIER_MOF_HIGH'));
  });
});
