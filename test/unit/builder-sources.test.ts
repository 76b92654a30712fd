import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { materialiseLayer, SourceMissingError } from '../../builder/sources.js';
import { cleanupTmp, tmpDir, writeDirPackage } from '../helpers/fixtures.js';

function git(repo: string, ...args: string[]): string {
  const r = spawnSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.trim();
}

describe('builder: layer sources', () => {
  after(cleanupTmp);
  let repo = '';
  let first = '';

  before(() => {
    repo = tmpDir('src-repo-');
    writeDirPackage(path.join(repo, 'store', 'packages'), { name: 'p', version: '1.0.0', readme: 'first\n' });
    git(repo, 'init', '-q', '-b', 'main');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'one');
    first = git(repo, 'rev-parse', 'HEAD');
    fs.writeFileSync(path.join(repo, 'store', 'packages', 'p', '1.0.0', 'docs', 'README.md'), 'second\n');
    git(repo, 'commit', '-q', '-am', 'two');
    // the working tree differs from both commits: a git source never reads it
    fs.writeFileSync(path.join(repo, 'store', 'packages', 'p', '1.0.0', 'docs', 'README.md'), 'uncommitted\n');
  });

  it('reads a ref\'s folder from the object store, not the checkout, and records its commit', async () => {
    const m = await materialiseLayer({ name: 'x', source: { kind: 'git', repo, ref: first, path: 'store/packages' } }, { work: tmpDir('src-out-') });
    expect(m).to.deep.include({ commit: first, repo, kind: 'git', dirty: false });
    expect(fs.readFileSync(path.join(m.dir, 'p', '1.0.0', 'docs', 'README.md'), 'utf8')).to.equal('first\n');
    const head = await materialiseLayer({ name: 'x', source: { kind: 'git', repo, ref: 'main', path: 'store/packages' } }, { work: tmpDir('src-out-') });
    expect(head.commit).to.equal(git(repo, 'rev-parse', 'main'));
  });

  it('with a cache, a git tree is extracted once and found again by its tree id', async () => {
    const cacheDir = tmpDir('src-cache-');
    const layer = { name: 'x', source: { kind: 'git' as const, repo, ref: first, path: 'store/packages' } };
    const one = await materialiseLayer(layer, { work: tmpDir('src-out-'), cacheDir });
    expect(one.dir.startsWith(path.join(cacheDir, 'git-trees'))).to.equal(true);
    expect(path.basename(one.dir)).to.equal(git(repo, 'rev-parse', `${first}:store/packages`));
    const manifest = path.join(one.dir, 'p', '1.0.0', 'manifest.yml');
    const before = fs.statSync(manifest).ino;
    const two = await materialiseLayer(layer, { work: tmpDir('src-out-'), cacheDir });
    expect(two.dir).to.equal(one.dir);
    expect(fs.statSync(manifest).ino).to.equal(before);
    const head = await materialiseLayer({ ...layer, source: { ...layer.source, ref: 'main' } }, { work: tmpDir('src-out-'), cacheDir });
    expect(head.dir).to.not.equal(one.dir);
    expect(fs.readFileSync(path.join(head.dir, 'p', '1.0.0', 'docs', 'README.md'), 'utf8')).to.equal('second\n');
  });

  it('a folder source records its repository\'s HEAD and whether it has uncommitted changes', async () => {
    const m = await materialiseLayer({ name: 'x', source: { kind: 'directory', directory: path.join(repo, 'store', 'packages') } }, { work: tmpDir('src-out-') });
    expect(m).to.deep.include({ commit: git(repo, 'rev-parse', 'HEAD'), kind: 'directory', dirty: true });
    // read in place: nothing is copied
    expect(m.dir).to.equal(fs.realpathSync(path.join(repo, 'store', 'packages')));
    const outside = tmpDir('src-plain-');
    writeDirPackage(outside, { name: 'q', version: '1.0.0' });
    const o = await materialiseLayer({ name: 'y', source: { kind: 'directory', directory: outside } }, { work: tmpDir('src-out-') });
    expect(o).to.deep.include({ commit: 'unknown', dirty: true });
    expect(fs.existsSync(path.join(o.dir, 'q', '1.0.0', 'manifest.yml'))).to.equal(true);
  });

  it('a cache that cannot be written only costs time: the tree goes into the build\'s scratch folder', async () => {
    const notADir = path.join(tmpDir('src-cache-file-'), 'cache');
    fs.writeFileSync(notADir, 'a file where the cache folder should be');
    const work = tmpDir('src-out-');
    const m = await materialiseLayer({ name: 'x', source: { kind: 'git', repo, ref: first, path: 'store/packages' } }, { work, cacheDir: notADir });
    expect(m.dir.startsWith(work)).to.equal(true);
    expect(m.immutable).to.equal(undefined);
    expect(fs.readFileSync(path.join(m.dir, 'p', '1.0.0', 'docs', 'README.md'), 'utf8')).to.equal('first\n');
  });

  it('a folder whose files git ignores is not its commit: dirty', async () => {
    const r = tmpDir('src-ignored-');
    fs.writeFileSync(path.join(r, '.gitignore'), 'store/\n');
    git(r, 'init', '-q', '-b', 'main');
    git(r, 'add', '.');
    git(r, 'commit', '-q', '-m', 'ignore store');
    writeDirPackage(path.join(r, 'store'), { name: 'q', version: '1.0.0' });
    const m = await materialiseLayer({ name: 'q', source: { kind: 'directory', directory: path.join(r, 'store') } }, { work: tmpDir('src-out-') });
    expect(m).to.deep.include({ commit: git(r, 'rev-parse', 'HEAD'), dirty: true });
  });

  it('a missing folder, ref or path is a SourceMissingError naming it', async () => {
    const out = () => ({ work: tmpDir('src-out-') });
    const cases: Array<[Parameters<typeof materialiseLayer>[0], RegExp]> = [
      [{ name: 'z', source: { kind: 'directory', directory: '/nonexistent/layer' } }, /source folder \/nonexistent\/layer does not exist/],
      [{ name: 'z', source: { kind: 'git', repo, ref: 'no-such-ref', path: '' } }, /has no commit "no-such-ref"/],
      [{ name: 'z', source: { kind: 'git', repo, ref: 'main', path: 'nope' } }, /@main:nope is not a folder at commit/],
      [{ name: 'z', source: { kind: 'git', repo: '/nonexistent/repo', ref: 'main', path: '' } }, /git repository \/nonexistent\/repo does not exist/],
    ];
    for (const [layer, re] of cases) {
      try {
        await materialiseLayer(layer, out());
        expect.fail(`expected an error for ${JSON.stringify(layer)}`);
      } catch (err) {
        expect(err, String(err)).to.be.instanceOf(SourceMissingError);
        expect((err as Error).message).to.match(re);
      }
    }
  });
});
