/**
 * The dashboard's shell: sign-in (an API token kept in session storage, or none where the
 * catalog allows anonymous reads), a hash router over three pages, and live updates.
 */
import { api, storedToken, storeToken, whenUnauthorized } from './api.js';
import { Component, html, render } from './html.js';
import { ImagesPage } from './images-page.js';
import { LiveUpdates, POLL_MS } from './live.js';
import { RegistriesPage } from './registries-page.js';
import { RegistryPage } from './registry-page.js';
import { ErrorNote } from './widgets.js';

/** `#/registry/<id>`, `#/images?...`, else the registries table (`#/?...`). */
function route() {
  const hash = window.location.hash.replace(/^#/, '') || '/';
  const mark = hash.indexOf('?');
  const path = mark === -1 ? hash : hash.slice(0, mark);
  const query = mark === -1 ? '' : hash.slice(mark + 1);
  const registry = /^\/registry\/([^/]+)$/.exec(path);
  if (registry) return { page: 'registry', id: decodeURIComponent(registry[1]), query };
  if (path === '/images') return { page: 'images', query };
  return { page: 'registries', query };
}

const MODES = {
  connecting: 'Connecting…',
  live: 'Live updates',
  polling: `Refreshing every ${POLL_MS / 1000} s`,
};

class App extends Component {
  constructor() {
    super();
    this.state = { auth: 'checking', error: '', route: route(), mode: 'connecting' };
    /** The page on screen (it registers itself): live updates reload it, and only it. */
    this.page = undefined;
    this.register = (page, leaving = false) => {
      if (!leaving) this.page = page;
      else if (this.page === page) this.page = undefined;
    };
    this.live = new LiveUpdates({
      refresh: () => void this.page?.load(),
      onMode: (mode) => this.setState({ mode }),
    });
  }

  componentDidMount() {
    window.addEventListener('hashchange', () => this.setState({ route: route() }));
    // A token revoked or expired while the page is open: back to the sign-in form, saying why.
    whenUnauthorized((error) => {
      if (this.state.auth !== 'checking') this.signedOut(error.message);
    });
    void this.check();
  }

  /** Asks the catalog whether the stored token (or no token) may read. */
  async check() {
    const token = storedToken();
    this.setState({ auth: 'checking' });
    try {
      await api('container_registries?limit=1', { method: 'POST', body: {} });
      this.setState({ auth: token ? 'token' : 'anonymous', error: '' });
      this.live.stop();
      this.live.start();
    } catch (error) {
      // Without a token, a refusal only means this catalog wants one: no error to show yet.
      if (error.status === 401 || error.status === 403) this.signedOut(token ? error.message : '');
      else this.setState({ auth: 'failed', error: error.message });
    }
  }

  signedOut(message) {
    this.live.stop();
    storeToken('');
    this.setState({ auth: 'signed-out', error: message ? `Sign-in failed: ${message}` : '' });
  }

  signIn(event) {
    event.preventDefault();
    const token = String(new FormData(event.currentTarget).get('token') ?? '').trim();
    if (!token) return this.setState({ error: 'Enter an API token' });
    storeToken(token);
    this.setState({ auth: 'checking', error: '' });
    void this.check();
  }

  signOut() {
    storeToken('');
    this.setState({ auth: 'checking' });
    void this.check();
  }

  header() {
    const { auth, mode, route: current } = this.state;
    const signedIn = auth === 'token' || auth === 'anonymous';
    return html`<header class="top">
      <a class="brand" href="#/">AIOS registry catalog</a>
      ${
        signedIn &&
        html`<nav aria-label="Main">
          <a href="#/" aria-current=${current.page !== 'images' ? 'page' : undefined}>Registries</a>
          <a href="#/images" aria-current=${current.page === 'images' ? 'page' : undefined}>Image search</a>
        </nav>`
      }
      <div class="session">
        ${signedIn && html`<span class="live live-${mode}" role="status" aria-live="polite">${MODES[mode]}</span>`}
        ${auth === 'token' && html`<span>Signed in with a token</span> <button type="button" class="small" onClick=${() => this.signOut()}>Sign out</button>`}
        ${auth === 'anonymous' && html`<span>Anonymous (read only)</span>`}
      </div>
    </header>`;
  }

  body() {
    const { auth, error, route: current } = this.state;
    if (auth === 'checking') return html`<p role="status">Connecting to the catalog…</p>`;
    if (auth === 'failed')
      return html`<${ErrorNote} error=${error} /><button type="button" onClick=${() => this.check()}>
          Retry
        </button>`;
    if (auth === 'signed-out')
      return html`<section class="sign-in" aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in</h1>
        <p>
          This catalog needs an API token with the <code>read</code> role (make one with
          <code>aios-registry-catalog token create</code>).
        </p>
        <${ErrorNote} error=${error} />
        <form onSubmit=${(e) => this.signIn(e)}>
          <label for="token">API token</label>
          <input id="token" name="token" type="password" autocomplete="off" required />
          <button type="submit">Sign in</button>
        </form>
        <p class="muted">The token is kept in this tab's session storage only.</p>
      </section>`;
    const ref = this.register;
    if (current.page === 'registry') return html`<${RegistryPage} register=${ref} id=${current.id} />`;
    if (current.page === 'images') return html`<${ImagesPage} register=${ref} query=${current.query} />`;
    return html`<${RegistriesPage} register=${ref} query=${current.query} />`;
  }

  render() {
    return html`${this.header()}
      <main id="main">${this.body()}</main>`;
  }
}

const root = document.getElementById('app');
root.replaceChildren(); // the "Loading…" line of index.html
render(html`<${App} />`, root);
