/** The risk engine's settings in server/config.ts: defaults, parsing, and errors that name the setting. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, REPO_ROOT } from '../config.ts';

describe('risk engine settings', () => {
  test('defaults', () => {
    const c = loadConfig({});
    assert.equal(c.inference.modelsDir, join(REPO_ROOT, 'models'));
    assert.deepEqual({ ...c.inference, modelsDir: undefined }, { modelsDir: undefined, device: 'auto', threads: 2, maxBatch: 8, maxWaitMs: 2, tscoreCalibration: undefined, defaultModel: undefined, ctModelDir: join(REPO_ROOT, 'models/ct-spine-v1'), ctModelDirSet: false });
    // A CT model folder named explicitly must load (start-up stops otherwise); the default may be absent.
    assert.deepEqual(((i) => [i.ctModelDir, i.ctModelDirSet])(loadConfig({ MODEL_CT_DIR: 'test/fixtures/ct-spine-v1-tiny' }).inference), [join(REPO_ROOT, 'test/fixtures/ct-spine-v1-tiny'), true]);
    assert.deepEqual(c.risk, {
      lookbackDays: 730,
      tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 },
      dxaMaxAgeYears: undefined,
      lowConfidence: { maxLogHazardSd: 0.9, nearOodFraction: 0.95 },
      decisionProbability: 0.8,
      guideline: { name: "Bone Health & Osteoporosis Foundation Clinician's Guide (2022)", url: 'https://doi.org/10.1007/s00198-021-05900-y' },
      writeBack: false,
      cacheSize: 500,
      imagePatientIdSystems: [],
    });
  });

  test('values are parsed', () => {
    const c = loadConfig({ MODELS_DIR: 'test/fixtures/models', INFERENCE_DEVICE: 'cpu', INFERENCE_BATCH_MAX: '4', RISK_TIER_HIP_HIGH: '2.5', RISK_WRITE_BACK: 'true', RISK_LOOKBACK_DAYS: '365' });
    assert.equal(c.inference.modelsDir, join(REPO_ROOT, 'test/fixtures/models'));
    assert.equal(c.inference.device, 'cpu');
    assert.equal(c.inference.maxBatch, 4);
    assert.equal(c.risk.tiers.hipHigh, 2.5);
    assert.deepEqual(loadConfig({ IMAGE_PATIENT_ID_SYSTEMS: 'urn:oid:1.2.3 urn:pacs:ids' }).risk.imagePatientIdSystems, ['urn:oid:1.2.3', 'urn:pacs:ids']);
    const v2 = loadConfig({ MODEL_DEFAULT: 'hip-xray-v2', RISK_DXA_MAX_AGE_YEARS: '1.5' });
    assert.equal(v2.inference.defaultModel, 'hip-xray-v2');
    assert.equal(v2.risk.dxaMaxAgeYears, 1.5);
    assert.throws(() => loadConfig({ MODEL_DEFAULT: 'Hip X-ray' }), (e: unknown) => e instanceof ConfigError && /MODEL_DEFAULT/.test(e.message));
    assert.throws(() => loadConfig({ RISK_DXA_MAX_AGE_YEARS: '0' }), (e: unknown) => e instanceof ConfigError && /RISK_DXA_MAX_AGE_YEARS/.test(e.message));
    assert.equal(c.risk.writeBack, true);
    assert.equal(c.risk.lookbackDays, 365);
    const d = loadConfig({ RISK_DECISION_PROBABILITY: '0.9', RISK_GUIDELINE_NAME: 'NOGG 2022', RISK_GUIDELINE_URL: 'https://www.nogg.org.uk/full-guideline', RISK_MAX_LOG_HAZARD_SD: '1.2', RISK_NEAR_OOD_FRACTION: '0.9' }).risk;
    assert.equal(d.decisionProbability, 0.9);
    assert.deepEqual(d.guideline, { name: 'NOGG 2022', url: 'https://www.nogg.org.uk/full-guideline' });
    assert.deepEqual(d.lowConfidence, { maxLogHazardSd: 1.2, nearOodFraction: 0.9 });
  });

  test('wrong values name the setting', () => {
    for (const [env, value] of [['INFERENCE_DEVICE', 'gpu'], ['INFERENCE_BATCH_MAX', '0'], ['RISK_TIER_MOF_HIGH', '-1'], ['RISK_WRITE_BACK', 'yes'], ['RISK_LOOKBACK_DAYS', 'soon'], ['RISK_DECISION_PROBABILITY', '0.4'], ['RISK_GUIDELINE_URL', 'not a url'], ['RISK_MAX_LOG_HAZARD_SD', '0'], ['RISK_NEAR_OOD_FRACTION', '1.5']] as const) {
      assert.throws(() => loadConfig({ [env]: value }), (e: unknown) => e instanceof ConfigError && e.settings.includes(env) && e.message.includes(env), `${env}=${value}`);
    }
    assert.throws(() => loadConfig({ RISK_TIER_MOF_MODERATE: '25' }), (e: unknown) => e instanceof ConfigError && e.message.includes('below RISK_TIER_MOF_HIGH'));
    // The replaced setting is not silently ignored: an operator who still sets it is told what replaced it.
    assert.throws(() => loadConfig({ RISK_MAX_INTERVAL_WIDTH: '10' }), (e: unknown) => e instanceof ConfigError && e.settings.includes('RISK_MAX_INTERVAL_WIDTH') && e.message.includes('RISK_MAX_LOG_HAZARD_SD'));
  });
});
