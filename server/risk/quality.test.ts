/** Image-quality messages never read as a contradiction ("0.40 mm > 0.4 mm"). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { distinct } from './quality.ts';

describe('quality message numbers', () => {
  test('a value just over a limit is written with the digits that show it is over', () => {
    assert.equal(distinct(0.4003, 0.4), '0.4003');
    assert.equal(distinct(0.401, 0.4), '0.401');
    assert.equal(distinct(0.5, 0.4), '0.50');
    assert.equal(distinct(0.62519, 0.4), '0.63');
  });
});
