import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { expect } from 'chai';
import { GZIP_BLOCK, OciStore } from '../../builder/oci/store.js';
import { sha256Digest } from '../../builder/oci/model.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';

/** Bytes that compress like a package tree: random runs (images) between repeated text (manifests, docs). */
function treeLike(seed: number, blocks: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < blocks; i++) {
    out.push(crypto.randomBytes(300_000));
    out.push(Buffer.from(`title: package ${seed} block ${i}\n`.repeat(20_000)));
  }
  return out;
}

describe('builder store (OCI image layout)', () => {
  after(cleanupTmp);

  it('is an OCI image layout: oci-layout, blobs/sha256, index.json once something is named', () => {
    const dir = tmpDir('epr-store-');
    const store = OciStore.open(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'oci-layout'), 'utf8'))).to.deep.equal({ imageLayoutVersion: '1.0.0' });
    const cfg = store.putBytes(Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}'), 'application/vnd.oci.image.config.v1+json');
    expect(fs.existsSync(path.join(dir, 'blobs', 'sha256', cfg.digest.slice(7)))).to.equal(true);
    const image = store.putImage(store.read(cfg.digest), []);
    store.tag('example:1', image);
    const idx = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(idx.manifests.map((m) => [m.digest, m.annotations['org.opencontainers.image.ref.name']])).to.deep.equal([[image.manifestDescriptor.digest, 'example:1']]);
  });

  it('packs a layer in gzip members on every core: one gzip stream that unpacks to the tar, with its diff ID and digest', async () => {
    const store = OciStore.open(tmpDir('epr-store-'));
    const parts = treeLike(1, 12);
    const tar = Buffer.concat(parts);
    expect(tar.length).to.be.greaterThan(2 * GZIP_BLOCK);
    const layer = await store.writeLayer(async (write) => { for (const p of parts) await write(p); });
    const blob = store.read(layer.digest);
    expect(sha256Digest(blob)).to.equal(layer.digest);
    expect(blob.length).to.equal(layer.size);
    expect(layer.diffId).to.equal(sha256Digest(tar));
    expect(zlib.gunzipSync(blob).equals(tar)).to.equal(true);
    // about as small as one gzip member of the whole
    expect(blob.length).to.be.below(zlib.gzipSync(tar, { level: 1 }).length * 1.01);
  });

  it('gives the same blob for the same tar, however it is cut into writes', async () => {
    const store = OciStore.open(tmpDir('epr-store-'));
    const tar = Buffer.concat(treeLike(2, 8));
    const a = await store.writeLayer(async (write) => { await write(tar); });
    const b = await store.writeLayer(async (write) => { for (let i = 0; i < tar.length; i += 77_777) await write(tar.subarray(i, i + 77_777)); });
    expect(b).to.deep.equal(a);
  });

  it('a layer whose producer fails leaves no blob and no temporary file', async () => {
    const dir = tmpDir('epr-store-');
    const store = OciStore.open(dir);
    let failed: Error | undefined;
    try {
      await store.writeLayer(async (write) => { await write(crypto.randomBytes(GZIP_BLOCK * 3)); throw new Error('a file changed while it was being packed'); });
    } catch (err) { failed = err as Error; }
    expect(failed?.message).to.match(/changed while/);
    expect(fs.readdirSync(path.join(dir, 'blobs'))).to.deep.equal(['sha256']);
    expect(fs.readdirSync(path.join(dir, 'blobs', 'sha256'))).to.deep.equal([]);
  });

  it('takes a blob only when its bytes match its descriptor', async () => {
    const dir = tmpDir('epr-store-');
    const store = OciStore.open(dir);
    const body = Buffer.from('layer bytes');
    const desc = { mediaType: 'application/octet-stream', digest: sha256Digest(body), size: body.length };
    let refused: Error | undefined;
    try { await store.write(desc, Readable.from([Buffer.from('other bytes')])); } catch (err) { refused = err as Error; }
    expect(refused?.message).to.match(/expected 11 bytes/);
    expect(store.has(desc.digest)).to.equal(false);
    await store.write(desc, Readable.from([body]));
    expect(store.read(desc.digest).equals(body)).to.equal(true);
    expect(fs.readdirSync(path.join(dir, 'blobs'))).to.deep.equal(['sha256']);
  });

  it('remembers layers by content key while their blob is there', async () => {
    const store = OciStore.open(tmpDir('epr-store-'));
    const layer = await store.writeLayer(async (write) => { await write(Buffer.alloc(2048)); });
    store.rememberLayer('key-1', layer);
    expect(store.layerFor('key-1')).to.deep.equal(layer);
    expect(store.layerFor('key-2')).to.equal(undefined);
    fs.rmSync(store.path(layer.digest));
    expect(store.layerFor('key-1'), 'a pruned blob is no reuse').to.equal(undefined);
  });

  it('names images, resolves, untags, and prunes what no kept image uses (keeping pinned names and young blobs)', async () => {
    const store = OciStore.open(tmpDir('epr-store-'));
    const images = [];
    for (let i = 0; i < 4; i++) {
      const layer = await store.writeLayer(async (write) => { await write(Buffer.from(`layer ${i}`.repeat(1000))); });
      const config = Buffer.from(JSON.stringify({ n: i, rootfs: { type: 'layers', diff_ids: [layer.diffId] } }));
      images.push(store.putImage(config, [layer]));
      store.tag(`d:${i}`, images[i], { note: `n${i}` });
    }
    expect(store.entries().map((e) => e.name)).to.deep.equal(['d:3', 'd:2', 'd:1', 'd:0']);
    expect(store.resolve('d:2')!.manifestDescriptor.digest).to.equal(images[2].manifestDescriptor.digest);
    expect(store.entries()[0].annotations.note).to.equal('n3');
    store.tag('d:0', images[3]);
    expect(store.resolve('d:0')!.manifestDescriptor.digest, 'a tag moves').to.equal(images[3].manifestDescriptor.digest);
    store.untag('d:0');
    expect(store.resolve('d:0')).to.equal(undefined);

    // blobs written within the hour are kept (a running build may need them): age them
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const hex of fs.readdirSync(path.join(store.dir, 'blobs', 'sha256'))) fs.utimesSync(path.join(store.dir, 'blobs', 'sha256', hex), old, old);
    store.prune(1, new Set(['d:1']));
    expect(store.entries().map((e) => e.name)).to.deep.equal(['d:3', 'd:1']);
    expect(store.has(images[2].layers[0].digest)).to.equal(false);
    expect(store.has(images[1].layers[0].digest)).to.equal(true);
    expect(store.has(images[3].manifestDescriptor.digest)).to.equal(true);
    expect(store.image(images[3].manifestDescriptor.digest).layers[0].diffId).to.equal(images[3].layers[0].diffId);
  });
});
