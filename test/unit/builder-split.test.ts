import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { DEFAULT_MAX_LAYER_SIZE, DistributionError, parseDistributionText, parseLayerSize } from '../../builder/distribution.js';
import { LAYER_PARTS_LABEL, partsLabel, readPartsLabel, splitUnits, type SplitPlan, type SplitUnit } from '../../builder/layer-split.js';
import { describeSaving, formatBytes, layerSaving, mergeLayers, readSavingsLabel, savingsLabel } from '../../builder/merge.js';
import { layerSizeLines } from '../../builder/stages/diff-cli.js';
import { tarSize } from '../../builder/tar.js';
import type { MaterialisedLayer } from '../../builder/sources.js';
import { cleanupTmp, tmpDir, writeDirPackage } from '../helpers/fixtures.js';

const TOP = ['packages', 'packages/l'];

/** A package version whose one file has its own content of `size` bytes. */
function unit(name: string, version: string, size = 10_000, content = `${name}@${version}`): SplitUnit {
  return { name, version, files: [{ name: `packages/l/${name}/${version}/file`, size, content }] };
}

/** Each part as its package versions. */
const members = (p: SplitPlan) => p.parts.map((us) => us.map((u) => `${u.name}@${u.version}`));

/** Parts of `b` that are not parts of `a` (by their package versions). */
function changedParts(a: SplitPlan, b: SplitPlan): string[][] {
  const before = new Set(members(a).map((m) => m.join(' ')));
  return members(b).filter((m) => !before.has(m.join(' ')));
}

describe('builder: max_layer_size', () => {
  after(cleanupTmp);

  describe('the size', () => {
    it('reads decimal sizes as Docker writes them, and plain bytes', () => {
      expect(parseLayerSize('300MB')).to.equal(300e6);
      expect(parseLayerSize('4GB')).to.equal(4e9);
      expect(parseLayerSize('500kB')).to.equal(500e3);
      expect(parseLayerSize('1.5GB')).to.equal(1.5e9);
      expect(parseLayerSize('2 TB')).to.equal(2e12);
      expect(parseLayerSize('1048576')).to.equal(1048576);
      expect(parseLayerSize(1048576)).to.equal(1048576);
      expect(parseLayerSize('300B')).to.equal(300);
    });

    it('refuses anything else, saying what a size looks like', () => {
      for (const bad of ['4GiB', 'big', '', '-1', '4 G B', '1e9', '0', '0kB']) {
        expect(parseLayerSize(bad), bad).to.be.a('string');
      }
      expect(parseLayerSize('4GiB')).to.match(/"4GiB" is not a size.*300MB, 4GB/);
    });

    const definition = (extra: string) => [
      'name: prod', 'image:', '  repository: localhost:5000/x/distribution', 'package_registry:', '  version: 1.40.1',
      'layers:', '  - name: production', '    source:', '      directory: layers/production', extra,
    ].join('\n');

    it('defaults to 4GB in a definition, and takes a size or bytes', () => {
      expect(parseDistributionText(definition(''), '<text>').maxLayerSize).to.equal(DEFAULT_MAX_LAYER_SIZE).and.equal(4e9);
      expect(parseDistributionText(definition('max_layer_size: 300MB'), '<text>').maxLayerSize).to.equal(300e6);
      expect(parseDistributionText(definition('max_layer_size: 500000'), '<text>').maxLayerSize).to.equal(500e3);
    });

    it('a bad value fails the definition, naming the file, the key, its line and the value', () => {
      const check = (extra: string, message: RegExp) => {
        try {
          parseDistributionText(definition(extra), '/defs/prod.yml');
          expect.fail('accepted');
        } catch (err) {
          expect(err).to.be.instanceOf(DistributionError);
          expect((err as Error).message).to.match(/^\/defs\/prod\.yml: /).and.match(message);
        }
      };
      check('max_layer_size: 4 gigs', /max_layer_size \(line 10\): "4 gigs" is not a size/);
      check('max_layer_size: [1]', /max_layer_size \(line 10\): must be a size such as 300MB/);
    });
  });

  describe('the split', () => {
    // 26 names of 3 versions, 10 kB each: about 30 kB a name
    const names = 'abcdefghijklmnopqrstuvwxyz'.split('').map((c) => `pkg_${c}`);
    const corpus = () => names.flatMap((n) => ['1.0.0', '1.1.0', '1.2.0'].map((v) => unit(n, v)));
    const cap = 200_000;
    const first = splitUnits(corpus(), { cap, top: TOP });
    const again = (units: SplitUnit[], plan = first) => splitUnits(units, { cap, top: TOP, previous: plan.bounds });

    it('splits a new layer by name into parts filled up to about half the cap', () => {
      expect(first.parts.length).to.be.greaterThan(3);
      for (const [i, b] of first.bytes.entries()) expect(b, `part ${i}`).to.be.at.most(cap / 2);
      // whole names only, in name order, every version once
      expect(members(first).flat()).to.deep.equal(corpus().map((u) => `${u.name}@${u.version}`));
      for (const m of members(first)) expect(new Set(m.map((x) => x.split('@')[0])).size * 3).to.equal(m.length);
      expect(first.bounds[0]).to.equal('pkg_a');
      expect(first.oversized).to.deep.equal([]);
    });

    it('keeps a layer that fits whole as one part', () => {
      const small = splitUnits(corpus().slice(0, 6), { cap, top: TOP, indexBytes: () => 5000 });
      expect(small.parts).to.have.length(1);
      // the baked index counts when the layer stays whole
      expect(splitUnits(corpus().slice(0, 12), { cap, top: TOP, indexBytes: () => 20_000 }).parts).to.have.length(1);
      expect(splitUnits(corpus().slice(0, 12), { cap, top: TOP, indexBytes: () => 80_000 }).parts.length).to.be.greaterThan(1);
    });

    it('unchanged units keep every part', () => {
      const same = again(corpus());
      expect(members(same)).to.deep.equal(members(first));
      expect(same.bounds).to.deep.equal(first.bounds);
      expect(same.resplit).to.equal(0);
    });

    it('a new version of one package changes exactly the part that holds it', () => {
      const next = again([...corpus(), unit('pkg_m', '2.0.0')]);
      expect(next.parts).to.have.length(first.parts.length);
      const changed = changedParts(first, next);
      expect(changed).to.have.length(1);
      expect(changed[0]).to.include('pkg_m@2.0.0');
    });

    it('a changed package keeps the split (its part is the only one whose content changes)', () => {
      const units = corpus().map((u) => (u.name === 'pkg_q' && u.version === '1.1.0' ? unit('pkg_q', '1.1.0', 12_000, 'other') : u));
      const next = again(units);
      expect(members(next)).to.deep.equal(members(first));
      expect(next.bounds).to.deep.equal(first.bounds);
    });

    for (const [where, name] of [['first', 'aaa'], ['last', 'zzz'], ['in the middle', 'pkg_k_extra']] as const) {
      it(`a new package name sorting ${where} lands in one part, the others unchanged`, () => {
        const next = again([...corpus(), unit(name, '1.0.0')]);
        const changed = changedParts(first, next);
        expect(changed).to.have.length(1);
        expect(changed[0]).to.include(`${name}@1.0.0`);
        expect(next.parts).to.have.length(first.parts.length);
        if (where === 'first') expect(members(next)[0]).to.include('aaa@1.0.0');
        if (where === 'last') expect(members(next)[next.parts.length - 1]).to.include('zzz@1.0.0');
      });
    }

    it('a part that outgrows the cap is split again on its own; the other parts keep their ranges', () => {
      const grown = [...corpus(), ...Array.from({ length: 20 }, (_, i) => unit('pkg_h', `3.${i}.0`))];
      const next = again(grown);
      expect(next.resplit).to.equal(1);
      for (const b of next.bytes) expect(b).to.be.at.most(cap);
      const changed = changedParts(first, next);
      // the part that held pkg_h became several; every other part is as it was
      expect(changed.length).to.be.greaterThan(1);
      expect(changed.flat().every((m) => first.parts.some((p) => p.some((u) => `${u.name}@${u.version}` === m) && p.some((u) => u.name === 'pkg_h')) || m.startsWith('pkg_h@3.'))).to.equal(true);
      expect(next.parts.length - changed.length).to.equal(first.parts.length - 1);
      // pkg_h alone is over the cap: split by version, the later pieces start at name@version
      expect(next.bounds.some((b) => /^pkg_h@3\./.test(b))).to.equal(true);
      // and the next build keeps that split
      expect(members(again(grown, next))).to.deep.equal(members(next));
    });

    it('a package version larger than the cap gets a part of its own and is reported', () => {
      const next = again([...corpus(), unit('pkg_f', '9.0.0', 300_000)]);
      expect(next.oversized).to.have.length(1);
      expect(next.oversized[0]).to.include({ name: 'pkg_f', version: '9.0.0' });
      expect(next.oversized[0].bytes).to.be.greaterThan(cap);
      const own = members(next).find((m) => m.includes('pkg_f@9.0.0'))!;
      expect(own).to.deep.equal(['pkg_f@9.0.0']);
      for (const [i, b] of next.bytes.entries()) if (!members(next)[i].includes('pkg_f@9.0.0')) expect(b).to.be.at.most(cap);
      const fresh = splitUnits([...corpus(), unit('pkg_f', '9.0.0', 300_000)], { cap, top: TOP });
      expect(fresh.oversized.map((o) => o.version)).to.deep.equal(['9.0.0']);
      expect(members(fresh).find((m) => m.includes('pkg_f@9.0.0'))).to.deep.equal(['pkg_f@9.0.0']);
    });

    it('counts a content repeated in a part once (the tar links it)', () => {
      const shared = names.slice(0, 4).flatMap((n) => ['1.0.0', '1.1.0'].map((v) => unit(n, v, 50_000, `${n}-icon`)));
      const plan = splitUnits(shared, { cap: 1e6, top: TOP });
      expect(plan.parts).to.have.length(1);
      // 4 contents of 50 kB, and 4 links
      expect(plan.bytes[0]).to.be.below(4 * 51_000 + 30 * 512);
    });

    it('the label round-trips; anything unreadable is no split', () => {
      const label = partsLabel({ production: first.bounds, staging: ['x'] });
      expect(readPartsLabel(label)).to.deep.equal({ production: first.bounds, staging: ['x'] });
      for (const bad of [undefined, '', 'nope', '[1]', '{"a":[1]}']) expect(readPartsLabel(bad)).to.not.have.property('a');
      expect(LAYER_PARTS_LABEL).to.match(/^org\.elastic\.package-registry\./);
    });
  });

  describe('parts of a merged layer', () => {
    function stage(): MaterialisedLayer {
      const base = tmpDir('split-');
      const dir = path.join(base, 'production', 'packages', 'production');
      fs.mkdirSync(dir, { recursive: true });
      return { name: 'production', dir, commit: 'c'.repeat(40), repo: base, origin: '/src/production', kind: 'directory', dirty: false };
    }
    /** each package its own filler (not repeated across names), a shared icon across its versions */
    const write = (l: MaterialisedLayer, name: string, version: string) => writeDirPackage(l.dir, {
      name, version, files: { 'docs/extra.md': crypto.createHash('sha256').update(`${name}${version}`).digest('hex').repeat(400), 'img/icon.png': `${name} icon `.repeat(500) },
    });
    const cap = 120_000;

    it('parts hold every package file once, none over the cap; the index part holds only the baked index', async () => {
      const l = stage();
      for (const n of ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta']) for (const v of ['1.0.0', '1.1.0']) write(l, n, v);
      const c = (await mergeLayers('production', [l])).contributions[0];
      const split = c.split(cap);
      const parts = c.imageLayers;
      expect(parts.length).to.be.greaterThan(2);
      expect(parts.map((p) => p.role)).to.deep.equal([...parts.slice(0, -1).map(() => 'packages'), 'index']);
      expect(split.bounds).to.deep.equal(parts.slice(0, -1).map((p) => p.bound));
      for (const p of parts) expect(tarSize(p.entries), p.bound ?? 'index').to.be.at.most(cap);
      const files = (es: typeof c.entries) => es.filter((e) => e.type !== 'directory').map((e) => e.name).sort();
      const index = parts[parts.length - 1];
      expect(files(index.entries)).to.deep.equal(['packages/production/.epr-index']);
      // the index part's index is the whole layer's
      const indexOf = (es: typeof c.entries) => (es.find((e) => e.name.endsWith('.epr-index')) as { data: Buffer }).data.toString();
      expect(indexOf(index.entries)).to.equal(indexOf(c.entries));
      expect(parts.slice(0, -1).flatMap((p) => files(p.entries)).sort()).to.deep.equal(files(c.entries).filter((n) => !n.endsWith('.epr-index')));
      // every link points inside its own part
      for (const p of parts) {
        const own = new Set(p.entries.map((e) => e.name));
        for (const e of p.entries) if (e.type === 'link') expect(own.has(e.target), e.name).to.equal(true);
      }
    });

    it('one new version of one package changes one package part (and the index part); the split is kept', async () => {
      const l = stage();
      for (const n of ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta']) for (const v of ['1.0.0', '1.1.0']) write(l, n, v);
      const before = (await mergeLayers('production', [l])).contributions[0];
      const s1 = before.split(cap);
      write(l, 'delta', '1.2.0');
      const after = (await mergeLayers('production', [l])).contributions[0];
      const s2 = after.split(cap, s1.bounds);
      expect(s2.bounds).to.deep.equal(s1.bounds);
      const keys = (c: typeof before) => c.imageLayers.map((p) => p.key);
      const [a, b] = [keys(before), keys(after)];
      expect(b).to.have.length(a.length);
      const differ = b.map((k, i) => k !== a[i]);
      // one package part and the index part (the last)
      expect(differ.filter(Boolean)).to.have.length(2);
      expect(differ[differ.length - 1]).to.equal(true);
      const changed = after.imageLayers[differ.indexOf(true)];
      expect(changed.entries.some((e) => e.name.includes('delta/1.2.0'))).to.equal(true);
      // what it saved, over all its image layers: the figures the summary, the label, diff:distribution and lite builds show
      const saving = layerSaving(after, undefined);
      expect(saving).to.include({ layer: 'production', parts: after.imageLayers.length - 1, imageLayers: after.imageLayers.length, files: after.sizes.files });
      expect(saving.tarBytes).to.equal(after.imageLayers.reduce((n, p) => n + tarSize(p.entries), 0));
      expect(saving.biggestPart).to.be.at.most(cap);
      expect(saving.treeBytes).to.equal(after.sizes.treeBytes);
      expect(describeSaving(saving)).to.match(/^\d+ files \(\d+ written whole, \d+ as links\): \d+\.\d [kM]B written for \d+\.\d [kM]B of files \(\d+%\), \d+ parts and the index part, the biggest \d+\.\d [kM]B$/);
      const label = readSavingsLabel(savingsLabel([saving]));
      const { layer: _, ...figures } = saving;
      expect(label.production).to.deep.equal(figures);
      expect(layerSizeLines({}, label)).to.deep.equal([`layer production: none -> ${formatBytes(saving.tarBytes)} written for ${formatBytes(saving.treeBytes)} of files, ${saving.parts} parts (biggest ${formatBytes(saving.biggestPart)})`]);
      expect([formatBytes(310_000), formatBytes(530_670_592)]).to.deep.equal(['310.0 kB', '530.7 MB']);
      expect(readSavingsLabel('nonsense')).to.deep.equal({});
      // a layer that fits stays one image layer, the baked index in it
      const whole = after.split(1e9);
      expect(whole.bounds).to.have.length(1);
      expect(after.imageLayers.map((p) => p.role)).to.deep.equal(['whole']);
      expect(after.imageLayers[0].key).to.equal(after.key);
    });
  });
});
