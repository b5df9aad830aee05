/**
 * Runs the official OCI distribution-spec conformance suite (built by `buildConformanceSuite`)
 * against a registry URL and checks that every workflow passed.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { tempDir } from './temp-dirs.js';

const execFileAsync = promisify(execFile);
/** Ginkgo colours its output. */
const ANSI_COLOR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

/** Counts of the ginkgo junit report, per workflow (Pull, Push, Content Discovery, ...). */
function summarize(junit: string): Record<string, { passed: number; failed: number; skipped: number }> {
  const summary: Record<string, { passed: number; failed: number; skipped: number }> = {};
  for (const match of junit.matchAll(/<testcase name="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = match[1] ?? '';
    const body = match[3] ?? '';
    const workflow =
      /OCI Distribution Conformance Tests (Pull|Push|Content Discovery|Content Management)/.exec(name)?.[1];
    if (workflow === undefined) continue;
    const entry = (summary[workflow] ??= { passed: 0, failed: 0, skipped: 0 });
    if (/<skipped/.test(body)) entry.skipped += 1;
    else if (/<failure|<error/.test(body)) entry.failed += 1;
    else entry.passed += 1;
  }
  return summary;
}

/** Runs the suite against `url` with all four workflows; returns its output and junit summary. */
export async function runSuite(binary: string, url: string, extraEnv: Record<string, string> = {}) {
  const reportDir = await tempDir('conformance-report-');
  let output: string;
  let failed = false;
  try {
    const result = await execFileAsync(binary, [], {
      cwd: reportDir,
      env: {
        PATH: process.env.PATH ?? '',
        OCI_ROOT_URL: url,
        OCI_NAMESPACE: 'conformance/repo1',
        OCI_CROSSMOUNT_NAMESPACE: 'conformance/repo2',
        OCI_TEST_PULL: '1',
        OCI_TEST_PUSH: '1',
        OCI_TEST_CONTENT_DISCOVERY: '1',
        OCI_TEST_CONTENT_MANAGEMENT: '1',
        // We do not mount without `from` (it would expose blobs across repositories): test the 202 path.
        OCI_AUTOMATIC_CROSSMOUNT: '0',
        OCI_REPORT_DIR: reportDir,
        ...extraEnv,
      },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 180_000,
    });
    output = result.stdout;
  } catch (error) {
    failed = true;
    output = `${(error as { stdout?: string }).stdout ?? ''}\n${(error as { stderr?: string }).stderr ?? ''}`;
  }
  const clean = output.replace(ANSI_COLOR, '');
  const junit = await fs.readFile(path.join(reportDir, 'junit.xml'), 'utf8').catch(() => '');
  await fs.rm(reportDir, { recursive: true, force: true });
  return { failed, clean, summary: summarize(junit) };
}

export function expectAllPassed(result: Awaited<ReturnType<typeof runSuite>>): void {
  const failures = result.clean
    .split('\n')
    .filter((line) => /FAIL|Passed/.test(line))
    .join('\n');
  expect(result.failed, failures).to.equal(false);
  expect(result.clean).to.match(/SUCCESS! -- \d+ Passed \| 0 Failed/);
  for (const workflow of ['Pull', 'Push', 'Content Discovery', 'Content Management']) {
    expect(result.summary[workflow]?.failed, workflow).to.equal(0);
    expect(result.summary[workflow]?.passed, workflow).to.be.greaterThan(5);
  }
  expect(Object.values(result.summary).reduce((total, entry) => total + entry.passed, 0)).to.be.at.least(75);
}
