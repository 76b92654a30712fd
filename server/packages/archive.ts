import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tarStream from 'tar-stream';
import yazl from 'yazl';
import type { Readable } from 'node:stream';
import type { PackageSource } from './source.js';

/** A fixed timestamp keeps archives built from the same files byte-identical. */
export const ARCHIVE_MTIME = new Date('2020-01-01T00:00:00Z');

/** A package's files in sorted walk order, each folder announced before its first file. */
export function* archiveOrder(source: PackageSource): Generator<{ kind: 'directory' | 'file'; path: string }> {
  const seenDirs = new Set<string>();
  for (const f of source.files()) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (seenDirs.has(dir)) continue;
      seenDirs.add(dir);
      yield { kind: 'directory', path: dir };
    }
    yield { kind: 'file', path: f.path };
  }
}

/**
 * Zips a package as `<name>-<version>/...`: directory entries, then files,
 * in sorted walk order, streamed as it is read (nothing held in memory).
 */
export function zipPackage(source: PackageSource, topFolder: string): Readable {
  const zip = new yazl.ZipFile();
  for (const e of archiveOrder(source)) {
    if (e.kind === 'directory') {
      zip.addEmptyDirectory(`${topFolder}/${e.path}/`, { mtime: ARCHIVE_MTIME, mode: 0o40755 });
      continue;
    }
    const rel = e.path;
    zip.addReadStreamLazy(`${topFolder}/${rel}`, { mtime: ARCHIVE_MTIME, mode: 0o100644 }, (cb) => {
      source.openStream(rel).then((st) => cb(null, st), (err: Error) => cb(err, undefined as unknown as Readable));
    });
  }
  zip.end();
  return zip.outputStream as unknown as Readable;
}

/**
 * Zips of directory packages, made once and kept on disk (in a folder of
 * this process, removed at exit): Fleet and Agents download the same few
 * versions again and again. Bounded by size; the oldest go first. When the
 * folder cannot be written (a read-only file system), answers stream instead.
 */
export class ZipCache {
  private readonly ready = new Map<string, { file: string; size: number }>();
  private readonly pending = new Map<string, Promise<string | undefined>>();
  private bytes = 0;
  private usable = true;

  constructor(readonly dir: string, private readonly maxBytes = 512 * 1024 * 1024) {}

  /** The path of the complete zip of `source`, or undefined when it cannot be cached. */
  file(source: PackageSource, topFolder: string): Promise<string | undefined> {
    const done = this.ready.get(topFolder);
    if (done) {
      // refresh its place: recently used zips stay
      this.ready.delete(topFolder);
      this.ready.set(topFolder, done);
      return Promise.resolve(done.file);
    }
    if (!this.usable) return Promise.resolve(undefined);
    let p = this.pending.get(topFolder);
    if (!p) {
      p = this.make(source, topFolder).finally(() => this.pending.delete(topFolder));
      this.pending.set(topFolder, p);
    }
    return p;
  }

  private async make(source: PackageSource, topFolder: string): Promise<string | undefined> {
    const file = path.join(this.dir, `${topFolder}.zip`);
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    try {
      await fs.promises.mkdir(this.dir, { recursive: true });
      await fs.promises.access(this.dir, fs.constants.W_OK);
    } catch {
      // a read-only file system: stream every zip instead
      this.usable = false;
      return undefined;
    }
    try {
      await pipeline(zipPackage(source, topFolder), fs.createWriteStream(tmp));
      await fs.promises.rename(tmp, file);
    } catch {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      return undefined;
    }
    const size = (await fs.promises.stat(file)).size;
    this.ready.set(topFolder, { file, size });
    this.bytes += size;
    for (const [key, entry] of this.ready) {
      if (this.bytes <= this.maxBytes || key === topFolder) break;
      this.ready.delete(key);
      this.bytes -= entry.size;
      await fs.promises.rm(entry.file, { force: true }).catch(() => undefined);
    }
    return file;
  }

  /** Removes the folder (at shutdown). */
  clear(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The first registry API's archive (Kibana 7.8-7.9 read only these): a
 * gzipped tar with one top folder `<name>-<version>/`, entries in sorted walk
 * order with fixed times, owners and modes, so the same package always gives
 * the same bytes. Streamed entry by entry.
 */
export function tarGzPackage(source: PackageSource, topFolder: string): Readable {
  const pack = tarStream.pack();
  const gzip = zlib.createGzip({ level: 6 });
  const header = (name: string, type: 'file' | 'directory', size = 0) => ({
    name, type, size, mode: type === 'directory' ? 0o755 : 0o644, mtime: ARCHIVE_MTIME, uid: 0, gid: 0, uname: '', gname: '',
  });
  (async () => {
    pack.entry(header(`${topFolder}/`, 'directory'));
    for (const e of archiveOrder(source)) {
      if (e.kind === 'directory') {
        pack.entry(header(`${topFolder}/${e.path}/`, 'directory'));
        continue;
      }
      const bytes = await source.readFile(e.path);
      await new Promise<void>((resolve, reject) => {
        pack.entry(header(`${topFolder}/${e.path}`, 'file', bytes.length), bytes, (err) => (err ? reject(err) : resolve()));
      });
    }
    pack.finalize();
  })().catch((err: Error) => pack.destroy(err));
  pack.on('error', (err) => gzip.destroy(err));
  return pack.pipe(gzip);
}
