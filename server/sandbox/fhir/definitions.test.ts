import assert from 'node:assert/strict';
import { test } from 'node:test';
import { globalSchema } from '@medplum/core';
import { loadFhirDefinitions, specializeExpression, topLevelUnionMembers } from './definitions.ts';

test('topLevelUnionMembers splits only at the top level', () => {
  assert.deepEqual(topLevelUnionMembers("A.x | (B.y | B.z).where(c = 'p|q') | C.w[0]"), ['A.x', "(B.y | B.z).where(c = 'p|q')", 'C.w[0]']);
  assert.deepEqual(topLevelUnionMembers('Observation.subject'), ['Observation.subject']);
});

test('specializeExpression keeps the members rooted at the type, or the whole expression when unsure', () => {
  assert.equal(specializeExpression('Condition.subject.where(resolve() is Patient) | Observation.subject.where(resolve() is Patient)', 'Observation'), 'Observation.subject.where(resolve() is Patient)');
  assert.equal(specializeExpression('(ActivityDefinition.useContext.value as CodeableConcept) | (Library.useContext.value as CodeableConcept)', 'Library'), '(Library.useContext.value as CodeableConcept)');
  // A member not rooted at a resource type: left alone.
  assert.equal(specializeExpression('Condition.code | %resource.code', 'Condition'), 'Condition.code | %resource.code');
  // Nothing rooted at this type: left alone.
  assert.equal(specializeExpression('A.x | B.y', 'C'), 'A.x | B.y');
});

test('after loading, shared R4 parameters are narrowed per type (and other types keep their own members)', () => {
  loadFhirDefinitions();
  assert.equal(globalSchema.types['Observation']?.searchParams?.['patient']?.expression, 'Observation.subject.where(resolve() is Patient)');
  assert.equal(globalSchema.types['Condition']?.searchParams?.['patient']?.expression, 'Condition.subject.where(resolve() is Patient)');
  assert.equal(globalSchema.types['ImagingStudy']?.searchParams?.['patient']?.expression, 'ImagingStudy.subject.where(resolve() is Patient)');
  assert.equal(globalSchema.types['Observation']?.searchParams?.['code']?.expression, 'Observation.code');
});
