import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import tarStream from 'tar-stream';
import { applyLayers, UnpackError } from '../../builder/oci/unpack.js';
import { FIXED_MTIME, writeTar, type TarEntry } from '../../builder/tar.js';
import { sha256Digest } from '../../builder/oci/model.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';

type Spec =
  | { name: string; type?: 'file'; body?: string; mode?: number }
  | { name: string; type: 'directory'; mode?: number }
  | { name: string; type: 'symlink' | 'link'; linkname: string };

/** A layer tar written by tar-stream (any names, hostile ones included). */
async function layer(entries: Spec[], opts: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c) => chunks.push(c as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const mtime = FIXED_MTIME;
    if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory', mode: e.mode ?? 0o755, mtime });
    else if ('linkname' in e) pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mtime });
    else pack.entry({ name: e.name, mode: e.mode ?? 0o644, mtime }, e.body ?? `contents of ${e.name}`);
  }
  pack.finalize();
  await done;
  const tar = Buffer.concat(chunks);
  return opts.gzip === false ? tar : zlib.gzipSync(tar);
}

/** A layer tar written by the builder's own writer (ustar, pax records for long names). */
async function builderLayer(entries: TarEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await writeTar(entries, async (c) => { chunks.push(Buffer.from(c)); });
  return Buffer.concat(chunks);
}

const streams = (bufs: Buffer[]) => bufs.map((b) => Readable.from([b]));

/** Every path below `root` with what it is: `f:<contents>`, `d`, `l:<target>`. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const abs = path.join(dir, d.name);
      const rel = path.relative(root, abs);
      if (d.isSymbolicLink()) out[rel] = `l:${fs.readlinkSync(abs)}`;
      else if (d.isDirectory()) { out[rel] = 'd'; walk(abs); } else out[rel] = `f:${fs.readFileSync(abs, 'utf8')}`;
    }
  };
  walk(root);
  return out;
}

async function refused(root: string, layers: Buffer[], message: RegExp): Promise<void> {
  try {
    await applyLayers(root, streams(layers));
  } catch (err) {
    expect(err).to.be.instanceOf(UnpackError);
    expect((err as Error).message).to.match(message);
    return;
  }
  expect.fail(`expected the layers to be refused with ${message}`);
}

describe('oci: applying image layers into a folder', () => {
  after(cleanupTmp);

  it('writes files, folders, symlinks and hard links, gzip or plain, with the tar\'s times and modes', async () => {
    const root = tmpDir('unpack-');
    const report = await applyLayers(root, streams([
      await layer([
        { name: 'app/', type: 'directory' },
        { name: 'app/bin/run.sh', body: 'run', mode: 0o755 },
        { name: 'app/data.txt', body: 'data' },
        { name: 'app/current', type: 'symlink', linkname: 'bin' },
        { name: 'app/again.txt', type: 'link', linkname: 'app/data.txt' },
      ]),
      await layer([{ name: './etc/motd', body: 'hello' }, { name: 'big.bin', body: 'b'.repeat(3 << 20) }], { gzip: false }),
    ]));
    // streamed, not gathered
    expect(fs.readFileSync(path.join(root, 'big.bin'), 'utf8')).to.equal('b'.repeat(3 << 20));
    fs.rmSync(path.join(root, 'big.bin'));
    expect(tree(root)).to.deep.equal({
      app: 'd', 'app/again.txt': 'f:data', 'app/bin': 'd', 'app/bin/run.sh': 'f:run', 'app/current': 'l:bin', 'app/data.txt': 'f:data',
      etc: 'd', 'etc/motd': 'f:hello',
    });
    const data = fs.statSync(path.join(root, 'app/data.txt'));
    expect(fs.statSync(path.join(root, 'app/again.txt')).ino).to.equal(data.ino);
    expect(data.mtimeMs).to.equal(FIXED_MTIME.getTime());
    expect(fs.statSync(path.join(root, 'app')).mtimeMs).to.equal(FIXED_MTIME.getTime());
    expect(fs.statSync(path.join(root, 'app/bin/run.sh')).mode & 0o777).to.equal(0o755);
    expect(report).to.include({ layers: 2, whiteouts: 0 });
  });

  it('a whiteout removes a file or a whole folder of a lower layer, and is not written itself', async () => {
    const root = tmpDir('unpack-');
    await applyLayers(root, streams([
      await layer([{ name: 'p/a/1.0.0/manifest.yml' }, { name: 'p/a/1.0.0/docs/README.md' }, { name: 'p/b.zip' }, { name: 'p/b.zip.sig' }, { name: 'p/keep' }]),
      await layer([{ name: 'p/.wh.a' }, { name: 'p/.wh.b.zip' }, { name: 'p/.wh.b.zip.sig' }, { name: 'p/.wh.never-there' }, { name: 'gone/.wh.x' }]),
    ]));
    expect(tree(root)).to.deep.equal({ p: 'd', 'p/keep': 'f:contents of p/keep' });
  });

  it('an opaque folder hides what lower layers put in it, not what its own layer puts there (before or after the mark)', async () => {
    const root = tmpDir('unpack-');
    await applyLayers(root, streams([
      await layer([{ name: 'p/x/old.txt' }, { name: 'p/x/sub/deep.txt' }, { name: 'p/x/same.txt', body: 'lower' }, { name: 'p/y.txt' }]),
      await layer([
        { name: 'p/x/', type: 'directory' },
        { name: 'p/x/before.txt' },
        { name: 'p/x/sub/', type: 'directory' },
        { name: 'p/x/.wh..wh..opq' },
        { name: 'p/x/same.txt', body: 'upper' },
        { name: 'p/x/after.txt' },
      ]),
    ]));
    expect(tree(root)).to.deep.equal({
      p: 'd', 'p/x': 'd', 'p/x/after.txt': 'f:contents of p/x/after.txt', 'p/x/before.txt': 'f:contents of p/x/before.txt',
      'p/x/same.txt': 'f:upper', 'p/x/sub': 'd', 'p/y.txt': 'f:contents of p/y.txt',
    });
  });

  it('a hard link may name a lower layer\'s file; replacing one name later leaves the other as it was', async () => {
    const root = tmpDir('unpack-');
    await applyLayers(root, streams([
      await layer([{ name: 'a/file', body: 'v1' }]),
      await layer([{ name: 'b/link', type: 'link', linkname: 'a/file' }]),
      await layer([{ name: 'a/file', body: 'v2' }]),
    ]));
    expect(tree(root)).to.deep.include({ 'a/file': 'f:v2', 'b/link': 'f:v1' });
  });

  it('an entry replaces what a lower layer had at its path, whatever kind it was', async () => {
    const root = tmpDir('unpack-');
    await applyLayers(root, streams([
      await layer([{ name: 'x/inside' }, { name: 'y' }, { name: 'z', type: 'symlink', linkname: 'x' }]),
      await layer([{ name: 'x', body: 'now a file' }, { name: 'y/', type: 'directory' }, { name: 'z/', type: 'directory' }]),
    ]));
    expect(tree(root)).to.deep.equal({ x: 'f:now a file', y: 'd', z: 'd' });
  });

  it('reads the builder\'s pax records: long names and long hard link targets', async () => {
    const root = tmpDir('unpack-');
    const long = `packages/production/${'very-long-folder-name-'.repeat(8)}/1.0.0/${'a-file-with-a-long-name-'.repeat(6)}.yml`;
    const linked = `packages/production/${'another-long-folder-'.repeat(8)}/copy.yml`;
    const parents = (p: string) => p.split('/').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('/'));
    const dirs = [...new Set([...parents(long), ...parents(linked)])].sort();
    const tar = await builderLayer([
      ...dirs.map((name): TarEntry => ({ name, type: 'directory' })),
      { name: long, type: 'file', size: 4, data: Buffer.from('long') },
      { name: linked, type: 'link', target: long },
    ]);
    expect(tar.includes(Buffer.from(' path='))).to.equal(true);
    expect(tar.includes(Buffer.from(' linkpath='))).to.equal(true);
    await applyLayers(root, streams([zlib.gzipSync(tar)]));
    expect(fs.readFileSync(path.join(root, long), 'utf8')).to.equal('long');
    expect(fs.statSync(path.join(root, linked)).ino).to.equal(fs.statSync(path.join(root, long)).ino);
    expect(fs.statSync(path.join(root, long)).mtimeMs).to.equal(FIXED_MTIME.getTime());
  });

  it('an absolute symlink target is taken inside the folder, as the container sees it', async () => {
    const root = tmpDir('unpack-');
    await applyLayers(root, streams([
      await layer([{ name: 'usr/lib/x.so' }, { name: 'lib', type: 'symlink', linkname: '/usr/lib' }, { name: 'top', type: 'symlink', linkname: '/' }]),
      await layer([{ name: 'lib/y.so' }, { name: 'top/etc/passwd', body: 'in the image' }]),
    ]));
    expect(tree(root)).to.deep.include({ lib: 'l:usr/lib', top: 'l:.', 'usr/lib/y.so': 'f:contents of lib/y.so', 'etc/passwd': 'f:in the image' });
  });

  describe('hostile layers are refused, naming the entry, and nothing is written outside the folder', () => {
    let outside: string;
    let root: string;
    beforeEach(() => {
      outside = tmpDir('unpack-outside-');
      root = path.join(outside, 'root');
      fs.mkdirSync(root);
    });
    afterEach(() => {
      expect(fs.readdirSync(outside)).to.deep.equal(['root']);
    });

    it('a ".." component', async () => {
      await refused(root, [await layer([{ name: 'a/../../evil' }])], /entry "a\/\.\.\/\.\.\/evil": a "\.\." component/);
    });
    it('an absolute path', async () => {
      await refused(root, [await layer([{ name: '/evil' }])], /entry "\/evil": an absolute path/);
    });
    it('a symlink climbing out, and an entry through it', async () => {
      await refused(root, [await layer([{ name: 'a/up', type: 'symlink', linkname: '../../..' }])], /symlink "a\/up" -> \.\.\/\.\.\/\.\.: leads out of the image root/);
      // one that got there anyway (not written by applyLayers) is not followed out
      fs.symlinkSync('..', path.join(root, 'planted'));
      await refused(root, [await layer([{ name: 'planted/evil' }])], /planted\/evil: goes through a symlink that leads out of the image root/);
    });
    it('a symlink trick: a link to "." then "that/.." resolves inside', async () => {
      await applyLayers(root, streams([await layer([
        { name: 'dot', type: 'symlink', linkname: '.' },
        { name: 'trick', type: 'symlink', linkname: 'dot/..' },
        { name: 'trick/inside', body: 'here' },
      ])]));
      expect(fs.readlinkSync(path.join(root, 'trick'))).to.equal('.');
      expect(fs.readFileSync(path.join(root, 'inside'), 'utf8')).to.equal('here');
    });
    it('a hard link to a path outside, to a missing file, to a folder', async () => {
      await refused(root, [await layer([{ name: 'h', type: 'link', linkname: '../outside-file' }])], /hard link "h" to "\.\.\/outside-file": a "\.\." component/);
      await refused(root, [await layer([{ name: 'h', type: 'link', linkname: '/etc/passwd' }])], /hard link "h" to "\/etc\/passwd": an absolute path/);
      await refused(root, [await layer([{ name: 'h', type: 'link', linkname: 'nothing' }])], /hard link "h": its target nothing is not in the image/);
      await refused(root, [await layer([{ name: 'd/', type: 'directory' }, { name: 'h', type: 'link', linkname: 'd' }])], /hard link "h": its target d is a folder/);
    });
    it('a hard link through a symlink to a file outside', async () => {
      fs.writeFileSync(path.join(outside, 'secret'), 'x');
      fs.symlinkSync('..', path.join(root, 'planted'));
      try {
        await refused(root, [await layer([{ name: 'h', type: 'link', linkname: 'planted/secret' }])], /hard link "h" to planted\/secret: goes through a symlink that leads out/);
      } finally {
        fs.rmSync(path.join(outside, 'secret'));
      }
    });
    it('a whiteout of ".." or through a symlink out', async () => {
      await refused(root, [await layer([{ name: 'a/.wh...' }])], /whiteout "a\/\.wh\.\.\.": names no entry/);
      fs.symlinkSync('..', path.join(root, 'planted'));
      await refused(root, [await layer([{ name: 'planted/.wh.root' }])], /goes through a symlink that leads out/);
    });
  });

  it('checks digests while it streams: a layer that is not the one the image names is refused', async () => {
    const root = tmpDir('unpack-');
    const blob = await layer([{ name: 'a' }]);
    const tar = zlib.gunzipSync(blob);
    await applyLayers(root, streams([blob]), { layers: [{ digest: sha256Digest(blob), diffId: sha256Digest(tar) }] });
    try {
      await applyLayers(root, streams([blob]), { layers: [{ digest: sha256Digest(blob), diffId: sha256Digest('other'), name: 'layer 3' }] });
      expect.fail('expected a refusal');
    } catch (err) {
      expect((err as Error).message).to.match(/^layer 3: the uncompressed tar has digest sha256:\w+, the image config names sha256:/);
    }
  });

  it('a truncated or corrupt layer is an error naming the layer', async () => {
    const root = tmpDir('unpack-');
    const blob = await layer([{ name: 'a', body: 'x'.repeat(10_000) }]);
    await refused(root, [blob.subarray(0, blob.length - 40)], /^layer 1 of 1: not a readable gzip tar/);
    await refused(root, [Buffer.from('this is not a tar at all, not even close to one'.repeat(20))], /^layer 1 of 1: not a readable tar/);
  });
});
