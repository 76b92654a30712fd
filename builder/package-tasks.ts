import fs from 'node:fs';
import crypto from 'node:crypto';
import { bakedEntry, type BakedPackage } from '../server/packages/baked.js';
import { contentHash } from '../server/packages/hash.js';
import { loadPackage, PackageLoadError } from '../server/packages/package.js';
import { DirectorySource, SourceError, walkFiles, ZipSource, type PackageFile } from '../server/packages/source.js';
import type { Problem } from '../server/packages/validate.js';

/**
 * The builder's per-package work, as functions of plain data so that it can
 * run on any thread (builder/thread-pool.ts): walking a package folder, and
 * loading, validating and hashing a package.
 */

export interface CacheEntry {
  stamp: string;
  baked: BakedPackage;
  hash: string;
  bytes?: string;
}

/** A walked file on the wire: [path, size, mtime ms]. */
export type WireFile = [string, number, number];
export type WalkResult = { files: WireFile[] } | { error: string; file?: string };

export function walkTask(dir: string): WalkResult {
  try {
    return { files: walkFiles(dir).map((f): WireFile => [f.path, f.size, f.mtime?.getTime() ?? 0]) };
  } catch (err) {
    return { error: (err as Error).message, file: (err as SourceError).file };
  }
}

/** The stamps of a package folder's files: any change to a name, size or time changes it. */
export function folderStamp(files: WireFile[]): string {
  const h = crypto.createHash('sha256');
  for (const [p, size, ms] of files) h.update(`${p}\0${size}\0${ms}\n`);
  return h.digest('hex');
}

/** A package folder's stamp, or undefined when it cannot be walked. */
export function stampTask(dir: string): string | undefined {
  const w = walkTask(dir);
  return 'files' in w ? folderStamp(w.files) : undefined;
}

export function fromWire(files: WireFile[]): PackageFile[] {
  return files.map(([p, size, ms]) => ({ path: p, size, mtime: new Date(ms) }));
}

export interface LoadInput { root: string; abs: string; kind: 'zip' | 'directory'; stamp: string; files?: WireFile[] }
export type LoadResult = { entry: CacheEntry } | { location: string; problems: Problem[] };

async function bytesHash(files: string[]): Promise<string> {
  const h = crypto.createHash('sha256');
  for (const f of files) {
    h.update(`${f.slice(f.lastIndexOf('/') + 1)}\0`);
    if (fs.existsSync(f)) await new Promise<void>((resolve, reject) => fs.createReadStream(f).on('data', (c) => h.update(c)).on('end', resolve).on('error', reject));
    h.update('\0');
  }
  return `sha256:${h.digest('hex')}`;
}

/** Loads and validates one package, hashes it, and describes it as a cache entry; or says what is wrong. */
export async function loadTask(i: LoadInput): Promise<LoadResult> {
  try {
    const source = i.kind === 'directory' ? new DirectorySource(i.abs, fromWire(i.files ?? [])) : await ZipSource.open(i.abs);
    const pkg = await loadPackage(source, { validate: true });
    return {
      entry: {
        stamp: i.stamp,
        baked: bakedEntry(i.root, pkg),
        hash: await contentHash(pkg.source),
        bytes: i.kind === 'zip' ? await bytesHash([i.abs, `${i.abs}.sig`]) : undefined,
      },
    };
  } catch (err) {
    if (err instanceof PackageLoadError) return { location: err.location, problems: err.problems };
    if (err instanceof SourceError) return { location: i.abs, problems: [{ file: err.file ?? i.abs, message: err.message }] };
    return { location: i.abs, problems: [{ file: i.abs, message: (err as Error).message }] };
  }
}
