import { update as mingoUpdate } from 'mingo/updater';
import { Context } from 'mingo/core';
import * as queryOperators from 'mingo/operators/query';
import { Query } from 'mingo/query';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { linearExec } from './linear-regex.js';
import type { SortSpec } from '../model.js';
import type { Update } from './update-language.js';

/**
 * MongoDB's semantics for filters, sorting and updates, for the stores that evaluate them in
 * process (the embedded store) and for updates on every store. mingo does the evaluation; this
 * wrapper makes it agree with MongoDB where mingo alone does not:
 *  - update operators on the wrong type are errors (MongoDB rejects, mingo ignores);
 *  - `$addToSet` compares values as BSON does (key order matters in objects);
 *  - sorting follows BSON type order, sorts arrays by their smallest element ascending and by
 *    their largest descending, and puts missing and null first;
 *  - `$in`/`$nin` with an array among their values match a field equal to that array (mingo
 *    only looks inside the field's array), and `$all` matches a scalar field too (MongoDB
 *    defines it as an `$and` of equalities): both are rewritten as `$eq` clauses;
 *  - empty `$and`/`$or`/`$nor` are refused by the query language before they get here.
 */

type Doc = Record<string, unknown>;

/** An update MongoDB would refuse (e.g. `$push` to a string). The message names the path. */
export class InvalidUpdateError extends Error {
  override name = 'InvalidUpdateError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * mingo's query operators with `$regex` on the linear-time engine (linear-regex.ts). mingo's own
 * `$regex` predicate does the MongoDB array traversal; only the matcher it calls is replaced.
 * Built from the base `Query` (mingo/query) so no default context can put the backtracking
 * operator back; updates (`$pull` conditions) get the same context through `queryOptions`.
 */
const LINEAR_REGEX_CONTEXT = Context.init({
  query: {
    ...queryOperators,
    $regex: (selector: string, value: unknown, options: unknown) =>
      queryOperators.$regex(selector, linearExec(value as RegExp) as unknown as RegExp, options as never),
  },
});
const QUERY_OPTIONS = { context: LINEAR_REGEX_CONTEXT };

/** Compiles a validated filter into a predicate. */
export function compileFilter(filter: Readonly<Doc>): (document: Doc) => boolean {
  if (Object.keys(filter).length === 0) return () => true;
  const query = new Query(withArrayMembership(filter) as Doc, QUERY_OPTIONS);
  return (document) => query.test(document);
}

const LOGICAL = new Set(['$and', '$or', '$nor']);

/**
 * `{f: {$in: [[1], 2]}}` becomes `{$and: [{$or: [{f: {$eq: [1]}}, {f: {$eq: 2}}]}]}`, `$nin` the
 * same under `$nor`, `$all` under `$and` (`$all: []` matches nothing): mingo's `$eq` has
 * MongoDB's array semantics, its `$in` and `$all` do not. Other filters are returned unchanged.
 */
function withArrayMembership(filter: Readonly<Doc>): Readonly<Doc> {
  const clauses: Doc[] = [];
  let changed = false;
  for (const [key, value] of Object.entries(filter)) {
    if (LOGICAL.has(key) && Array.isArray(value)) {
      const rewritten = value.map((clause) => withArrayMembership(clause as Doc));
      changed ||= rewritten.some((clause, i) => clause !== value[i]);
      clauses.push({ [key]: rewritten });
    } else if (isObject(value) && needsRewrite(value)) {
      changed = true;
      const rest: Doc = {};
      for (const [operator, operand] of Object.entries(value)) {
        const alternatives = () => (operand as unknown[]).map((member) => ({ [key]: { $eq: member } }));
        if (operator === '$in') clauses.push({ $or: alternatives() });
        else if (operator === '$nin') clauses.push({ $nor: alternatives() });
        else if (operator === '$all')
          clauses.push(
            (operand as unknown[]).length === 0 ? { [key]: { $in: [] } } : { $and: alternatives() },
          );
        else if (operator === '$not' && isObject(operand) && needsRewrite(operand))
          clauses.push({ $nor: [withArrayMembership({ [key]: operand })] });
        else rest[operator] = operand;
      }
      if (Object.keys(rest).length > 0) clauses.push({ [key]: rest });
    } else {
      clauses.push({ [key]: value });
    }
  }
  return changed ? { $and: clauses } : filter;
}

function needsRewrite(condition: Doc): boolean {
  return Object.entries(condition).some(
    ([operator, operand]) =>
      ((operator === '$in' || operator === '$nin') &&
        Array.isArray(operand) &&
        operand.some(Array.isArray)) ||
      (operator === '$all' && Array.isArray(operand)) ||
      (operator === '$not' && isObject(operand) && needsRewrite(operand)),
  );
}

function isObject(value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What a dotted path points at: its parent container (if reachable) and the current value. */
function locate(document: Doc, path: string): { blockedAt?: string; value: unknown; exists: boolean } {
  const segments = path.split('.');
  let node: unknown = document;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (node === undefined) return { value: undefined, exists: false };
    if (Array.isArray(node)) {
      if (!/^\d+$/.test(segment))
        return { blockedAt: segments.slice(0, i).join('.'), value: undefined, exists: false };
      node = node[Number(segment)];
    } else if (isObject(node)) {
      node = Object.hasOwn(node, segment) ? node[segment] : undefined;
      if (node === undefined && i < segments.length - 1) return { value: undefined, exists: false };
    } else {
      return { blockedAt: segments.slice(0, i).join('.'), value: undefined, exists: false };
    }
  }
  return { value: node, exists: node !== undefined };
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value === 'number' ? 'number' : typeof value;
}

/** Equality as BSON compares: same types, same values, same key order. */
export function bsonEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Applies a validated update to a copy of `document` and returns the copy. Throws
 * `InvalidUpdateError` where MongoDB would refuse the update.
 */
export function applyUpdate(document: Readonly<Doc>, update: Update): Doc {
  const steps = updateSteps(document, update);
  for (let step = steps.next(); ; step = steps.next()) if (step.done) return step.value;
}

/** How much work an update may take on the event loop (see `applyUpdateSliced`). */
export interface UpdateBudget {
  /** Longest run of work between two yields to the event loop. */
  readonly sliceMs: number;
  /** Most work in all; more is `UpdateBudgetError`. */
  readonly maxMs: number;
}

export const DEFAULT_UPDATE_BUDGET: UpdateBudget = { sliceMs: 10, maxMs: 2_000 };

/** An update that needs more work than its budget (a `$pull` with a costly condition over a long array). */
export class UpdateBudgetError extends Error {
  override name = 'UpdateBudgetError';
  constructor(readonly maxMs: number) {
    super(`the update needs more than ${maxMs} ms of work`);
  }
}

/**
 * `applyUpdate` in slices of at most `budget.sliceMs` of work with a yield to the event loop in
 * between, so one update over a large array (up to a 1 MB document) never holds the server's
 * other requests for long (issue 10); past `budget.maxMs` of work it stops with
 * `UpdateBudgetError` and nothing is changed.
 */
export async function applyUpdateSliced(
  document: Readonly<Doc>,
  update: Update,
  budget: UpdateBudget = DEFAULT_UPDATE_BUDGET,
): Promise<Doc> {
  const steps = updateSteps(document, update);
  let worked = 0;
  let sliceStart = performance.now();
  for (let step = steps.next(); ; step = steps.next()) {
    if (step.done) return step.value;
    const now = performance.now();
    if (now - sliceStart < budget.sliceMs) continue;
    worked += now - sliceStart;
    if (worked >= budget.maxMs) throw new UpdateBudgetError(budget.maxMs);
    await yieldToEventLoop();
    sliceStart = performance.now();
  }
}

/** Elements of an array visited between two checkpoints of an update's work. */
const ELEMENTS_PER_STEP = 32;

/** The update's work as a generator: it yields at checkpoints where the caller may pause. */
function* updateSteps(document: Readonly<Doc>, update: Update): Generator<void, Doc> {
  const next = structuredClone(document) as Doc;
  for (const [operator, paths] of Object.entries(update)) {
    for (const [path, operand] of Object.entries(paths ?? {})) {
      yield;
      const target = locate(next, path);
      if (target.blockedAt !== undefined && operator !== '$unset' && operator !== '$pull') {
        throw new InvalidUpdateError(
          path,
          `Cannot ${operator} "${path}": "${target.blockedAt}" is not an object`,
        );
      }
      if (
        (operator === '$push' || operator === '$addToSet' || operator === '$pull') &&
        target.exists &&
        !Array.isArray(target.value)
      ) {
        throw new InvalidUpdateError(
          path,
          `Cannot ${operator} "${path}": it must be an array but is of type ${typeName(target.value)}`,
        );
      }
      if (operator === '$addToSet') {
        yield* addToSet(next, path, target.value as unknown[] | undefined, operand);
      } else if (operator === '$pull') {
        yield* pull(next, path, target.value, operand);
      } else {
        mingoUpdate(next, { [operator]: { [path]: operand } }, undefined, undefined, {
          cloneMode: 'deep',
          queryOptions: QUERY_OPTIONS,
        });
      }
    }
  }
  return next;
}

/**
 * `$pull` as mingo's (the same predicate: a condition with operators, or a literal, applies to
 * each element as a value; a plain object is a query on object elements), one element at a time
 * so the work can be sliced.
 */
function* pull(document: Doc, path: string, current: unknown, condition: unknown): Generator<void> {
  if (!Array.isArray(current) || current.length === 0) return;
  const wrap = !isObject(condition) || Object.keys(condition).some((key) => key.startsWith('$'));
  const query = new Query((wrap ? { k: condition } : condition) as Doc, QUERY_OPTIONS);
  const kept: unknown[] = [];
  for (let i = 0; i < current.length; i++) {
    if (i % ELEMENTS_PER_STEP === ELEMENTS_PER_STEP - 1) yield;
    const element: unknown = current[i];
    if (!query.test((wrap ? { k: element } : element) as Doc)) kept.push(element);
  }
  if (kept.length === current.length) return;
  // The elements are the copy's own already: set without cloning them again.
  mingoUpdate(document, { $set: { [path]: kept } }, undefined, undefined, { cloneMode: 'none' });
}

/**
 * `$addToSet` with BSON equality (mingo ignores key order, MongoDB does not). Each element's
 * serialisation is computed once, so adding m values to n elements is O(n + m), not O(n * m).
 */
function* addToSet(
  document: Doc,
  path: string,
  current: unknown[] | undefined,
  operand: unknown,
): Generator<void> {
  const values = isObject(operand) && Array.isArray(operand.$each) ? operand.$each : [operand];
  const array = current ? [...current] : [];
  const present = new Set<string>();
  for (let i = 0; i < array.length; i++) {
    if (i % ELEMENTS_PER_STEP === ELEMENTS_PER_STEP - 1) yield;
    present.add(JSON.stringify(array[i]));
  }
  for (let i = 0; i < values.length; i++) {
    if (i % ELEMENTS_PER_STEP === ELEMENTS_PER_STEP - 1) yield;
    const key = JSON.stringify(values[i]);
    if (present.has(key)) continue;
    present.add(key);
    array.push(structuredClone(values[i]));
  }
  mingoUpdate(document, { $set: { [path]: array } }, undefined, undefined, { cloneMode: 'none' });
}

/** BSON's order of types, for the JSON values our documents hold. */
function typeRank(value: unknown): number {
  if (value === undefined || value === null) return 1;
  if (typeof value === 'number') return 2;
  if (typeof value === 'string') return 3;
  if (isObject(value)) return 4;
  if (Array.isArray(value)) return 5;
  if (typeof value === 'boolean') return 8;
  return 10;
}

/** Compares two values as MongoDB orders them (no collation: strings by code point). */
export function compareValues(a: unknown, b: unknown): number {
  const rankA = typeRank(a);
  const rankB = typeRank(b);
  if (rankA !== rankB) return rankA - rankB;
  switch (rankA) {
    case 2:
      return (a as number) - (b as number);
    case 3:
      return a === b ? 0 : (a as string) < (b as string) ? -1 : 1;
    case 4: {
      const entriesA = Object.entries(a as Doc);
      const entriesB = Object.entries(b as Doc);
      for (let i = 0; i < Math.min(entriesA.length, entriesB.length); i++) {
        const [keyA, valueA] = entriesA[i]!;
        const [keyB, valueB] = entriesB[i]!;
        const byType = typeRank(valueA) - typeRank(valueB);
        if (byType !== 0) return byType;
        if (keyA !== keyB) return keyA < keyB ? -1 : 1;
        const byValue = compareValues(valueA, valueB);
        if (byValue !== 0) return byValue;
      }
      return entriesA.length - entriesB.length;
    }
    case 5: {
      const arrayA = a as unknown[];
      const arrayB = b as unknown[];
      for (let i = 0; i < Math.min(arrayA.length, arrayB.length); i++) {
        const byValue = compareValues(arrayA[i], arrayB[i]);
        if (byValue !== 0) return byValue;
      }
      return arrayA.length - arrayB.length;
    }
    case 8:
      return Number(a) - Number(b);
    default:
      return 0;
  }
}

/** Every value a dotted path reaches, descending into arrays as MongoDB does. */
function valuesAt(value: unknown, segments: readonly string[]): unknown[] {
  if (segments.length === 0) return [value];
  if (Array.isArray(value)) {
    const [head, ...rest] = segments;
    const byIndex = /^\d+$/.test(head!) ? valuesAt(value[Number(head)], rest) : [];
    return [
      ...byIndex,
      ...value.flatMap((element) => (isObject(element) ? valuesAt(element, segments) : [])),
    ];
  }
  if (!isObject(value)) return [];
  const [head, ...rest] = segments;
  return Object.hasOwn(value, head!) ? valuesAt(value[head!], rest) : [];
}

/**
 * The value a document sorts by for one key: arrays contribute their smallest element when
 * ascending and their largest when descending; an empty array sorts before null and missing.
 */
function sortKey(document: Doc, path: string, direction: 1 | -1): { empty: boolean; value: unknown } {
  if (!path.includes('.')) {
    // A top-level field holding no array (the common case: ids, dates): the value itself.
    const value = Object.hasOwn(document, path) ? document[path] : null;
    if (!Array.isArray(value)) return { empty: false, value };
  }
  const reached = valuesAt(document, path.split('.'));
  const candidates = reached.flatMap((value) => (Array.isArray(value) ? value : [value]));
  const emptyArrayOnly = candidates.length === 0 && reached.some((value) => Array.isArray(value));
  if (candidates.length === 0) return { empty: emptyArrayOnly, value: null };
  let best = candidates[0];
  for (const candidate of candidates.slice(1)) {
    const order = compareValues(candidate, best);
    if ((direction === 1 && order < 0) || (direction === -1 && order > 0)) best = candidate;
  }
  return { empty: false, value: best };
}

/**
 * `documents` in place in the order of `sort`, ending with the id as tie-breaker so pages are
 * stable. Each document's keys are computed once (a comparator computing them per comparison
 * did so 2 log n times per document: a third of a resolve's in-process work).
 */
export function sortDocuments<D extends Doc>(documents: D[], sort: SortSpec, idField: string): D[] {
  const keys: SortSpec = sort.some(([path]) => path === idField) ? sort : [...sort, [idField, 1]];
  const keyed = documents.map((document) => ({
    document,
    keys: keys.map(([path, direction]) => sortKey(document, path, direction)),
  }));
  keyed.sort((a, b) => {
    for (let k = 0; k < keys.length; k++) {
      const keyA = a.keys[k]!;
      const keyB = b.keys[k]!;
      const order = keyA.empty !== keyB.empty ? (keyA.empty ? -1 : 1) : compareValues(keyA.value, keyB.value);
      if (order !== 0) return order * keys[k]![1];
    }
    return 0;
  });
  keyed.forEach((entry, i) => (documents[i] = entry.document));
  return documents;
}
