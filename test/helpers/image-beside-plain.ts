/**
 * An integration test's image and its reference: the distribution image built
 * by the CLI from folder layers, running, beside a registry scanning the same
 * folders, so that every answer of one can be compared with the other's.
 */
import fs from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import { expect } from 'chai';
import { ensureEngine, removeContainer, runImage, untag, waitForHttp, type RunningContainer } from '../../builder/image.js';
import { tmpDir } from './fixtures.js';
import { PROJECT_ROOT, startRegistry, type TestRegistry } from './server.js';
import { cli, sh } from './builder-cli.js';

/** A layer of the distribution: its name and the folder its packages are in. */
export interface FolderLayer { name: string; directory: string }

export interface ImageBesidePlain {
  container: RunningContainer;
  plain: TestRegistry;
  /** the CLI's --json summary */
  summary: { image: string; tags: string[] };
  /** removes the container and the image's tags, closes the plain registry */
  cleanup(): Promise<void>;
}

/** The engine ready and the base image the distribution builds on present (both once per test file). */
export async function prepareEngine(docker: Docker): Promise<void> {
  await ensureEngine(docker);
  sh('bash', [path.join(PROJECT_ROOT, '..', 'shared', 'ci', 'node-base-image.sh')]);
}

/**
 * Builds the distribution `it<name>` (in the test-only repository
 * `epr-it-<name>/distribution-<pid>`) from `layers`, lowest first, runs it
 * until /health answers, and starts a plain registry over the same folders.
 * Call prepareEngine first. What it made is removed again if any step fails.
 */
export async function imageBesidePlainRegistry(name: string, layers: FolderLayer[], docker: Docker): Promise<ImageBesidePlain> {
  const made: { tags: string[]; container?: RunningContainer; plain?: TestRegistry } = { tags: [] };
  const cleanup = async () => {
    if (made.container) await removeContainer(docker, made.container.id);
    for (const ref of made.tags) await untag(docker, ref).catch(() => undefined);
    await made.plain?.close();
  };
  try {
    const file = path.join(tmpDir(`epr-it-${name}-definition-`), `it${name}.yml`);
    fs.writeFileSync(file, [
      `name: it${name}`, 'image:', `  repository: epr-it-${name}/distribution-${process.pid}`, 'package_registry:', '  version: 1.40.1', 'layers:',
      ...layers.flatMap((l) => [`  - name: ${l.name}`, '    source:', `      directory: ${l.directory}`]),
    ].join('\n'));
    const r = await cli(['build', file, '--json', '--cache-dir', tmpDir(`epr-it-${name}-cache-`), '--no-delta']);
    expect(r.code, r.stderr).to.equal(0);
    const summary = JSON.parse(r.stdout) as { image: string; tags: string[] };
    made.tags.push(...summary.tags);
    const container = made.container = await runImage(docker, summary.image);
    await waitForHttp(`${container.url}/health`, 60_000);
    const plain = made.plain = await startRegistry(layers.map((l) => l.directory));
    expect(plain.problems).to.deep.equal([]);
    return { container, plain, summary, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
