import fs from 'node:fs';
import path from 'node:path';
import { DirectorySource, SourceError, ZipSource, type PackageSource } from './source.js';
import { loadPackage, Package, PackageLoadError, type LoadOptions } from './package.js';
import { mergeFirstWins, type Shadowed } from './precedence.js';
import { compareVersions } from './versions.js';
import { listScanFolders, scanPackagePath } from './scan.js';
import { readBakedIndex } from './baked.js';
import type { Problem } from './validate.js';
import { byteCompare } from './source.js';

/** Every package version being served, merged from the package paths. */
export class PackageIndex {
  readonly all: Package[];
  private readonly byName: Map<string, Package[]>;

  constructor(packages: Package[]) {
    this.all = [...packages].sort((a, b) => byteCompare(a.name, b.name) || compareVersions(a.semver, b.semver));
    this.byName = new Map();
    for (const p of this.all) {
      const list = this.byName.get(p.name) ?? [];
      list.push(p);
      this.byName.set(p.name, list);
    }
    applyNewestDeprecation(this.byName);
  }

  get size(): number { return this.all.length; }
  names(): string[] { return [...this.byName.keys()]; }
  /** All versions of a package, oldest first. */
  versions(name: string): Package[] { return this.byName.get(name) ?? []; }
  get(name: string, version: string): Package | undefined {
    return this.byName.get(name)?.find((p) => p.version === version);
  }
}

/** The newest version's deprecation notice is what every version of that package reports. */
function applyNewestDeprecation(byName: Map<string, Package[]>): void {
  for (const versions of byName.values()) {
    // the summary carries the same notice as the info, which a baked index leaves on disk until asked for
    const notice = versions[versions.length - 1].summary.deprecated;
    if (notice === undefined) continue;
    for (const p of versions) {
      p.summary = withKeyAfter(p.summary, 'deprecated', notice, 'categories');
      p.info = withKeyAfter(p.info, 'deprecated', notice, 'categories');
    }
  }
}

function withKeyAfter<T extends Record<string, unknown>>(o: T, key: string, value: unknown, after: string): T {
  if (key in o) return { ...o, [key]: value };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    out[k] = v;
    if (k === after) out[key] = value;
  }
  if (!(key in out)) out[key] = value;
  return out as T;
}

export interface IndexLoadResult {
  index: PackageIndex;
  /** Packages that could not be loaded, each with every problem found. */
  failures: PackageLoadError[];
  shadowed: Array<Shadowed<Package>>;
  /** how each path was read: from its baked index, or scanned (and why) */
  notes: Array<{ path: string; baked: boolean; reason?: string }>;
}

export interface IndexOptions extends LoadOptions {
  /** use a path's baked index when it matches the path (default true) */
  useBakedIndex?: boolean;
}

const LOAD_CONCURRENCY = 16;

/** Runs `fn` over `items` with at most `limit` running at once; results in input order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Loads all packages of one path (a layer), in scan order. */
export async function loadPackagePath(root: string, opts: LoadOptions): Promise<{ packages: Package[]; failures: PackageLoadError[] }> {
  const packages: Package[] = [];
  const failures: PackageLoadError[] = [];
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    failures.push(new PackageLoadError(root, [{ file: root, message: 'package path does not exist or is not a directory' }]));
    return { packages, failures };
  }
  const found = scanPackagePath(root, await listScanFolders(root));
  const opens: Array<() => Promise<PackageSource>> = [
    ...found.zips.map((z) => () => ZipSource.open(z, root)),
    ...found.directories.map((d) => () => DirectorySource.open(d)),
  ];
  const locations = [...found.zips, ...found.directories];
  // Several packages are read at once so that file I/O overlaps manifest parsing; results keep scan order.
  const results = await mapLimit(opens, LOAD_CONCURRENCY, async (open, i): Promise<Package | PackageLoadError> => {
    try {
      return await loadPackage(await open(), opts);
    } catch (err) {
      if (err instanceof PackageLoadError) return err;
      if (err instanceof SourceError) return new PackageLoadError(locations[i], [{ file: err.file ?? locations[i], message: err.message }]);
      return new PackageLoadError(locations[i], [{ file: locations[i], message: (err as Error).message }]);
    }
  });
  for (const r of results) {
    if (r instanceof PackageLoadError) failures.push(r);
    else packages.push(r);
  }
  return { packages, failures };
}

/** Loads every package path and merges them with the first-wins rule. */
export async function loadPackageIndex(packagePaths: string[], opts: IndexOptions): Promise<IndexLoadResult> {
  const layers: Package[][] = [];
  const failures: PackageLoadError[] = [];
  const notes: IndexLoadResult['notes'] = [];
  for (const p of packagePaths) {
    const root = path.resolve(p);
    if (opts.useBakedIndex !== false && fs.existsSync(root)) {
      const baked = await readBakedIndex(root, opts);
      if (baked.ok) {
        layers.push(baked.packages);
        notes.push({ path: root, baked: true });
        continue;
      }
      notes.push({ path: root, baked: false, reason: baked.reason });
    }
    const loaded = await loadPackagePath(root, opts);
    layers.push(loaded.packages);
    failures.push(...loaded.failures);
  }
  const merged = mergeFirstWins(layers);
  return { index: new PackageIndex(merged.winners), failures, shadowed: merged.shadowed, notes };
}

export type { Problem };
