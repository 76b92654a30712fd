import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateCorpus } from '../../bench/corpus.js';
import { loadPackagePath } from '../../server/packages/index.js';
import { BAKED_INDEX_FILE, bakedIndexHead, readBakedIndex, writeBakedIndex } from '../../server/packages/baked.js';
import { loadRegistry } from '../../server/registry.js';
import { startRegistry, type TestRegistry } from '../helpers/server.js';

const LAYERS = ['production', 'staging', 'snapshot'];

describe('baked index', function () {
  this.timeout(60_000);
  let dir: string;
  let paths: string[];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'epr-baked-'));
    generateCorpus({ out: dir, versions: 32, layers: LAYERS, seed: 7 });
    paths = LAYERS.map((l) => path.join(dir, l));
    for (const p of paths) {
      const { packages, failures } = await loadPackagePath(p, { validate: true });
      expect(failures).to.deep.equal([]);
      writeBakedIndex(p, packages);
    }
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is used for every path that has one', async () => {
    const loaded = await loadRegistry({ config: { packagePaths: paths, cacheTime: { index: 1, search: 1, categories: 1, catchAll: 1 }, source: 'test' }, validate: true, requireSignatures: true, allowUnknownQueryParameters: true });
    expect(loaded.notes.map((n) => n.baked)).to.deep.equal([true, true, true]);
    loaded.ctx.zips?.clear();
  });

  it('gives the same answers as scanning, for a broad set of queries', async () => {
    const baked = await startRegistry(paths);
    // a second registry that cannot use the index: copy the layers without it
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'epr-scan-'));
    let scan: TestRegistry | undefined;
    try {
      for (const l of LAYERS) fs.cpSync(path.join(dir, l), path.join(copy, l), { recursive: true, filter: (s) => !s.endsWith(BAKED_INDEX_FILE) });
      scan = await startRegistry(LAYERS.map((l) => path.join(copy, l)));
      expect(scan.loaded.notes.every((n) => !n.baked)).to.equal(true);
      const all = await (await fetch(`${baked.url}/search?all=true&prerelease=true`)).json() as Array<{ name: string; version: string }>;
      expect(all.length).to.be.greaterThan(20);
      const urls = [
        '/search', '/search?all=true', '/search?prerelease=true&all=true', '/search?kibana.version=8.11.0', '/search?kibana.version=7.17.3&prerelease=true',
        '/search?category=observability', '/search?category=security&all=true', '/search?type=integration&spec.min=2.0&spec.max=3.0',
        '/search?experimental=true', '/search?experimental=true&all=true', `/search?package=${all[0].name}&all=true`,
        '/categories', '/categories?include_policy_templates=true', '/categories?prerelease=true&kibana.version=8.13.0',
        ...all.slice(0, 12).map((p) => `/package/${p.name}/${p.version}/`),
        ...all.slice(0, 4).map((p) => `/package/${p.name}/${p.version}/docs/README.md`),
      ];
      for (const u of urls) {
        const [a, b] = await Promise.all([fetch(`${baked.url}${u}`), fetch(`${scan.url}${u}`)]);
        expect(a.status, u).to.equal(b.status);
        expect(await a.text(), u).to.equal(await b.text());
      }
    } finally {
      await baked.close();
      await scan?.close();
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('is not used once a manifest changed after baking', async () => {
    const layer = paths[2];
    const index = fs.readFileSync(path.join(layer, BAKED_INDEX_FILE));
    const name = fs.readdirSync(layer, { withFileTypes: true }).find((e) => e.isDirectory() && !e.name.startsWith('.'))!.name;
    const version = fs.readdirSync(path.join(layer, name))[0];
    const manifest = path.join(layer, name, version, 'manifest.yml');
    const original = fs.readFileSync(manifest, 'utf8');
    try {
      fs.writeFileSync(manifest, original.replace(/^title: .*$/m, 'title: "Edited after baking"'));
      const r = await readBakedIndex(layer, { validate: true });
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.reason).to.match(/stale baked index: .* changed/);
      const reg = await startRegistry(paths);
      try {
        const info = await (await fetch(`${reg.url}/package/${name}/${version}/`)).json() as { title: string };
        expect(info.title).to.equal('Edited after baking');
      } finally { await reg.close(); }
    } finally {
      fs.writeFileSync(manifest, original);
      fs.writeFileSync(path.join(layer, BAKED_INDEX_FILE), index);
    }
  });

  it('an unreadable index is reported and the path is scanned', async () => {
    const layer = paths[1];
    const file = path.join(layer, BAKED_INDEX_FILE);
    const saved = fs.readFileSync(file);
    try {
      fs.writeFileSync(file, '{not json');
      const r = await readBakedIndex(layer, { validate: true });
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.reason).to.match(/^unreadable baked index/);
    } finally { fs.writeFileSync(file, saved); }
  });

  it('an index cut short or of another format is reported and the path is scanned', async () => {
    const layer = paths[1];
    const file = path.join(layer, BAKED_INDEX_FILE);
    const saved = fs.readFileSync(file);
    try {
      fs.writeFileSync(file, saved.subarray(0, saved.length - 10));
      let r = await readBakedIndex(layer, { validate: true });
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.reason).to.match(/^unreadable baked index: the details of .+ are not in the file$/);
      fs.writeFileSync(file, 'epr-baked-index/1 2\n{}\n');
      r = await readBakedIndex(layer, { validate: true });
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.reason).to.equal('baked index format is epr-baked-index/1, not epr-baked-index/2');
    } finally { fs.writeFileSync(file, saved); }
  });

  it('a start reads only the head: package info and files come from the index when first asked for, and never from an index written over it since', async () => {
    const layer = paths[0];
    const file = path.join(layer, BAKED_INDEX_FILE);
    const saved = fs.readFileSync(file);
    try {
      const r = await readBakedIndex(layer, { validate: true });
      expect(r.ok).to.equal(true);
      if (!r.ok) return;
      const [first, second] = r.packages.filter((p) => p.kind === 'directory');
      expect(second.info.name).to.equal(second.name);
      // the details after the head, damaged once the layer is read: only packages not asked for yet notice,
      // and they fail rather than read whatever is at their offsets now
      expect(bakedIndexHead(saved).map((p) => p.location)).to.deep.equal(r.packages.map((p) => path.relative(layer, p.source.location)));
      const damaged = Buffer.from(saved);
      const firstLine = damaged.indexOf(10) + 1;
      const headEnd = firstLine + Number(damaged.toString('latin1', 0, firstLine - 1).split(' ')[1]);
      damaged.fill(0x20, headEnd);
      fs.writeFileSync(file, damaged);
      expect(second.info.name).to.equal(second.name);
      expect(second.source.file('manifest.yml')).to.not.equal(undefined);
      expect(() => first.info).to.throw(new RegExp(`details of ${first.name}/${first.version} cannot be read: the index was written again`));
    } finally { fs.writeFileSync(file, saved); }
    // bake.js writes a new file in the old one's place: the same bytes, but not the file the head came from
    const r = await readBakedIndex(layer, { validate: true });
    if (!r.ok) throw new Error(r.reason);
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, saved);
    fs.renameSync(tmp, file);
    expect(() => r.packages[0].info).to.throw(/the index was written again since the server started/);
  });
});
