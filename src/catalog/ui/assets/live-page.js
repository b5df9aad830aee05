/**
 * A page the app keeps up to date: on screen it registers itself with the app (main.js reloads
 * the registered page when live updates say the catalog changed), it loads when mounted, and
 * again when the route gives it another `id` or `query`. A page writes `load()`.
 */
import { Component } from './html.js';

export class LivePage extends Component {
  componentDidMount() {
    this.props.register?.(this);
    void this.load();
  }

  componentWillUnmount() {
    this.props.register?.(this, true);
  }

  componentDidUpdate(previous) {
    if (previous.id === this.props.id && previous.query === this.props.query) return;
    this.routeChanged();
    void this.load();
  }

  /** Before the load of another route's page: a page drops what belonged to the old one. */
  routeChanged() {}
}
