import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { bakedEntry, type BakedPackage } from '../server/packages/baked.js';
import { contentHash } from '../server/packages/hash.js';
import { loadPackage, PackageLoadError } from '../server/packages/package.js';
import { DirectorySource, SourceError, walkFiles, ZipSource, type PackageFile } from '../server/packages/source.js';
import type { Problem } from '../server/packages/validate.js';
import { hardLinkProblem, listPackageFolder, zipLinkProblem } from './sources.js';

/**
 * The builder's per-package work, as functions of plain data so that it can
 * run on any thread (builder/thread-pool.ts): walking a package folder (and
 * refusing links out of it), and loading, validating and hashing a package.
 */

export interface CacheEntry {
  stamp: string;
  baked: BakedPackage;
  hash: string;
  bytes?: string;
  /**
   * sha256 (base64) of each file the layer tar holds for the package: a
   * folder's files in the order of baked.files, or a zip and its signature.
   * A layer carries each distinct content once (merge.ts).
   */
  digests: string[];
}

/** A walked file on the wire: [path, size, mtime ms]. */
export type WireFile = [string, number, number];
export type WalkResult = { files: WireFile[] } | { error: string; file?: string };

/** The files of a package folder, as walkFiles finds them; a link that leaves the folder is an error. */
export function walkTask(dir: string): WalkResult {
  try {
    const { listed, problem } = listPackageFolder(dir);
    if (problem) return { error: problem.message, file: problem.file };
    const files = walkFiles(dir, listed).map((f) => {
      const abs = path.join(dir, ...f.path.split('/'));
      return { abs, path: f.path, stats: fs.statSync(abs) };
    });
    const hardLink = hardLinkProblem(dir, files);
    if (hardLink) return { error: hardLink.message, file: hardLink.file };
    return { files: files.map((f): WireFile => [f.path, f.stats.size, f.stats.mtime.getTime()]) };
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

const digestOf = (data: Buffer | crypto.Hash) => (Buffer.isBuffer(data) ? crypto.createHash('sha256').update(data) : data).digest('base64');

/** A zip package's bytes hash (the zip and its signature as stored) and the digest of each of the two files. */
async function zipBytes(files: string[]): Promise<{ bytes: string; digests: string[] }> {
  const h = crypto.createHash('sha256');
  const digests: string[] = [];
  for (const f of files) {
    h.update(`${f.slice(f.lastIndexOf('/') + 1)}\0`);
    if (fs.existsSync(f)) {
      const one = crypto.createHash('sha256');
      await new Promise<void>((resolve, reject) => fs.createReadStream(f).on('data', (c) => { h.update(c); one.update(c); }).on('end', resolve).on('error', reject));
      digests.push(digestOf(one));
    }
    h.update('\0');
  }
  return { bytes: `sha256:${h.digest('hex')}`, digests };
}

/**
 * The digest of each file of a package folder, in the order of its file list.
 * (A second read of each file after contentHash's, from the page cache: the
 * content hash stays the package model's own rule, and this runs only for
 * packages that changed.)
 */
function folderDigests(source: DirectorySource): string[] {
  return source.files().map((f) => digestOf(fs.readFileSync(source.resolve(f.path))));
}

/** Loads and validates one package, hashes it, and describes it as a cache entry; or says what is wrong. */
export async function loadTask(i: LoadInput): Promise<LoadResult> {
  try {
    const source = i.kind === 'directory' ? new DirectorySource(i.abs, fromWire(i.files ?? [])) : await ZipSource.open(i.abs, i.root);
    const pkg = await loadPackage(source, { validate: true });
    if (i.kind === 'zip') {
      const link = await zipLinkProblem(i.abs, (source as ZipSource).archive);
      if (link) return { location: i.abs, problems: [{ file: link.file, message: link.message }] };
    }
    const hash = await contentHash(pkg.source);
    const zip = i.kind === 'zip' ? await zipBytes([i.abs, `${i.abs}.sig`]) : undefined;
    const digests = source instanceof DirectorySource ? folderDigests(source) : zip!.digests;
    return { entry: { stamp: i.stamp, baked: bakedEntry(i.root, pkg), hash, bytes: zip?.bytes, digests } };
  } catch (err) {
    if (err instanceof PackageLoadError) return { location: err.location, problems: err.problems };
    if (err instanceof SourceError) return { location: i.abs, problems: [{ file: err.file ?? i.abs, message: err.message }] };
    return { location: i.abs, problems: [{ file: i.abs, message: (err as Error).message }] };
  }
}
