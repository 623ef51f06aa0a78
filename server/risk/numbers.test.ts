import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBmi, formatInterval, formatPercent, formatProbability, formatRisk, formatRiskWithInterval, formatTscore, inHundred, shownPercent, tscoreText } from './numbers.ts';

describe('risk numbers: one rounding rule for every screen', () => {
  it('one decimal below 10 %, none from 10 %', () => {
    assert.equal(formatRisk(0.02345), '2.3%');
    assert.equal(formatRisk(0.1416), '14%');
    assert.equal(formatRisk(0.0996), '10%', '9.96 % rounds to 10.0 and is written as 10, not 10.0');
    assert.equal(formatPercent(0.04), '<0.1%');
    assert.equal(formatPercent(0), '0.0%');
    assert.equal(formatPercent(null), '–');
  });

  it('the shown value is the value decisions compare', () => {
    assert.equal(shownPercent(0.02996), 3, '2.996 % is shown as 3.0 %, so it is not below a 3 % threshold');
    assert.equal(shownPercent(0.02949), 2.9);
    assert.equal(shownPercent(0.1949), 19);
    assert.equal(shownPercent(0.1951), 20);
    assert.equal(`${shownPercent(0.02996).toFixed(1)}%`, formatRisk(0.02996));
  });

  it('intervals and probabilities', () => {
    assert.equal(formatInterval(0.5, 17.5), '0.5–18%');
    assert.equal(formatRiskWithInterval(0.031, 0.005, 0.175), '3.1% (95% interval 0.5–18%)');
    assert.equal(formatRiskWithInterval(0.031, null, null), '3.1%');
    assert.equal(formatProbability(0.934), '93%');
    assert.equal(formatProbability(0.999), '>99%');
    assert.equal(formatProbability(0.001), '<1%');
  });

  it('T-scores: one decimal, a true minus sign; the estimate beside the DXA, the one used marked', () => {
    assert.equal(formatTscore(-2.43), '−2.4');
    assert.equal(formatTscore(-0.04), '0.0');
    assert.equal(formatTscore(0.25), '0.3');
    const est = { mean: -2.38, low: -3.12, high: -1.66 };
    const day = (d: string) => `[${d}]`;
    assert.equal(tscoreText({ estimate: est, dxa: null, used: 'image' }, day), 'radiograph estimate −2.4 (−3.1 to −1.7)');
    assert.equal(tscoreText({ estimate: est, dxa: { value: -2.6, date: '2026-05-12' }, used: 'dxa' }, day), 'radiograph estimate −2.4 (−3.1 to −1.7); DXA [2026-05-12] −2.6 (used)');
    assert.equal(tscoreText({ estimate: null, dxa: { value: -2.6, date: '2026-05-12' }, used: 'none' }, day), 'DXA [2026-05-12] −2.6 (not used: clinical factors only)');
    assert.equal(tscoreText({ estimate: null, dxa: null, used: 'none' }, day), '');
  });

  it('a BMI outside 20–40 never reads as inside it', () => {
    assert.equal(formatBmi(27.25), '27.3');
    assert.equal(formatBmi(43), '43');
    assert.equal(formatBmi(43.24), '43.2');
    assert.equal(formatBmi(40.04), '40.04', 'not "40.0"');
    assert.equal(formatBmi(19.996), '19.996', 'not "20.0"');
    assert.equal(formatBmi(17.96), '18');
  });

  it('natural frequencies for the patient summary', () => {
    assert.equal(inHundred(0.372), 'about 37 in 100');
    assert.equal(inHundred(0.004), 'fewer than 1 in 100');
  });
});
