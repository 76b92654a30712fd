import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { DirectorySource, relativePath, ZipSource, type PackageFile } from './source.js';
import { Package, PackageLoadError, type LoadOptions } from './package.js';
import { scanPackagePath } from './scan.js';
import type { PackageFacts } from './manifest.js';
import type { JsonObject } from './fields.js';

/**
 * The baked index of one package path (a layer): everything /search,
 * /categories and package info need, and every package's file list, written
 * once at build time so that a server starts without walking and parsing
 * every package. It is used only while it still describes the layer: the
 * same package folders and zips, with the same manifest sizes and times.
 */
export const BAKED_INDEX_FILE = '.epr-index.json';
const FORMAT = 'epr-baked-index/1';

export interface BakedPackage {
  /** relative to the layer root, `/`-separated */
  location: string;
  kind: 'directory' | 'zip';
  /** manifest.yml (directories) or the zip itself: size and mtime, to tell a stale index */
  stamp: string;
  facts: PackageFacts;
  summary: JsonObject;
  info: JsonObject;
  files?: Array<{ path: string; size: number }>;
  signature?: boolean;
}

interface BakedIndex {
  format: string;
  packages: BakedPackage[];
}

/** `time`: the modification time the file will have where the index is read (an image layer's fixed time). */
function stampOf(file: string, time?: Date): string {
  const st = fs.statSync(file);
  return stampText(st.size, time ?? new Date(st.mtimeMs));
}

/** A stamp from a size and time: for a file the builder writes in another form (a zip kept as its recipe). */
export function stampText(size: number, time: Date): string {
  return `${size}:${Math.floor(time.getTime())}`;
}

function stampFor(root: string, location: string, kind: 'directory' | 'zip', time?: Date): string {
  const abs = path.join(root, ...location.split('/'));
  return stampOf(kind === 'zip' ? abs : path.join(abs, 'manifest.yml'), time);
}


/** One package's entry in its layer's baked index (`stampTime`: see stampOf). */
export function bakedEntry(root: string, p: Package, stampTime?: Date): BakedPackage {
  const location = relativePath(root, p.source.location);
  return {
    location,
    kind: p.kind,
    stamp: stampFor(root, location, p.kind, stampTime),
    facts: p.facts,
    summary: p.summary,
    info: p.info,
    files: p.kind === 'directory' ? p.source.files().map((f) => ({ path: f.path, size: f.size })) : undefined,
    signature: p.signatureFile !== undefined,
  };
}

/** The text of a baked index, for packages loaded (and validated) already. */
export function bakedIndexText(entries: BakedPackage[]): string {
  const baked: BakedIndex = { format: FORMAT, packages: entries };
  return `${JSON.stringify(baked)}\n`;
}

/** Writes the baked index of a layer whose packages were loaded (and validated) already. */
export function writeBakedIndex(root: string, packages: Package[]): string {
  const file = path.join(root, BAKED_INDEX_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, bakedIndexText(packages.map((p) => bakedEntry(root, p))));
  fs.renameSync(tmp, file);
  return file;
}

/** The package a baked entry describes, without reading its manifests (a zip's entry list is read). */
export async function packageFromBaked(root: string, b: BakedPackage): Promise<Package> {
  const abs = path.join(root, ...b.location.split('/'));
  const version = semver.parse(b.facts.version);
  if (!version) throw new Error(`invalid version ${b.facts.version}`);
  const source = b.kind === 'zip'
    ? await ZipSource.open(abs, root)
    : new DirectorySource(abs, (b.files ?? []).map((f): PackageFile => ({ path: f.path, size: f.size })));
  return new Package(source, b.facts, version, b.summary, b.info, b.signature ? `${abs}.sig` : undefined);
}

export type BakedResult =
  | { ok: true; packages: Package[] }
  | { ok: false; reason: string };

/** Reads a layer's baked index; says why when it is missing or no longer matches the layer. */
export async function readBakedIndex(root: string, _opts: LoadOptions): Promise<BakedResult> {
  const file = path.join(root, BAKED_INDEX_FILE);
  if (!fs.existsSync(file)) return { ok: false, reason: 'no baked index' };
  let baked: BakedIndex;
  try {
    baked = JSON.parse(fs.readFileSync(file, 'utf8')) as BakedIndex;
  } catch (err) {
    return { ok: false, reason: `unreadable baked index: ${(err as Error).message}` };
  }
  if (baked.format !== FORMAT || !Array.isArray(baked.packages)) return { ok: false, reason: `baked index format is not ${FORMAT}` };

  const found = scanPackagePath(root);
  const present = new Map<string, 'directory' | 'zip'>([
    ...found.zips.map((z) => [relativePath(root, z), 'zip'] as const),
    ...found.directories.map((d) => [relativePath(root, d), 'directory'] as const),
  ]);
  if (present.size !== baked.packages.length) return { ok: false, reason: `stale baked index: ${baked.packages.length} packages baked, ${present.size} present` };
  for (const b of baked.packages) {
    if (present.get(b.location) !== b.kind) return { ok: false, reason: `stale baked index: ${b.location} is not in the layer` };
    if (stampFor(root, b.location, b.kind) !== b.stamp) return { ok: false, reason: `stale baked index: ${b.location} changed` };
  }

  const packages: Package[] = [];
  for (const b of baked.packages) {
    try {
      packages.push(await packageFromBaked(root, b));
    } catch (err) {
      if (err instanceof PackageLoadError) throw err;
      return { ok: false, reason: `baked index: ${b.location}: ${(err as Error).message}` };
    }
  }
  return { ok: true, packages };
}
