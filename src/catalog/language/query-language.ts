import type { Issue } from '../errors.js';
import { ValidationError } from '../errors.js';
import type { Filter, SortSpec } from '../model.js';
import { checkFieldPath, issue, pointerSegment, prototypeSegmentProblem } from './field-paths.js';
import { compileLinearRegex, UnsupportedRegexError } from './linear-regex.js';

/**
 * The query language of `POST /container_registries`: a MongoDB filter restricted to the
 * operators below, with field paths checked against the document schema and bounds on size.
 * A filter that passes is safe to hand to MongoDB or to the embedded store unchanged: values
 * are plain JSON (no BSON types can be smuggled in) and no operator executes code.
 */

export const LOGICAL_OPERATORS = ['$and', '$or', '$nor'] as const;
export const FIELD_OPERATORS = [
  '$eq',
  '$ne',
  '$gt',
  '$gte',
  '$lt',
  '$lte',
  '$in',
  '$nin',
  '$not',
  '$exists',
  '$regex',
  '$options',
  '$all',
  '$elemMatch',
  '$size',
] as const;

export const QUERY_LIMITS = {
  /** Nesting of logical operators, `$not` and `$elemMatch`. */
  maxDepth: 8,
  /** Every operator and field condition counts as a node. */
  maxNodes: 512,
  /** Elements of `$in`, `$nin`, `$all` and of a logical operator's array. */
  maxArrayLength: 1000,
  maxRegexLength: 256,
  /** Regex flags MongoDB and JavaScript share. */
  regexOptions: 'ims',
  maxSortKeys: 4,
} as const;

const LOGICAL: ReadonlySet<string> = new Set(LOGICAL_OPERATORS);
const FIELD_OPS: ReadonlySet<string> = new Set(FIELD_OPERATORS);
const COMPARISON: ReadonlySet<string> = new Set(['$eq', '$ne']);
const ORDERING: ReadonlySet<string> = new Set(['$gt', '$gte', '$lt', '$lte']);
const ARRAY_OPERAND: ReadonlySet<string> = new Set(['$in', '$nin', '$all']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks one field path; the problem as a sentence, or undefined (field-paths.ts, image-fields.ts). */
export type PathCheck = (path: string) => string | undefined;

/**
 * Validates a filter body and returns it typed; throws `ValidationError` naming the first problem.
 * `checkPath` says which fields exist (registry documents unless given).
 */
export function parseFilter(body: unknown, checkPath: PathCheck = checkFieldPath): Filter {
  if (body === undefined || body === null) return {};
  const checker = new FilterChecker(checkPath);
  if (!isPlainObject(body)) {
    throw ValidationError.of(
      [issue('/', 'must be a JSON object (a MongoDB-style filter)')],
      'Invalid filter',
    );
  }
  checker.filter(body, '', 0);
  if (checker.issues.length > 0) throw ValidationError.of(checker.issues, 'Invalid filter');
  return body;
}

/**
 * Validates the condition given for one field (a literal or an object of operators), as in
 * `$pull: {field: <condition>}`. Returns the problems found.
 */
export function checkCondition(value: unknown, pointer: string): Issue[] {
  const checker = new FilterChecker();
  checker.condition(value, pointer, 0);
  return checker.issues;
}

/** Validates a value that is stored as is: plain JSON without operator-like keys. */
export function checkLiteral(value: unknown, pointer: string): Issue[] {
  const checker = new FilterChecker();
  checker.literal(value, pointer);
  return checker.issues;
}

class FilterChecker {
  readonly issues: Issue[] = [];
  private nodes = 0;

  constructor(private readonly checkPath: PathCheck = checkFieldPath) {}

  private fail(pointer: string, message: string): void {
    if (this.issues.length < 20) this.issues.push(issue(pointer || '/', message));
  }

  /** A query document: logical operators and field conditions. */
  filter(query: Record<string, unknown>, pointer: string, depth: number): void {
    if (depth > QUERY_LIMITS.maxDepth)
      return this.fail(pointer, `nests deeper than ${QUERY_LIMITS.maxDepth} levels`);
    for (const [key, value] of Object.entries(query)) {
      const at = `${pointer}/${pointerSegment(key)}`;
      if (++this.nodes > QUERY_LIMITS.maxNodes)
        return this.fail(at, `filter has more than ${QUERY_LIMITS.maxNodes} conditions`);
      if (key.startsWith('$')) {
        if (!LOGICAL.has(key)) {
          this.fail(
            at,
            FIELD_OPS.has(key) ? `operator ${key} must be applied to a field` : unknownOperator(key),
          );
          continue;
        }
        this.logical(key, value, at, depth);
      } else {
        const problem = this.checkPath(key);
        if (problem) {
          this.fail(at, `field "${key}" ${problem}`);
          continue;
        }
        this.condition(value, at, depth);
      }
    }
  }

  private logical(operator: string, value: unknown, pointer: string, depth: number): void {
    if (!Array.isArray(value) || value.length === 0) {
      return this.fail(pointer, `operator ${operator} needs a non-empty array of filters`);
    }
    if (value.length > QUERY_LIMITS.maxArrayLength) {
      return this.fail(pointer, `operator ${operator} has more than ${QUERY_LIMITS.maxArrayLength} elements`);
    }
    value.forEach((clause, index) => {
      if (!isPlainObject(clause))
        this.fail(`${pointer}/${index}`, `each element of ${operator} must be an object`);
      else this.filter(clause, `${pointer}/${index}`, depth + 1);
    });
  }

  /** The value given for a field: a literal (equality) or an object of operators. */
  condition(value: unknown, pointer: string, depth: number): void {
    if (isPlainObject(value) && Object.keys(value).some((key) => key.startsWith('$'))) {
      this.operators(value, pointer, depth);
    } else {
      this.literal(value, pointer);
    }
  }

  private operators(ops: Record<string, unknown>, pointer: string, depth: number): void {
    if (depth > QUERY_LIMITS.maxDepth)
      return this.fail(pointer, `nests deeper than ${QUERY_LIMITS.maxDepth} levels`);
    for (const [op, operand] of Object.entries(ops)) {
      const at = `${pointer}/${pointerSegment(op)}`;
      if (++this.nodes > QUERY_LIMITS.maxNodes)
        return this.fail(at, `filter has more than ${QUERY_LIMITS.maxNodes} conditions`);
      if (!op.startsWith('$')) {
        this.fail(at, `cannot mix operators and field names in one condition ("${op}")`);
      } else if (!FIELD_OPS.has(op)) {
        this.fail(
          at,
          LOGICAL.has(op) ? `operator ${op} is only allowed at the top of a filter` : unknownOperator(op),
        );
      } else if (ORDERING.has(op)) {
        // MongoDB orders null, arrays and objects by rules few clients expect (and the embedded
        // store's evaluator does not share); ordering compares scalars only.
        if (!['number', 'string', 'boolean'].includes(typeof operand))
          this.fail(at, `operator ${op} compares with a number, string or boolean`);
      } else if (COMPARISON.has(op)) {
        this.literal(operand, at);
      } else if (ARRAY_OPERAND.has(op)) {
        this.array(op, operand, at);
      } else if (op === '$exists') {
        if (typeof operand !== 'boolean') this.fail(at, 'operator $exists needs true or false');
      } else if (op === '$size') {
        if (!Number.isInteger(operand) || (operand as number) < 0)
          this.fail(at, 'operator $size needs a non-negative integer');
      } else if (op === '$regex') {
        this.regex(operand, ops.$options, at);
      } else if (op === '$options') {
        if (!('$regex' in ops)) this.fail(at, 'operator $options is only allowed next to $regex');
      } else if (op === '$not') {
        if (
          !isPlainObject(operand) ||
          Object.keys(operand).length === 0 ||
          !Object.keys(operand).every((k) => k.startsWith('$'))
        ) {
          this.fail(at, 'operator $not needs an object of operators, e.g. {"$not": {"$regex": "^dev"}}');
        } else this.operators(operand, at, depth + 1);
      } else if (op === '$elemMatch') {
        this.elemMatch(operand, at, depth + 1);
      }
    }
  }

  private elemMatch(operand: unknown, pointer: string, depth: number): void {
    if (!isPlainObject(operand) || Object.keys(operand).length === 0) {
      return this.fail(pointer, 'operator $elemMatch needs a non-empty object');
    }
    const keys = Object.keys(operand);
    if (keys.every((key) => key.startsWith('$') && !LOGICAL.has(key))) {
      // Conditions on the array's elements themselves, e.g. {"$elemMatch": {"$gte": 80, "$lt": 85}}.
      return this.operators(operand, pointer, depth);
    }
    // A query on each element as a subdocument: field names are relative to the element.
    if (depth > QUERY_LIMITS.maxDepth)
      return this.fail(pointer, `nests deeper than ${QUERY_LIMITS.maxDepth} levels`);
    for (const [key, value] of Object.entries(operand)) {
      const at = `${pointer}/${pointerSegment(key)}`;
      const prototype = prototypeSegmentProblem(key);
      if (prototype) this.fail(at, `field "${key}" ${prototype}`);
      else if (LOGICAL.has(key)) this.logicalInElement(key, value, at, depth);
      else if (key.startsWith('$'))
        this.fail(at, `operator ${key} cannot be mixed with field names in $elemMatch`);
      else if (key === '' || key.split('.').some((segment) => segment === '' || segment.startsWith('$'))) {
        this.fail(at, `"${key}" is not a valid field name inside $elemMatch`);
      } else this.condition(value, at, depth);
    }
  }

  private logicalInElement(operator: string, value: unknown, pointer: string, depth: number): void {
    if (!Array.isArray(value) || value.length === 0) {
      return this.fail(pointer, `operator ${operator} needs a non-empty array of filters`);
    }
    value.forEach((clause, index) => this.elemMatch(clause, `${pointer}/${index}`, depth + 1));
  }

  private array(op: string, operand: unknown, pointer: string): void {
    if (!Array.isArray(operand)) return this.fail(pointer, `operator ${op} needs an array`);
    if (operand.length > QUERY_LIMITS.maxArrayLength) {
      return this.fail(pointer, `operator ${op} has more than ${QUERY_LIMITS.maxArrayLength} elements`);
    }
    operand.forEach((element, index) => {
      if (op === '$all' && isPlainObject(element) && '$elemMatch' in element) {
        this.fail(
          `${pointer}/${index}`,
          '$all with $elemMatch is not supported; use $and of $elemMatch conditions',
        );
      } else this.literal(element, `${pointer}/${index}`);
    });
  }

  private regex(pattern: unknown, options: unknown, pointer: string): void {
    if (typeof pattern !== 'string') return this.fail(pointer, 'operator $regex needs a string');
    if (pattern.length > QUERY_LIMITS.maxRegexLength) {
      return this.fail(pointer, `operator $regex is longer than ${QUERY_LIMITS.maxRegexLength} characters`);
    }
    if (options !== undefined) {
      if (
        typeof options !== 'string' ||
        ![...options].every((flag) => QUERY_LIMITS.regexOptions.includes(flag))
      ) {
        return this.fail(
          pointer.replace(/\$regex$/, '$options'),
          `operator $options accepts only the flags "${QUERY_LIMITS.regexOptions}"`,
        );
      }
    }
    // The embedded store and every `$pull` run regexes on a linear-time engine: a pattern it
    // cannot run is refused here, by construct, so both stores accept the same patterns.
    // It must also be JavaScript syntax (mingo builds, but never runs, a `RegExp` of it).
    try {
      new RegExp(pattern, typeof options === 'string' ? options : '');
      compileLinearRegex(pattern, typeof options === 'string' ? options : '');
    } catch (error) {
      if (error instanceof UnsupportedRegexError)
        return this.fail(pointer, `operator $regex ${error.message}`);
      return this.fail(pointer, 'operator $regex is not a valid regular expression');
    }
  }

  /** A value compared as is: JSON without operator-like keys at any depth. */
  literal(value: unknown, pointer: string): void {
    const stack: Array<[unknown, string]> = [[value, pointer]];
    while (stack.length > 0) {
      const [current, at] = stack.pop()!;
      if (Array.isArray(current))
        current.forEach((element, index) => stack.push([element, `${at}/${index}`]));
      else if (isPlainObject(current)) {
        for (const [key, nested] of Object.entries(current)) {
          if (key.startsWith('$'))
            return this.fail(`${at}/${pointerSegment(key)}`, `operator ${key} is not allowed inside a value`);
          const prototype = prototypeSegmentProblem(key);
          if (prototype) return this.fail(`${at}/${pointerSegment(key)}`, `key "${key}" ${prototype}`);
          stack.push([nested, `${at}/${pointerSegment(key)}`]);
        }
      }
    }
  }
}

function unknownOperator(op: string): string {
  return `operator ${op} is not allowed (allowed: ${[...LOGICAL_OPERATORS, ...FIELD_OPERATORS].join(' ')})`;
}

/** Parses `sort=field,-other`: at most four keys, each a queryable path. */
export function parseSort(sort: string | undefined, checkPath: PathCheck = checkFieldPath): SortSpec {
  if (sort === undefined || sort.trim() === '') return [];
  const keys = sort.split(',').map((key) => key.trim());
  const issues: Issue[] = [];
  if (keys.length > QUERY_LIMITS.maxSortKeys) {
    issues.push(issue('/sort', `has more than ${QUERY_LIMITS.maxSortKeys} keys`));
  }
  const spec = keys.map((key): readonly [string, 1 | -1] => {
    const descending = key.startsWith('-');
    const path = descending || key.startsWith('+') ? key.slice(1) : key;
    const problem = checkPath(path);
    if (problem) issues.push(issue('/sort', `"${path}" ${problem}`));
    return [path, descending ? -1 : 1];
  });
  if (issues.length > 0) throw ValidationError.of(issues, 'Invalid sort');
  return spec;
}
