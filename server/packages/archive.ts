import yazl from 'yazl';
import type { Readable } from 'node:stream';
import type { PackageSource } from './source.js';

/** A fixed timestamp keeps archives built from the same files byte-identical. */
export const ARCHIVE_MTIME = new Date('2020-01-01T00:00:00Z');

/**
 * Zips a package as `<name>-<version>/...`: directory entries, then files,
 * in sorted walk order, streamed as it is read (nothing held in memory).
 */
export function zipPackage(source: PackageSource, topFolder: string): Readable {
  const zip = new yazl.ZipFile();
  const seenDirs = new Set<string>();
  for (const f of source.files()) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (seenDirs.has(dir)) continue;
      seenDirs.add(dir);
      zip.addEmptyDirectory(`${topFolder}/${dir}/`, { mtime: ARCHIVE_MTIME, mode: 0o40755 });
    }
    const rel = f.path;
    zip.addReadStreamLazy(`${topFolder}/${rel}`, { mtime: ARCHIVE_MTIME, mode: 0o100644 }, (cb) => {
      source.openStream(rel).then((s) => cb(null, s), (err: Error) => cb(err, undefined as unknown as Readable));
    });
  }
  zip.end();
  return zip.outputStream as unknown as Readable;
}
