/**
 * Zip recipes: a zip made into its recipe and its entries, and back, is the
 * same bytes for zips from yazl (with and without data descriptors, zip64),
 * from Info-ZIP (stored and deflated); versions of a package share their
 * entries; recipes that point at missing, short or odd entries are refused;
 * a layer tar holds each shared entry once, and its deltas carry only what
 * the base lacks.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import yazl from 'yazl';
import { makeRecipe, MIN_STORED_ENTRY } from '../../builder/zip-recipe.js';
import { InvalidPackagesError, mergeLayers } from '../../builder/merge.js';
import { planDelta } from '../../builder/delta.js';
import { archiveSha256, decodeRecipe, encodeRecipe, ENTRY_STORE, openZipArchive, RecipeError, type ZipArchive } from '../../server/packages/zip-recipe.js';
import { ZipSource } from '../../server/packages/source.js';
import { loadPackagePath } from '../../server/packages/index.js';
import { readBakedIndex } from '../../server/packages/baked.js';
import { cleanupTmp, tmpDir, writeZipPackage, writeZipSlipPackage } from '../helpers/fixtures.js';
import { builtLayer, layerAt, noise, sha256, unpackEntries, zipVersions } from '../helpers/zip-recipes.js';

type YazlEntry = { name: string; content: Buffer; compress?: boolean; stream?: boolean; zip64?: boolean };

function yazlZip(entries: YazlEntry[], comment?: string): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  const mtime = new Date('2021-01-01T00:00:00Z');
  for (const e of entries) {
    const opts = { mtime, compress: e.compress ?? true, forceZip64Format: e.zip64 ?? false };
    // a stream's sizes are not known ahead: yazl writes them in a data descriptor after the data
    if (e.stream) zip.addReadStream(Readable.from([e.content]), e.name, opts);
    else zip.addBuffer(e.content, e.name, opts);
  }
  zip.end({ forceZip64Format: false, comment: comment ?? '' });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

/** Writes `zip`'s recipe and entries into the layer `root` as the builder does, the recipe at `<root>/<name>`. */
async function asRecipe(root: string, zipFile: string, name: string): Promise<{ recipe: Buffer; digests: string[] }> {
  const built = makeRecipe(await openZipArchive(zipFile));
  fs.mkdirSync(path.join(root, ENTRY_STORE), { recursive: true });
  for (const e of built.entries) {
    const bytes = e.data ?? (await openZipArchive(e.from!.file)).readSync(e.from!.offset, e.length);
    fs.writeFileSync(path.join(root, ENTRY_STORE, e.digest), bytes);
  }
  fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
  fs.writeFileSync(path.join(root, name), built.recipe);
  return { recipe: built.recipe, digests: built.entries.map((e) => e.digest) };
}

async function streamed(a: ZipArchive, start?: number, end?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of a.createReadStream(start, end)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The recipe of `zip` read back gives its bytes: whole, in ranges, blocking, and entry by entry through yauzl. */
async function roundTrip(zip: Buffer): Promise<{ recipe: Buffer; digests: string[] }> {
  const root = tmpDir('zr-');
  const zipFile = path.join(root, 'plain', 'p-1.0.0.zip');
  fs.mkdirSync(path.dirname(zipFile), { recursive: true });
  fs.writeFileSync(zipFile, zip);
  const made = await asRecipe(root, zipFile, 'recipes/p-1.0.0.zip');
  const a = await openZipArchive(path.join(root, 'recipes/p-1.0.0.zip'), root);
  expect(a.recipe).to.equal(true);
  expect(a.size).to.equal(zip.length);
  expect(await archiveSha256(a)).to.equal(sha256(zip));
  expect((await streamed(a)).equals(zip)).to.equal(true);
  for (const [s, e] of [[0, 0], [0, 99], [17, 4000], [zip.length - 22, zip.length - 1], [Math.floor(zip.length / 3), Math.floor((2 * zip.length) / 3)]]) {
    expect((await streamed(a, s, e)).equals(zip.subarray(s, e + 1)), `bytes ${s}-${e}`).to.equal(true);
    expect(a.readSync(s, e - s + 1).equals(zip.subarray(s, e + 1)), `readSync ${s}-${e}`).to.equal(true);
  }
  const plainSource = await ZipSource.open(zipFile);
  const recipeSource = await ZipSource.open(path.join(root, 'recipes/p-1.0.0.zip'), root);
  expect(recipeSource.files().map((f) => [f.path, f.size])).to.deep.equal(plainSource.files().map((f) => [f.path, f.size]));
  for (const f of plainSource.files()) expect((await recipeSource.readFile(f.path)).equals(await plainSource.readFile(f.path)), f.path).to.equal(true);
  return made;
}

const big = (seed: string) => Buffer.concat([noise(seed, 5000), Buffer.from('text that deflates well '.repeat(400))]);

describe('zip recipes', () => {
  after(() => cleanupTmp());

  it('a yazl zip (deflated and stored entries, directory entries, a comment) comes back byte for byte, its big entries in the store', async () => {
    const zip = await yazlZip([
      { name: 'p-1.0.0/manifest.yml', content: Buffer.from('name: p\n') },
      { name: 'p-1.0.0/img/a.png', content: noise('a', 9000), compress: false },
      { name: 'p-1.0.0/docs/README.md', content: big('readme') },
    ], 'a comment');
    const { digests } = await roundTrip(zip);
    // the small manifest stays in the recipe; the stored image and the deflated readme are entries
    expect(digests).to.have.length(2);
  });

  it('data descriptors (entries streamed by yazl) and zip64 records come back byte for byte', async () => {
    const zip = await yazlZip([
      { name: 'p-1.0.0/a.bin', content: big('a'), stream: true },
      { name: 'p-1.0.0/b.bin', content: noise('b', 3000), stream: true, compress: false },
      { name: 'p-1.0.0/c.bin', content: big('c'), zip64: true },
    ]);
    const { digests } = await roundTrip(zip);
    expect(digests).to.have.length(3);
  });

  it('an Info-ZIP zip (deflated, and stored with -0) comes back byte for byte', async function () {
    if (spawnSync('zip', ['-v']).status !== 0) this.skip();
    const dir = tmpDir('zr-infozip-');
    const top = path.join(dir, 'p-1.0.0');
    fs.mkdirSync(path.join(top, 'img'), { recursive: true });
    fs.writeFileSync(path.join(top, 'manifest.yml'), 'name: p\n');
    fs.writeFileSync(path.join(top, 'img', 'shot.png'), noise('shot', 20_000));
    fs.writeFileSync(path.join(top, 'LICENSE.txt'), big('licence'));
    for (const level of ['-6', '-0']) {
      const out = path.join(dir, `p${level}.zip`);
      const r = spawnSync('zip', ['-r', '-X', level, out, 'p-1.0.0'], { cwd: dir, encoding: 'utf8' });
      expect(r.status, r.stderr).to.equal(0);
      const { digests } = await roundTrip(fs.readFileSync(out));
      expect(digests.length, level).to.be.greaterThan(1);
    }
  });

  it('successive versions share their entries: only what changed is new', async () => {
    const root = tmpDir('zr-share-');
    const specs = zipVersions('web', ['1.0.0', '1.1.0']);
    const [a, b] = [await writeZipPackage(path.join(root, 'plain'), specs[0]), await writeZipPackage(path.join(root, 'plain'), specs[1])];
    const ra = await asRecipe(root, a, 'web-1.0.0.zip');
    const rb = await asRecipe(root, b, 'web-1.1.0.zip');
    const shared = rb.digests.filter((d) => ra.digests.includes(d));
    // the images and the dashboard are the same bytes; the readme, manifest and fields file are not, the logo and licence deflate too small to store
    expect(shared.length).to.equal(3);
    expect(rb.recipe.length).to.be.below(fs.statSync(b).size / 10);
  });

  it('recipes that do not describe their zip exactly are refused, each with its reason', async () => {
    const root = tmpDir('zr-bad-');
    const zipFile = path.join(root, 'plain', 'p-1.0.0.zip');
    fs.mkdirSync(path.dirname(zipFile), { recursive: true });
    fs.writeFileSync(zipFile, await yazlZip([{ name: 'p-1.0.0/a.bin', content: noise('x', MIN_STORED_ENTRY * 4), compress: false }]));
    const good = await asRecipe(root, zipFile, 'p-1.0.0.zip');
    const digest = good.digests[0];
    const entry = path.join(root, ENTRY_STORE, digest);
    const recipeFile = path.join(root, 'p-1.0.0.zip');
    const refused = async (why: RegExp, at = recipeFile, layerRoot: string | null = root) => {
      let err: unknown;
      try { await openZipArchive(at, layerRoot ?? undefined); } catch (e) { err = e; }
      expect(err, String(why)).to.be.instanceOf(RecipeError);
      expect((err as Error).message).to.match(why);
    };
    await openZipArchive(recipeFile, root);
    await refused(/read outside its package path/, recipeFile, null);

    const bytes = fs.readFileSync(entry);
    fs.writeFileSync(entry, bytes.subarray(0, bytes.length - 1));
    await refused(new RegExp(`entry ${digest} has ${bytes.length - 1} bytes, the recipe says ${bytes.length}`));
    fs.rmSync(entry);
    await refused(new RegExp(`entry ${digest} is missing from the layer's entry store`));
    // a link in the store could lead anywhere: only regular files are entries
    fs.writeFileSync(path.join(root, 'outside.bin'), bytes);
    fs.symlinkSync(path.join(root, 'outside.bin'), entry);
    await refused(/is not a regular file/);
    fs.rmSync(entry);
    fs.writeFileSync(entry, bytes);
    // a recipe of a layer without a store
    const other = tmpDir('zr-nostore-');
    fs.copyFileSync(recipeFile, path.join(other, 'p-1.0.0.zip'));
    await refused(/the layer has no entry store/, path.join(other, 'p-1.0.0.zip'), other);
    // nor a store that is a link to a folder elsewhere (another layer's store, say)
    fs.symlinkSync(path.join(root, ENTRY_STORE), path.join(other, ENTRY_STORE));
    await refused(/the layer has no entry store/, path.join(other, 'p-1.0.0.zip'), other);

    const r = decodeRecipe(good.recipe);
    const write = (buf: Buffer) => { fs.writeFileSync(recipeFile, buf); };
    write(good.recipe.subarray(0, good.recipe.length - 3));
    await refused(/truncated at segment/);
    write(Buffer.concat([good.recipe, Buffer.from('x')]));
    await refused(/1 bytes after the last segment/);
    write(encodeRecipe({ ...r, size: r.size + 1 }));
    await refused(/segments make \d+ bytes, the zip has \d+/);
    const odd = Buffer.from(good.recipe);
    odd[17 + 8 + 32 + 4] = 7;
    write(odd);
    await refused(/segment 0 is of unknown kind 7/);
    // the store is named by digests only: there is no way to write a path
    expect(r.segments.filter((s) => s.kind === 'entry').every((s) => s.kind === 'entry' && /^[0-9a-f]{64}$/.test(s.digest))).to.equal(true);
    write(good.recipe);
    await openZipArchive(recipeFile, root);
  });

  it('a package path with a broken recipe: the package fails to load with that reason, the others load', async () => {
    const plain = tmpDir('zr-scan-');
    for (const s of zipVersions('web', ['1.0.0', '1.1.0', '1.2.0']).slice(1)) await writeZipPackage(plain, s);
    const { dir } = await builtLayer(plain);
    const store = path.join(dir, ENTRY_STORE);
    const loaded = await loadPackagePath(dir, { validate: true });
    expect(loaded.failures).to.deep.equal([]);
    expect(loaded.packages.map((p) => p.key).sort()).to.deep.equal(['web-1.1.0', 'web-1.2.0']);
    // an entry only 1.2.0 uses (its screenshot changed), cut short
    const r0 = decodeRecipe(fs.readFileSync(path.join(dir, 'web-1.1.0.zip')));
    const r1 = decodeRecipe(fs.readFileSync(path.join(dir, 'web-1.2.0.zip')));
    const own = r1.segments.find((s) => s.kind === 'entry' && !r0.segments.some((t) => t.kind === 'entry' && t.digest === s.digest));
    expect(own).to.not.equal(undefined);
    const digest = (own as { digest: string }).digest;
    fs.truncateSync(path.join(store, digest), 10);
    const again = await loadPackagePath(dir, { validate: true });
    expect(again.packages.map((p) => p.key)).to.deep.equal(['web-1.1.0']);
    expect(again.failures).to.have.length(1);
    expect(again.failures[0].message).to.contain(`zip recipe web-1.2.0.zip: entry ${digest} has 10 bytes`);
    // the baked index does not let it through either: the recipe is checked when its package is opened
    const baked = await readBakedIndex(dir, { validate: true });
    expect(baked.ok).to.equal(false);
  });

  it('a layer tar holds each shared entry once and each zip as its recipe; unpacked, it serves the same zips, and its baked index matches', async () => {
    const plain = tmpDir('zr-layer-');
    for (const s of zipVersions('web', ['1.0.0', '1.1.0', '1.2.0', '1.3.0'])) await writeZipPackage(plain, s);
    const { dir, entries } = await builtLayer(plain);
    const stored = entries.filter((e) => e.name.startsWith(`packages/production/${ENTRY_STORE}/`));
    const zips = entries.filter((e) => e.name.endsWith('.zip'));
    expect(zips).to.have.length(4);
    const storedBytes = stored.reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0);
    const recipeBytes = zips.reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0);
    const zipBytes = fs.readdirSync(plain).filter((n) => n.endsWith('.zip')).reduce((n, f) => n + fs.statSync(path.join(plain, f)).size, 0);
    expect(storedBytes + recipeBytes).to.be.below(zipBytes * 0.45);
    const baked = await readBakedIndex(dir, { validate: true });
    expect(baked.ok, baked.ok ? '' : baked.reason).to.equal(true);
    for (const p of baked.ok ? baked.packages : []) {
      const zip = fs.readFileSync(path.join(plain, `${p.key}.zip`));
      expect(await archiveSha256((p.source as ZipSource).archive), p.key).to.equal(sha256(zip));
      expect(fs.readFileSync(`${path.join(dir, p.key)}.zip.sig`).equals(fs.readFileSync(path.join(plain, `${p.key}.zip.sig`)))).to.equal(true);
    }
  });

  it('a delta carries the changed zip\'s recipe and only the entries the base lacks; base + delta serves every zip as it is', async () => {
    const plain = tmpDir('zr-delta-');
    const specs = zipVersions('web', ['1.0.0', '1.1.0', '1.2.0']);
    for (const s of specs) await writeZipPackage(plain, s);
    const base = await mergeLayers('test', [layerAt(plain)]);
    const out = tmpDir('zr-delta-image-');
    await unpackEntries(base.contributions[0].entries, out);
    // 1.2.0 rebuilt with a new screenshot, 1.3.0 added, 1.0.0 removed
    const changed = { ...specs[2], files: { ...specs[2].files, 'img/screenshot.png': noise('new-screenshot', 30_000) } };
    await writeZipPackage(plain, changed);
    await writeZipPackage(plain, zipVersions('web', ['1.3.0'])[0]);
    fs.rmSync(path.join(plain, 'web-1.0.0.zip'));
    fs.rmSync(path.join(plain, 'web-1.0.0.zip.sig'));
    const now = await mergeLayers('test', [layerAt(plain)]);
    const plan = planDelta(base.contributions[0].state.packages, now.contributions[0].state.packages)!;
    expect(plan.send).to.deep.equal(['web-1.2.0.zip', 'web-1.3.0.zip']);
    const delta = now.contributions[0].deltaEntries(plan);
    const stored = delta.filter((e) => e.name.includes(`/${ENTRY_STORE}/`)).map((e) => path.basename(e.name));
    const baseStore = new Set(fs.readdirSync(path.join(out, 'packages/production', ENTRY_STORE)));
    // the new screenshot is the one entry the base has no copy of
    expect(stored).to.have.length(1);
    expect(baseStore.has(stored[0])).to.equal(false);
    await unpackEntries(delta.map((e) => e), out);
    // GNU tar leaves whiteout files as they are: apply them as an engine would
    const dir = path.join(out, 'packages/production');
    for (const n of fs.readdirSync(dir).filter((x) => x.startsWith('.wh.'))) {
      fs.rmSync(path.join(dir, n.slice(4)), { force: true });
      fs.rmSync(path.join(dir, n));
    }
    const loaded = await loadPackagePath(dir, { validate: true });
    expect(loaded.failures.map((f) => f.message)).to.deep.equal([]);
    expect(loaded.packages.map((p) => p.key).sort()).to.deep.equal(['web-1.1.0', 'web-1.2.0', 'web-1.3.0']);
    for (const p of loaded.packages) expect(await archiveSha256((p.source as ZipSource).archive), p.key).to.equal(sha256(fs.readFileSync(path.join(plain, `${p.key}.zip`))));
    const baked = await readBakedIndex(dir, { validate: true });
    expect(baked.ok, baked.ok ? '' : baked.reason).to.equal(true);
  });

  it('hostile zips are refused before any recipe is made (a `..` entry), and a layer of recipes is read with its checks at build time', async () => {
    const plain = tmpDir('zr-hostile-');
    await writeZipSlipPackage(plain, { name: 'evil', version: '1.0.0' });
    let err: unknown;
    try { await mergeLayers('test', [layerAt(plain)]); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(InvalidPackagesError);
    expect((err as InvalidPackagesError).problems.join('\n')).to.match(/evil-1\.0\.0\.zip: cannot read zip evil-1\.0\.0\.zip: invalid relative path: evil-1\.0\.0\/\.\.\/evil\.txt/);

    // an image's layer of recipes given to the builder as a source: its recipes are checked like the server's
    const good = tmpDir('zr-resource-');
    for (const s of zipVersions('web', ['1.0.0', '1.1.0'])) await writeZipPackage(good, s);
    const { dir } = await builtLayer(good);
    fs.rmSync(path.join(dir, '.epr-index'));
    const again = await builtLayer(dir);
    for (const v of ['1.0.0', '1.1.0']) {
      const p = (await loadPackagePath(again.dir, { validate: true })).packages.find((x) => x.version === v)!;
      expect(await archiveSha256((p.source as ZipSource).archive)).to.equal(sha256(fs.readFileSync(path.join(good, `web-${v}.zip`))));
    }
    const store = path.join(dir, ENTRY_STORE);
    for (const f of fs.readdirSync(store)) fs.truncateSync(path.join(store, f), 1);
    err = undefined;
    try { await mergeLayers('test', [layerAt(dir)]); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(InvalidPackagesError);
    expect((err as InvalidPackagesError).problems.join('\n')).to.match(/zip recipe web-1\.\d\.0\.zip: entry [0-9a-f]{64} has 1 bytes/);
  });
});
