import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import { promote } from '../../builder/stages/promote.js';
import { PromotionError } from '../../builder/stages/layer.js';
import { cleanupTmp, packageFiles, tmpDir, writeZipPackage, type PackageSpec } from '../helpers/fixtures.js';

const env: NodeJS.ProcessEnv = { ...process.env, GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.com', GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.com' };
for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE']) delete env[k];

function g(repo: string, ...args: string[]): string {
  return execFileSync('git', ['-C', repo, ...args], { env, encoding: 'utf8' }).trim();
}

/** Files of a package below `packages/` on a new commit of `branch` (made in a throwaway index, like promotion itself). */
function commitFiles(repo: string, branch: string, files: Record<string, Buffer>, message: string): void {
  const index = path.join(tmpDir('promote-idx-'), 'index');
  const e = { ...env, GIT_INDEX_FILE: index };
  const parent = execFileSync('git', ['-C', repo, 'rev-parse', '--verify', '--quiet', `refs/heads/${branch}`], { env, encoding: 'utf8' }).trim();
  execFileSync('git', ['-C', repo, 'read-tree', parent], { env: e });
  for (const [rel, content] of Object.entries(files)) {
    const sha = execFileSync('git', ['-C', repo, 'hash-object', '-w', '--stdin'], { env: e, input: content, encoding: 'utf8' }).trim();
    execFileSync('git', ['-C', repo, 'update-index', '--add', '--cacheinfo', `100644,${sha},${rel}`], { env: e });
  }
  const tree = execFileSync('git', ['-C', repo, 'write-tree'], { env: e, encoding: 'utf8' }).trim();
  const commit = execFileSync('git', ['-C', repo, 'commit-tree', tree, '-p', parent, '-m', message], { env: e, encoding: 'utf8' }).trim();
  g(repo, 'update-ref', `refs/heads/${branch}`, commit);
}

function dirFiles(spec: PackageSpec, under = 'packages'): Record<string, Buffer> {
  return Object.fromEntries([...packageFiles(spec)].map(([rel, b]) => [`${under}/${spec.name}/${spec.version}/${rel}`, b]));
}

/**
 * A storage repository: branch main checked out with an uncommitted change, and
 * branches snapshot, staging and production each with a packages/ folder.
 */
function storageRepo(): { repo: string; defs: string } {
  const root = tmpDir('promote-git-');
  const repo = path.join(root, 'storage');
  fs.mkdirSync(repo);
  g(repo, 'init', '-q', '-b', 'main');
  // promotion commits as whoever the repository says (no global identity on CI machines)
  g(repo, 'config', 'user.name', 'Release Engineer');
  g(repo, 'config', 'user.email', 'release@example.com');
  fs.writeFileSync(path.join(repo, 'README.md'), 'storage\n');
  fs.mkdirSync(path.join(repo, 'packages'));
  fs.writeFileSync(path.join(repo, 'packages/.keep'), '');
  g(repo, 'add', '.');
  g(repo, 'commit', '-q', '-m', 'init');
  for (const b of ['snapshot', 'staging', 'production']) g(repo, 'branch', b);
  // the user's own work in progress
  fs.writeFileSync(path.join(repo, 'README.md'), 'storage, edited\n');
  fs.writeFileSync(path.join(repo, 'notes.txt'), 'untracked\n');
  g(repo, 'add', 'notes.txt');
  fs.writeFileSync(path.join(repo, 'notes.txt'), 'untracked, edited after add\n');

  const defs = path.join(root, 'distributions');
  fs.mkdirSync(defs);
  const layer = (name: string) => `  - name: ${name}\n    source:\n      git: { repo: ../storage, ref: ${name}, path: packages }\n`;
  fs.writeFileSync(path.join(defs, 'snapshot.yml'), `name: snapshot
image:
  repository: localhost:5000/package-registry/distribution
package_registry:
  version: 1.40.1
layers:
${layer('production')}${layer('staging')}${layer('snapshot')}`);
  return { repo, defs };
}

/** What the user sees of their clone: HEAD, status, index and working files. */
function userState(repo: string): Record<string, string> {
  // the index first: git status may refresh it
  const index = fs.readFileSync(path.join(repo, '.git/index')).toString('base64');
  return {
    index,
    head: g(repo, 'symbolic-ref', 'HEAD') + ' ' + g(repo, 'rev-parse', 'HEAD'),
    status: g(repo, 'status', '--porcelain', '--untracked-files=all'),
    readme: fs.readFileSync(path.join(repo, 'README.md'), 'utf8'),
    notes: fs.readFileSync(path.join(repo, 'notes.txt'), 'utf8'),
    files: fs.readdirSync(repo).sort().join(','),
  };
}

const log = (repo: string, branch: string) => g(repo, 'log', '--format=%s', branch).split('\n');
const tree = (repo: string, ref: string) => g(repo, 'ls-tree', '-r', '--name-only', ref).split('\n').filter(Boolean);

async function refused(p: Promise<unknown>): Promise<PromotionError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(PromotionError);
    return err as PromotionError;
  }
  throw new Error('expected the promotion to be refused');
}

const foo: PackageSpec = { name: 'foo', version: '1.2.3', files: { 'img/logo.svg': '<svg/>' } };

describe('promote: git-branch layers', function () {
  this.timeout(20_000);
  after(cleanupTmp);

  it('one commit on each branch, bracketed messages, the user\'s tree and index untouched', async () => {
    const { repo, defs } = storageRepo();
    commitFiles(repo, 'snapshot', dirFiles(foo), '[snapshot] add foo-1.2.3');
    const fooBlob = g(repo, 'rev-parse', 'snapshot:packages/foo/1.2.3/manifest.yml');
    const before = userState(repo);
    const stagingBefore = g(repo, 'rev-parse', 'staging');
    const snapshotBefore = g(repo, 'rev-parse', 'snapshot');

    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs });
    expect(r.action).to.equal('promoted');

    expect(g(repo, 'rev-parse', 'staging^')).to.equal(stagingBefore);
    expect(g(repo, 'rev-parse', 'snapshot^')).to.equal(snapshotBefore);
    expect(log(repo, 'staging')[0]).to.equal('[staging] promote foo-1.2.3');
    expect(log(repo, 'snapshot')[0]).to.equal('[snapshot] promote foo-1.2.3 to staging');
    expect(r.target.commit).to.equal(g(repo, 'rev-parse', 'staging'));
    expect(r.source.commit).to.equal(g(repo, 'rev-parse', 'snapshot'));
    expect(tree(repo, 'staging')).to.include.members(['packages/foo/1.2.3/manifest.yml', 'packages/foo/1.2.3/docs/README.md', 'packages/foo/1.2.3/img/logo.svg']);
    expect(tree(repo, 'snapshot').filter((f) => f.includes('foo'))).to.deep.equal([]);
    // the very same blobs
    expect(g(repo, 'rev-parse', 'staging:packages/foo/1.2.3/manifest.yml')).to.equal(fooBlob);
    expect(userState(repo)).to.deep.equal(before);

    // and on to production
    await promote({ package: 'foo-1.2.3', from: 'staging', to: 'production', definitions: defs });
    expect(log(repo, 'production')[0]).to.equal('[production] promote foo-1.2.3');
    expect(log(repo, 'staging')[0]).to.equal('[staging] promote foo-1.2.3 to production');
    expect(tree(repo, 'production')).to.include('packages/foo/1.2.3/manifest.yml');
    expect(userState(repo)).to.deep.equal(before);
  });

  it('a zip and its signature, between branches', async () => {
    const { repo, defs } = storageRepo();
    const zip = await writeZipPackage(tmpDir('promote-zip-'), foo);
    commitFiles(repo, 'snapshot', { 'packages/foo-1.2.3.zip': fs.readFileSync(zip), 'packages/foo-1.2.3.zip.sig': fs.readFileSync(`${zip}.sig`) }, 'zip');
    const zipBlob = g(repo, 'rev-parse', 'snapshot:packages/foo-1.2.3.zip');
    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs });
    expect(r.kind).to.equal('zip');
    expect(g(repo, 'rev-parse', 'staging:packages/foo-1.2.3.zip')).to.equal(zipBlob);
    expect(tree(repo, 'staging')).to.include('packages/foo-1.2.3.zip.sig');
    expect(tree(repo, 'snapshot').filter((f) => f.includes('foo'))).to.deep.equal([]);
  });

  it('--dry-run names the two commits and makes none', async () => {
    const { repo, defs } = storageRepo();
    commitFiles(repo, 'snapshot', dirFiles(foo), 'add');
    const refs = g(repo, 'for-each-ref');
    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs, dryRun: true });
    expect(r.plan[0]).to.include('commit on staging adding packages/foo/1.2.3').and.include('"[staging] promote foo-1.2.3"');
    expect(r.plan[2]).to.include('commit on snapshot removing packages/foo/1.2.3');
    expect(g(repo, 'for-each-ref')).to.equal(refs);
  });

  it('a missing branch is a clear error', async () => {
    const { repo, defs } = storageRepo();
    commitFiles(repo, 'snapshot', dirFiles(foo), 'add');
    g(repo, 'branch', '-D', 'staging');
    const err = await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(err.code).to.equal('branch-missing');
    expect(err.message).to.match(/branch "staging" \(the staging layer\) does not exist in .*storage \(branches: main, production, snapshot\)/);
  });

  it('a stage branch checked out with uncommitted changes is refused, nothing committed', async () => {
    const { repo, defs } = storageRepo();
    commitFiles(repo, 'snapshot', dirFiles(foo), 'add');
    const wt = path.join(path.dirname(repo), 'staging-wt');
    g(repo, 'worktree', 'add', '-q', wt, 'staging');
    fs.writeFileSync(path.join(wt, 'packages/wip.txt'), 'work in progress\n');
    const refs = g(repo, 'for-each-ref');
    const err = await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(err.code).to.equal('branch-dirty');
    expect(err.message).to.include(`checked out in ${fs.realpathSync(wt)} with 1 uncommitted change(s)`);
    expect(g(repo, 'for-each-ref')).to.equal(refs);

    // clean but checked out: refused as well, the branch would move under that tree
    fs.rmSync(path.join(wt, 'packages/wip.txt'));
    const err2 = await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(err2.code).to.equal('branch-checked-out');
    expect(err2.message).to.match(/switch --detach/);
  });

  it('a different copy on the target branch: refused, no commit', async () => {
    const { repo, defs } = storageRepo();
    commitFiles(repo, 'snapshot', dirFiles(foo), 'add');
    commitFiles(repo, 'staging', dirFiles({ ...foo, title: 'Other foo' }), 'add other');
    const refs = g(repo, 'for-each-ref');
    const err = await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(err.code).to.equal('conflict');
    expect(g(repo, 'for-each-ref')).to.equal(refs);
  });

  it('a copy that does not verify is taken back: the target branch returns to where it was, the source keeps it', async () => {
    const { repo, defs } = storageRepo();
    commitFiles(repo, 'snapshot', dirFiles(foo), 'add');
    const refs = g(repo, 'for-each-ref');
    const err = await refused(promote({
      package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs,
      // the read-back of the new commit comes out damaged
      hooks: {
        afterAdd: (target) => {
          const read = target.readCopy.bind(target);
          target.readCopy = async (c) => {
            const local = await read(c);
            fs.appendFileSync(path.join(local.location, 'img/logo.svg'), 'damaged');
            return local;
          };
        },
      },
    }));
    expect(err.code).to.equal('verify-failed');
    expect(err.message).to.match(/still in snapshot/);
    expect(g(repo, 'for-each-ref')).to.equal(refs);
    expect(tree(repo, 'snapshot')).to.include('packages/foo/1.2.3/manifest.yml');
  });

  it('stopped between the two commits: the re-run makes only the removal commit', async () => {
    const { repo, defs } = storageRepo();
    commitFiles(repo, 'snapshot', dirFiles(foo), 'add');
    await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs, hooks: { beforeRemove: () => { throw new Error('killed'); } } }));
    expect(tree(repo, 'snapshot')).to.include('packages/foo/1.2.3/manifest.yml');
    expect(tree(repo, 'staging')).to.include('packages/foo/1.2.3/manifest.yml');
    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs });
    expect(r.action).to.equal('finished');
    expect(log(repo, 'staging').filter((m) => m.includes('promote'))).to.deep.equal(['[staging] promote foo-1.2.3']);
    expect(log(repo, 'snapshot')[0]).to.equal('[snapshot] promote foo-1.2.3 to staging');
  });

  it('two stages on one branch (folders side by side): two commits in a row', async () => {
    const root = tmpDir('promote-mono-');
    const repo = path.join(root, 'storage');
    fs.mkdirSync(repo);
    g(repo, 'init', '-q', '-b', 'main');
    g(repo, 'config', 'user.name', 'Release Engineer');
    g(repo, 'config', 'user.email', 'release@example.com');
    g(repo, 'commit', '-q', '--allow-empty', '-m', 'init');
    g(repo, 'branch', 'packages');
    commitFiles(repo, 'packages', { ...dirFiles(foo, 'snapshot'), 'staging/.keep': Buffer.from('') }, 'add');
    const { GitLayer } = await import('../../builder/stages/git.js');
    const r = await promote({
      package: 'foo-1.2.3', from: 'snapshot', to: 'staging',
      layers: { source: new GitLayer('snapshot', repo, 'packages', 'snapshot'), target: new GitLayer('staging', repo, 'packages', 'staging') },
    });
    expect(r.action).to.equal('promoted');
    expect(log(repo, 'packages').slice(0, 2)).to.deep.equal(['[packages] promote foo-1.2.3 to staging', '[packages] promote foo-1.2.3']);
    expect(tree(repo, 'packages').filter((f) => f.includes('foo'))).to.have.length(3).and.satisfy((l: string[]) => l.every((f) => f.startsWith('staging/')));
  });

  it('layers in two repositories, and from a git branch to a folder', async () => {
    const a = storageRepo();
    const b = storageRepo();
    commitFiles(a.repo, 'snapshot', dirFiles(foo), 'add');
    const { GitLayer } = await import('../../builder/stages/git.js');
    const { DirectoryLayer } = await import('../../builder/stages/directory.js');
    await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', layers: { source: new GitLayer('snapshot', a.repo, 'snapshot', 'packages'), target: new GitLayer('staging', b.repo, 'staging', 'packages') } });
    expect(log(b.repo, 'staging')[0]).to.equal('[staging] promote foo-1.2.3');
    expect(g(b.repo, 'cat-file', '-p', 'staging:packages/foo/1.2.3/img/logo.svg')).to.equal('<svg/>');
    expect(tree(a.repo, 'snapshot').filter((f) => f.includes('foo'))).to.deep.equal([]);

    const folder = tmpDir('promote-folder-');
    await promote({ package: 'foo-1.2.3', from: 'staging', to: 'production', layers: { source: new GitLayer('staging', b.repo, 'staging', 'packages'), target: new DirectoryLayer('production', folder) } });
    expect(fs.readFileSync(path.join(folder, 'foo/1.2.3/img/logo.svg'), 'utf8')).to.equal('<svg/>');
    expect(log(b.repo, 'staging')[0]).to.equal('[staging] promote foo-1.2.3 to production');
  });
});
