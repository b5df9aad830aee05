import { once } from 'node:events';

/**
 * Writing the answers: human tables and key/value lists by default, JSON for scripts. Text from
 * the catalog (names, URLs, messages) is shown without control characters, so an entry named
 * with terminal escape sequences cannot rewrite the user's screen.
 */

/** A stream written with backpressure: a 10,000-row listing waits for a slow pipe instead of piling up in memory. */
export class Output {
  constructor(private readonly stream: NodeJS.WritableStream) {}

  async write(text: string): Promise<void> {
    if (!this.stream.write(text)) await once(this.stream, 'drain');
  }
}

/** One column of a table: its header, how a row shows in it, and the widest it may grow. */
export interface Column<T> {
  readonly header: string;
  readonly value: (row: T) => unknown;
  readonly max?: number;
}

const DEFAULT_MAX_WIDTH = 48;

/**
 * A table written in batches (pages). Widths come from the header and the first batch, so the
 * first page is out before the next is fetched; a longer cell later is cut with "…".
 */
export class TableWriter<T> {
  private widths: number[] | undefined;

  constructor(private readonly columns: readonly Column<T>[]) {}

  /** The lines of `rows` (with the header before the first batch that has rows). */
  render(rows: readonly T[]): string {
    if (rows.length === 0) return '';
    const cells = rows.map((row) => this.columns.map((column) => cell(column.value(row))));
    let text = '';
    if (this.widths === undefined) {
      this.widths = this.columns.map((column, i) =>
        Math.min(
          column.max ?? DEFAULT_MAX_WIDTH,
          Math.max(column.header.length, ...cells.map((line) => line[i]!.length)),
        ),
      );
      text += this.line(this.columns.map((column) => column.header));
    }
    for (const line of cells) text += this.line(line);
    return text;
  }

  private line(values: string[]): string {
    const widths = this.widths!;
    const last = values.length - 1;
    return `${values.map((value, i) => fit(value, widths[i]!, i === last)).join('  ')}\n`;
  }
}

/** `key: value` lines, one per field; objects and arrays shown as compact JSON. */
export function renderFields(record: Readonly<Record<string, unknown>>): string {
  const entries = Object.entries(record);
  const width = Math.max(0, ...entries.map(([key]) => key.length));
  return entries.map(([key, value]) => `${`${key}:`.padEnd(width + 1)} ${cell(value)}\n`).join('');
}

/** JSON for scripts: an object pretty-printed, ending with a newline. */
export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * A JSON array written in batches: `[`, one compact item per line, `]`, so `--all --json` over
 * 10,000 entries is valid JSON without holding them all.
 */
export class JsonArrayWriter {
  private started = false;

  render(items: readonly unknown[]): string {
    let text = '';
    for (const item of items) {
      text += `${this.started ? ',\n' : '[\n'}${JSON.stringify(item)}`;
      this.started = true;
    }
    return text;
  }

  end(): string {
    return this.started ? '\n]\n' : '[]\n';
  }
}

/** A value as table text: strings as they are (without control characters), the rest as compact JSON. */
export function cell(value: unknown): string {
  const text =
    value === undefined || value === null ? '-' : typeof value === 'string' ? value : JSON.stringify(value);
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}

function fit(value: string, width: number, last: boolean): string {
  const cut = value.length > width ? `${value.slice(0, width - 1)}…` : value;
  return last ? cut : cut.padEnd(width);
}
