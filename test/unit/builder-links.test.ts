/**
 * Each distinct file once per layer: repeated contents go into a layer tar as
 * hard links to their first copy, the tar still unpacks to exactly the tree,
 * and links (written or read) never lead out of their layer or package.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import tarStream from 'tar-stream';
import yazl from 'yazl';
import { InvalidPackagesError, mergeLayers } from '../../builder/merge.js';
import { planDelta } from '../../builder/delta.js';
import { entryHeader, entryHeaderSize, linkRepeats, tarSize, TarError, writeTar, type TarEntry } from '../../builder/tar.js';
import { materialiseLayer, type MaterialisedLayer } from '../../builder/sources.js';
import { BAKED_INDEX_FILE } from '../../server/packages/baked.js';
import { ENTRY_STORE, openZipArchive } from '../../server/packages/zip-recipe.js';
import { cleanupTmp, packageFiles, tmpDir, writeDirPackage, writeZipPackage, type PackageSpec } from '../helpers/fixtures.js';

function layerAt(dir: string, name = 'production'): MaterialisedLayer {
  fs.mkdirSync(dir, { recursive: true });
  return { name, dir, commit: 'c'.repeat(40), repo: dir, origin: `/src/${name}`, kind: 'directory', dirty: false };
}

const newLayer = (name = 'production') => layerAt(path.join(tmpDir('links-'), name), name);

/** Bytes that do not repeat inside themselves (a screenshot, say). */
const noise = (seed: string, size: number) => {
  const out = Buffer.alloc(size);
  for (let i = 0, block = 0; i < size; i += 32, block++) crypto.createHash('sha256').update(`${seed}${block}`).digest().copy(out, i);
  return out;
};

const logo = noise('logo', 40_000);
const screenshot = noise('screenshot', 300_000);

/** Two versions of one package sharing their images and licence; each version's manifest and readme differ. */
const versions = () => ['1.0.0', '1.1.0'].map((version): PackageSpec => ({
  name: 'nginx', version, readme: `# nginx ${version}\n`,
  files: { 'img/logo.png': logo, 'img/screenshot.png': screenshot, 'LICENSE.txt': 'Elastic License 2.0\n'.repeat(200) },
}));

function twoVersions(dir: string): void {
  for (const s of versions()) writeDirPackage(dir, s);
}

async function tarFile(entries: TarEntry[], file: string): Promise<string> {
  const fd = fs.openSync(file, 'w');
  const h = crypto.createHash('sha256');
  try {
    await writeTar(entries, async (c) => { fs.writeSync(fd, c); }, h);
  } finally {
    fs.closeSync(fd);
  }
  expect(fs.statSync(file).size, 'tarSize is exact').to.equal(tarSize(entries));
  return h.digest('hex');
}

/** Every regular file below `root` by its relative path. */
function filesBelow(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const visit = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, e.name);
      if (e.isDirectory()) visit(abs);
      else out.set(path.relative(root, abs).split(path.sep).join('/'), fs.readFileSync(abs));
    }
  };
  visit(root);
  return out;
}

/** The tar's files as tar-stream reads them, each link resolved to the file it names (which must come before it). */
async function readWithTarStream(file: string): Promise<{ files: Map<string, Buffer>; links: Map<string, string> }> {
  const files = new Map<string, Buffer>();
  const links = new Map<string, string>();
  const extract = tarStream.extract();
  extract.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => { chunks.push(c as Buffer); });
    stream.on('end', () => {
      if (h.type === 'link') {
        const target = files.get(h.linkname ?? '');
        if (!target) throw new Error(`${h.name}: link to ${h.linkname}, not an earlier file`);
        links.set(h.name, h.linkname!);
        files.set(h.name, target);
      } else if (h.type === 'file') files.set(h.name, Buffer.concat(chunks));
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    fs.createReadStream(file).pipe(extract);
  });
  return { files, links };
}

/** The package files a layer must hold: every file of its tree, under packages/<layer>/. */
function treeFiles(l: MaterialisedLayer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [rel, bytes] of filesBelow(l.dir)) out.set(`packages/${l.name}/${rel}`, bytes);
  return out;
}

const links = (c: { entries: TarEntry[] }) => c.entries.filter((e): e is TarEntry & { type: 'link' } => e.type === 'link');

describe('builder: each distinct file once per layer', () => {
  after(cleanupTmp);

  describe('link entries', () => {
    it('a link is a ustar type 1 header with its target, or a pax linkpath past 100 bytes; GNU tar makes them hard links', async () => {
      const root = tmpDir('links-tar-');
      fs.writeFileSync(path.join(root, 'a.bin'), logo);
      const longDir = `packages/p/${'d'.repeat(90)}`;
      const far = `${longDir}/${'c'.repeat(80)}.bin`;
      const entries: TarEntry[] = [
        { name: 'packages', type: 'directory' },
        { name: 'packages/p', type: 'directory' },
        { name: 'packages/p/near.bin', type: 'file', size: logo.length, from: path.join(root, 'a.bin') },
        { name: longDir, type: 'directory' },
        { name: `${longDir}/a.bin`, type: 'file', size: logo.length, from: path.join(root, 'a.bin') },
        { name: 'packages/p/short-target.bin', type: 'link', target: 'packages/p/near.bin' },
        { name: 'packages/p/b.bin', type: 'link', target: `${longDir}/a.bin` },
        { name: far, type: 'link', target: `${longDir}/a.bin` },
      ];
      const file = path.join(tmpDir('links-out-'), 'l.tar');
      await tarFile(entries, file);
      // targets past 100 bytes go in pax records; the names themselves fit ustar (prefix + name)
      const text = fs.readFileSync(file).toString('latin1');
      expect(text.split(`linkpath=${longDir}/a.bin\n`)).to.have.length(3);
      expect(text.includes('path=packages/p/short-target.bin')).to.equal(false);

      const x = tmpDir('links-x-');
      const r = spawnSync('tar', ['-xf', file, '-C', x]);
      expect(r.status, r.stderr.toString()).to.equal(0);
      const a = fs.statSync(path.join(x, longDir, 'a.bin'));
      expect(a.nlink).to.equal(3);
      expect(fs.statSync(path.join(x, 'packages/p/b.bin')).ino).to.equal(a.ino);
      expect(fs.statSync(path.join(x, 'packages/p/short-target.bin')).ino).to.equal(fs.statSync(path.join(x, 'packages/p/near.bin')).ino);
      expect(fs.readFileSync(path.join(x, far)).equals(logo)).to.equal(true);

      const read = await readWithTarStream(file);
      expect([...read.links]).to.deep.equal([['packages/p/short-target.bin', 'packages/p/near.bin'], ['packages/p/b.bin', `${longDir}/a.bin`], [far, `${longDir}/a.bin`]]);
    });

    it('entryHeaderSize is the length of entryHeader for every kind of name and target', () => {
      const names = ['a', `p/${'n'.repeat(97)}`, `p/${'n'.repeat(98)}`, `${'d'.repeat(150)}/${'f'.repeat(99)}`, `${'d'.repeat(160)}/f`, `${'x'.repeat(300)}`, `ü/${'é'.repeat(60)}`, `${'ü'.repeat(200)}/x`];
      for (const name of names) {
        for (const e of [{ name, type: 'directory' }, { name, type: 'file', size: 3, data: Buffer.from('abc') }, ...names.map((target) => ({ name, type: 'link', target }))] as TarEntry[]) {
          expect(entryHeaderSize(e), `${e.type} ${name}`).to.equal(entryHeader(e).length);
        }
      }
    });

    it('writeTar refuses a link to anything but a file it wrote before', async () => {
      const file = (name: string): TarEntry => ({ name, type: 'file', size: 1, data: Buffer.from('x') });
      const cases: Array<[TarEntry[], RegExp]> = [
        [[{ name: 'b', type: 'link', target: 'a' }, file('a')], /b: a link to a, which is not a file written before it/],
        [[file('a'), { name: 'b', type: 'link', target: '../outside' }], /a link to \.\.\/outside/],
        [[{ name: 'd', type: 'directory' }, { name: 'b', type: 'link', target: 'd' }], /a link to d,/],
        [[file('a'), { name: 'b', type: 'link', target: '/etc/passwd' }], /a link to \/etc\/passwd/],
      ];
      for (const [entries, message] of cases) {
        try {
          await writeTar(entries, async () => undefined);
          expect.fail('expected a TarError');
        } catch (err) {
          expect(err).to.be.instanceOf(TarError);
          expect((err as Error).message).to.match(message);
        }
      }
    });

    it('linkRepeats links what takes no more bytes as a link, and never empty files', () => {
      const long = `packages/p/${'x'.repeat(100)}`;
      const f = (name: string, size: number): TarEntry => ({ name, type: 'file', size, data: Buffer.alloc(size) });
      const out = linkRepeats([f('a', 10), f('b', 10), f(`${long}/1`, 10), f('e1', 0), f('e2', 0), f('big1', 5000), f(`${long}/big2`, 5000)], () => 'same');
      expect(out.map((e) => (e.type === 'link' ? `${e.name}->${e.target}` : e.name))).to.deep.equal([
        'a', 'b->a', `${long}/1->a`, 'e1', 'e2', 'big1', `${long}/big2->big1`,
      ]);
      // a one-block file whose link would need a pax record (three blocks) stays a file; a larger one is linked
      const far = linkRepeats([f(`${long}/first`, 10), f('second', 10), f(`${long}/big`, 2000), f('big-again', 2000)], () => 'same');
      expect(far.map((e) => e.type)).to.deep.equal(['file', 'file', 'file', 'link']);
    });
  });

  describe('layers', () => {
    it('identical files of two versions are hard links to the first copy; the sizes say what it saved', async () => {
      const l = newLayer();
      twoVersions(l.dir);
      const c = (await mergeLayers('production', [l])).contributions[0];
      const top = 'packages/production/nginx';
      expect(links(c).map((e) => [e.name, e.target])).to.deep.equal([
        [`${top}/1.1.0/LICENSE.txt`, `${top}/1.0.0/LICENSE.txt`],
        [`${top}/1.1.0/img/logo.png`, `${top}/1.0.0/img/logo.png`],
        [`${top}/1.1.0/img/screenshot.png`, `${top}/1.0.0/img/screenshot.png`],
      ]);
      const tree = filesBelow(l.dir);
      const treeBytes = [...tree.values()].reduce((n, b) => n + b.length, 0);
      expect(c.sizes).to.deep.equal({ files: tree.size, distinctFiles: tree.size - 3, links: 3, treeBytes, tarBytes: tarSize(c.entries) });
      expect(c.sizes.tarBytes).to.be.below(treeBytes * 0.6);
    });

    it('the layer tar unpacks (GNU tar, and tar-stream) to exactly the tree\'s files with the same bytes', async () => {
      const l = newLayer();
      twoVersions(l.dir);
      writeDirPackage(l.dir, { name: 'apache', version: '2.0.0', files: { 'img/logo.png': logo, 'docs/same-as-readme.md': '# apache\n\nA test package.\n' } });
      await writeZipPackage(l.dir, { name: 'zipped', version: '1.0.0', files: { 'img/logo.png': logo } });
      const c = (await mergeLayers('production', [l])).contributions[0];
      expect(links(c).length).to.be.greaterThan(3);
      const file = path.join(tmpDir('links-out-'), 'layer.tar');
      await tarFile(c.entries, file);

      const wanted = treeFiles(l);
      expect(wanted.size).to.equal(c.sizes.files);
      const index = `packages/production/${BAKED_INDEX_FILE}`;
      wanted.set(index, (c.entries.find((e) => e.name === index) as { data: Buffer }).data);

      const x = tmpDir('links-x-');
      const r = spawnSync('tar', ['-xf', file, '-C', x]);
      expect(r.status, r.stderr.toString()).to.equal(0);
      const unpacked = filesBelow(x);
      // a zip is held as its recipe, its entries in the layer's entry store (builder/zip-recipe.ts): rebuilt, it is the tree's zip
      const store = `packages/production/${ENTRY_STORE}/`;
      for (const k of unpacked.keys()) if (k.startsWith(store)) wanted.set(k, unpacked.get(k)!);
      const zip = 'packages/production/zipped-1.0.0.zip';
      const rebuilt = await openZipArchive(path.join(x, zip), path.join(x, 'packages/production'));
      expect(rebuilt.recipe).to.equal(true);
      expect(rebuilt.readSync(0, rebuilt.size).equals(wanted.get(zip)!)).to.equal(true);
      wanted.set(zip, unpacked.get(zip)!);
      expect([...unpacked.keys()].sort()).to.deep.equal([...wanted.keys()].sort());
      for (const [k, bytes] of wanted) expect(unpacked.get(k)!.equals(bytes), k).to.equal(true);

      const read = await readWithTarStream(file);
      expect([...read.files.keys()].sort()).to.deep.equal([...wanted.keys()].sort());
      for (const [k, bytes] of wanted) expect(read.files.get(k)!.equals(bytes), k).to.equal(true);
      expect(read.links.size).to.equal(c.sizes.links);
    });

    it('the same tree elsewhere, written in another order with other times, gives the same tar bytes and key', async () => {
      const one = newLayer();
      const two = newLayer();
      twoVersions(one.dir);
      for (const s of versions().reverse()) {
        const dir = writeDirPackage(two.dir, s);
        for (const f of packageFiles(s).keys()) fs.utimesSync(path.join(dir, f), new Date('2011-01-01'), new Date('2011-01-01'));
      }
      const [a, b] = [(await mergeLayers('production', [one])).contributions[0], (await mergeLayers('production', [two])).contributions[0]];
      expect(a.key).to.equal(b.key);
      const out = tmpDir('links-out-');
      expect(await tarFile(a.entries, path.join(out, 'a.tar'))).to.equal(await tarFile(b.entries, path.join(out, 'b.tar')));
    });

    it('the file digests come from the package cache: a rebuild reads no unchanged package again and links the same way', async () => {
      const l = newLayer();
      twoVersions(l.dir);
      const cacheDir = tmpDir('links-cache-');
      const lines: string[] = [];
      const first = (await mergeLayers('production', [l], { cacheDir })).contributions[0];
      const again = (await mergeLayers('production', [l], { cacheDir, log: (s) => lines.push(s) })).contributions[0];
      expect(lines[0]).to.match(/2 packages, 2 unchanged since the last build/);
      expect(again.entries).to.deep.equal(first.entries);
      expect(again.sizes).to.deep.equal(first.sizes);
      // the screenshot of 1.1.0 changes: it is no longer a link
      fs.writeFileSync(path.join(l.dir, 'nginx', '1.1.0', 'img', 'screenshot.png'), noise('other', 300_000));
      const changed = (await mergeLayers('production', [l], { cacheDir })).contributions[0];
      expect(links(changed).map((e) => path.basename(e.name))).to.deep.equal(['LICENSE.txt', 'logo.png']);
      expect(changed.key).to.not.equal(first.key);
    });

    it('a delta links only to files inside the delta, never to the full layer below it', async () => {
      const l = newLayer('snapshot');
      writeDirPackage(l.dir, { name: 'a', version: '1.0.0', files: { 'img/logo.png': logo } });
      writeDirPackage(l.dir, { name: 'b', version: '1.0.0', files: { 'img/screenshot.png': screenshot } });
      const before = (await mergeLayers('snapshot', [l])).contributions[0];
      // two new versions: a 2.0.0 repeats a 1.0.0's logo (in the layer below), c 1.0.0 repeats it too, and b's screenshot
      writeDirPackage(l.dir, { name: 'a', version: '2.0.0', files: { 'img/logo.png': logo } });
      writeDirPackage(l.dir, { name: 'c', version: '1.0.0', files: { 'img/logo.png': logo, 'img/screenshot.png': screenshot } });
      const after = (await mergeLayers('snapshot', [l])).contributions[0];
      const plan = planDelta(before.state.packages, after.state.packages)!;
      expect(plan.send).to.deep.equal(['a/2.0.0', 'c/1.0.0']);
      const delta = after.deltaEntries(plan);
      const written = new Set<string>();
      for (const e of delta) {
        if (e.type === 'link') expect(written.has(e.target), `${e.name} -> ${e.target}`).to.equal(true);
        if (e.type === 'file') written.add(e.name);
      }
      const top = 'packages/snapshot';
      expect(links({ entries: delta }).map((e) => [e.name, e.target])).to.deep.include.members([[`${top}/c/1.0.0/img/logo.png`, `${top}/a/2.0.0/img/logo.png`]]);
      // the first copy in the delta is a file, although the layer below has the same content
      expect(delta.find((e) => e.name === `${top}/c/1.0.0/img/screenshot.png`)!.type).to.equal('file');
      expect(delta.find((e) => e.name === `${top}/a/2.0.0/img/logo.png`)!.type).to.equal('file');
      // in the full layer the same file links to the first copy
      expect(after.entries.find((e) => e.name === `${top}/a/2.0.0/img/logo.png`)).to.deep.include({ type: 'link', target: `${top}/a/1.0.0/img/logo.png` });
      await tarFile(delta, path.join(tmpDir('links-out-'), 'delta.tar'));
    });

    it('a link never crosses layers: each layer links inside itself only', async () => {
      const base = tmpDir('links-two-');
      const prod = layerAt(path.join(base, 'production'), 'production');
      const stg = layerAt(path.join(base, 'staging'), 'staging');
      writeDirPackage(prod.dir, { name: 'a', version: '1.0.0', files: { 'img/logo.png': logo } });
      writeDirPackage(prod.dir, { name: 'a', version: '1.1.0', files: { 'img/logo.png': logo } });
      writeDirPackage(stg.dir, { name: 'a', version: '2.0.0', files: { 'img/logo.png': logo } });
      const m = await mergeLayers('staging', [prod, stg]);
      expect(links(m.contributions[0]).length).to.be.greaterThan(0);
      for (const c of m.contributions) {
        for (const e of links(c)) expect(e.target.startsWith(`packages/${c.name}/`)).to.equal(true);
      }
      expect(m.contributions[1].entries.find((e) => e.name.endsWith('a/2.0.0/img/logo.png'))!.type).to.equal('file');
    });
  });

  describe('links in sources are no way out of a package', () => {
    const refused = async (l: MaterialisedLayer, message: RegExp) => {
      try {
        await mergeLayers('production', [l]);
        expect.fail('expected the package to be refused');
      } catch (err) {
        expect(err, (err as Error).stack).to.be.instanceOf(InvalidPackagesError);
        expect((err as InvalidPackagesError).problems.join('\n')).to.match(message);
      }
    };

    it('a symbolic link out of its package folder is refused, naming it; one inside is followed, and linked in the tar', async () => {
      const outside = path.join(tmpDir('links-secret-'), 'secret.txt');
      fs.writeFileSync(outside, 'secret\n');
      const l = newLayer();
      const dir = writeDirPackage(l.dir, { name: 'a', version: '1.0.0', files: { 'img/logo.png': logo } });
      fs.symlinkSync(path.join(dir, 'img', 'logo.png'), path.join(dir, 'img', 'same-logo.png'));
      const c = (await mergeLayers('production', [l])).contributions[0];
      expect(c.entries.find((e) => e.name.endsWith('same-logo.png'))).to.deep.include({ type: 'link', target: 'packages/production/a/1.0.0/img/logo.png' });

      fs.symlinkSync(outside, path.join(dir, 'docs', 'secret.md'));
      await refused(l, /layer production: .*docs\/secret\.md: symbolic link docs\/secret\.md points outside its package \(to .*secret\.txt\): refused/);
    });

    it('a link to another version of the package, a dangling link out of it, and a linked folder out of it are refused too', async () => {
      const makers = [
        (dir: string, l: MaterialisedLayer) => fs.symlinkSync(path.join(l.dir, 'a', '0.9.0', 'docs', 'README.md'), path.join(dir, 'docs', 'old.md')),
        (dir: string) => fs.symlinkSync('../../../../nowhere', path.join(dir, 'docs', 'gone.md')),
        (dir: string) => fs.symlinkSync(tmpDir('links-elsewhere-'), path.join(dir, 'kibana')),
      ];
      for (const make of makers) {
        const l = newLayer();
        writeDirPackage(l.dir, { name: 'a', version: '0.9.0' });
        const dir = writeDirPackage(l.dir, { name: 'a', version: '1.0.0' });
        make(dir, l);
        await refused(l, /a\/1\.0\.0.*points outside its package/);
      }
    });

    it('a hard link to a file outside the package is refused; hard links inside it are fine', async () => {
      const l = newLayer();
      const dir = writeDirPackage(l.dir, { name: 'a', version: '1.0.0', files: { 'img/logo.png': logo } });
      fs.linkSync(path.join(dir, 'img', 'logo.png'), path.join(dir, 'img', 'logo-again.png'));
      const c = (await mergeLayers('production', [l])).contributions[0];
      // logo-again.png sorts first: it is the copy, logo.png the link
      expect(links(c).map((e) => [e.name, e.target])).to.deep.equal([['packages/production/a/1.0.0/img/logo.png', 'packages/production/a/1.0.0/img/logo-again.png']]);

      const outside = path.join(tmpDir('links-secret-'), 'secret.txt');
      fs.writeFileSync(outside, 'secret\n');
      fs.linkSync(outside, path.join(dir, 'docs', 'secret.md'));
      await refused(l, /docs\/secret\.md is a hard link to a file outside its package \(2 names, 1 of them in the package\): refused/);
    });

    it('a package folder or zip reached through a symbolic link out of the layer is refused, and a hard-linked zip', async () => {
      const elsewhere = tmpDir('links-elsewhere-');
      writeDirPackage(elsewhere, { name: 'far', version: '1.0.0' });
      await writeZipPackage(elsewhere, { name: 'farzip', version: '1.0.0' });
      const l = newLayer();
      fs.symlinkSync(path.join(elsewhere, 'far'), path.join(l.dir, 'far'));
      await refused(l, /far\/1\.0\.0 leads outside the layer folder .* through a symbolic link: refused/);

      const z = newLayer();
      fs.symlinkSync(path.join(elsewhere, 'farzip-1.0.0.zip'), path.join(z.dir, 'farzip-1.0.0.zip'));
      fs.copyFileSync(path.join(elsewhere, 'farzip-1.0.0.zip.sig'), path.join(z.dir, 'farzip-1.0.0.zip.sig'));
      await refused(z, /farzip-1\.0\.0\.zip leads outside the layer folder/);

      const h = newLayer();
      fs.linkSync(path.join(elsewhere, 'farzip-1.0.0.zip'), path.join(h.dir, 'farzip-1.0.0.zip'));
      fs.copyFileSync(path.join(elsewhere, 'farzip-1.0.0.zip.sig'), path.join(h.dir, 'farzip-1.0.0.zip.sig'));
      await refused(h, /farzip-1\.0\.0\.zip is a hard link \(the file has 2 names\)/);
    });

    it('a zip with a symbolic link entry leading out of its top folder is refused; one inside it is kept', async () => {
      const write = async (dir: string, target: string) => {
        const zip = new yazl.ZipFile();
        for (const [rel, bytes] of packageFiles({ name: 'z', version: '1.0.0' })) zip.addBuffer(bytes, `z-1.0.0/${rel}`, { mtime: new Date('2021-01-01') });
        zip.addBuffer(Buffer.from(target), 'z-1.0.0/docs/link.md', { mtime: new Date('2021-01-01'), mode: 0o120777 });
        zip.end();
        const chunks: Buffer[] = [];
        for await (const c of zip.outputStream) chunks.push(c as Buffer);
        fs.writeFileSync(path.join(dir, 'z-1.0.0.zip'), Buffer.concat(chunks));
        fs.writeFileSync(path.join(dir, 'z-1.0.0.zip.sig'), 'signature\n');
      };
      const ok = newLayer();
      await write(ok.dir, 'README.md');
      expect((await mergeLayers('production', [ok])).served.map((p) => p.name)).to.deep.equal(['z']);
      for (const target of ['../../etc/passwd', '/etc/passwd', '../../other-1.0.0/x']) {
        const l = newLayer();
        await write(l.dir, target);
        const escaped = target.replace(/[./]/g, '\\$&');
        await refused(l, new RegExp(`z-1\\.0\\.0\\.zip: entry z-1\\.0\\.0/docs/link\\.md is a symbolic link to ${escaped}, outside the package: refused`));
      }
    });

    it('a git layer (a tar from git archive) with a symbolic link out of a package is refused', async () => {
      const repo = tmpDir('links-repo-');
      const dir = writeDirPackage(path.join(repo, 'packages'), { name: 'g', version: '1.0.0' });
      fs.symlinkSync('/etc/passwd', path.join(dir, 'docs', 'passwd.md'));
      const git = (...args: string[]) => {
        const r = spawnSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(r.stderr);
      };
      git('init', '-q', '-b', 'main');
      git('add', '.');
      git('commit', '-q', '-m', 'hostile');
      const m = await materialiseLayer({ name: 'production', source: { kind: 'git', repo, ref: 'main', path: 'packages' } }, { work: tmpDir('links-work-') });
      expect(fs.lstatSync(path.join(m.dir, 'g', '1.0.0', 'docs', 'passwd.md')).isSymbolicLink()).to.equal(true);
      await refused(m, /g\/1\.0\.0\/docs\/passwd\.md: symbolic link docs\/passwd\.md points outside its package \(to \/etc\/passwd\)/);
    });

    it('a layer taken on trust that has gained a link out of a package fails its check', async () => {
      const l = newLayer();
      const dir = writeDirPackage(l.dir, { name: 'a', version: '1.0.0' });
      const cacheDir = tmpDir('links-cache-');
      await mergeLayers('production', [l], { cacheDir });
      const ok = await mergeLayers('production', [l], { cacheDir, trust: ['production'] });
      expect(await ok.verification).to.equal(true);
      fs.symlinkSync('/etc/hostname', path.join(dir, 'docs', 'host.md'));
      const m = await mergeLayers('production', [l], { cacheDir, trust: ['production'] });
      expect(await m.verification).to.equal(false);
    });
  });
});
