import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { expect } from 'chai';
import tarStream from 'tar-stream';
import { writeDeterministicTar, FIXED_MTIME } from '../../builder/layers.js';
import { withParents, packagesDigest } from '../../builder/merge.js';
import { renderDockerfile } from '../../builder/build.js';
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

describe('builder: deterministic layer tars', () => {
  after(cleanupTmp);
  const files = {
    'packages/prod/b_pkg/1.0.0/manifest.yml': 'name: b_pkg\n',
    'packages/prod/a_pkg/2.0.0/docs/README.md': '# a\n',
    'packages/prod/a_pkg/2.0.0/manifest.yml': 'name: a_pkg\n',
    'packages/prod/a_pkg-1.0.0.zip': 'zipbytes',
  };

  it('same files -> same bytes, whatever the mtimes, modes and directory order', async () => {
    const one = tmpDir('tar-a-');
    const two = tmpDir('tar-b-');
    writeTree(one, files, 0o600, new Date('2024-05-05T00:00:00Z'));
    writeTree(two, Object.fromEntries(Object.entries(files).reverse()), 0o755, new Date('2011-01-01T00:00:00Z'));
    const entries = withParents(Object.keys(files));
    const out = tmpDir('tar-out-');
    await writeDeterministicTar(one, entries, path.join(out, 'one.tar'));
    await writeDeterministicTar(two, entries, path.join(out, 'two.tar'));
    expect(sha(path.join(out, 'one.tar'))).to.equal(sha(path.join(out, 'two.tar')));

    const listed = await listTar(path.join(out, 'one.tar'));
    expect(listed.map((e) => e.name.replace(/\/$/, ''))).to.deep.equal(entries);
    expect(listed[0]).to.include({ name: 'packages', type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    for (const e of listed) {
      expect(e.mtime).to.equal(FIXED_MTIME.getTime());
      expect(e.mode).to.equal(e.type === 'directory' ? 0o755 : 0o644);
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

  it('the Dockerfile template gets one ADD per layer, in order, at the # LAYERS line', () => {
    const out = renderDockerfile('FROM x\n# LAYERS\nCOPY a /\n', ['production', 'staging']);
    expect(out).to.equal('FROM x\nADD layer-production.tar /\nADD layer-staging.tar /\nCOPY a /\n');
  });
});
