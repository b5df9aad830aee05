/**
 * A real browser for tests: Debian's Chromium driven by playwright-core. Never a browser build
 * downloaded by Playwright: the executable is the system one, and a missing one fails loudly
 * (test/setup/system-packages.sh installs it).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Headless, no sandbox (tests run as root), and no traffic of its own beyond what a page asks for. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];

/** Launches Chromium; close it with `browser.close()` in an `after` hook. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH))
    throw new Error(`${CHROMIUM_PATH} is missing: install Debian's chromium (test/setup/system-packages.sh)`);
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}

/** A page in a fresh context, with every console error and uncaught page error collected. */
export interface WatchedPage {
  readonly page: Page;
  /** Console messages of type `error` and uncaught exceptions, as text, in order. */
  readonly errors: string[];
  close(): Promise<void>;
}

export async function openWatchedPage(browser: Browser): Promise<WatchedPage> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (message: ConsoleMessage) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
  // Only loopback: a page that tries to reach anything else is an error, and the request never leaves.
  await context.route(/^(?!https?:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)[:/])/, async (route) => {
    errors.push(`blocked request to ${route.request().url()}`);
    await route.abort();
  });
  return { page, errors, close: () => context.close() };
}
