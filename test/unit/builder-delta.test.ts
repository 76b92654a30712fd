import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { bestReuse, DELTA_MARK, deltaBases, KEEP_LAYER_STATES, layerState, OPAQUE_MARK, planDelta, readLayerState, saveLayerState, WHITEOUT_PREFIX, whiteoutName } from '../../builder/delta.js';
import { mergeLayers } from '../../builder/merge.js';
import type { MaterialisedLayer } from '../../builder/sources.js';
import type { TarEntry } from '../../builder/tar.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';

/** A layer's files as an image holds them: path -> content ('/' for a folder). */
type Tree = Map<string, string>;

/** What one entry puts at its path; a link is its target's content, which must come from the same layer. */
function content(e: TarEntry, same: Tree): string {
  if (e.type === 'directory') return '/';
  if (e.type === 'link') {
    const target = same.get(e.target);
    if (target === undefined) throw new Error(`${e.name} links to ${e.target}, not written before it in the same layer`);
    return target;
  }
  return ('data' in e ? e.data : fs.readFileSync(e.from)).toString('utf8');
}

function flatten(entries: TarEntry[]): Tree {
  const t: Tree = new Map();
  for (const e of entries) t.set(e.name, content(e, t));
  return t;
}

/** Applies a layer over a tree as the image layer format says: whiteouts remove, an opaque mark hides what was below its folder. */
function apply(below: Tree, layer: TarEntry[]): Tree {
  const out = new Map(below);
  const own: Tree = new Map();
  const drop = (p: string) => { for (const k of [...out.keys()]) if (k === p || k.startsWith(`${p}/`)) out.delete(k); };
  for (const e of layer) {
    const dir = e.name.slice(0, e.name.lastIndexOf('/'));
    const base = e.name.slice(e.name.lastIndexOf('/') + 1);
    if (base === OPAQUE_MARK) for (const k of [...out.keys()]) if (k.startsWith(`${dir}/`)) out.delete(k);
  }
  for (const e of layer) {
    const dir = e.name.slice(0, e.name.lastIndexOf('/'));
    const base = e.name.slice(e.name.lastIndexOf('/') + 1);
    if (base === OPAQUE_MARK) continue;
    if (base.startsWith(WHITEOUT_PREFIX)) { drop(`${dir}/${base.slice(WHITEOUT_PREFIX.length)}`); continue; }
    const c = content(e, own);
    own.set(e.name, c);
    out.set(e.name, c);
  }
  return out;
}

function layer(): MaterialisedLayer {
  const dir = path.join(tmpDir('delta-'), 'snapshot');
  fs.mkdirSync(dir, { recursive: true });
  return { name: 'snapshot', dir, commit: 'c'.repeat(40), repo: dir, origin: dir, kind: 'directory', dirty: false };
}

describe('builder: delta layers', () => {
  after(cleanupTmp);

  describe('planDelta', () => {
    const base = { 'a/1.0.0': 'directory:1', 'a/2.0.0': 'directory:2', 'b/1.0.0': 'directory:3', 'z-1.0.0.zip': 'zip:4' };

    it('sends changed and added packages, marks changed folders opaque', () => {
      const p = planDelta(base, { ...base, 'a/2.0.0': 'directory:2b', 'z-1.0.0.zip': 'zip:4b', 'c/1.0.0': 'directory:5' })!;
      expect(p).to.deep.include({ send: ['a/2.0.0', 'c/1.0.0', 'z-1.0.0.zip'], opaque: ['a/2.0.0'], remove: [], changed: 2, added: 1, removed: 0 });
    });

    it('removes a version, or the whole name folder when no version is left, and a zip with its signature', () => {
      const now: Record<string, string> = { 'a/1.0.0': 'directory:1' };
      const p = planDelta(base, now)!;
      expect(p.remove).to.deep.equal(['a/2.0.0', 'b', 'z-1.0.0.zip', 'z-1.0.0.zip.sig']);
      expect([p.removed, p.send.length]).to.deep.equal([3, 0]);
    });

    it('nothing changed: nothing to send', () => {
      expect(planDelta(base, base)).to.deep.include({ send: [], remove: [], opaque: [] });
    });

    it('refuses what a delta cannot say: a path of another kind, a package inside another', () => {
      expect(planDelta({ 'x.zip': 'zip:1' }, { 'x.zip': 'directory:1' })).to.equal(undefined);
      expect(planDelta({ 'a/1.0.0': 'directory:1' }, { 'a/1.0.0/b/1.0.0': 'directory:2' })).to.equal(undefined);
    });

    it('names whiteouts in the folder of what they remove', () => {
      expect(whiteoutName('packages/s', 'a/2.0.0')).to.equal('packages/s/a/.wh.2.0.0');
      expect(whiteoutName('packages/s', 'b')).to.equal('packages/s/.wh.b');
    });
  });

  describe('choosing layers', () => {
    const img = (id: string, ...entries: string[]) => ({ id, entries });

    it('bestReuse takes the most package layers, counting a delta image layer in', () => {
      const keys = ['k0', 'k1'];
      expect(bestReuse([img('i1', 'k0', 'x1'), img('i2', 'k0')], keys)).to.deep.include({ count: 1, layers: 1 });
      const r = bestReuse([img('i1', 'k0', 'x1'), img('i2', 'k0', 'kB', `${DELTA_MARK}k1`)], keys);
      expect([r.count, r.layers, r.image?.id]).to.deep.equal([2, 3, 'i2']);
      expect(bestReuse([img('i1', 'other')], keys).count).to.equal(0);
    });

    it('deltaBases are the whole layers right above the same lower layers', () => {
      const images = [img('i1', 'k0', 'kB'), img('i2', 'k0', 'kC', `${DELTA_MARK}kD`), img('i3', 'q0', 'kE'), img('i4', 'k0', `${DELTA_MARK}kF`), img('i5', 'k0', 'kB')];
      expect(deltaBases(images, 'k0', 'kTop').map((b) => [b.key, b.image, b.entries])).to.deep.equal([['kB', 'i1', ['k0', 'kB']], ['kC', 'i2', ['k0', 'kC']]]);
      // the top layer is the only one: the base's first package layer
      expect(deltaBases(images, undefined, 'k0').map((b) => b.key)).to.deep.equal(['q0']);
      // the wanted state itself is no base
      expect(deltaBases([img('i1', 'k0', 'kTop')], 'k0', 'kTop')).to.deep.equal([]);
    });

    it('layer states are kept by chain key in the cache folder', () => {
      const dir = tmpDir('delta-cache-');
      const s = layerState('snapshot', [{ path: 'a/1.0.0', kind: 'directory', digest: 'sha256:1' }]);
      saveLayerState(dir, 'key1', s);
      expect(readLayerState(dir, 'key1')).to.deep.equal(s);
      expect(readLayerState(dir, 'key2')).to.equal(undefined);
      expect(readLayerState(undefined, 'key1')).to.equal(undefined);
      // an unwritable cache only costs the delta
      const file = path.join(tmpDir('delta-cache-'), 'a-file');
      fs.writeFileSync(file, '');
      expect(() => saveLayerState(file, 'key1', s)).to.not.throw();
    });

    it('keeps only the most recent layer states', () => {
      const dir = tmpDir('delta-cache-');
      const s = layerState('snapshot', []);
      for (let i = 0; i < KEEP_LAYER_STATES + 5; i++) {
        saveLayerState(dir, `key${i}`, s);
        // written in order, a second apart
        fs.utimesSync(path.join(dir, 'layer-states', `key${i}.json`), 1_700_000_000 + i, 1_700_000_000 + i);
      }
      expect(fs.readdirSync(path.join(dir, 'layer-states'))).to.have.length(KEEP_LAYER_STATES);
      expect(readLayerState(dir, 'key0')).to.equal(undefined);
      expect(readLayerState(dir, `key${KEEP_LAYER_STATES + 4}`)).to.deep.equal(s);
    });
  });

  it('the old full layer with the delta over it holds exactly the files of the new full layer', async () => {
    const l = layer();
    for (const n of ['a', 'b', 'c']) writeDirPackage(l.dir, { name: n, version: '1.0.0', readme: `${n}\n`, files: { 'docs/extra.md': 'extra\n' } });
    writeDirPackage(l.dir, { name: 'a', version: '2.0.0' });
    await writeZipPackage(l.dir, { name: 'z', version: '1.0.0' });
    const before = (await mergeLayers('snapshot', [l])).contributions[0];
    const old = flatten(before.entries);

    fs.writeFileSync(path.join(l.dir, 'b', '1.0.0', 'docs', 'README.md'), 'b changed\n');
    fs.rmSync(path.join(l.dir, 'b', '1.0.0', 'docs', 'extra.md'));
    fs.rmSync(path.join(l.dir, 'a', '2.0.0'), { recursive: true });
    fs.rmSync(path.join(l.dir, 'c'), { recursive: true });
    fs.rmSync(path.join(l.dir, 'z-1.0.0.zip'));
    fs.rmSync(path.join(l.dir, 'z-1.0.0.zip.sig'));
    writeDirPackage(l.dir, { name: 'd', version: '1.0.0' });
    const after = (await mergeLayers('snapshot', [l])).contributions[0];

    const plan = planDelta(before.state.packages, after.state.packages)!;
    expect(plan).to.deep.include({ added: 1, changed: 1, removed: 3 });
    const delta = after.deltaEntries(plan);
    const names = delta.map((e) => e.name);
    expect(names).to.include.members(['packages/snapshot/b/1.0.0/.wh..wh..opq', 'packages/snapshot/a/.wh.2.0.0', 'packages/snapshot/.wh.c', 'packages/snapshot/.wh.z-1.0.0.zip', 'packages/snapshot/.epr-index']);
    expect(names.some((n) => n.startsWith('packages/snapshot/a/1.0.0'))).to.equal(false);
    expect(apply(old, delta)).to.deep.equal(flatten(after.entries));
    // the delta's index is the full layer's
    const index = (entries: TarEntry[]) => flatten(entries).get('packages/snapshot/.epr-index');
    expect(index(delta)).to.equal(index(after.entries));
  });
});
