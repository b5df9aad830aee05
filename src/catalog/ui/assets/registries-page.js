/**
 * The registries table: server-side paging, sort and search (`POST /container_registries` with
 * a filter in the query language, `limit`/`skip`/`sort` and `health=`), then each row's health
 * (`GET /container_registry/<id>/health?limit=`). Only the visible page is ever fetched, so ten
 * thousand registries cost what 25 do.
 */
import { api, literalRegex } from './api.js';
import { html } from './html.js';
import { LivePage } from './live-page.js';
import { ErrorNote, formatLatency, HealthBadge, Sparkline, STATUSES, TimeAgo } from './widgets.js';

const PAGE_SIZES = [10, 25, 50, 100];
// A dozen checks show a trend; each report is ~400 bytes of JSON, so 25 rows of 20 would cost 200 kB.
const SPARK_POINTS = 12;
const SORTABLE = {
  name: 'container_registry_name',
  url: 'container_registry_public_url',
};

/** The table's state in the URL (`#/?q=&tag=&health=&sort=&page=&size=`): links and reloads keep it. */
export function tableParams(params) {
  const size = Number(params.get('size'));
  const page = Number(params.get('page'));
  const sort = params.get('sort') ?? 'name';
  return {
    q: (params.get('q') ?? '').trim(),
    tag: (params.get('tag') ?? '').trim(),
    health: STATUSES.includes(params.get('health')) ? params.get('health') : '',
    sort: /^-?(name|url)$/.test(sort) ? sort : 'name',
    page: Number.isInteger(page) && page > 0 ? page : 1,
    size: PAGE_SIZES.includes(size) ? size : 25,
  };
}

function filterOf({ q, tag }) {
  const all = [];
  if (q) all.push({ container_registry_name: { $regex: literalRegex(q), $options: 'i' } });
  if (tag) all.push({ container_registry_tags: { $in: [tag] } });
  return all.length === 0 ? {} : all.length === 1 ? all[0] : { $and: all };
}

export class RegistriesPage extends LivePage {
  constructor(props) {
    super(props);
    this.state = { rows: undefined, total: undefined, health: {}, error: '', loading: true, draft: {} };
    this.generation = 0;
    this.typing = undefined;
    /** Search text typed and not yet in the URL. */
    this.pending = {};
  }

  routeChanged() {
    this.setState({ draft: {} });
  }

  componentWillUnmount() {
    super.componentWillUnmount();
    this.generation += 1;
    clearTimeout(this.typing);
  }

  /** Reloads the visible page (live updates call this too); a newer load wins over an older one. */
  async load() {
    const generation = ++this.generation;
    const p = tableParams(new URLSearchParams(this.props.query));
    const sort = (p.sort.startsWith('-') ? '-' : '') + SORTABLE[p.sort.replace('-', '')];
    const query = new URLSearchParams({ limit: String(p.size), skip: String((p.page - 1) * p.size), sort });
    if (p.health) query.set('health', p.health);
    try {
      const { data, total } = await api(`container_registries?${query}`, {
        method: 'POST',
        body: filterOf(p),
      });
      if (generation !== this.generation) return;
      this.setState({ rows: data, total, shown: p, error: '', loading: false });
      const health = await Promise.all(data.map((row) => this.healthOf(row.container_registry_id)));
      if (generation !== this.generation) return;
      this.setState({ health: Object.fromEntries(health) });
    } catch (error) {
      if (generation !== this.generation || error.status === 401) return;
      this.setState({ error: error.message, loading: false });
    }
  }

  async healthOf(id) {
    try {
      const { data } = await api(`container_registry/${encodeURIComponent(id)}/health?limit=${SPARK_POINTS}`);
      return [id, data];
    } catch (error) {
      // 404: never checked yet; anything else shows as unknown for this row only.
      return [id, error.status === 404 ? null : { error: error.message }];
    }
  }

  /** Changes the URL; the router re-renders this page with the new query. */
  go(changes) {
    // Text typed but not yet applied goes along (a select changed right after typing).
    clearTimeout(this.typing);
    const typed = this.pending;
    this.pending = {};
    const p = { ...tableParams(new URLSearchParams(this.props.query)), ...typed, ...changes };
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(p)) {
      if (value === '' || (key === 'page' && value === 1) || (key === 'size' && value === 25)) continue;
      if (key === 'sort' && value === 'name') continue;
      query.set(key, String(value));
    }
    const text = query.toString();
    window.location.hash = `#/${text ? `?${text}` : ''}`;
  }

  /** Search as one types, a moment after the last key. */
  type(changes) {
    // What is typed shows at once (a live reload must not put back the old text).
    this.setState({ draft: { ...this.state.draft, ...changes } });
    this.pending = { ...this.pending, ...changes, page: 1 };
    clearTimeout(this.typing);
    this.typing = setTimeout(() => this.go({}), 300);
  }

  sortButton(key, label, p) {
    const active = p.sort.replace('-', '') === key;
    const descending = p.sort.startsWith('-');
    const next = active && !descending ? `-${key}` : key;
    return html`<th scope="col" aria-sort=${active ? (descending ? 'descending' : 'ascending') : 'none'}>
      <button type="button" class="sort" onClick=${() => this.go({ sort: next, page: 1 })}>
        ${label}<span aria-hidden="true">${active ? (descending ? ' ▼' : ' ▲') : ''}</span>
      </button>
    </th>`;
  }

  render() {
    const p = tableParams(new URLSearchParams(this.props.query));
    const { rows, total, health, error, loading } = this.state;
    // The range counted is that of the rows on screen, until the next page has arrived.
    const shown = this.state.shown ?? p;
    const pages = total === undefined ? 1 : Math.max(1, Math.ceil(total / shown.size));
    const first = total === 0 ? 0 : (shown.page - 1) * shown.size + 1;
    const last = Math.min(total ?? 0, shown.page * shown.size);
    return html`<section aria-labelledby="registries-title">
      <h1 id="registries-title">Registries</h1>
      <form
        class="filters"
        role="search"
        aria-label="Filter registries"
        onSubmit=${(e) => e.preventDefault()}
      >
        <label>
          Name
          <input
            type="search"
            name="q"
            value=${this.state.draft.q ?? p.q}
            placeholder="part of a name"
            onInput=${(e) => this.type({ q: e.currentTarget.value })}
          />
        </label>
        <label>
          Tag
          <input
            type="search"
            name="tag"
            value=${this.state.draft.tag ?? p.tag}
            placeholder="exact tag"
            onInput=${(e) => this.type({ tag: e.currentTarget.value })}
          />
        </label>
        <label>
          Health
          <select
            name="health"
            value=${p.health}
            onChange=${(e) => this.go({ health: e.currentTarget.value, page: 1 })}
          >
            <option value="">any</option>
            ${STATUSES.map((status) => html`<option value=${status}>${status}</option>`)}
          </select>
        </label>
        <label>
          Rows per page
          <select
            name="size"
            value=${String(p.size)}
            onChange=${(e) => this.go({ size: Number(e.currentTarget.value), page: 1 })}
          >
            ${PAGE_SIZES.map((size) => html`<option value=${String(size)}>${size}</option>`)}
          </select>
        </label>
      </form>
      <${ErrorNote} error=${error} />
      <p class="summary" role="status" aria-live="polite" data-total=${total ?? ''}>
        ${loading ? 'Loading…' : total === undefined ? '' : `Registries ${first.toLocaleString('en')}–${last.toLocaleString('en')} of ${total.toLocaleString('en')}`}
      </p>
      <div class="table-wrap">
        <table class="registries" aria-labelledby="registries-title" aria-busy=${loading ? 'true' : 'false'}>
          <thead>
            <tr>
              ${this.sortButton('name', 'Name', p)} ${this.sortButton('url', 'URL', p)}
              <th scope="col">Tags</th>
              <th scope="col">Health</th>
              <th scope="col">Latency</th>
              <th scope="col">Last check</th>
              <th scope="col">History</th>
            </tr>
          </thead>
          <tbody>
            ${(rows ?? []).map((row) => this.row(row, health[row.container_registry_id]))}
          </tbody>
        </table>
      </div>
      ${rows && rows.length === 0 && html`<p class="muted">No registry matches.</p>`}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled=${p.page <= 1} onClick=${() => this.go({ page: 1 })}>First</button>
        <button type="button" disabled=${p.page <= 1} onClick=${() => this.go({ page: p.page - 1 })}>
          Previous
        </button>
        <span>Page ${shown.page} of ${pages.toLocaleString('en')}</span>
        <button type="button" disabled=${p.page >= pages} onClick=${() => this.go({ page: p.page + 1 })}>
          Next
        </button>
        <button type="button" disabled=${p.page >= pages} onClick=${() => this.go({ page: pages })}>
          Last
        </button>
      </nav>
    </section>`;
  }

  row(row, record) {
    const id = row.container_registry_id;
    const last = record?.last;
    return html`<tr data-id=${id} key=${id}>
      <th scope="row">
        <a href=${`#/registry/${encodeURIComponent(id)}`}>${row.container_registry_name}</a>
      </th>
      <td class="url">${row.container_registry_public_url}</td>
      <td>${(row.container_registry_tags ?? []).map((tag) => html`<span class="tag">${tag}</span> `)}</td>
      <td class="health">
        ${
          record === undefined
            ? html`<span class="muted">…</span>`
            : record?.error
              ? html`<span class="muted" title=${record.error}>unknown</span>`
              : html`<${HealthBadge} status=${last?.status} />`
        }
      </td>
      <td class="num">${formatLatency(last?.latency_ms)}</td>
      <td><${TimeAgo} iso=${last?.checked_at} /></td>
      <td>${record && !record.error ? html`<${Sparkline} history=${record.history} />` : ''}</td>
    </tr>`;
  }
}
