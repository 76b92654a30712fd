import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import tarStream from 'tar-stream';
import { FIXED_MTIME, tarSize, TarError, withParents, writeTar, type TarEntry } from '../../builder/tar.js';
import { packagesDigest } from '../../builder/merge.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';

function writeTree(root: string, files: Record<string, string>, mode: number, mtime: Date): void {
  // written in reverse order so the directory order on disk differs between trees
  for (const [rel, content] of Object.entries(files).reverse()) {
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
    fs.chmodSync(abs, mode);
    fs.utimesSync(abs, mtime, mtime);
  }
}

async function listTar(file: string): Promise<Array<{ name: string; type: string; mode: number; mtime: number; uid: number; gid: number }>> {
  const extract = tarStream.extract();
  const out: Array<{ name: string; type: string; mode: number; mtime: number; uid: number; gid: number }> = [];
  extract.on('entry', (h, stream, next) => {
    out.push({ name: h.name, type: h.type ?? '', mode: h.mode ?? 0, mtime: h.mtime?.getTime() ?? 0, uid: h.uid ?? -1, gid: h.gid ?? -1 });
    stream.on('end', next);
    stream.resume();
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    fs.createReadStream(file).pipe(extract);
  });
  return out;
}

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** The tar of `names` below `root`: folders and files as they are on disk. */
function entriesOf(root: string, names: string[]): TarEntry[] {
  return names.map((name): TarEntry => {
    const abs = path.join(root, name);
    const st = fs.statSync(abs);
    return st.isDirectory() ? { name, type: 'directory' } : { name, type: 'file', size: st.size, from: abs };
  });
}

async function writeDeterministicTar(root: string, names: string[], file: string): Promise<{ size: number; digest: string }> {
  const entries = entriesOf(root, names);
  const out = fs.openSync(file, 'w');
  const h = crypto.createHash('sha256');
  try {
    await writeTar(entries, async (chunk) => { fs.writeSync(out, chunk); }, h);
  } finally {
    fs.closeSync(out);
  }
  return { size: tarSize(entries), digest: h.digest('hex') };
}

describe('builder: deterministic layer tars', () => {
  after(cleanupTmp);
  const files = {
    'packages/prod/b_pkg/1.0.0/manifest.yml': 'name: b_pkg\n',
    'packages/prod/a_pkg/2.0.0/docs/README.md': '# a\n',
    'packages/prod/a_pkg/2.0.0/manifest.yml': 'name: a_pkg\n',
    'packages/prod/a_pkg-1.0.0.zip': 'zipbytes',
  };

  it('same files -> same bytes, whatever the mtimes, modes and directory order; the size and hash are known', async () => {
    const one = tmpDir('tar-a-');
    const two = tmpDir('tar-b-');
    writeTree(one, files, 0o600, new Date('2024-05-05T00:00:00Z'));
    writeTree(two, Object.fromEntries(Object.entries(files).reverse()), 0o755, new Date('2011-01-01T00:00:00Z'));
    const entries = withParents(Object.keys(files));
    const out = tmpDir('tar-out-');
    const a = await writeDeterministicTar(one, entries, path.join(out, 'one.tar'));
    await writeDeterministicTar(two, entries, path.join(out, 'two.tar'));
    expect(sha(path.join(out, 'one.tar'))).to.equal(sha(path.join(out, 'two.tar')));
    expect(a.size).to.equal(fs.statSync(path.join(out, 'one.tar')).size);
    expect(a.digest).to.equal(sha(path.join(out, 'one.tar')));

    const listed = await listTar(path.join(out, 'one.tar'));
    expect(listed.map((e) => e.name.replace(/\/$/, ''))).to.deep.equal(entries);
    expect(listed[0]).to.include({ name: 'packages/', type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    for (const e of listed) {
      expect(e.mtime).to.equal(FIXED_MTIME.getTime());
      expect(e.mode).to.equal(e.type === 'directory' ? 0o755 : 0o644);
    }
  });

  it('long names (ustar prefix, and pax records past 256 bytes) come back whole from GNU tar, and the size is exact', async () => {
    const root = tmpDir('tar-long-');
    const mid = `packages/prod/${'n'.repeat(60)}/1.0.0/kibana/dashboard/${'d'.repeat(70)}.json`;
    const long = `packages/prod/${'x'.repeat(120)}/${'y'.repeat(150)}/${'z'.repeat(40)}.json`;
    const unicode = 'packages/prod/ünïcødé/1.0.0/docs/README.md';
    writeTree(root, { [mid]: 'm', [long]: 'l'.repeat(1000), [unicode]: 'u' }, 0o644, new Date());
    const names = withParents([mid, long, unicode]);
    const file = path.join(tmpDir('tar-out-'), 'long.tar');
    const { size } = await writeDeterministicTar(root, names, file);
    expect(size).to.equal(fs.statSync(file).size);
    const listed = spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
    expect(listed.status, listed.stderr).to.equal(0);
    expect(listed.stdout.split('\n').filter(Boolean).map((n) => n.replace(/\/$/, ''))).to.deep.equal(names);
    const x = tmpDir('tar-x-');
    expect(spawnSync('tar', ['-xf', file, '-C', x]).status).to.equal(0);
    expect(fs.readFileSync(path.join(x, long), 'utf8')).to.equal('l'.repeat(1000));
  });

  it('a file that changes size after it was listed is an error, not a wrong tar', async () => {
    const root = tmpDir('tar-grow-');
    writeTree(root, { 'a.txt': 'short' }, 0o644, new Date());
    const entries = entriesOf(root, ['a.txt']);
    fs.appendFileSync(path.join(root, 'a.txt'), ' and longer');
    try {
      await writeTar(entries, async () => undefined);
      expect.fail('expected a TarError');
    } catch (err) {
      expect(err).to.be.instanceOf(TarError);
      expect((err as Error).message).to.match(/changed while it was being packed/);
    }
  });

  it('only the listed entries go in: a file left out of the contribution is not packed', async () => {
    const root = tmpDir('tar-c-');
    writeTree(root, { ...files, 'packages/prod/hidden/1.0.0/manifest.yml': 'x' }, 0o644, new Date());
    const out = path.join(tmpDir('tar-out-'), 'x.tar');
    await writeDeterministicTar(root, withParents(Object.keys(files)), out);
    expect((await listTar(out)).some((e) => e.name.includes('hidden'))).to.equal(false);
  });

  it('withParents adds every parent folder, parents before children', () => {
    expect(withParents(['a/b/c.txt', 'a-b/x', 'a/b.txt'])).to.deep.equal(['a', 'a-b', 'a-b/x', 'a/b', 'a/b.txt', 'a/b/c.txt']);
  });

  it('the packages digest ignores list order and sees content changes', () => {
    const a = { name: 'a', version: '1.0.0', hash: 'sha256:1' };
    const b = { name: 'b', version: '1.0.0', hash: 'sha256:2' };
    expect(packagesDigest([a, b])).to.equal(packagesDigest([b, a]));
    expect(packagesDigest([a, b])).to.not.equal(packagesDigest([a, { ...b, hash: 'sha256:3' }]));
  });
});
