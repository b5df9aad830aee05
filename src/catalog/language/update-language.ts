import type { Issue } from '../errors.js';
import { ValidationError } from '../errors.js';
import { checkCondition, checkLiteral } from './query-language.js';
import { checkFieldPath, issue, OBJECT_FIELDS, pointerSegment } from './field-paths.js';

/**
 * The update language of `PUT /container_registry/<id>`: MongoDB update operators restricted to
 * the ones below (dotted paths inside the object fields), or a plain partial object that means
 * `$set`. Parsing only checks shape and paths; the operators are applied by
 * `applyUpdate` (mongo-semantics.ts) and the result is validated against the document schema.
 */

export const UPDATE_OPERATORS = ['$set', '$unset', '$push', '$addToSet', '$pull'] as const;
export type UpdateOperator = (typeof UPDATE_OPERATORS)[number];

/** A validated update: operator -> path -> operand. */
export type Update = Partial<Record<UpdateOperator, Record<string, unknown>>>;

export const UPDATE_LIMITS = { maxPaths: 256 } as const;

const OPERATORS: ReadonlySet<string> = new Set(UPDATE_OPERATORS);
const ARRAY_OPERATORS: ReadonlySet<string> = new Set(['$push', '$addToSet', '$pull']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates an update body; throws `ValidationError` naming the offending operator or path. */
export function parseUpdate(body: unknown, id: string): Update {
  if (body === undefined || (isPlainObject(body) && Object.keys(body).length === 0))
    // As MongoDB's drivers do ("update cannot be empty"): an empty update is a client mistake,
    // answering "updated" would hide it.
    throw ValidationError.of(
      [issue('/', 'the body is empty; give update operators ({"$set": {...}}) or fields to set')],
      'Invalid update',
    );
  if (!isPlainObject(body)) {
    throw ValidationError.of(
      [issue('/', 'must be a JSON object of update operators or fields to set')],
      'Invalid update',
    );
  }
  const keys = Object.keys(body);
  const operatorKeys = keys.filter((key) => key.startsWith('$'));
  if (operatorKeys.length > 0 && operatorKeys.length < keys.length) {
    throw ValidationError.of(
      [
        issue(
          '/',
          'mixes update operators and plain fields; use either {"$set": {...}} or a plain partial object',
        ),
      ],
      'Invalid update',
    );
  }
  const update: Record<string, unknown> = operatorKeys.length > 0 ? body : { $set: body };
  const issues: Issue[] = [];
  const seen: string[] = [];
  let paths = 0;
  for (const [operator, operand] of Object.entries(update)) {
    const at = operatorKeys.length > 0 ? `/${pointerSegment(operator)}` : '';
    if (!OPERATORS.has(operator)) {
      issues.push(issue(at, `operator ${operator} is not allowed (allowed: ${UPDATE_OPERATORS.join(' ')})`));
      continue;
    }
    if (!isPlainObject(operand)) {
      issues.push(issue(at || '/', `operator ${operator} needs an object of field paths`));
      continue;
    }
    for (const [path, value] of Object.entries(operand)) {
      const pathAt = `${at}/${pointerSegment(path)}`;
      if (++paths > UPDATE_LIMITS.maxPaths) {
        issues.push(issue(pathAt, `update has more than ${UPDATE_LIMITS.maxPaths} paths`));
        break;
      }
      const problem = checkFieldPath(path, { allowSecrets: true });
      if (problem) {
        issues.push(issue(pathAt, `field "${path}" ${problem}`));
        continue;
      }
      const clash = seen.find(
        (other) => other === path || other.startsWith(`${path}.`) || path.startsWith(`${other}.`),
      );
      if (clash !== undefined) {
        issues.push(
          issue(pathAt, `updating "${path}" conflicts with updating "${clash}" in the same request`),
        );
        continue;
      }
      seen.push(path);
      issues.push(...checkOperand(operator as UpdateOperator, path, value, pathAt, id));
    }
  }
  if (issues.length > 0) throw ValidationError.of(issues, 'Invalid update');
  return update as Update;
}

function checkOperand(
  operator: UpdateOperator,
  path: string,
  value: unknown,
  at: string,
  id: string,
): Issue[] {
  if (path === 'container_registry_id' && (operator !== '$set' || value !== id)) {
    return [issue(at, 'container_registry_id is immutable')];
  }
  if (ARRAY_OPERATORS.has(operator) && OBJECT_FIELDS.has(path)) {
    return [issue(at, `operator ${operator} needs an array field, and ${path} is an object`)];
  }
  switch (operator) {
    case '$set':
      return checkLiteral(value, at);
    case '$unset':
      return [];
    case '$push':
    case '$addToSet':
      if (isPlainObject(value) && '$each' in value) {
        const extra = Object.keys(value).filter((key) => key !== '$each');
        if (extra.length > 0) return [issue(at, `modifier ${extra[0]} is not supported (only $each)`)];
        if (!Array.isArray(value.$each)) return [issue(`${at}/$each`, 'modifier $each needs an array')];
        return checkLiteral(value.$each, `${at}/$each`);
      }
      return checkLiteral(value, at);
    case '$pull':
      return checkCondition(value, at);
  }
}
