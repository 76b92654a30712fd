import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tarStream, { type ExtractEvents } from 'tar-stream';

type Entry = ExtractEvents['entry'][1];

/**
 * Image layers applied bottom-up into a folder, as a container runtime
 * applies them into a root file system (OCI image spec, "Applying
 * Changesets"): files, folders, hard links and symlinks are written;
 * `.wh.<name>` removes `<name>` of the layers below; `.wh..wh..opq` in a
 * folder hides everything the layers below put in it. Each layer streams
 * through (gunzip, tar, file), never whole in memory.
 *
 * The folder is read afterwards by ordinary processes on this machine, not
 * from inside a container, so nothing in it may lead out of it:
 * - an entry, a hard link target or a whiteout naming an absolute path or
 *   a `..` component is refused, as is one reached through a symlink that
 *   resolves outside the folder;
 * - a symlink means what it means inside the container: an absolute target
 *   is rewritten relative to the link, so that it stays inside the folder;
 *   a relative target climbing above the folder's root is refused;
 * - a hard link to a folder or to a symlink is refused.
 * Owners are not applied (the check does not run as root); every folder
 * stays writable and every file readable by its owner, so that the folder
 * can be read and removed.
 */

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARK = '.wh..wh..opq';

/** Files up to this size are gathered and written at once; larger ones stream. */
const SMALL_FILE = 1 << 20;

/** Symlinks followed in one path before it is taken for a loop (Linux's own limit). */
const MAX_SYMLINK_HOPS = 40;

export class UnpackError extends Error {}

export interface LayerExpectation {
  /** sha256 of the layer blob as read (compressed or not) */
  digest?: string;
  /** sha256 of the uncompressed tar */
  diffId?: string;
  /** how to name the layer in messages */
  name?: string;
}

export interface ApplyOptions {
  /** per layer (same order): digests to check while it streams, and a name for messages */
  layers?: Array<LayerExpectation | undefined>;
}

export interface ApplyReport {
  layers: number;
  /** tar entries applied (whiteouts included) */
  entries: number;
  /** bytes of file contents written */
  bytes: number;
  whiteouts: number;
  /** devices and fifos: not made outside a container */
  skipped: number;
}

type LayerInput = Readable | (() => Readable);

/** Applies `layers` (bottom first; gzip or plain tar each) into `root`, which must exist. */
export async function applyLayers(root: string, layers: LayerInput[], opts: ApplyOptions = {}): Promise<ApplyReport> {
  const report: ApplyReport = { layers: 0, entries: 0, bytes: 0, whiteouts: 0, skipped: 0 };
  const realRoot = fs.realpathSync(root);
  const opened = new Set<Readable>();
  try {
    for (let i = 0; i < layers.length; i++) {
      const input = layers[i];
      const src = typeof input === 'function' ? input() : input;
      opened.add(src);
      const expected = opts.layers?.[i];
      const label = expected?.name ?? `layer ${i + 1} of ${layers.length}`;
      await applyLayer(new Tree(realRoot), src, report, label, expected);
      opened.delete(src);
      report.layers++;
    }
  } finally {
    // layers given as open streams and never reached hold a file each
    for (const s of opened) s.destroy();
    for (const l of layers) if (typeof l !== 'function' && !l.destroyed) l.destroy();
  }
  return report;
}

/** A hashing pass-through: the digest is read once the stream has ended. */
function hasher(): { stream: Transform; digest: () => string } {
  const h = crypto.createHash('sha256');
  const stream = new Transform({ transform(chunk: Buffer, _e, cb) { h.update(chunk); cb(null, chunk); } });
  return { stream, digest: () => `sha256:${h.digest('hex')}` };
}

/** The first bytes of a stream, put back: enough to tell gzip from tar. */
function peek(src: Readable): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const done = (value: Buffer | null, err?: Error) => {
      src.off('readable', onReadable);
      src.off('end', onEnd);
      src.off('error', onError);
      if (err) reject(err); else resolve(value);
    };
    const onReadable = () => {
      const chunk = src.read() as Buffer | null;
      if (chunk === null) return;
      src.unshift(chunk);
      done(chunk);
    };
    const onEnd = () => done(null);
    const onError = (e: Error) => done(null, e);
    src.on('readable', onReadable);
    src.on('end', onEnd);
    src.on('error', onError);
  });
}

async function applyLayer(tree: Tree, src: Readable, report: ApplyReport, label: string, expected?: LayerExpectation): Promise<void> {
  const first = await peek(src).catch((e: Error) => { throw new UnpackError(`${label}: cannot be read: ${e.message}`); });
  if (first && first.length >= 4 && first.readUInt32LE(0) === 0xfd2fb528) throw new UnpackError(`${label}: zstd layers cannot be unpacked here (gzip or plain tar only)`);
  const gzipped = first !== null && first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b;
  const blob = hasher();
  const tar = hasher();
  const extract = tarStream.extract();
  const flowing = pipeline([src, blob.stream, ...(gzipped ? [zlib.createGunzip({ chunkSize: 1 << 20 })] : []), tar.stream, extract]);
  // its failure is read below; until then it must not count as unhandled
  flowing.catch(() => undefined);
  let failure: unknown;
  try {
    for await (const entry of extract) {
      report.entries++;
      try {
        await tree.apply(entry, report);
      } catch (err) {
        entry.resume();
        throw err instanceof UnpackError ? new UnpackError(`${label}: ${err.message}`) : new UnpackError(`${label}: ${entry.header.name}: ${(err as Error).message}`);
      }
      // an entry whose bytes were not read (a folder, a link) must be drained for the next to come
      entry.resume();
    }
    await flowing;
  } catch (err) {
    failure = err;
    extract.destroy();
    src.destroy();
    await flowing.catch(() => undefined);
  }
  if (failure) {
    if (failure instanceof UnpackError) throw failure;
    throw new UnpackError(`${label}: not a readable ${gzipped ? 'gzip ' : ''}tar: ${(failure as Error).message}`);
  }
  tree.finish();
  const gotBlob = blob.digest();
  const gotTar = tar.digest();
  if (expected?.digest && gotBlob !== expected.digest) throw new UnpackError(`${label}: the blob read has digest ${gotBlob}, the image names ${expected.digest}`);
  if (expected?.diffId && gotTar !== expected.diffId) throw new UnpackError(`${label}: the uncompressed tar has digest ${gotTar}, the image config names ${expected.diffId}`);
}

/** An entry name or hard link target: a relative path without `..`, as its components. */
function components(name: string, what: string): string[] {
  if (name.includes('\0')) throw new UnpackError(`${what} "${name}": a NUL byte in the name`);
  if (name.startsWith('/')) throw new UnpackError(`${what} "${name}": an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnpackError(`${what} "${name}": a ".." component leads out of the image root`);
  return parts;
}

/**
 * The folder being unpacked into, one layer at a time. Paths are kept as
 * components relative to the root with every symlink resolved, so that each
 * write lands where the container would see it, and only there.
 */
class Tree {
  /** real paths (relative, `/`-joined) this layer wrote: an opaque folder keeps them */
  private readonly written = new Set<string>();
  /** folders this layer wrote, with their times: set once their contents are in */
  private readonly folderTimes: Array<{ abs: string; mtime: Date }> = [];

  /** folders known to be real (no symlink on the way) in this layer: cleared whenever a path goes or a symlink comes */
  private readonly realDirs = new Set<string>();

  constructor(private readonly root: string) {}

  private abs(parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  /**
   * The real location of the folder `parts` (every symlink on the way
   * followed, inside the root). Missing folders are made when `create` is
   * set; without it, undefined says the folder is not there.
   */
  private resolveDir(parts: string[], create: boolean, entry: string): string[] | undefined {
    const key = parts.join('/');
    if (this.realDirs.has(key)) return parts;
    const real = this.walkDir(parts, create, entry);
    if (real && real.join('/') === key) this.realDirs.add(key);
    return real;
  }

  private walkDir(parts: string[], create: boolean, entry: string): string[] | undefined {
    const real: string[] = [];
    const queue = [...parts];
    let hops = 0;
    while (queue.length > 0) {
      const part = queue.shift()!;
      if (part === '.' || part === '') continue;
      if (part === '..') {
        if (real.length === 0) throw new UnpackError(`${entry}: goes through a symlink that leads out of the image root`);
        real.pop();
        continue;
      }
      const at = this.abs([...real, part]);
      let st: fs.Stats | undefined;
      try { st = fs.lstatSync(at); } catch { st = undefined; }
      if (!st) {
        if (!create) return undefined;
        fs.mkdirSync(at, { mode: 0o755 });
        real.push(part);
        // made by this layer: it holds nothing of the layers below
        this.written.add(real.join('/'));
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS) throw new UnpackError(`${entry}: too many levels of symlinks`);
        const target = fs.readlinkSync(at);
        // relative to the folder holding the link (`real`), or to the image root
        if (target.startsWith('/')) real.length = 0;
        queue.unshift(...target.split('/'));
        continue;
      }
      if (!st.isDirectory()) throw new UnpackError(`${entry}: /${[...real, part].join('/')} is not a folder`);
      real.push(part);
    }
    return real;
  }

  /** Removes whatever is at `abs` (a folder with all it holds; a symlink itself, never what it names). */
  private clear(abs: string): void {
    this.realDirs.clear();
    fs.rmSync(abs, { recursive: true, force: true });
  }

  async apply(entry: Entry, report: ApplyReport): Promise<void> {
    const h = entry.header;
    const name = h.name.replace(/^(\.\/)+/, '');
    const parts = components(name, 'entry');
    if (parts.length === 0) return; // the root itself
    const base = parts[parts.length - 1];
    const dirParts = parts.slice(0, -1);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      report.whiteouts++;
      const dir = this.resolveDir(dirParts, false, name);
      if (base === OPAQUE_MARK) {
        if (dir) this.hideLower(dir);
        return;
      }
      const gone = base.slice(WHITEOUT_PREFIX.length);
      if (gone === '' || gone === '.' || gone === '..') throw new UnpackError(`whiteout "${name}": names no entry of its folder`);
      if (dir) this.clear(this.abs([...dir, gone]));
      return;
    }

    const dir = this.resolveDir(dirParts, true, name)!;
    const real = [...dir, base];
    const dest = this.abs(real);
    const mode = (h.mode ?? 0o644) & 0o777;
    const mtime = h.mtime ?? new Date(0);
    // files, the bulk of a layer, find out by their exclusive create whether a path is taken
    const taken = (): fs.Stats | undefined => { try { return fs.lstatSync(dest); } catch { return undefined; } };

    switch (h.type) {
      case 'directory': {
        const existing = taken();
        if (existing && !existing.isDirectory()) this.clear(dest);
        if (!existing || !existing.isDirectory()) fs.mkdirSync(dest, { mode: mode | 0o700 });
        fs.chmodSync(dest, mode | 0o700);
        this.folderTimes.push({ abs: dest, mtime });
        break;
      }
      case 'file':
      case 'contiguous-file': {
        const fd = this.createFile(dest, mode | 0o600);
        try {
          if (h.size <= SMALL_FILE) {
            // most package files are small: one blocking write costs a fraction of a file stream
            const chunks: Buffer[] = [];
            for await (const c of entry) chunks.push(c as Buffer);
            const data = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
            for (let done = 0; done < data.length;) done += fs.writeSync(fd, data, done);
            report.bytes += data.length;
          } else {
            const out = fs.createWriteStream('', { fd, autoClose: false });
            await pipeline(entry, out);
            report.bytes += out.bytesWritten;
          }
          fs.futimesSync(fd, mtime, mtime);
        } finally {
          fs.closeSync(fd);
        }
        break;
      }
      case 'link': {
        const target = this.linkTarget(h.linkname ?? '', name);
        const existing = taken();
        if (existing) {
          const t = fs.lstatSync(target);
          if (existing.ino === t.ino && existing.dev === t.dev) break;
          this.clear(dest);
        }
        fs.linkSync(target, dest);
        break;
      }
      case 'symlink': {
        const target = this.symlinkTarget(dir, h.linkname ?? '', name);
        if (taken()) this.clear(dest);
        this.realDirs.clear();
        fs.symlinkSync(target, dest);
        fs.lutimesSync(dest, mtime, mtime);
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo':
        report.skipped++;
        return;
      default:
        throw new UnpackError(`${name}: unsupported tar entry type ${h.type}`);
    }
    this.written.add(real.join('/'));
  }

  /**
   * A new file at `dest`, never written through what is there: whatever a
   * lower layer had at that path is removed first (unlinked, not truncated:
   * it may share its inode with another name, a hard link).
   */
  private createFile(dest: string, mode: number): number {
    try {
      return fs.openSync(dest, 'wx', mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      this.clear(dest);
      return fs.openSync(dest, 'wx', mode);
    }
  }

  /** A hard link's target: a file or another hard link already in the tree (this layer's or a lower one's). */
  private linkTarget(linkname: string, entry: string): string {
    const parts = components(linkname.replace(/^(\.\/)+/, ''), `hard link "${entry}" to`);
    if (parts.length === 0) throw new UnpackError(`hard link "${entry}": names no target`);
    // the folder's symlinks are followed, the target's own name is not (as link(2) does)
    const dir = this.resolveDir(parts.slice(0, -1), false, `hard link "${entry}" to ${linkname}`);
    const abs = dir && this.abs([...dir, parts[parts.length - 1]]);
    let st: fs.Stats | undefined;
    try { st = abs ? fs.lstatSync(abs) : undefined; } catch { st = undefined; }
    if (!abs || !st) throw new UnpackError(`hard link "${entry}": its target ${linkname} is not in the image`);
    if (st.isDirectory()) throw new UnpackError(`hard link "${entry}": its target ${linkname} is a folder`);
    if (st.isSymbolicLink()) throw new UnpackError(`hard link "${entry}": its target ${linkname} is a symlink`);
    return abs;
  }

  /**
   * A symlink's target as written here: relative to the folder it is in, and
   * inside the root. An absolute target names a path of the image; a
   * relative one that climbs above the root is refused (a container would
   * stop it at its root; here it would reach this machine's files).
   */
  private symlinkTarget(dir: string[], linkname: string, entry: string): string {
    if (linkname === '' || linkname.includes('\0')) throw new UnpackError(`symlink "${entry}": an empty or invalid target`);
    const target = linkname.startsWith('/') ? [] : [...dir];
    for (const p of linkname.split('/')) {
      if (p === '' || p === '.') continue;
      if (p === '..') {
        if (target.length === 0) throw new UnpackError(`symlink "${entry}" -> ${linkname}: leads out of the image root`);
        target.pop();
      } else {
        target.push(p);
      }
    }
    return path.posix.relative(`/${dir.join('/')}`, `/${target.join('/')}`) || '.';
  }

  /** `.wh..wh..opq`: everything in the folder that this layer did not write goes. */
  private hideLower(dir: string[]): void {
    const abs = this.abs(dir);
    let st: fs.Stats;
    try { st = fs.lstatSync(abs); } catch { return; }
    if (!st.isDirectory()) return;
    for (const child of fs.readdirSync(abs, { withFileTypes: true })) {
      const rel = [...dir, child.name];
      if (!this.written.has(rel.join('/'))) this.clear(this.abs(rel));
      else if (child.isDirectory()) this.hideLower(rel);
    }
  }

  /** End of the layer: folder times, deepest first (writing into a folder changes its time). */
  finish(): void {
    for (const f of [...this.folderTimes].reverse()) {
      try { fs.utimesSync(f.abs, f.mtime, f.mtime); } catch { /* removed by a later entry */ }
    }
  }
}
