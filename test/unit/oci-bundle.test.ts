/**
 * Bundles (builder/oci/bundle.ts) from a real store in a temporary folder:
 * one tar that is an OCI layout and a docker archive, every blob once, never
 * a partial file, incremental bundles that name what they left out, read
 * back by offset, and --since from an earlier bundle or a store image.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { OciStore } from '../../builder/oci/store.js';
import { writeTar } from '../../builder/tar.js';
import { digestHex, sha256Digest, type BlobSource, type LayerDescriptor, type OciImage } from '../../builder/oci/model.js';
import {
  BUNDLE_FILE, BundleError, LEFT_OUT_ANNOTATION, NotABundleError, indexTar, readBundle, sinceSet, writeBundle,
} from '../../builder/oci/bundle.js';
import { ArchiveWriter } from '../../builder/oci/engine.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';

async function layer(store: OciStore, files: Record<string, string>): Promise<LayerDescriptor> {
  return store.writeLayer((write) => writeTar(Object.entries(files).map(([name, text]) => ({ name, type: 'file' as const, size: Buffer.byteLength(text), data: Buffer.from(text) })), write));
}

function image(store: OciStore, layers: LayerDescriptor[], label: string): OciImage {
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { Labels: { test: label } },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  }));
  return store.putImage(config, layers);
}

async function streamBytes(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function tarList(file: string): string[] {
  const r = spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
  expect(r.status, r.stderr).to.equal(0);
  return r.stdout.trim().split('\n');
}

function tarFile(file: string, name: string): Buffer {
  const r = spawnSync('tar', ['-xOf', file, name]);
  expect(r.status, r.stderr.toString()).to.equal(0);
  return r.stdout;
}

describe('OCI bundles', () => {
  let dir: string;
  let store: OciStore;
  let base: LayerDescriptor;
  let app1: LayerDescriptor;
  let app2: LayerDescriptor;
  let v1: OciImage;
  let v2: OciImage;

  before(async () => {
    dir = tmpDir('epr-bundle-');
    store = OciStore.open(path.join(dir, 'store'));
    base = await layer(store, { 'etc/os-release': 'ID=test\n', 'bin/tool': 'x'.repeat(5000) });
    app1 = await layer(store, { 'app/version': '1\n' });
    app2 = await layer(store, { 'app/version': '2\n', 'app/new': 'new\n' });
    v1 = image(store, [base, app1], 'v1');
    v2 = image(store, [base, app2], 'v2');
  });
  after(() => cleanupTmp());

  it('writes one tar that is an OCI layout and a docker archive, every blob once', async () => {
    const file = path.join(dir, 'full.tar');
    const r = await writeBundle(file, [{ image: v1, tags: ['localhost:5000/epr/app:v1'] }, { image: v2, tags: ['localhost:5000/epr/app:v2', 'localhost:5000/epr/app:latest'] }], store);
    const names = tarList(file);
    expect(names.slice(0, 4)).to.deep.equal(['oci-layout', 'index.json', 'manifest.json', BUNDLE_FILE]);
    const blobs = names.filter((n) => n.startsWith('blobs/sha256/'));
    // 2 manifests, 2 configs, 3 layers: the base layer once
    expect(blobs).to.have.length(7);
    expect(new Set(blobs).size).to.equal(7);
    expect(blobs).to.include(`blobs/sha256/${digestHex(base.digest)}`);
    for (const b of blobs) expect(sha256Digest(tarFile(file, b))).to.equal(`sha256:${b.slice(13)}`);

    const index = JSON.parse(tarFile(file, 'index.json').toString()) as { manifests: Array<{ digest: string; annotations: Record<string, string> }>; annotations?: object };
    expect(index.annotations).to.equal(undefined);
    expect(index.manifests.map((m) => m.annotations)).to.deep.equal([
      { 'io.containerd.image.name': 'localhost:5000/epr/app:v1', 'org.opencontainers.image.ref.name': 'v1' },
      { 'io.containerd.image.name': 'localhost:5000/epr/app:v2', 'org.opencontainers.image.ref.name': 'v2' },
      { 'io.containerd.image.name': 'localhost:5000/epr/app:latest', 'org.opencontainers.image.ref.name': 'latest' },
    ]);
    expect(index.manifests.map((m) => m.digest)).to.deep.equal([v1.manifestDescriptor.digest, v2.manifestDescriptor.digest, v2.manifestDescriptor.digest]);
    const saved = JSON.parse(tarFile(file, 'manifest.json').toString()) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    expect(saved[1]).to.deep.equal({
      Config: `blobs/sha256/${digestHex(v2.configDescriptor.digest)}`,
      RepoTags: ['localhost:5000/epr/app:v2', 'localhost:5000/epr/app:latest'],
      Layers: [base, app2].map((l) => `blobs/sha256/${digestHex(l.digest)}`),
    });
    const meta = JSON.parse(tarFile(file, BUNDLE_FILE).toString()) as { kind: string; leftOut: unknown[] };
    expect(meta.kind).to.equal('full');
    expect(meta.leftOut).to.deep.equal([]);

    expect(r.bytes).to.equal(fs.statSync(file).size);
    expect(r.fullBytes).to.equal(r.bytes);
    expect(r).to.include({ images: 2, incremental: false, blobsWritten: 7, blobsLeftOut: 0, bytesLeftOut: 0 });
    expect(r.tags).to.deep.equal(['localhost:5000/epr/app:v1', 'localhost:5000/epr/app:v2', 'localhost:5000/epr/app:latest']);
    expect(fs.readdirSync(dir).filter((f) => f.includes('partial'))).to.deep.equal([]);
  });

  it('reads a bundle back: images, tags, blobs by offset', async () => {
    const file = path.join(dir, 'read.tar');
    await writeBundle(file, [{ image: v1, tags: ['epr-bundle-test:v1'] }, { image: v2, tags: ['localhost:5000/epr/app:v2'] }], store);
    const b = readBundle(file);
    expect(b.incremental).to.equal(false);
    expect(b.images.map((i) => i.tags)).to.deep.equal([['epr-bundle-test:v1'], ['localhost:5000/epr/app:v2']]);
    expect(b.images[1].image.manifest.equals(v2.manifest)).to.equal(true);
    expect(b.images[1].image.layers.map((l) => [l.digest, l.diffId])).to.deep.equal([[base.digest, base.diffId], [app2.digest, app2.diffId]]);
    expect(b.inside.size).to.equal(7);
    for (const d of [base.digest, app2.digest, v1.configDescriptor.digest]) expect((await streamBytes(b.open(d))).equals(store.read(d))).to.equal(true);
    expect(b.full.bytes).to.equal([base, app1, app2, v1.configDescriptor, v2.configDescriptor, v1.manifestDescriptor, v2.manifestDescriptor].reduce((n, d) => n + d.size, 0));
  });

  it('gives a tag named twice to the last image, and keeps the image', async () => {
    const file = path.join(dir, 'dup.tar');
    const r = await writeBundle(file, [{ image: v1, tags: ['epr/app:commit', 'epr/app:v1'] }, { image: v2, tags: ['epr/app:commit'] }], store);
    expect(r.tags).to.deep.equal(['epr/app:v1', 'epr/app:commit']);
    const b = readBundle(file);
    expect(b.images.map((i) => [i.image.manifestDescriptor.digest, i.tags])).to.deep.equal([[v1.manifestDescriptor.digest, ['epr/app:v1']], [v2.manifestDescriptor.digest, ['epr/app:commit']]]);
  });

  it('leaves no file, partial or not, when a blob cannot be read, and keeps the one there before', async () => {
    const file = path.join(dir, 'broken.tar');
    fs.writeFileSync(file, 'earlier');
    // a source that fails halfway through a layer
    const failing: BlobSource = {
      has: (d) => store.has(d),
      open: (d) => (d === app2.digest ? Readable.from((async function* () { yield store.read(d).subarray(0, 10); throw new Error('disk read error'); })()) : store.open(d)),
    };
    let err: Error | undefined;
    try { await writeBundle(file, [{ image: v1, tags: ['a:1'] }, { image: v2, tags: ['a:2'] }], failing); } catch (e) { err = e as Error; }
    expect(err?.message).to.match(/disk read error/);
    expect(fs.readFileSync(file, 'utf8')).to.equal('earlier');
    expect(fs.readdirSync(dir).filter((f) => f.includes('partial'))).to.deep.equal([]);

    const lacking: BlobSource = { has: (d) => d !== app1.digest && store.has(d), open: (d) => store.open(d) };
    let err2: Error | undefined;
    try { await writeBundle(path.join(dir, 'never.tar'), [{ image: v1, tags: ['a:1'] }], lacking); } catch (e) { err2 = e as Error; }
    expect(err2).to.be.instanceOf(BundleError);
    expect(err2?.message).to.contain(app1.digest).and.contain('a:1');
    expect(fs.existsSync(path.join(dir, 'never.tar'))).to.equal(false);
  });

  it('writes an incremental bundle: every manifest and config, only the layers not excluded, and says what it left out', async () => {
    const full = path.join(dir, 'v1.tar');
    await writeBundle(full, [{ image: v1, tags: ['epr/app:v1'] }], store);
    const since = await sinceSet(full);
    expect(since.from).to.equal('bundle');
    expect([...since.digests]).to.include.members([base.digest, app1.digest]);
    const file = path.join(dir, 'v2-update.tar');
    const lines: string[] = [];
    const r = await writeBundle(file, [{ image: v2, tags: ['epr/app:v2'] }], store, { since: [since], onProgress: (l) => lines.push(l) });
    expect(r).to.include({ incremental: true, blobsWritten: 3, blobsLeftOut: 1, bytesLeftOut: base.size });
    expect(r.bytes).to.be.below(r.fullBytes);
    expect(lines.at(-1)).to.match(/3 of 3 blobs/);
    const names = tarList(file);
    expect(names).to.not.include(`blobs/sha256/${digestHex(base.digest)}`);
    expect(names).to.include.members([app2, v2.configDescriptor, v2.manifestDescriptor].map((d) => `blobs/sha256/${digestHex(d.digest)}`));
    const index = JSON.parse(tarFile(file, 'index.json').toString()) as { annotations: Record<string, string> };
    expect(index.annotations[LEFT_OUT_ANNOTATION]).to.equal(base.digest);
    expect(index.annotations['org.elastic.package-registry.bundle.since']).to.equal(full);

    const b = readBundle(file);
    expect(b.incremental).to.equal(true);
    expect(b.leftOut).to.deep.equal([{ digest: base.digest, size: base.size, mediaType: base.mediaType, diffId: base.diffId, images: ['epr/app:v2'], from: [full] }]);
    expect(b.since[0].images.map((i) => i.name)).to.deep.equal(['epr/app:v1']);
    expect(b.has(base.digest)).to.equal(false);
    expect(() => b.open(base.digest)).to.throw(BundleError, /left out.*v1\.tar/);

    // a bundle made since the update holds what the update left out too: the site had it
    const again = await sinceSet(file);
    expect([...again.digests]).to.include.members([base.digest, app2.digest]);
    expect(again.images.map((i) => i.name)).to.deep.equal(['epr/app:v2', 'epr/app:v1']);
  });

  it('takes --since from the builder store by image name, and excludes with a plain set', async () => {
    store.tag('localhost:5000/epr/app:v1', v1);
    const s = await sinceSet('localhost:5000/epr/app:v1', { store });
    expect(s.from).to.equal('store');
    expect([...s.digests]).to.deep.equal([base.digest, app1.digest]);
    const r = await writeBundle(path.join(dir, 'plain.tar'), [{ image: v2, tags: ['epr/app:v2'] }], store, { exclude: new Set([base.digest]) });
    expect(r.blobsLeftOut).to.equal(1);
    expect(readBundle(path.join(dir, 'plain.tar')).leftOut[0].from).to.deep.equal([]);
    let err: Error | undefined;
    try { await sinceSet('Not A Reference!', { store }); } catch (e) { err = e as Error; }
    expect(err).to.be.instanceOf(BundleError);
    expect(err?.message).to.match(/neither a bundle file .* nor an image reference/);
  });

  it('finds a damaged blob when it is read', async () => {
    const file = path.join(dir, 'damaged.tar');
    await writeBundle(file, [{ image: v1, tags: ['epr/app:v1'] }], store);
    const span = indexTar(file).get(`blobs/sha256/${digestHex(base.digest)}`)!;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from([0xff ^ store.read(base.digest)[20]]), 0, 1, span.offset + 20);
    fs.closeSync(fd);
    let err: Error | undefined;
    try { await streamBytes(readBundle(file).open(base.digest)); } catch (e) { err = e as Error; }
    expect(err?.message).to.match(/damaged: blob sha256:/);
  });

  it('indexes long (pax) names and tells a docker archive from a bundle', async () => {
    const file = path.join(dir, 'other.tar');
    const body = new PassThrough();
    const done = pipeline(body, fs.createWriteStream(file));
    const w = new ArchiveWriter(body);
    const long = `${'deep/'.repeat(40)}file.txt`;
    await w.bytes(long, Buffer.from('hello'));
    await w.bytes('manifest.json', Buffer.from('[]'));
    await w.end();
    await done;
    const idx = indexTar(file);
    expect([...idx.keys()]).to.deep.equal([long, 'manifest.json']);
    expect(fs.readFileSync(file).subarray(idx.get(long)!.offset, idx.get(long)!.offset + 5).toString()).to.equal('hello');
    let err: Error | undefined;
    try { readBundle(file); } catch (e) { err = e as Error; }
    expect(err).to.be.instanceOf(NotABundleError);
    expect((err as NotABundleError).dockerArchive).to.equal(true);
    fs.writeFileSync(path.join(dir, 'text.tar'), 'not a tar at all, but long enough to have a first block?'.repeat(20));
    expect(() => readBundle(path.join(dir, 'text.tar'))).to.throw(BundleError, /not a tar archive/);
  });
});
