import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import yauzl from 'yauzl';
import type { ZipArchive } from '../server/packages/zip-recipe.js';
import { PROJECT_ROOT } from '../server/config.js';
import { relativePath } from '../server/packages/source.js';
import type { LayerDef } from './distribution.js';
import { keepRecent, markUsed } from './cache-files.js';
import { removeTree } from './remove-tree.js';

/**
 * Where a layer's packages come from. A folder source is read in place (never
 * copied or touched: the image layer is written straight from it). A git
 * source is read from the object store (`git archive`), never checked out, so
 * the storage repository's working tree is left alone and any ref can be
 * built; its tree is extracted once into the builder's cache, by tree id, and
 * reused while that tree is what the layer names.
 */

export class SourceMissingError extends Error {}

export interface MaterialisedLayer {
  name: string;
  /** the folder holding the layer's packages: the source folder itself, or a git tree's extraction */
  dir: string;
  /** commit the content came from */
  commit: string;
  /** the repository `commit` belongs to (for its tags) */
  repo: string;
  /** how to name the source to a human: a folder, or repo@ref:path */
  origin: string;
  kind: 'directory' | 'git';
  /**
   * The content is not exactly `commit`: a folder with uncommitted changes, or
   * outside any git repository. Such a build gets no commit or version tag.
   */
  dirty: boolean;
  /** the folder is a git tree the builder extracted into its cache by tree id: nothing changes it */
  immutable?: boolean;
}

const GIT_TIMEOUT_MS = 120_000;
/** extracting a whole storage tree (gigabytes) */
const EXTRACT_TIMEOUT_MS = 30 * 60_000;

/** `git -C <repo> <args>`, bounded in time; never throws. */
export function git(repo: string, args: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync('git', ['-C', repo, ...args], { encoding: 'utf8', timeout: GIT_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) return { ok: false, out: '', err: r.error.message };
  return { ok: r.status === 0, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** `git rev-parse <ref>^{commit}`, or undefined when `repo` is not a git repository or the ref is unknown. */
export function resolveCommit(repo: string, ref = 'HEAD'): string | undefined {
  const r = git(repo, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  return r.ok && /^[0-9a-f]{40,64}$/.test(r.out) ? r.out : undefined;
}

/** Names of the tags that point at `commit` (annotated or lightweight). */
export function tagsPointingAt(repo: string, commit: string): string[] {
  const r = git(repo, ['tag', '--points-at', commit]);
  return r.ok && r.out ? r.out.split('\n').map((s) => s.trim()).filter(Boolean) : [];
}

/** The project's own commit (what the registry server in the image is built from). */
export function projectCommit(): string {
  return resolveCommit(PROJECT_ROOT) ?? 'unknown';
}

export interface MaterialiseOptions {
  /** a scratch folder of this build (git trees are extracted below it without a cache) */
  work: string;
  /** the builder's cache folder: git trees are kept in <cacheDir>/git-trees/<tree id> */
  cacheDir?: string;
}

const KEEP_TREES = 8;

/** Finds a layer's source and says which commit it is; a git source is extracted (or found extracted). */
export async function materialiseLayer(layer: LayerDef, o: MaterialiseOptions): Promise<MaterialisedLayer> {
  const src = layer.source;
  if (src.kind === 'directory') {
    if (!fs.existsSync(src.directory) || !fs.statSync(src.directory).isDirectory()) {
      throw new SourceMissingError(`layer "${layer.name}": source folder ${src.directory} does not exist`);
    }
    const dir = fs.realpathSync(src.directory);
    const top = git(src.directory, ['rev-parse', '--show-toplevel']);
    const commit = top.ok ? resolveCommit(top.out) : undefined;
    if (!top.ok || !commit) return { name: layer.name, dir, commit: 'unknown', repo: src.directory, origin: src.directory, kind: 'directory', dirty: true };
    // ignored files count too: they would be in the image without being in the commit
    const status = git(src.directory, ['status', '--porcelain', '--untracked-files=all', '--ignored=matching', '--', '.']);
    return { name: layer.name, dir, commit, repo: top.out, origin: src.directory, kind: 'directory', dirty: !status.ok || status.out !== '' };
  }

  if (!fs.existsSync(src.repo)) throw new SourceMissingError(`layer "${layer.name}": git repository ${src.repo} does not exist`);
  const commit = resolveCommit(src.repo, src.ref);
  if (!commit) throw new SourceMissingError(`layer "${layer.name}": ${src.repo} has no commit "${src.ref}" (or is not a git repository)`);
  const origin = `${src.repo}@${src.ref}${src.path ? `:${src.path}` : ''}`;
  const treeRef = src.path ? `${commit}:${src.path}` : `${commit}^{tree}`;
  const kind = git(src.repo, ['cat-file', '-t', treeRef]);
  if (!kind.ok || kind.out !== 'tree') throw new SourceMissingError(`layer "${layer.name}": ${origin} is not a folder at commit ${commit.slice(0, 12)}`);
  const tree = git(src.repo, ['rev-parse', treeRef]).out;
  const result = { name: layer.name, commit, repo: src.repo, origin, kind: 'git' as const, dirty: false };

  let cached = o.cacheDir ? path.join(o.cacheDir, 'git-trees', tree) : undefined;
  // an unwritable cache only costs time: the tree goes into this build's scratch folder
  if (cached && !writableDir(path.dirname(cached))) cached = undefined;
  if (cached && fs.existsSync(`${cached}.done`)) {
    markUsed(`${cached}.done`);
    return { ...result, dir: cached, immutable: true };
  }
  const into = cached ? `${cached}.${process.pid}.partial` : path.join(o.work, 'layers', layer.name);
  removeTree(into);
  fs.mkdirSync(into, { recursive: true });
  // git archive | tar -x: the system tar unpacks a tree of 100,000 files many times faster than a JavaScript one
  const args = ['-C', src.repo, 'archive', '--format=tar', commit];
  if (src.path) args.push('--', src.path);
  const gitArchive = spawn('git', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const strip = src.path ? src.path.split('/').length : 0;
  const untar = spawn('tar', ['-x', '-f', '-', '-C', into, `--strip-components=${strip}`, '--no-same-owner'], { stdio: [gitArchive.stdout, 'ignore', 'pipe'] });
  // tar has its own copy of the pipe: this process must not hold the reading end open
  gitArchive.stdout.destroy();
  const exit = (c: ReturnType<typeof spawn>) => {
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const stderrDone = new Promise<void>((resolve) => { if (c.stderr) c.stderr.on('close', () => resolve()); else resolve(); });
    return new Promise<{ code: number; stderr: string }>((resolve) => {
      c.on('error', (err) => resolve({ code: 127, stderr: err.message }));
      c.on('exit', (code, signal) => { void stderrDone.then(() => resolve({ code: code ?? (signal ? 128 : 1), stderr })); });
    });
  };
  const timer = setTimeout(() => { gitArchive.kill('SIGKILL'); untar.kill('SIGKILL'); }, EXTRACT_TIMEOUT_MS);
  try {
    const [g, t] = await Promise.all([exit(gitArchive), exit(untar)]);
    if (g.code !== 0) throw new SourceMissingError(`layer "${layer.name}": git archive of ${origin} failed: ${g.stderr.trim().split('\n')[0] || `exit ${g.code}`}`);
    if (t.code !== 0) throw new SourceMissingError(`layer "${layer.name}": unpacking ${origin} into ${into} failed: ${t.stderr.trim().split('\n')[0] || `exit ${t.code}`}`);
  } catch (err) {
    if (cached) removeTree(into);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  if (!cached) return { ...result, dir: into };
  removeTree(cached);
  fs.renameSync(into, cached);
  fs.writeFileSync(`${cached}.done`, `${origin}\n`);
  pruneTrees(path.dirname(cached));
  return { ...result, dir: cached, immutable: true };
}

function writableDir(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Keeps the most recently used extracted trees only. */
function pruneTrees(dir: string): void {
  keepRecent(dir, '.done', KEEP_TREES, (marker) => {
    fs.rmSync(marker, { force: true });
    removeTree(marker.slice(0, -'.done'.length));
  });
}

// ---------------------------------------------------------------------------
// Links are no way out of a package. The builder writes every file of a
// package into the image as the bytes it reads, so a link in a layer folder
// (or in a git tree, which arrives as a tar) that reaches outside its package
// would carry a file from elsewhere on the build machine into the image. Such
// a package is refused at build time, naming the link; the server's own walk
// only leaves such links out, silently.

/** Why a package is refused: a link in it reaches outside it. */
export interface LinkProblem {
  file: string;
  message: string;
}

const within = (real: string, root: string) => real === root || real.startsWith(root + path.sep);

/** Where a symbolic link leads: its real path, or (dangling) its target resolved from its real folder. */
function linkTarget(abs: string): string {
  try {
    return fs.realpathSync.native(abs);
  } catch {
    return path.resolve(fs.realpathSync.native(path.dirname(abs)), fs.readlinkSync(abs));
  }
}

/**
 * Lists a package folder and every folder below it (not through symbolic
 * links, which the walk follows itself), as walkFiles takes them, and refuses
 * the package when a symbolic link in it points outside it. Errors reading a
 * folder are thrown, as the walk throws them.
 */
export function listPackageFolder(dir: string): { listed: Map<string, fs.Dirent[]>; problem?: LinkProblem } {
  const listed = new Map<string, fs.Dirent[]>();
  const realRoot = fs.realpathSync.native(dir);
  const visit = (d: string): LinkProblem | undefined => {
    const entries = fs.readdirSync(d, { withFileTypes: true });
    listed.set(d, entries);
    for (const e of entries) {
      const abs = path.join(d, e.name);
      if (e.isDirectory()) {
        const p = visit(abs);
        if (p) return p;
      } else if (e.isSymbolicLink() && !within(linkTarget(abs), realRoot)) {
        return { file: abs, message: `symbolic link ${relativePath(dir, abs)} points outside its package (to ${fs.readlinkSync(abs)}): refused` };
      }
    }
    return undefined;
  };
  return { listed, problem: visit(dir) };
}

/**
 * Refuses a package with a file that has other names (hard links) outside
 * it: the walk cannot tell which name is the file's own. `files` are the
 * walked files of the package folder `dir`, with their stats (links followed).
 */
export function hardLinkProblem(dir: string, files: Array<{ abs: string; stats: fs.Stats }>): LinkProblem | undefined {
  const names = new Map<string, { first: string; nlink: number; real: Set<string> }>();
  for (const { abs, stats } of files) {
    if (stats.nlink < 2) continue;
    const key = `${stats.dev}:${stats.ino}`;
    const n = names.get(key) ?? { first: abs, nlink: stats.nlink, real: new Set<string>() };
    n.real.add(fs.realpathSync.native(abs));
    names.set(key, n);
  }
  for (const n of names.values()) {
    if (n.real.size < n.nlink) {
      return { file: n.first, message: `${relativePath(dir, n.first)} is a hard link to a file outside its package (${n.nlink} names, ${n.real.size} of them in the package): refused; copy the file instead` };
    }
  }
  return undefined;
}

/**
 * Refuses a package (a folder, or a zip and its signature) that a symbolic
 * link takes out of the layer folder `root`, and a zip or signature with
 * other names (hard links): a zip package is that one file.
 */
export function packagePlaceProblem(root: string, abs: string, kind: 'zip' | 'directory'): LinkProblem | undefined {
  const realRoot = fs.realpathSync.native(root);
  for (const f of kind === 'zip' ? [abs, `${abs}.sig`] : [abs]) {
    if (!fs.existsSync(f)) continue;
    const real = linkTarget(f);
    if (!within(real, realRoot)) return { file: f, message: `${relativePath(root, f)} leads outside the layer folder (to ${real}) through a symbolic link: refused` };
    const names = kind === 'zip' ? fs.statSync(f).nlink : 1;
    if (names > 1) return { file: f, message: `${relativePath(root, f)} is a hard link (the file has ${names} names): a zip package or signature with another name elsewhere is refused; copy the file instead` };
  }
  return undefined;
}

/** Unix file type bits of a zip entry (the high half of its external attributes, as Info-ZIP writes them). */
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/**
 * Refuses a zip whose symbolic link entries (the target is the entry's
 * content) lead outside its top folder. Other names are checked by the
 * package model itself (ZipSource: no `..`, no absolute paths).
 */
export async function zipLinkProblem(zip: string, archive?: ZipArchive): Promise<LinkProblem | undefined> {
  const options = { lazyEntries: true, autoClose: false, decodeStrings: true, strictFileNames: false };
  // `archive`: the zip as the package model reads it (rebuilt from its recipe, when it is one)
  const file = archive ? await archive.openYauzl(options) : await new Promise<yauzl.ZipFile>((resolve, reject) => {
    yauzl.open(zip, options, (err, z) => (err || !z ? reject(err ?? new Error('cannot read zip')) : resolve(z)));
  });
  try {
    return await new Promise<LinkProblem | undefined>((resolve, reject) => {
      file.on('error', reject);
      file.on('end', () => resolve(undefined));
      file.on('entry', (e: yauzl.Entry) => {
        if (((e.externalFileAttributes >>> 16) & S_IFMT) !== S_IFLNK) { file.readEntry(); return; }
        file.openReadStream(e, (err, stream) => {
          if (err || !stream) { reject(err ?? new Error('cannot read entry')); return; }
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('error', reject);
          stream.on('end', () => {
            const target = Buffer.concat(chunks).toString('utf8');
            const top = e.fileName.split('/')[0];
            const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(e.fileName), target));
            if (target.startsWith('/') || !(resolved === top || resolved.startsWith(`${top}/`))) {
              resolve({ file: zip, message: `${path.basename(zip)}: entry ${e.fileName} is a symbolic link to ${target}, outside the package: refused` });
            } else file.readEntry();
          });
        });
      });
      file.readEntry();
    });
  } finally {
    file.close();
  }
}
