/**
 * Preact with htm's tagged templates: components are written as `html\`<div>...</div>\`` in plain
 * JavaScript, so the browser runs these files as they are (no JSX, no bundler). Both libraries
 * come from their npm packages, served by the catalog under ../vendor/.
 */
import { Component, createRef, h, render } from '../vendor/preact.mjs';
import htm from '../vendor/htm.mjs';

export const html = htm.bind(h);
export { Component, createRef, render };
