import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { DistributionError, loadDistribution, parseDistributionText, type Selection } from '../../builder/distribution.js';
import { describeLite, selectionFilters, selectVersions } from '../../builder/lite.js';
import { mergeLayers } from '../../builder/merge.js';
import type { MaterialisedLayer } from '../../builder/sources.js';
import { loadPackagePath } from '../../server/packages/index.js';
import type { Package } from '../../server/packages/package.js';
import { cleanupTmp, tmpDir, writeDirPackage } from '../helpers/fixtures.js';

const HEAD = `name: lite
image:
  repository: localhost:5000/package-registry/distribution
package_registry:
  version: 1.40.1
`;

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(DistributionError);
    return (err as DistributionError).problems;
  }
  throw new Error('expected a DistributionError');
}

/** A selection as a definition file would give it. */
function selection(block: string): Selection {
  return parseDistributionText(`${HEAD}select:\n  from: snapshot\n${block}`, '<text>').select!;
}

const keys = (r: { selected: Package[] }) => r.selected.map((p) => `${p.name}@${p.version}`);

describe('builder: lite distributions', () => {
  after(cleanupTmp);

  describe('the select block', () => {
    it('takes select instead of layers, versions kept as written (9.0 and 3.10 are not numbers)', () => {
      const d = parseDistributionText(`${HEAD}select:
  from: snapshot
  packages: [nginx, apache@1.2.0, apache]
  kibana_versions: [8.15.0, 9.0, v8.11]
  spec:
    - {min: 3.0, max: 3.10}
    - {min: "2.0"}
  prerelease: true
`, '<text>');
      expect(d.layers).to.deep.equal([]);
      const s = d.select!;
      expect(s.from).to.equal('snapshot');
      expect(s.names).to.deep.equal(['apache', 'nginx']);
      expect(s.pinned).to.deep.equal([{ name: 'apache', version: '1.2.0', index: 1, line: 8 }]);
      expect(s.kibanaVersions.map(String)).to.deep.equal(['8.15.0', '9.0.0', '8.11.0']);
      expect(s.specRanges.map((r) => [r.min?.version, r.max?.version])).to.deep.equal([['3.0.0', '3.10.0'], ['2.0.0', undefined]]);
      expect([s.prerelease, s.allVersions]).to.deep.equal([true, false]);
      expect(selectionFilters(s)).to.have.length(6);
    });

    it('spec_ranges is the other name of spec; without packages every name is kept', () => {
      const s = selection('  spec_ranges:\n    - max: "3.3"\n  all_versions: true\n');
      expect(s.specRanges.map((r) => r.max?.version)).to.deep.equal(['3.3.0']);
      expect(s.names).to.equal(undefined);
      expect(s.allVersions).to.equal(true);
    });

    it('wants exactly one of layers and select', () => {
      expect(problemsOf(() => parseDistributionText(HEAD, '<text>'))).to.deep.equal(['layers: is required']);
      const both = `${HEAD}layers:\n  - name: production\n    source: {directory: layers/production}\nselect:\n  from: snapshot\n`;
      expect(problemsOf(() => parseDistributionText(both, '<text>'))).to.deep.equal(['select (line 9): give either layers or select, not both']);
    });

    it('reports every problem of the block with its key and line', () => {
      const problems = problemsOf(() => parseDistributionText(`${HEAD}select:
  from: snapshot
  packages: [nginx, Apache, redis@1.0]
  kibana_versions: [8.15.0, eight]
  spec:
    - {min: "3", max: "3.3"}
    - {}
    - {min: "3.3", max: "3.0"}
  colour: blue
`, '<text>'));
      expect(problems).to.include.members([
        'select.packages[1] (line 8): must be a package name or name@version',
        'select.spec[0].min (line 11): must be a spec version <major.minor> such as 3.0',
        'select.spec[1] (line 12): must have min, max or both',
        'select.colour (line 14): unknown key',
      ]);
      const second = problemsOf(() => parseDistributionText(`${HEAD}select:
  from: lite
  packages: [redis@1.0]
  kibana_versions: [8.15.0, eight]
  spec:
    - {min: "3.3", max: "3.0"}
`, 'lite.yml'));
      expect(second).to.deep.equal([
        'select.from (line 7): a distribution cannot select from itself',
        "select.kibana_versions[1] (line 9): invalid Kibana version 'eight': Invalid Semantic Version",
        'select.spec[0] (line 11): min 3.3 is above max 3.0',
        "select.packages[0] (line 8): invalid version '1.0': a pinned version is a full version such as 1.2.0",
      ]);
    });

    it('takes its layers from the distribution it selects from, which must exist and have layers', () => {
      const dir = tmpDir('lite-defs-');
      fs.writeFileSync(path.join(dir, 'full.yml'), HEAD.replace('name: lite', 'name: full') + 'layers:\n  - name: production\n    source: {directory: layers/production}\n');
      fs.writeFileSync(path.join(dir, 'lite.yml'), `${HEAD}select:\n  from: full\n`);
      fs.writeFileSync(path.join(dir, 'nowhere.yml'), `${HEAD.replace('name: lite', 'name: nowhere')}select:\n  from: missing\n`);
      fs.writeFileSync(path.join(dir, 'chain.yml'), `${HEAD.replace('name: lite', 'name: chain')}select:\n  from: lite\n`);
      const d = loadDistribution('lite', dir);
      expect(d.layers.map((l) => [l.name, l.source])).to.deep.equal([['production', { kind: 'directory', directory: path.join(dir, 'layers', 'production') }]]);
      expect(d.select!.fromRepository).to.equal('localhost:5000/package-registry/distribution');
      expect(problemsOf(() => loadDistribution('nowhere', dir))[0]).to.match(/^select\.from \(line 7\): no distribution "missing" \(.*missing\.yml does not exist; known: chain, full, lite\)$/);
      expect(problemsOf(() => loadDistribution('chain', dir))).to.deep.equal(['select.from (line 7): "lite" selects from "full" itself; select from a distribution with layers']);
    });

    it('the shipped lite definition selects from snapshot', () => {
      const d = loadDistribution('lite');
      expect(d.select!.from).to.equal('snapshot');
      expect(d.layers.map((l) => l.name)).to.deep.equal(loadDistribution('snapshot').layers.map((l) => l.name));
      expect(d.select!.pinned.length).to.be.greaterThan(0);
      // its own repository: the commit and version tags of snapshot stay snapshot's
      expect(d.repository).to.not.equal(d.select!.fromRepository);
    });
  });

  describe('selection', () => {
    let packages: Package[];
    before(async () => {
      const dir = tmpDir('lite-pkgs-');
      const pkg = (name: string, version: string, kibana: string, format: string, extra: Record<string, unknown> = {}) =>
        writeDirPackage(dir, { name, version, manifest: { format_version: format, conditions: { kibana: { version: kibana } }, ...extra } });
      pkg('a', '1.0.0', '^8.10.0', '3.0.0');
      pkg('a', '1.1.0', '^8.14.0', '3.0.0');
      pkg('a', '2.0.0', '^9.0.0', '3.3.0');
      pkg('a', '2.1.0-beta1', '^9.0.0', '3.3.0');
      pkg('b', '1.0.0', '^8.0.0 || ^9.0.0', '2.0.0');
      pkg('b', '1.5.0', '^8.0.0 || ^9.0.0', '3.4.0');
      pkg('c', '1.0.0', '^8.0.0 || ^9.0.0', '3.1.0');
      const r = await loadPackagePath(dir, { validate: true });
      expect(r.failures).to.deep.equal([]);
      packages = r.packages;
    });

    it('is the union of /search over every combination of the matrix', () => {
      const s = selection('  kibana_versions: [8.11.0, 9.0.0]\n  spec:\n    - {min: "3.0", max: "3.3"}\n');
      expect(keys(selectVersions(packages, s, 'lite.yml'))).to.deep.equal(['a@1.0.0', 'a@2.0.0', 'c@1.0.0']);
      const two = selection('  kibana_versions: [8.11.0, 9.0.0]\n  spec:\n    - {min: "3.0", max: "3.3"}\n    - {min: "2.0", max: "2.9"}\n');
      expect(keys(selectVersions(packages, two, 'lite.yml'))).to.deep.equal(['a@1.0.0', 'a@2.0.0', 'b@1.0.0', 'c@1.0.0']);
    });

    it('all_versions keeps every matching version, prerelease the pre-releases', () => {
      expect(keys(selectVersions(packages, selection('  kibana_versions: [8.15.0]\n  all_versions: true\n'), 'x'))).to.deep.equal(['a@1.0.0', 'a@1.1.0', 'b@1.0.0', 'b@1.5.0', 'c@1.0.0']);
      expect(keys(selectVersions(packages, selection('  kibana_versions: [8.15.0]\n'), 'x'))).to.deep.equal(['a@1.1.0', 'b@1.5.0', 'c@1.0.0']);
      expect(keys(selectVersions(packages, selection('  kibana_versions: [9.0.0]\n  packages: [a]\n  prerelease: true\n'), 'x'))).to.deep.equal(['a@2.1.0-beta1']);
    });

    it('the packages list keeps only those names; a pinned version is kept even when no query selects it', () => {
      const s = selection('  packages: [a, a@1.0.0, b@1.0.0]\n  kibana_versions: [9.0.0]\n');
      expect(keys(selectVersions(packages, s, 'x'))).to.deep.equal(['a@1.0.0', 'a@2.0.0', 'b@1.0.0', 'b@1.5.0']);
      expect(keys(selectVersions(packages, selection('  packages: [c]\n'), 'x'))).to.deep.equal(['c@1.0.0']);
    });

    it('a pinned version that is not in the layers fails, naming it and what is there', () => {
      const s = selection('  packages:\n    - a\n    - a@3.0.0\n    - zed@1.0.0\n');
      expect(problemsOf(() => selectVersions(packages, s, 'lite.yml'))).to.deep.equal([
        'select.packages[1] (line 10): a@3.0.0 is pinned but not in the layers of snapshot (a there: 1.0.0, 1.1.0, 2.0.0, 2.1.0-beta1)',
        'select.packages[2] (line 11): zed@1.0.0 is pinned but not in the layers of snapshot (no zed there at all)',
      ]);
    });

    it('the merge keeps each selected version in its own layer, and only those', async () => {
      const base = tmpDir('lite-merge-');
      const layers: MaterialisedLayer[] = ['production', 'staging'].map((name) => {
        const root = path.join(base, name);
        const dir = path.join(root, 'packages', name);
        fs.mkdirSync(dir, { recursive: true });
        return { name, dir, commit: 'c'.repeat(40), repo: base, origin: `/src/${name}`, kind: 'directory', dirty: false };
      });
      writeDirPackage(layers[0].dir, { name: 'a', version: '1.0.0' });
      writeDirPackage(layers[0].dir, { name: 'a', version: '1.1.0' });
      writeDirPackage(layers[1].dir, { name: 'a', version: '1.1.0', title: 'hidden by production' });
      writeDirPackage(layers[1].dir, { name: 'a', version: '1.2.0' });
      writeDirPackage(layers[1].dir, { name: 'b', version: '1.0.0' });
      const s = selection('  packages: [a, a@1.0.0]\n');
      const m = await mergeLayers('lite', layers, { select: (w) => selectVersions(w, s, 'x').keys });
      expect(m.served.map((p) => `${p.name}@${p.version}:${p.layer}`)).to.deep.equal(['a@1.0.0:production', 'a@1.2.0:staging']);
      expect([m.served.length, m.available]).to.deep.equal([2, 4]);
      expect(m.contributions.map((c) => c.packages.map((p) => p.version))).to.deep.equal([['1.0.0'], ['1.2.0']]);
      expect(m.contributions[0].entries.some((e) => e.name.includes('a/1.1.0'))).to.equal(false);
      expect(m.contributions[1].entries.some((e) => e.name.includes('/b/'))).to.equal(false);
      expect(m.report.shadowed).to.deep.equal([]);
    });
  });

  it('describes sizes against the full image, or says it is not built', () => {
    expect(describeLite({ from: 'snapshot', fromRef: 'r:snapshot', selected: 6, total: 13, bytes: 133_700_000, fromBytes: 133_860_400 }))
      .to.equal('lite: 6 of 13 package versions, image 133.7 MB vs full snapshot image 133.9 MB (160 kB smaller)');
    expect(describeLite({ from: 'snapshot', fromRef: 'r:snapshot', selected: 6, total: 13, bytes: 133_700_000 }))
      .to.equal('lite: 6 of 13 package versions, image 133.7 MB vs full snapshot image (r:snapshot) not built');
    // the package layers' figures, as the build summaries give them
    expect(describeLite({ from: 'snapshot', fromRef: 'r:snapshot', selected: 6, total: 13, bytes: 133_700_000, fromBytes: 133_860_400, written: 310_000, treeBytes: 1_200_000, fromWritten: 900_000, fromTreeBytes: 3_400_000 }))
      .to.equal('lite: 6 of 13 package versions, image 133.7 MB vs full snapshot image 133.9 MB (160 kB smaller); package layers 0.3 MB written for 1.2 MB of files vs 0.9 MB for 3.4 MB in the full image');
  });
});
