import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageFromBaked } from '../server/packages/baked.js';
import { PackageLoadError, type Package } from '../server/packages/package.js';
import { listScanFolders, scanPackagePath } from '../server/packages/scan.js';
import { byteCompare, relativePath } from '../server/packages/source.js';
import { folderStamp, type CacheEntry, type LoadInput, type LoadResult, type WireFile } from './package-tasks.js';
import { shareOut } from './thread-pool.js';
import { keepRecent, markUsed, writeCacheFile } from './cache-files.js';
import { packagePlaceProblem } from './sources.js';

/**
 * The builder's memory of packages it has loaded, validated and hashed, kept
 * per layer folder and keyed by each package's file stamps (path, size and
 * modification time of every file, as make and git tell a changed file). A
 * package whose stamps are unchanged is not parsed, validated or hashed
 * again: its baked entry and hashes are taken from the cache. Validation is a
 * function of the files and of the package model, so the cache is dropped
 * whenever the compiled package model (server/packages) changes.
 */

const FORMAT = 'epr-builder-package-cache/3';

/** Package caches kept: those of the most recently built layer folders (an extracted git tree is a folder of its own). */
export const KEEP_PACKAGE_CACHES = 32;

export interface LoadedPackage {
  pkg: Package;
  /** content hash: files and their bytes (contentHash) */
  hash: string;
  /** zip packages: sha256 of the zip and its signature as stored, which the image layer holds byte for byte */
  bytes?: string;
  /** the digest of each file the layer holds for the package (CacheEntry.digests) */
  digests: string[];
}

interface CacheFile {
  format: string;
  model: string;
  root: string;
  /** in the layer's scan order (zips, then folders) */
  entries: Array<[string, CacheEntry]>;
}

/** Where the cache lives: $EPR_BUILDER_CACHE, else $XDG_CACHE_HOME/epr-builder, else ~/.cache/epr-builder. */
export function defaultCacheDir(): string {
  if (process.env.EPR_BUILDER_CACHE) return path.resolve(process.env.EPR_BUILDER_CACHE);
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'epr-builder');
}

let modelDigestMemo: string | undefined;

/** A digest of the compiled package model: the cache is valid only for the code that filled it. */
export function modelDigest(): string {
  if (modelDigestMemo) return modelDigestMemo;
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'server', 'packages');
  const h = crypto.createHash('sha256').update(FORMAT);
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.js') || n.endsWith('.ts')).sort(byteCompare)) {
    h.update(`${f}\0`).update(fs.readFileSync(path.join(dir, f))).update('\0');
  }
  modelDigestMemo = h.digest('hex');
  return modelDigestMemo;
}

async function fileStamp(file: string): Promise<string> {
  try {
    const st = await fs.promises.stat(file);
    return `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    return 'none';
  }
}

/** A zip package's stamp: the zip's and its signature's. */
async function zipStamp(zip: string): Promise<string> {
  return `${await fileStamp(zip)}/${await fileStamp(`${zip}.sig`)}`;
}

/** One layer folder's cache: read at open, written back (only what the layer still holds) by save(). */
export class LayerCache {
  private readonly fresh = new Map<string, CacheEntry>();
  hits = 0;
  misses = 0;

  private constructor(private readonly file: string | undefined, private readonly root: string, private readonly old: Map<string, CacheEntry>) {}

  /** `dir` undefined: nothing is read or written (every package is loaded). `read` false: start empty (--no-cache), still write. */
  static open(dir: string | undefined, root: string, read = true): LayerCache {
    if (!dir) return new LayerCache(undefined, root, new Map());
    const abs = path.resolve(root);
    const file = path.join(dir, 'packages', `${crypto.createHash('sha256').update(abs).digest('hex').slice(0, 24)}.json`);
    const old = new Map<string, CacheEntry>();
    if (read) {
      try {
        const c = JSON.parse(fs.readFileSync(file, 'utf8')) as CacheFile;
        if (c.format === FORMAT && c.model === modelDigest() && c.root === abs) for (const [k, v] of c.entries) old.set(k, v);
        markUsed(file);
      } catch { /* no cache yet, or unreadable: start empty */ }
    }
    return new LayerCache(file, abs, old);
  }

  get(location: string, stamp: string): CacheEntry | undefined {
    const e = this.old.get(location);
    return e && e.stamp === stamp ? e : undefined;
  }

  /** Everything the last build of this folder loaded, in its scan order. */
  entries(): Array<[string, CacheEntry]> {
    return [...this.old];
  }

  put(location: string, entry: CacheEntry): void {
    this.fresh.set(location, entry);
  }

  /** Writes the entries of this run (unless they are what was read); a cache that cannot be written only costs time next run. */
  save(): string | undefined {
    if (!this.file) return undefined;
    if (this.misses === 0 && this.fresh.size === this.old.size) return undefined;
    const body: CacheFile = { format: FORMAT, model: modelDigest(), root: this.root, entries: [...this.fresh] };
    const failed = writeCacheFile(this.file, JSON.stringify(body));
    if (failed) return `package cache not written (${failed})`;
    keepRecent(path.dirname(this.file), '.json', KEEP_PACKAGE_CACHES);
    return undefined;
  }
}

/**
 * Loads and validates every package of one layer folder, in the server's scan
 * order (zips, then folders), taking unchanged packages from the cache. The
 * walks and the loading of changed packages are shared out between cores.
 */
export async function loadLayerPackages(root: string, cache: LayerCache, opts: { fromCache?: boolean } = {}): Promise<{ packages: LoadedPackage[]; failures: PackageLoadError[]; fromCache?: boolean }> {
  // a folder nothing writes to (a git tree extracted by its id), or one taken on trust while
  // unchangedSinceCache checks it: what the last build loaded is what it holds
  if (opts.fromCache && cache.entries().length > 0) {
    const packages: LoadedPackage[] = [];
    for (const [rel, entry] of cache.entries()) {
      cache.hits++;
      cache.put(rel, entry);
      packages.push({ pkg: await packageFromBaked(root, entry.baked), hash: entry.hash, bytes: entry.bytes, digests: entry.digests });
    }
    return { packages, failures: [], fromCache: true };
  }
  const found = scanPackagePath(root);
  const walked = await shareOut('walk', found.directories);
  const items: Array<{ abs: string; rel: string; stamp: string; kind: 'zip' | 'directory'; files?: WireFile[]; error?: PackageLoadError }> = [];
  const refused = (abs: string, p: { file: string; message: string }) => new PackageLoadError(abs, [{ file: p.file, message: p.message }]);
  for (const abs of found.zips) {
    const place = packagePlaceProblem(root, abs, 'zip');
    items.push({ abs, rel: relativePath(root, abs), kind: 'zip', stamp: await zipStamp(abs), error: place && refused(abs, place) });
  }
  found.directories.forEach((abs, i) => {
    const w = walked[i];
    const place = packagePlaceProblem(root, abs, 'directory');
    if (place) items.push({ abs, rel: relativePath(root, abs), kind: 'directory', stamp: '', error: refused(abs, place) });
    else if ('error' in w) items.push({ abs, rel: relativePath(root, abs), kind: 'directory', stamp: '', error: refused(abs, { file: w.file ?? abs, message: w.error }) });
    else items.push({ abs, rel: relativePath(root, abs), kind: 'directory', stamp: folderStamp(w.files), files: w.files });
  });

  const misses = items.filter((it) => !it.error && !cache.get(it.rel, it.stamp));
  const loaded = await shareOut('load', misses.map((it): LoadInput => ({ root, abs: it.abs, kind: it.kind, stamp: it.stamp, files: it.files })));
  const fresh = new Map<string, LoadResult>(misses.map((it, i) => [it.rel, loaded[i]]));

  const packages: LoadedPackage[] = [];
  const failures: PackageLoadError[] = [];
  for (const it of items) {
    if (it.error) { failures.push(it.error); continue; }
    const r = fresh.get(it.rel);
    if (r && 'problems' in r) { failures.push(new PackageLoadError(r.location, r.problems)); continue; }
    const entry = r ? r.entry : cache.get(it.rel, it.stamp)!;
    if (r) cache.misses++; else cache.hits++;
    cache.put(it.rel, entry);
    try {
      packages.push({ pkg: await packageFromBaked(root, entry.baked), hash: entry.hash, bytes: entry.bytes, digests: entry.digests });
    } catch (err) {
      failures.push(new PackageLoadError(it.abs, [{ file: it.abs, message: (err as Error).message }]));
    }
  }
  return { packages, failures };
}

/**
 * Whether a folder still holds exactly what its cache describes (the same
 * packages, every file with the same stamps), loading nothing. The listing
 * is asynchronous and the walks run in worker threads only, so that this
 * thread goes on making the image meanwhile.
 */
export async function unchangedSinceCache(root: string, cache: LayerCache): Promise<boolean> {
  const cached = new Map(cache.entries());
  if (cached.size === 0) return false;
  const found = scanPackagePath(root, await listScanFolders(root));
  if (found.zips.length + found.directories.length !== cached.size) return false;
  for (const abs of found.zips) {
    if (cached.get(relativePath(root, abs))?.stamp !== await zipStamp(abs) || packagePlaceProblem(root, abs, 'zip')) return false;
  }
  if (found.directories.some((abs) => packagePlaceProblem(root, abs, 'directory'))) return false;
  // a walk that meets a link out of its package gives no stamp: the layer is read again, and refused
  const stamps = await shareOut('stamp', found.directories, { background: true });
  return found.directories.every((abs, i) => cached.get(relativePath(root, abs))?.stamp === stamps[i]);
}
