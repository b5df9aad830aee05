/** Small pieces shared by the pages: health badge, sparkline, times, sizes, copy button, table. */
import { Component, createRef, html } from './html.js';

export const STATUSES = ['healthy', 'unhealthy', 'unreachable', 'refused'];

/** A status as text and colour (never colour alone). `status` undefined: not checked yet. */
export function HealthBadge({ status }) {
  const known = STATUSES.includes(status) ? status : 'unknown';
  return html`<span class="badge badge-${known}" data-status=${known}>${status ?? 'not checked'}</span>`;
}

export function formatLatency(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** "12 s ago", with the exact time in the element's title. */
export function TimeAgo({ iso }) {
  if (!iso) return html`<span>–</span>`;
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  const text =
    seconds < 60
      ? `${seconds} s ago`
      : seconds < 3600
        ? `${Math.round(seconds / 60)} min ago`
        : seconds < 86_400
          ? `${Math.round(seconds / 3600)} h ago`
          : `${Math.round(seconds / 86_400)} d ago`;
  return html`<time datetime=${iso} title=${new Date(iso).toLocaleString()}>${text}</time>`;
}

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/**
 * The health history as bars, oldest on the left: height is latency (log scale), colour is the
 * status; the label says the same in words for screen readers.
 */
export function Sparkline({ history, width = 120, height = 24 }) {
  if (!history || history.length === 0) return html`<span class="muted">no history</span>`;
  const reports = [...history].reverse();
  const counts = {};
  for (const report of reports) counts[report.status] = (counts[report.status] ?? 0) + 1;
  const summary = Object.entries(counts)
    .map(([status, count]) => `${count} ${status}`)
    .join(', ');
  const bar = width / Math.max(reports.length, 12);
  const logs = reports.map((report) => Math.log10(1 + Math.max(0, report.latency_ms ?? 0)));
  const top = Math.max(1, ...logs);
  return html`<svg
    class="sparkline"
    width=${width}
    height=${height}
    viewBox="0 0 ${width} ${height}"
    role="img"
    aria-label=${`Last ${reports.length === 1 ? 'check' : `${reports.length} checks`}: ${summary}`}
  >
    ${reports.map((report, i) => {
      const healthy = report.status === 'healthy';
      const h = healthy ? Math.max(3, (logs[i] / top) * (height - 2)) : height - 2;
      return html`<rect
        class="spark-${STATUSES.includes(report.status) ? report.status : 'unknown'}"
        x=${(i * bar + 0.5).toFixed(1)}
        y=${(height - h).toFixed(1)}
        width=${Math.max(1, bar - 1).toFixed(1)}
        height=${h.toFixed(1)}
        ><title>${`${report.status}, ${formatLatency(report.latency_ms)}, ${report.checked_at}`}</title></rect
      >`;
    })}
  </svg>`;
}

/** A pull command with a button that copies it. */
export class CopyCommand extends Component {
  constructor(props) {
    super(props);
    this.state = { copied: '' };
    this.code = createRef();
  }

  async copy() {
    try {
      await navigator.clipboard.writeText(this.props.command);
      this.setState({ copied: 'Copied' });
    } catch {
      // No clipboard permission (an insecure origin, a policy): select the text instead.
      const selection = window.getSelection();
      if (this.code.current) selection?.selectAllChildren(this.code.current);
      this.setState({ copied: 'Selected: press Ctrl+C' });
    }
  }

  render({ command, label }) {
    return html`<span class="copy">
      <code ref=${this.code}>${command}</code>
      <button
        type="button"
        class="small"
        aria-label=${`Copy ${label ?? command}`}
        onClick=${() => this.copy()}
      >
        Copy
      </button>
      <span class="copied" role="status">${this.state.copied}</span>
    </span>`;
  }
}

/** An error sentence from the API, announced to screen readers. */
export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error}</p>`;
}

/** A captioned table in its scrolling wrapper: `columns` name the header cells, the children are the rows. */
export function Table({ caption, columns, class: className, children }) {
  return html`<div class="table-wrap">
    <table class=${className}>
      <caption>
        ${caption}
      </caption>
      <thead>
        <tr>
          ${columns.map((name) => html`<th scope="col">${name}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${children}
      </tbody>
    </table>
  </div>`;
}
