/** Layers whose zips are recipes, made as the builder makes them: merged, written as a tar, unpacked by GNU tar. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { mergeLayers } from '../../builder/merge.js';
import { writeTar, type TarEntry } from '../../builder/tar.js';
import type { MaterialisedLayer } from '../../builder/sources.js';
import { tmpDir, type PackageSpec } from './fixtures.js';

export function layerAt(dir: string, name = 'production'): MaterialisedLayer {
  fs.mkdirSync(dir, { recursive: true });
  return { name, dir, commit: 'c'.repeat(40), repo: dir, origin: `/src/${name}`, kind: 'directory', dirty: false };
}

/** Writes `entries` as a tar and unpacks it below `into` with GNU tar (as an engine would, hard links and all). */
export async function unpackEntries(entries: TarEntry[], into: string): Promise<void> {
  const file = path.join(tmpDir('zr-tar-'), 'layer.tar');
  const fd = fs.openSync(file, 'w');
  try {
    await writeTar(entries, async (chunk) => { fs.writeSync(fd, chunk); });
  } finally {
    fs.closeSync(fd);
  }
  fs.mkdirSync(into, { recursive: true });
  const r = spawnSync('tar', ['-xf', file, '-C', into], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -x: ${r.stderr}`);
}

/** The layer folder `plain` as the image holds it (zips as recipes, the baked index): `<out>/packages/<name>`. */
export async function builtLayer(plain: string, name = 'production'): Promise<{ dir: string; entries: TarEntry[] }> {
  const m = await mergeLayers('test', [layerAt(plain, name)]);
  const entries = m.contributions[0].entries;
  const out = tmpDir('zr-image-');
  await unpackEntries(entries, out);
  return { dir: path.join(out, 'packages', name), entries };
}

/** Bytes that do not repeat inside themselves (a screenshot, say), the same for the same seed. */
export function noise(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, block = 0; i < size; i += 32, block++) crypto.createHash('sha256').update(`${seed}${block}`).digest().copy(out, i);
  return out;
}

/** Versions of a package that keep most files of the one before (images, licence, a dashboard) and change their manifest, readme and a fields file. */
export function zipVersions(name: string, versions: string[]): PackageSpec[] {
  return versions.map((version, i) => ({
    name, version, readme: `# ${name} ${version}\n\nChanged: ${i}\n`,
    dataStreams: { access: { title: `${name} access`, type: 'logs' } },
    files: {
      'img/logo.svg': `<svg xmlns="http://www.w3.org/2000/svg">${name}</svg>\n`,
      'img/overview.png': noise(`${name}-overview`, 60_000),
      'img/screenshot.png': noise(`${name}-screenshot-${Math.floor(i / 2)}`, 30_000),
      'LICENSE.txt': `Elastic License 2.0 (${name})\n`.repeat(200),
      'kibana/dashboard/overview.json': JSON.stringify({ title: name, panels: noise(name, 3000).toString('base64') }),
      'data_stream/access/fields/fields.yml': `- name: ${name}.f${i}\n  type: keyword\n`,
    },
  }));
}

export const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
