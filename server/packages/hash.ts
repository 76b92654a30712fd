import crypto from 'node:crypto';
import fs from 'node:fs';
import { byteCompare, DirectorySource, type PackageSource } from './source.js';

/**
 * A package's content hash: sha256 over its files (path, size and bytes) in
 * sorted path order. It does not depend on the package being a directory or
 * a zip, nor on timestamps, so two copies with the same files hash the same.
 */
export async function contentHash(source: PackageSource): Promise<string> {
  const h = crypto.createHash('sha256');
  const files = [...source.files()].sort((a, b) => byteCompare(a.path, b.path));
  // a folder's files are read with blocking reads: for thousands of small files
  // the promise machinery costs several times the read itself
  const sync = source instanceof DirectorySource ? source : undefined;
  for (const f of files) {
    const bytes = sync ? fs.readFileSync(sync.resolve(f.path)) : await source.readFile(f.path);
    h.update(`${f.path}\0${bytes.length}\0`);
    h.update(bytes);
    h.update('\0');
  }
  return `sha256:${h.digest('hex')}`;
}
