import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tarStream from 'tar-stream';
import yazl from 'yazl';
import type { Readable } from 'node:stream';
import type { PackageSource } from './source.js';
import type { ZipArchive } from './zip-recipe.js';

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

/** A zip made once and kept on disk. */
export interface MadeZip {
  file: string;
  size: number;
}

/**
 * Zips of directory packages, made once and kept on disk (in a folder of
 * this process below `parent`, the OS temporary folder by default, removed
 * at exit), then sent from there: Fleet and Agents download the same few
 * versions again and again. Bounded by size; the least recently used go
 * first. When no folder can be written there (a read-only file system),
 * every answer is zipped on the fly instead.
 */
export class ZipCache {
  private readonly ready = new Map<string, MadeZip>();
  private readonly pending = new Map<string, Promise<MadeZip | undefined>>();
  private bytes = 0;
  private folder?: Promise<string | undefined>;
  private made?: string;

  constructor(private readonly parent = os.tmpdir(), private readonly maxBytes = 512 * 1024 * 1024) {}

  /** The complete zip of `source`, made now if need be; undefined when it cannot be kept. */
  get(source: PackageSource | undefined, topFolder: string, bytes?: () => Readable): Promise<MadeZip | undefined> {
    const done = this.ready.get(topFolder);
    if (done) {
      // refresh its place: recently used zips stay
      this.ready.delete(topFolder);
      this.ready.set(topFolder, done);
      return Promise.resolve(done);
    }
    let p = this.pending.get(topFolder);
    if (!p) {
      p = this.make(bytes ?? (() => zipPackage(source!, topFolder)), topFolder).finally(() => this.pending.delete(topFolder));
      this.pending.set(topFolder, p);
    }
    return p;
  }

  /**
   * The same for a zip package kept as a recipe: its bytes, rebuilt once from
   * the recipe's pieces, in one file (then a download is a few reads of one
   * file, not an open and a read of every entry of the store).
   */
  getStored(archive: ZipArchive, topFolder: string): Promise<MadeZip | undefined> {
    return this.get(undefined, `${topFolder}.stored`, () => archive.createReadStream());
  }

  /** Forgets a kept zip whose file is gone: the next download makes it again. */
  forget(topFolder: string): void {
    const entry = this.ready.get(topFolder);
    if (!entry) return;
    this.ready.delete(topFolder);
    this.bytes -= entry.size;
  }

  /** This process's own folder, created on first use; undefined when none can be. */
  private dir(): Promise<string | undefined> {
    this.folder ??= fs.promises.mkdtemp(path.join(this.parent, 'epr-zips-')).then(
      (dir) => (this.made = dir),
      () => undefined,
    );
    return this.folder;
  }

  private async make(bytes: () => Readable, topFolder: string): Promise<MadeZip | undefined> {
    const dir = await this.dir();
    if (!dir) return undefined;
    const file = path.join(dir, `${topFolder}.zip`);
    const tmp = `${file}.${Date.now()}.tmp`;
    try {
      await pipeline(bytes(), fs.createWriteStream(tmp));
      await fs.promises.rename(tmp, file);
    } catch {
      // a full disk, a file that vanished: this answer is zipped on the fly
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      return undefined;
    }
    const made: MadeZip = { file, size: (await fs.promises.stat(file)).size };
    this.ready.set(topFolder, made);
    this.bytes += made.size;
    for (const [key, entry] of this.ready) {
      if (this.bytes <= this.maxBytes || key === topFolder) break;
      this.ready.delete(key);
      this.bytes -= entry.size;
      // a download still reading it keeps its open file
      await fs.promises.rm(entry.file, { force: true }).catch(() => undefined);
    }
    return made;
  }

  /** Removes the folder (at shutdown). */
  clear(): void {
    if (this.made) fs.rmSync(this.made, { recursive: true, force: true });
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
