/**
 * "Where can I pull X": `GET /resolve_image` answers the registries that hold an image, healthy
 * and fast first; each candidate comes with a pull command to copy.
 */
import { api } from './api.js';
import { html } from './html.js';
import { LivePage } from './live-page.js';
import { CopyCommand, ErrorNote, formatLatency, HealthBadge, TimeAgo } from './widgets.js';

const PLATFORMS = [
  'linux/amd64',
  'linux/arm64',
  'linux/arm/v7',
  'linux/s390x',
  'linux/ppc64le',
  'windows/amd64',
];

/** The search in the URL (`#/images?reference=&platform=&signed=1`). */
function searchOf(query) {
  const params = new URLSearchParams(query);
  return {
    reference: (params.get('reference') ?? '').trim(),
    platform: (params.get('platform') ?? '').trim(),
    signed: params.get('signed') === '1',
  };
}

export class ImagesPage extends LivePage {
  constructor(props) {
    super(props);
    this.state = { result: undefined, error: '', loading: false };
    this.generation = 0;
  }

  async load() {
    const generation = ++this.generation;
    const { reference, platform, signed } = searchOf(this.props.query);
    if (!reference) return this.setState({ result: undefined, error: '', loading: false });
    const query = new URLSearchParams();
    // A bare digest finds the image under any name.
    query.set(
      /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/.test(reference) ? 'digest' : 'reference',
      reference,
    );
    if (platform) query.set('platform', platform);
    if (signed) query.set('signed', 'true');
    this.setState({ loading: true });
    try {
      const { data } = await api(`resolve_image?${query}`);
      if (generation === this.generation) this.setState({ result: data, error: '', loading: false });
    } catch (error) {
      if (generation !== this.generation || error.status === 401) return;
      this.setState({ result: undefined, error: error.message, loading: false });
    }
  }

  submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const query = new URLSearchParams();
    for (const name of ['reference', 'platform']) {
      const value = String(form.get(name) ?? '').trim();
      if (value) query.set(name, value);
    }
    if (form.get('signed')) query.set('signed', '1');
    window.location.hash = `#/images?${query}`;
  }

  render() {
    const search = searchOf(this.props.query);
    const { result, error, loading } = this.state;
    return html`<section aria-labelledby="images-title">
      <h1 id="images-title">Where can I pull an image?</h1>
      <form class="filters" role="search" aria-label="Find an image" onSubmit=${(e) => this.submit(e)}>
        <label class="wide">
          Image reference or digest
          <input
            type="search"
            name="reference"
            required
            value=${search.reference}
            placeholder="team/app:1.2"
          />
        </label>
        <label>
          Platform
          <input type="text" name="platform" list="platforms" value=${search.platform} placeholder="any" />
          <datalist id="platforms">${PLATFORMS.map((p) => html`<option value=${p}></option>`)}</datalist>
        </label>
        <label class="check"
          ><input type="checkbox" name="signed" checked=${search.signed} /> Signed only</label
        >
        <button type="submit">Find</button>
      </form>
      <${ErrorNote} error=${error} />
      <p role="status" aria-live="polite" class="summary">
        ${loading ? 'Searching…' : result ? `${result.candidates.length} registries hold ${result.reference}` : ''}
      </p>
      ${
        result &&
        html`<ol class="candidates">
          ${result.candidates.map(
            (candidate) =>
              html`<li class="candidate" data-registry=${candidate.container_registry_id}>
                <div class="candidate-head">
                  <a href=${`#/registry/${encodeURIComponent(candidate.container_registry_id)}`}
                    >${candidate.container_registry_name}</a
                  >
                  <${HealthBadge} status=${candidate.status ?? undefined} />
                  <span>${formatLatency(candidate.latency_ms)}</span>
                  <span class="muted">seen <${TimeAgo} iso=${candidate.last_seen} /></span>
                </div>
                <${CopyCommand}
                  command=${`docker pull ${candidate.pull_reference}`}
                  label=${candidate.pull_reference}
                />
                <div class="muted digest"><code>${candidate.digest}</code></div>
              </li>`,
          )}
        </ol>`
      }
    </section>`;
  }
}
