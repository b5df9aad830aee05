/**
 * Kubernetes overlays checked offline: rendered with `kubectl kustomize` (no cluster), and the
 * rendered objects plus extra files decoded strictly by test/deploy-check against the API types.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { buildGoTool } from './go-tools.js';
import { tempDir } from './temp-dirs.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are read as plain YAML. */
export type K8sObject = Record<string, any>;

export interface RenderedOverlay {
  readonly text: string;
  readonly objects: K8sObject[];
}

/** `kubectl kustomize dir`, which must print nothing on stderr. */
export function renderOverlay(dir: string): RenderedOverlay {
  const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  expect(result.stderr).to.equal('');
  expect(result.status).to.equal(0);
  return {
    text: result.stdout,
    objects: parseAllDocuments(result.stdout).map((doc) => doc.toJSON() as K8sObject),
  };
}

/** The objects of a YAML file (one per document). */
export async function readObjects(file: string): Promise<K8sObject[]> {
  return parseAllDocuments(await fs.readFile(file, 'utf8')).map((doc) => doc.toJSON() as K8sObject);
}

/** Decodes the rendered overlay and `extraFiles` strictly; returns the checker's listing. */
export async function checkStrictly(overlay: RenderedOverlay, extraFiles: string[]): Promise<string> {
  const dir = await tempDir('overlay-');
  try {
    await fs.writeFile(path.join(dir, 'rendered.yaml'), overlay.text);
    const result = spawnSync(
      buildGoTool('deploy-check'),
      ['manifests', path.join(dir, 'rendered.yaml'), ...extraFiles],
      { encoding: 'utf8' },
    );
    expect(result.stderr).to.equal('');
    expect(result.status).to.equal(0);
    return result.stdout;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
