import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { walkFiles } from '../../server/packages/source.js';
import { copiesIn, versionsIn, PromotionError, type AddReceipt, type LocalCopy, type PackageCopy, type StageLayer } from './layer.js';
import type { PackageId } from './stages.js';
import { removeTree } from '../remove-tree.js';

/**
 * A stage layer that is a folder on a git branch. Promotion commits to the
 * branch with plumbing only: objects are written with hash-object, trees are
 * built in a temporary index file (GIT_INDEX_FILE), the commit is made with
 * commit-tree and the branch moved with a compare-and-swap update-ref. No
 * working tree and no user index is read or written, so promotion can run in
 * the user's clone whatever is checked out there (as long as it is not one of
 * the two stage branches).
 */

const GIT_TIMEOUT_MS = 120_000;

interface GitResult { ok: boolean; out: string; err: string; stdout: Buffer }

/** The environment git runs in: nothing inherited may point it at another index or tree. */
function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // GIT_OPTIONAL_LOCKS=0: `git status` in a user's worktree must not even refresh its index
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_OPTIONAL_LOCKS: '0', ...extra };
  for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_NAMESPACE']) if (!(k in extra)) delete env[k];
  return env;
}

export function git(repo: string, args: string[], opts: { input?: string | Buffer; env?: Record<string, string> } = {}): GitResult {
  const r = spawnSync('git', ['--literal-pathspecs', '-C', repo, ...args], {
    input: opts.input,
    env: gitEnv(opts.env),
    timeout: GIT_TIMEOUT_MS,
    maxBuffer: 1024 * 1024 * 1024,
  });
  if (r.error) return { ok: false, out: '', err: r.error.message, stdout: Buffer.alloc(0) };
  return { ok: r.status === 0, out: r.stdout.toString('utf8').trim(), err: r.stderr.toString('utf8').trim(), stdout: r.stdout };
}

function must(repo: string, args: string[], what: string, opts?: { input?: string | Buffer; env?: Record<string, string> }): GitResult {
  const r = git(repo, args, opts);
  if (!r.ok) {
    if (/tell me who you are|empty ident/i.test(r.err)) {
      throw new PromotionError('git', `git has no identity to commit with in ${repo}: set it (git -C ${repo} config user.name "..." and user.email "...")`);
    }
    const line = r.err.split('\n').find((l) => l.trim() && !l.startsWith('***')) ?? `git ${args[0]} exited with an error`;
    throw new PromotionError('git', `${what} failed in ${repo}: ${line}`);
  }
  return r;
}

interface TreeEntry { mode: string; type: string; sha: string; path: string }

function lsTree(repo: string, commit: string, paths: string[]): TreeEntry[] {
  const r = must(repo, ['ls-tree', '-r', '-z', '--full-tree', commit, '--', ...paths], 'git ls-tree');
  return r.stdout.toString('utf8').split('\0').filter(Boolean).map((line) => {
    const tab = line.indexOf('\t');
    const [mode, type, sha] = line.slice(0, tab).split(' ');
    return { mode, type, sha, path: line.slice(tab + 1) };
  });
}

/** Blob contents by sha, in one `git cat-file --batch`. */
function readBlobs(repo: string, shas: string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (shas.length === 0) return out;
  const r = must(repo, ['cat-file', '--batch'], 'git cat-file', { input: shas.join('\n') + '\n' });
  const buf = r.stdout;
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    const header = buf.subarray(pos, nl).toString('utf8').split(' ');
    if (header[1] === 'missing') throw new PromotionError('git', `object ${header[0]} is missing in ${repo}`);
    const size = Number(header[2]);
    out.set(header[0], Buffer.from(buf.subarray(nl + 1, nl + 1 + size)));
    pos = nl + 1 + size + 1;
  }
  return out;
}

interface Worktree { path: string; branch?: string; bare: boolean }

function worktrees(repo: string): Worktree[] {
  const r = must(repo, ['worktree', 'list', '--porcelain'], 'git worktree list');
  return r.out.split(/\n\n+/).filter(Boolean).map((block) => {
    const lines = block.split('\n');
    const wt: Worktree = { path: '', bare: false };
    for (const l of lines) {
      if (l.startsWith('worktree ')) wt.path = l.slice('worktree '.length);
      else if (l.startsWith('branch ')) wt.branch = l.slice('branch '.length);
      else if (l === 'bare') wt.bare = true;
    }
    return wt;
  });
}

/** A throwaway index file; git creates it on read-tree. */
function withTempIndex<T>(fn: (env: Record<string, string>) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'epr-promote-index-'));
  try {
    return fn({ GIT_INDEX_FILE: path.join(dir, 'index') });
  } finally {
    removeTree(dir);
  }
}

export class GitLayer implements StageLayer {
  readonly kind = 'git' as const;
  readonly branch: string;
  /** the branch's commit this promotion works from (moved by our own add) */
  private head = '';

  constructor(readonly stage: string, readonly repo: string, readonly ref: string, readonly layerPath: string) {
    this.branch = ref.replace(/^refs\/heads\//, '');
  }

  get origin(): string { return `${this.repo}@${this.branch}${this.layerPath ? `:${this.layerPath}` : ''}`; }

  private get refName(): string { return `refs/heads/${this.branch}`; }

  private full(rel: string): string { return this.layerPath ? `${this.layerPath}/${rel}` : rel; }

  private resolveBranch(): string | undefined {
    const r = git(this.repo, ['rev-parse', '--verify', '--quiet', `${this.refName}^{commit}`]);
    return r.ok && r.out ? r.out : undefined;
  }

  preflight(): void {
    if (!fs.existsSync(this.repo) || !git(this.repo, ['rev-parse', '--git-dir']).ok) {
      throw new PromotionError('layer-missing', `the ${this.stage} layer's repository ${this.repo} is not a git repository`);
    }
    const head = this.resolveBranch();
    if (!head) {
      const other = git(this.repo, ['rev-parse', '--verify', '--quiet', `${this.ref}^{commit}`]);
      if (other.ok && other.out) {
        throw new PromotionError('branch-missing', `the ${this.stage} layer is read from "${this.ref}" in ${this.repo}, which is not a branch; promotion commits to branches`);
      }
      const branches = git(this.repo, ['for-each-ref', '--format=%(refname:short)', 'refs/heads/']).out.split('\n').filter(Boolean);
      throw new PromotionError('branch-missing', `branch "${this.branch}" (the ${this.stage} layer) does not exist in ${this.repo}${branches.length ? ` (branches: ${branches.join(', ')})` : ''}`);
    }
    for (const wt of worktrees(this.repo)) {
      if (wt.bare || wt.branch !== this.refName || !fs.existsSync(wt.path)) continue;
      const status = git(wt.path, ['status', '--porcelain', '--untracked-files=all']);
      const changes = status.out.split('\n').filter(Boolean).length;
      if (!status.ok || changes > 0) {
        throw new PromotionError('branch-dirty', `branch "${this.branch}" (the ${this.stage} layer) is checked out in ${wt.path} with ${status.ok ? `${changes} uncommitted change(s)` : 'a status git cannot read'}; ` +
          'commit or stash them and switch that worktree to another branch, or promote from another clone. Promotion never touches a working tree');
      }
      throw new PromotionError('branch-checked-out', `branch "${this.branch}" (the ${this.stage} layer) is checked out in ${wt.path}; moving it there would leave that working tree behind its branch. ` +
        `Switch it to another branch (git -C ${wt.path} switch --detach) or promote from another clone`);
    }
    // said before anything happens (and in a dry run), not by the first commit-tree
    const ident = git(this.repo, ['var', 'GIT_COMMITTER_IDENT']);
    if (!ident.ok) throw new PromotionError('git', `git has no identity to commit with in ${this.repo}: set it (git -C ${this.repo} config user.name "..." and user.email "...")`);
    if (this.layerPath) {
      const kind = git(this.repo, ['cat-file', '-t', `${head}:${this.layerPath}`]);
      if (!kind.ok || kind.out !== 'tree') throw new PromotionError('layer-missing', `${this.origin} is not a folder on branch ${this.branch} (${head.slice(0, 12)})`);
    }
    this.head = head;
  }

  /** Every file of the layer on the branch, layer-relative. */
  private listed(): string[] {
    const entries = lsTree(this.repo, this.head, this.layerPath ? [this.layerPath] : []);
    const prefix = this.layerPath ? `${this.layerPath}/` : '';
    return entries.filter((e) => e.path.startsWith(prefix)).map((e) => e.path.slice(prefix.length));
  }

  find(id: PackageId): PackageCopy[] { return copiesIn(this.listed(), id); }
  versions(name: string): string[] { return versionsIn(this.listed(), name); }

  private copyPaths(copy: PackageCopy): string[] {
    return copy.kind === 'zip' ? [this.full(copy.rel), ...(copy.signature ? [this.full(`${copy.rel}.sig`)] : [])] : [this.full(copy.rel)];
  }

  /** Extracts the copy's blobs (exact bytes: no filters, no export attributes) into a temporary folder. */
  async readCopy(copy: PackageCopy, commit = this.head): Promise<LocalCopy> {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `epr-promote-${this.stage}-`));
    try {
      const entries = lsTree(this.repo, commit, this.copyPaths(copy)).filter((e) => e.type === 'blob' && e.mode !== '120000');
      const blobs = readBlobs(this.repo, [...new Set(entries.map((e) => e.sha))]);
      const prefix = this.layerPath ? `${this.layerPath}/` : '';
      for (const e of entries) {
        const abs = path.join(tmp, ...e.path.slice(prefix.length).split('/'));
        fs.mkdirSync(path.dirname(abs), { recursive: true });
        fs.writeFileSync(abs, blobs.get(e.sha)!, { mode: e.mode === '100755' ? 0o755 : 0o644 });
      }
    } catch (err) {
      removeTree(tmp);
      throw err;
    }
    const location = path.join(tmp, ...copy.rel.split('/'));
    return {
      copy,
      location,
      signatureFile: copy.kind === 'zip' && copy.signature ? `${location}.sig` : undefined,
      release: () => removeTree(tmp),
    };
  }

  message(subject: string): string { return `[${this.branch}] ${subject}`; }

  describeAdd(copy: PackageCopy, subject: string): string {
    return `commit on ${this.branch} adding ${this.full(copy.rel)}${copy.kind === 'zip' && copy.signature ? ' (+ .sig)' : ''}: "${this.message(subject)}"`;
  }

  describeRemove(copy: PackageCopy, subject: string): string {
    return `commit on ${this.branch} removing ${this.full(copy.rel)}${copy.kind === 'zip' && copy.signature ? ' (+ .sig)' : ''}: "${this.message(subject)}"`;
  }

  /** Builds a commit on `parent` whose tree is `parent`'s with `edit` applied; returns its id. */
  private commitOn(parent: string, edit: (env: Record<string, string>) => void, subject: string, body: string): string {
    return withTempIndex((env) => {
      must(this.repo, ['read-tree', parent], 'git read-tree', { env });
      edit(env);
      const tree = must(this.repo, ['write-tree'], 'git write-tree', { env }).out;
      return must(this.repo, ['commit-tree', tree, '-p', parent, '-F', '-'], 'git commit-tree', { input: `${this.message(subject)}\n\n${body}\n` }).out;
    });
  }

  /** Moves the branch from `from` to `to`, only if it is still at `from`. */
  private moveBranch(to: string, from: string, reason: string): void {
    const r = git(this.repo, ['update-ref', '-m', reason, this.refName, to, from]);
    if (!r.ok) {
      const now = this.resolveBranch();
      throw new PromotionError('branch-moved', `branch "${this.branch}" moved while promoting (expected ${from.slice(0, 12)}, found ${now?.slice(0, 12) ?? 'nothing'}); it was left as it is: ${r.err.split('\n')[0]}`);
    }
  }

  async add(from: LocalCopy, subject: string, body: string): Promise<AddReceipt> {
    const files: Array<{ abs: string; path: string }> = from.copy.kind === 'zip'
      ? [{ abs: from.location, path: this.full(from.copy.rel) }, ...(from.signatureFile ? [{ abs: from.signatureFile, path: this.full(`${from.copy.rel}.sig`) }] : [])]
      : walkFiles(from.location).map((f) => ({ abs: path.join(from.location, ...f.path.split('/')), path: this.full(`${from.copy.rel}/${f.path}`) }));
    // exact bytes: no clean filters or line-ending conversion
    const shas = must(this.repo, ['hash-object', '-w', '--no-filters', '--stdin-paths'], 'git hash-object', { input: files.map((f) => f.abs).join('\n') + '\n' }).out.split('\n');
    const info = files.map((f, i) => `${(fs.statSync(f.abs).mode & 0o111) !== 0 ? '100755' : '100644'} ${shas[i]}\t${f.path}\0`).join('');
    const parent = this.head;
    const existing = lsTree(this.repo, parent, this.copyPaths(from.copy));
    if (existing.length > 0) {
      throw new PromotionError('conflict', `${existing[0].path} already exists on branch ${this.branch} but is not a package of that name and version; tidy the ${this.stage} layer first`);
    }
    const commit = this.commitOn(parent, (env) => {
      must(this.repo, ['update-index', '-z', '--add', '--index-info'], 'git update-index', { env, input: info });
    }, subject, body);
    this.moveBranch(commit, parent, `promote: ${this.message(subject)}`);
    this.head = commit;
    return {
      commit,
      detail: `committed ${commit.slice(0, 12)} on ${this.branch}: ${this.message(subject)}`,
      undo: async () => {
        this.moveBranch(parent, commit, `promote: undo ${this.message(subject)}`);
        this.head = parent;
        return `moved ${this.branch} back to ${parent.slice(0, 12)}`;
      },
    };
  }

  async remove(copy: PackageCopy, subject: string, body: string): Promise<{ detail: string; commit: string }> {
    const paths = this.copyPaths(copy);
    let parent = this.head;
    const now = this.resolveBranch();
    if (now && now !== parent) {
      // another commit landed (our own, when both stages share a branch): fine while the copy is untouched
      const same = (c: string) => lsTree(this.repo, c, paths).map((e) => `${e.mode} ${e.sha} ${e.path}`).join('\n');
      if (same(now) !== same(parent)) throw new PromotionError('branch-moved', `${this.full(copy.rel)} changed on branch ${this.branch} while promoting; it was left as it is`);
      parent = now;
    }
    const entries = lsTree(this.repo, parent, paths);
    const commit = this.commitOn(parent, (env) => {
      must(this.repo, ['update-index', '-z', '--index-info'], 'git update-index', { env, input: entries.map((e) => `0 ${'0'.repeat(e.sha.length)}\t${e.path}\0`).join('') });
    }, subject, body);
    this.moveBranch(commit, parent, `promote: ${this.message(subject)}`);
    this.head = commit;
    return { commit, detail: `committed ${commit.slice(0, 12)} on ${this.branch}: ${this.message(subject)}` };
  }
}
