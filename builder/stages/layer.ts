import fs from 'node:fs';
import { DirectorySource, ZipSource, SourceError, byteCompare } from '../../server/packages/source.js';
import { loadPackage, PackageLoadError, type Package } from '../../server/packages/package.js';
import { contentHash } from '../../server/packages/hash.js';
import { formatProblem } from '../../server/packages/validate.js';
import type { PackageId } from './stages.js';

/**
 * A stage's layer as promotion sees it: where copies of a package are, a
 * local readable view of one copy, and the two changes promotion makes (add a
 * copy, remove a copy). Directory folders and git branches both sit behind it.
 */

export type CopyKind = 'directory' | 'zip';

/** One copy of a package in a layer. */
export interface PackageCopy {
  kind: CopyKind;
  /** relative to the layer, '/'-separated: `nginx/1.2.0` or `apache-1.3.0.zip` */
  rel: string;
  /** zip packages: `<rel>.sig` is there */
  signature: boolean;
}

/** A copy readable on the local disk (in place, or extracted from git into a temporary folder). */
export interface LocalCopy {
  copy: PackageCopy;
  /** package folder or .zip file */
  location: string;
  signatureFile?: string;
  /** removes what was extracted; a no-op for copies read in place */
  release(): void;
}

/** What an add did, so it can be undone if the copy does not verify. */
export interface AddReceipt {
  /** one line for the user: where it went (a folder, or a commit) */
  detail: string;
  commit?: string;
  undo(): Promise<string>;
}

export interface StageLayer {
  readonly stage: string;
  readonly kind: 'directory' | 'git';
  /** the layer named for a human: a folder, or repo@branch:path */
  readonly origin: string;
  /** checks that refuse before anything changes (folder or branch there, branch not checked out) */
  preflight(): void;
  find(id: PackageId): PackageCopy[];
  /** the versions of `name` in this layer, for "did you mean" messages */
  versions(name: string): string[];
  readCopy(copy: PackageCopy): Promise<LocalCopy>;
  /** what add/remove would do, for --dry-run */
  describeAdd(copy: PackageCopy, subject: string): string;
  describeRemove(copy: PackageCopy, subject: string): string;
  /** adds `from` at the same layer-relative place (`subject` is the commit subject for git layers) */
  add(from: LocalCopy, subject: string, body: string): Promise<AddReceipt>;
  /** removes the copy; returns one line for the user */
  remove(copy: PackageCopy, subject: string, body: string): Promise<{ detail: string; commit?: string }>;
}

export class PromotionError extends Error {
  constructor(
    readonly code:
      | 'unknown-package' | 'conflict' | 'direction' | 'invalid-package' | 'ambiguous' | 'verify-failed'
      | 'layer-missing' | 'branch-missing' | 'branch-dirty' | 'branch-checked-out' | 'branch-moved' | 'git' | 'io',
    message: string,
  ) {
    super(message);
  }
}

/**
 * The copies of `id` among layer-relative file paths: `<...>/<name>/<version>/manifest.yml`
 * folders and `<name>-<version>.zip` files, as the server's scanner finds them
 * (no hidden folders, no node_modules).
 */
export function copiesIn(files: string[], id: PackageId): PackageCopy[] {
  const all = new Set(files);
  const out: PackageCopy[] = [];
  const zipName = `${id.name}-${id.version}.zip`;
  const manifestTail = `${id.name}/${id.version}/manifest.yml`;
  for (const f of files) {
    const parts = f.split('/');
    const hidden = parts.slice(0, -1).some((p) => p.startsWith('.') || p === 'node_modules');
    if (hidden) continue;
    if (f === manifestTail || f.endsWith(`/${manifestTail}`)) {
      out.push({ kind: 'directory', rel: f.slice(0, -'/manifest.yml'.length), signature: false });
    } else if (parts[parts.length - 1] === zipName) {
      out.push({ kind: 'zip', rel: f, signature: all.has(`${f}.sig`) });
    }
  }
  return out.sort((a, b) => byteCompare(a.rel, b.rel));
}

/** Versions of `name` among layer-relative file paths (folders and zips), sorted by text. */
export function versionsIn(files: string[], name: string): string[] {
  const out = new Set<string>();
  for (const f of files) {
    const parts = f.split('/');
    if (parts.slice(0, -1).some((p) => p.startsWith('.') || p === 'node_modules')) continue;
    if (parts.length >= 3 && parts[parts.length - 1] === 'manifest.yml' && parts[parts.length - 3] === name) out.add(parts[parts.length - 2]);
    const zip = /^([^-]+)-(.+)\.zip$/.exec(parts[parts.length - 1]);
    if (zip && zip[1] === name) out.add(zip[2]);
  }
  return [...out].sort(byteCompare);
}

export interface LoadedCopy {
  pkg: Package;
  hash: string;
  signature?: Buffer;
}

/** Loads a local copy with the registry's own package model (validation on) and hashes its content. */
export async function loadCopy(local: LocalCopy, origin: string): Promise<LoadedCopy> {
  let pkg: Package;
  try {
    const source = local.copy.kind === 'zip' ? await ZipSource.open(local.location) : new DirectorySource(local.location);
    pkg = await loadPackage(source, { validate: true });
  } catch (err) {
    const where = (s: string) => s.split(local.location).join(`${origin}/${local.copy.rel}`);
    if (err instanceof PackageLoadError) {
      throw new PromotionError('invalid-package', `${origin}/${local.copy.rel} is not a valid package: ${err.problems.map((p) => where(formatProblem(p))).join('; ')}`);
    }
    if (err instanceof SourceError) throw new PromotionError('invalid-package', `${origin}/${local.copy.rel} cannot be read: ${where(err.message)}`);
    throw err;
  }
  const signature = local.signatureFile ? fs.readFileSync(local.signatureFile) : undefined;
  return { pkg, hash: await contentHash(pkg.source), signature };
}

export function shortHash(hash: string): string {
  return hash.replace(/^sha256:/, '').slice(0, 12);
}
