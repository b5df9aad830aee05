/**
 * One registry: its entry (credentials masked), its health history and the images the crawler
 * found there (`GET /container_registry/<id>`, `.../health`, `.../images`).
 */
import { api } from './api.js';
import { html } from './html.js';
import { LivePage } from './live-page.js';
import {
  CopyCommand,
  ErrorNote,
  formatBytes,
  formatLatency,
  HealthBadge,
  Sparkline,
  Table,
  TimeAgo,
} from './widgets.js';

const IMAGES_PAGE = 25;
const SECRET = /pass|secret|token|credential|key/i;

/**
 * The entry's objects with anything secret-looking shown as `*****`. The API already masks
 * `container_registry_config.credentials`; this also covers secrets someone put elsewhere.
 */
export function masked(value, key = '') {
  if (SECRET.test(key) && value !== null && value !== '' && typeof value !== 'boolean') return '*****';
  if (Array.isArray(value)) return value.map((item) => masked(item));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, masked(v, k)]));
  return value;
}

export class RegistryPage extends LivePage {
  constructor(props) {
    super(props);
    this.state = {
      entry: undefined,
      record: undefined,
      images: undefined,
      total: 0,
      skip: 0,
      error: '',
      note: '',
    };
  }

  async load() {
    const id = encodeURIComponent(this.props.id);
    try {
      const { data } = await api(`container_registry/${id}`);
      this.setState({ entry: data, error: '' });
    } catch (error) {
      if (error.status !== 401) this.setState({ error: error.message });
      return;
    }
    await Promise.all([this.loadHealth(), this.loadImages(this.state.skip)]);
  }

  async loadHealth() {
    try {
      const { data } = await api(`container_registry/${encodeURIComponent(this.props.id)}/health`);
      this.setState({ record: data });
    } catch (error) {
      this.setState({ record: error.status === 404 ? null : { error: error.message } });
    }
  }

  async loadImages(skip) {
    const query = new URLSearchParams({ limit: String(IMAGES_PAGE), skip: String(skip), sort: 'repository' });
    try {
      const { data, total } = await api(
        `container_registry/${encodeURIComponent(this.props.id)}/images?${query}`,
      );
      this.setState({ images: data, total: total ?? data.length, skip });
    } catch (error) {
      this.setState({ images: error.status === 404 ? [] : undefined, imagesError: error.message });
    }
  }

  async checkNow() {
    this.setState({ note: 'Checking…' });
    try {
      const { data } = await api(`check_container_health/${encodeURIComponent(this.props.id)}`);
      this.setState({ note: `Checked: ${data.status}` });
      await this.loadHealth();
    } catch (error) {
      this.setState({ note: error.message });
    }
  }

  render() {
    const { entry, record, error } = this.state;
    if (error)
      return html`<section>
        <h1>Registry</h1>
        <${ErrorNote} error=${error} />
        <p><a href="#/">Back to the registries</a></p>
      </section>`;
    if (!entry)
      return html`<section>
        <h1>Registry</h1>
        <p role="status">Loading…</p>
      </section>`;
    return html`<section aria-labelledby="registry-title">
      <p><a href="#/">← Registries</a></p>
      <h1 id="registry-title">${entry.container_registry_name}</h1>
      <h2>Entry</h2>
      <dl class="entry">
        <dt>Id</dt>
        <dd><code>${entry.container_registry_id}</code></dd>
        <dt>Public URL</dt>
        <dd><code>${entry.container_registry_public_url}</code></dd>
        <dt>Image prefix</dt>
        <dd><code>${entry.container_registry_image_prefix || '–'}</code></dd>
        <dt>Tags</dt>
        <dd>${(entry.container_registry_tags ?? []).map((tag) => html`<span class="tag">${tag}</span> `)}</dd>
      </dl>
      ${['container_registry_config', 'container_registry_metadata', 'container_registry_storage_info'].map(
        (field) =>
          html`<details open=${field === 'container_registry_config'}>
            <summary>${field.replace('container_registry_', '').replace('_', ' ')}</summary>
            <pre class="json" data-field=${field}>${JSON.stringify(masked(entry[field] ?? {}), null, 2)}</pre>
          </details>`,
      )}
      <h2>Health</h2>
      ${this.health(record)}
      <h2>Images</h2>
      ${this.images()}
    </section>`;
  }

  health(record) {
    const button = html`<button type="button" onClick=${() => this.checkNow()}>Check now</button>
      <span role="status">${this.state.note}</span>`;
    if (record === undefined) return html`<p role="status">Loading…</p>`;
    if (record === null)
      return html`<p class="muted">Not checked yet.</p>
        ${button}`;
    if (record.error) return html`<${ErrorNote} error=${record.error} />`;
    const { last, history } = record;
    return html`<div class="health-now">
        <${HealthBadge} status=${last.status} />
        <span>${last.detail}</span>
        <span>${formatLatency(last.latency_ms)}</span>
        <${TimeAgo} iso=${last.checked_at} />
        ${button}
      </div>
      <${Sparkline} history=${history} width=${480} height=${48} />
      <${Table}
        caption=${`Last ${history.length} checks, newest first`}
        columns=${['Checked', 'Status', 'HTTP', 'Latency', 'Detail']}
      >
        ${history.map(
          (report) =>
            html`<tr>
              <td><${TimeAgo} iso=${report.checked_at} /></td>
              <td><${HealthBadge} status=${report.status} /></td>
              <td class="num">${report.status_code ?? '–'}</td>
              <td class="num">${formatLatency(report.latency_ms)}</td>
              <td>${report.detail}</td>
            </tr>`,
        )}
      <//>`;
  }

  images() {
    const { images, total, skip, imagesError } = this.state;
    if (images === undefined)
      return imagesError ? html`<${ErrorNote} error=${imagesError} />` : html`<p role="status">Loading…</p>`;
    if (images.length === 0)
      return html`<p class="muted">No image found here yet (the crawler lists what it finds).</p>`;
    return html`<${Table}
        class="images"
        caption=${`Images ${skip + 1}–${skip + images.length} of ${total}`}
        columns=${['Repository', 'Tag', 'Platforms', 'Size', 'Signatures', 'Pull']}
      >
        ${images.map(
          (image) =>
            html`<tr>
              <td>${image.repository}</td>
              <td>${image.tag ?? html`<span class="muted">untagged</span>`}</td>
              <td>
                ${image.platforms.map((p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`).join(', ')}
              </td>
              <td class="num">${formatBytes(image.size)}</td>
              <td class="num">${image.referrers?.signatures ?? 0}</td>
              <td>
                <${CopyCommand}
                  command=${`docker pull ${image.pull_reference}`}
                  label=${image.pull_reference}
                />
              </td>
            </tr>`,
        )}
      <//>
      <nav class="pager" aria-label="Image pages">
        <button
          type="button"
          disabled=${skip === 0}
          onClick=${() => this.loadImages(Math.max(0, skip - IMAGES_PAGE))}
        >
          Previous
        </button>
        <button
          type="button"
          disabled=${skip + images.length >= total}
          onClick=${() => this.loadImages(skip + IMAGES_PAGE)}
        >
          Next
        </button>
      </nav>`;
  }
}
