import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';
import yauzl from 'yauzl';
import { directoryRecords, localDataStart, readEndRecord, UNICODE_PATH_EXTRA } from './zip-directory.js';
import { openZipArchive, type ZipArchive } from './zip-recipe.js';

/** One file of a package, by its path relative to the package root (always `/`-separated). */
export interface PackageFile {
  path: string;
  size: number;
  /** Last modification time; undefined where the source has none worth sending (zip entries). */
  mtime?: Date;
}

/**
 * Where a package's files live. Directory and zip packages (and later a baked
 * index) all sit behind this one interface, so nothing above it cares which.
 */
export interface PackageSource {
  readonly kind: 'directory' | 'zip';
  /** The package directory, or the .zip file. */
  readonly location: string;
  /** Files only, in the source's natural order: a sorted walk, or the zip's entry order. */
  files(): PackageFile[];
  file(relPath: string): PackageFile | undefined;
  readFile(relPath: string): Promise<Buffer>;
  openStream(relPath: string): Promise<Readable>;
}

export class SourceError extends Error {
  constructor(message: string, readonly file?: string) {
    super(message);
  }
}

// ---------------------------------------------------------------------------

export class DirectorySource implements PackageSource {
  readonly kind = 'directory' as const;
  private list: PackageFile[] | (() => PackageFile[]);
  private byPathMap: Map<string, PackageFile> | undefined;

  /**
   * `files` skips the walk when the list is already known (the builder's
   * package cache), or says how to read it when first needed (a baked index).
   */
  constructor(readonly location: string, files?: PackageFile[] | (() => PackageFile[])) {
    this.list = files ?? walkFiles(location);
  }

  /** Like the constructor, with the package's folders listed ahead, all at once (see listFolders). */
  static async open(location: string): Promise<DirectorySource> {
    return new DirectorySource(location, walkFiles(location, await listFolders(location)));
  }

  files(): PackageFile[] {
    if (typeof this.list === 'function') this.list = this.list();
    return this.list;
  }
  file(relPath: string): PackageFile | undefined { return this.byPath().get(relPath); }
  private byPath(): Map<string, PackageFile> {
    return this.byPathMap ??= new Map(this.files().map((f) => [f.path, f]));
  }

  /** fs.readFile with a callback: thousands of small manifests cost several times less CPU than through fs.promises. */
  readFile(relPath: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      fs.readFile(this.resolve(relPath), (err, data) => (err ? reject(err) : resolve(data)));
    });
  }

  async openStream(relPath: string): Promise<Readable> {
    return fs.createReadStream(this.resolve(relPath));
  }

  /** Only paths the walk found can be opened: nothing outside the package folder. */
  resolve(relPath: string): string {
    if (!this.byPath().has(relPath)) throw new SourceError(`no file ${relPath} in package`, relPath);
    return path.join(this.location, ...relPath.split('/'));
  }
}

/** `abs` relative to `root`, `/`-separated on every platform (how layers and packages name their files). */
export function relativePath(root: string, abs: string): string {
  return path.relative(root, abs).split(path.sep).join('/');
}

/** Byte-order comparison, as Go sorts names: independent of locale. */
export function byteCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A file found by the walk. Its size and time are read when first asked for:
 * loading needs only the names (a stat of each of a registry's 100,000+
 * files was a third of the start-up), and the rare users that need them
 * (baking an index) pay for just their own.
 */
class WalkedFile implements PackageFile {
  private stats?: fs.Stats;
  constructor(private readonly root: string, readonly path: string) {}
  get size(): number { return this.stat().size; }
  get mtime(): Date { return this.stat().mtime; }
  private stat(): fs.Stats {
    return (this.stats ??= fs.statSync(path.join(this.root, ...this.path.split('/'))));
  }
}

/**
 * All regular files below `root` in a sorted depth-first walk; links that
 * leave `root` are skipped, a link back to a folder being walked is an error.
 * Folders already listed (`listed`) are not read again. Blocking I/O
 * otherwise: it costs the least CPU (fs.promises cost several times more).
 */
export function walkFiles(root: string, listed?: FolderListings): PackageFile[] {
  const out: PackageFile[] = [];
  const realRoot = fs.realpathSync(root);
  const visit = (dir: string, rel: string, realDir: string): void => {
    const entries = (listed?.get(dir) ?? fs.readdirSync(dir, { withFileTypes: true })).sort((a, b) => byteCompare(a.name, b.name));
    for (const e of entries) {
      const relPath = rel ? `${rel}/${e.name}` : e.name;
      if (e.isFile()) { out.push(new WalkedFile(root, relPath)); continue; }
      if (e.isDirectory()) { visit(path.join(dir, e.name), relPath, path.join(realDir, e.name)); continue; }
      if (!e.isSymbolicLink()) continue;
      const abs = path.join(dir, e.name);
      let real: string;
      let st: fs.Stats;
      try { real = fs.realpathSync(abs); st = fs.statSync(abs); } catch { continue; }
      if (real !== realRoot && !real.startsWith(realRoot + path.sep)) continue;
      if (st.isFile()) { out.push(new WalkedFile(root, relPath)); continue; }
      if (!st.isDirectory()) continue;
      if (realDir === real || realDir.startsWith(real + path.sep)) {
        throw new SourceError(`symbolic link loop: ${relPath} points back to ${path.relative(realRoot, real) || 'the package folder'}`, path.join(root, relPath));
      }
      visit(abs, relPath, real);
    }
  };
  visit(root, '', realRoot);
  return out;
}

/** Folder contents by absolute path, read ahead of a walk. */
export type FolderListings = Map<string, fs.Dirent[]>;

/** Which folders listFolders goes on into. */
export interface ListingRule {
  /** whether the subfolders of `dir` are listed too (default: yes) */
  descend?(dir: string, entries: fs.Dirent[]): boolean;
  /** whether a subfolder of that name is listed (default: yes) */
  include?(name: string): boolean;
}

/**
 * Lists `root` and the folders below it (not through symbolic links, which
 * the walks follow themselves), all requests on the thread pool at once: on a
 * cold page cache (a container's first start, or files unread for a while)
 * one folder at a time waits for the disk thousands of times. Callbacks, not
 * fs.promises: at 100,000 folders the promise API costs several times more
 * CPU. A folder that cannot be read is left out, for the walk to meet its error.
 */
export function listFolders(root: string, rule: ListingRule = {}): Promise<FolderListings> {
  const listed: FolderListings = new Map();
  return new Promise((resolve) => {
    let pending = 0;
    const list = (dir: string) => {
      pending++;
      fs.readdir(dir, { withFileTypes: true }, (err, entries) => {
        if (!err) {
          listed.set(dir, entries);
          if (rule.descend?.(dir, entries) ?? true) {
            for (const e of entries) if (e.isDirectory() && (rule.include?.(e.name) ?? true)) list(path.join(dir, e.name));
          }
        }
        if (--pending === 0) resolve(listed);
      });
    };
    list(root);
  });
}

// ---------------------------------------------------------------------------

/** Where an entry's bytes are, from the zip's central directory (read once, at open). */
interface EntrySpan { method: number; flags: number; compressedSize: number; localHeader: number }
interface ZipEntryRef extends PackageFile { entryName: string; span: EntrySpan }

/** A package kept as `<name>-<version>.zip`, read in place; entries are checked once at load. */
export class ZipSource implements PackageSource {
  readonly kind = 'zip' as const;
  private constructor(
    readonly location: string,
    readonly topFolder: string,
    private readonly list: ZipEntryRef[],
    private readonly byPath: Map<string, ZipEntryRef>,
    readonly hasDirectoryEntries: boolean,
    /** the zip's bytes: the file, or rebuilt from its recipe (zip-recipe.ts) */
    readonly archive: ZipArchive,
  ) {}

  /** `layerRoot`: the package path the zip was found in, whose entry store a zip recipe is read from. */
  static async open(location: string, layerRoot?: string): Promise<ZipSource> {
    const archive = await openZipArchive(location, layerRoot).catch((err: Error) => { throw new SourceError(err.message, location); });
    const names = await listZipEntries(archive);
    const files: ZipEntryRef[] = [];
    const tops = new Set<string>();
    let dirEntries = false;
    for (const e of names) {
      const problem = unsafeEntryName(e.name);
      if (problem) throw new SourceError(`unsafe entry "${e.name}" in ${path.basename(location)}: ${problem}`, location);
      const slash = e.name.indexOf('/');
      tops.add(slash < 0 ? e.name : e.name.slice(0, slash));
      if (e.name.endsWith('/')) { dirEntries = true; continue; }
      if (slash < 0) continue;
      files.push({ entryName: e.name, path: e.name.slice(slash + 1), size: e.size, span: e.span });
    }
    if (tops.size !== 1) {
      throw new SourceError(`${path.basename(location)} must hold exactly one top folder <name>-<version>/, found ${tops.size === 0 ? 'none' : [...tops].sort(byteCompare).join(', ')}`, location);
    }
    const top = [...tops][0];
    return new ZipSource(location, top, files, new Map(files.map((f) => [f.path, f])), dirEntries, archive);
  }

  files(): PackageFile[] { return this.list; }
  file(relPath: string): PackageFile | undefined { return this.byPath.get(relPath); }

  /**
   * Reads the entry where the central directory says it is: one read and one
   * inflate, instead of walking the zip's entries again for every file (a
   * package's manifests are a dozen or more such reads at start-up).
   */
  readFile(relPath: string): Promise<Buffer> {
    const ref = this.byPath.get(relPath);
    if (!ref) return Promise.reject(new SourceError(`no file ${relPath} in package`, relPath));
    let data: Buffer;
    try {
      data = this.archive.readSync(this.dataStart(ref), ref.span.compressedSize);
    } catch (err) {
      return Promise.reject(this.entryError(ref, (err as Error).message));
    }
    if (ref.span.method === 0) return data.length === ref.size ? Promise.resolve(data) : Promise.reject(this.sizeError(ref, data.length));
    return new Promise((resolve, reject) => {
      zlib.inflateRaw(data, { maxOutputLength: Math.max(1, ref.size) }, (err, out) => {
        if (err) reject(this.entryError(ref, err.message));
        else if (out.length !== ref.size) reject(this.sizeError(ref, out.length));
        else resolve(out);
      });
    });
  }

  openStream(relPath: string): Promise<Readable> {
    const ref = this.byPath.get(relPath);
    if (!ref) return Promise.reject(new SourceError(`no file ${relPath} in package`, relPath));
    let start: number;
    try {
      start = this.dataStart(ref);
    } catch (err) {
      return Promise.reject(this.entryError(ref, (err as Error).message));
    }
    const raw = ref.span.compressedSize === 0 ? Readable.from([]) : this.archive.createReadStream(start, start + ref.span.compressedSize - 1);
    const bytes = ref.span.method === 0 ? raw : raw.pipe(zlib.createInflateRaw()).on('error', () => raw.destroy());
    if (ref.span.method !== 0) raw.on('error', (err) => bytes.destroy(err));
    // as yauzl's validateEntrySizes: an entry that inflates to another size than the directory says is an error
    let seen = 0;
    const checked = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        seen += chunk.length;
        done(seen > ref.size ? this.sizeError(ref, seen) : null, chunk);
      },
      flush: (done) => done(seen !== ref.size ? this.sizeError(ref, seen) : null),
    });
    bytes.on('error', (err) => checked.destroy(err));
    return Promise.resolve(bytes.pipe(checked));
  }

  /** Where the entry's data begins: after its local header, whose name and extra field lengths are its own. */
  private dataStart(ref: ZipEntryRef): number {
    const { localHeader, flags, method } = ref.span;
    if (flags & 0x1) throw new Error('encrypted entries are not supported');
    if (method !== 0 && method !== 8) throw new Error(`compression method ${method} is not supported`);
    const start = localDataStart(this.archive, localHeader);
    if (start === undefined) throw new Error('no local file header where the central directory says');
    return start;
  }

  private entryError(ref: ZipEntryRef, message: string): SourceError {
    return new SourceError(`cannot read ${ref.entryName} in ${path.basename(this.location)}: ${message}`, this.location);
  }

  private sizeError(ref: ZipEntryRef, got: number): SourceError {
    return this.entryError(ref, `entry is ${got > ref.size ? 'longer' : 'shorter'} than the ${ref.size} bytes the zip says`);
  }
}

/** Why a zip entry name could escape its folder, or undefined when it is safe. */
export function unsafeEntryName(name: string): string | undefined {
  if (name.includes('\\')) return 'backslash in path';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'absolute path';
  if (name.split('/').some((seg) => seg === '..')) return 'parent directory reference';
  if (name.includes('\0')) return 'NUL in path';
  return undefined;
}

function openZip(archive: ZipArchive): Promise<yauzl.ZipFile> {
  const location = archive.file;
  // validateEntrySizes guards against archives that lie about their sizes.
  return archive.openYauzl({ lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true, strictFileNames: false }).catch((err: Error) => {
    throw new SourceError(`cannot read zip ${path.basename(location)}: ${err?.message ?? 'unknown error'}`, location);
  });
}

type ListedEntry = { name: string; size: number; span: EntrySpan };

/**
 * The entries of a plain zip's central directory, read in one piece: yauzl
 * reads each record with reads of its own, which cost more than all the rest
 * of opening a zip package. Anything this does not read exactly as yauzl
 * would (zip64, names that are not plain UTF-8 or ASCII, unicode path extra
 * fields, backslashes or unsafe names, stored entries whose sizes differ,
 * anything inconsistent) gives undefined, and yauzl reads the zip, with its
 * own checks and error messages.
 */
function readCentralDirectory(archive: ZipArchive): ListedEntry[] | undefined {
  const end = readEndRecord(archive);
  if (!end || !end.last || end.zip64 || end.disk !== 0 || end.directoryDisk !== 0 || end.diskEntries !== end.entries) return undefined;
  if (end.directoryOffset + end.directorySize > end.offset) return undefined;
  const cd = archive.readSync(end.directoryOffset, end.directorySize);
  const out: ListedEntry[] = [];
  for (const r of directoryRecords(cd, end.entries)) {
    if (r.end > cd.length || r.zip64) return undefined;
    if (r.method === 0 && r.compressedSize !== r.uncompressedSize) return undefined;
    if (!(r.flags & 0x800) && r.name.some((b) => b >= 0x80)) return undefined;
    if (r.extraIds.includes(UNICODE_PATH_EXTRA)) return undefined;
    const name = r.name.toString('utf8');
    if (name.includes('\\') || name.includes('\ufffd') || unsafeEntryName(name)) return undefined;
    out.push({ name, size: r.uncompressedSize, span: { method: r.method, flags: r.flags, compressedSize: r.compressedSize, localHeader: r.localHeader } });
  }
  return out.length === end.entries ? out : undefined;
}

async function listZipEntries(archive: ZipArchive): Promise<ListedEntry[]> {
  try {
    const listed = readCentralDirectory(archive);
    if (listed) return listed;
  } catch { /* yauzl reads it and says what is wrong */ }
  const location = archive.file;
  const zip = await openZip(archive);
  return new Promise((resolve, reject) => {
    const out: ListedEntry[] = [];
    zip.on('entry', (e: yauzl.Entry) => {
      out.push({ name: e.fileName, size: e.uncompressedSize, span: { method: e.compressionMethod, flags: e.generalPurposeBitFlag, compressedSize: e.compressedSize, localHeader: e.relativeOffsetOfLocalHeader } });
      zip.readEntry();
    });
    zip.on('end', () => { zip.close(); resolve(out); });
    zip.on('error', (err: Error) => { zip.close(); reject(new SourceError(`cannot read zip ${path.basename(location)}: ${err.message}`, location)); });
    zip.readEntry();
  });
}
