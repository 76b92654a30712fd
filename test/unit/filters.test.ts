import { expect } from 'chai';
import semver from 'semver';
import { countCategories, satisfiesConstraint, searchEntry, selectPackages, type PackageFilter } from '../../server/packages/filters.js';
import { ids, makePackage } from '../helpers/packages.js';
import type { Package } from '../../server/packages/package.js';
import { PackageIndex } from '../../server/packages/index.js';
import type { JsonObject } from '../../server/packages/fields.js';

const v = (s: string) => semver.parse(s)!;
/** Selection over the list as the index holds it: sorted by name, then version. */
const sel = (all: Package[], f: PackageFilter) => ids(selectPackages(new PackageIndex(all).all, f));

describe('filters: selectPackages', () => {
  describe('release and newest version', () => {
    const all = [
      makePackage({ name: 'alpha', version: '1.0.0' }),
      makePackage({ name: 'alpha', version: '1.1.0' }),
      makePackage({ name: 'alpha', version: '1.2.0-beta.1' }),
      makePackage({ name: 'beta', version: '0.1.0' }),
      makePackage({ name: 'beta', version: '0.2.0' }),
      makePackage({ name: 'exp', version: '1.0.0', manifest: { release: 'experimental' } }),
      makePackage({ name: 'onlypre', version: '2.0.0-rc1' }),
    ];

    it('by default: the newest released version per name; no pre-release tags, no experimental; 0.x kept', () => {
      expect(sel(all, {})).to.deep.equal(['alpha@1.1.0', 'beta@0.2.0']);
    });

    it('prerelease=true includes pre-release versions and experimental packages', () => {
      expect(sel(all, { prerelease: true })).to.deep.equal(['alpha@1.2.0-beta.1', 'beta@0.2.0', 'exp@1.0.0', 'onlypre@2.0.0-rc1']);
    });

    it('all=true: every released version', () => {
      expect(sel(all, { all: true })).to.deep.equal(['alpha@1.0.0', 'alpha@1.1.0', 'beta@0.1.0', 'beta@0.2.0']);
    });

    it('all=true with prerelease=true: everything', () => {
      expect(sel(all, { all: true, prerelease: true })).to.have.length(all.length);
    });

    it('the newest is chosen by semver, not by input order', () => {
      const shuffled = [makePackage({ name: 'z', version: '1.10.0' }), makePackage({ name: 'z', version: '1.9.0' }), makePackage({ name: 'z', version: '1.2.0' })];
      expect(sel(shuffled, {})).to.deep.equal(['z@1.10.0']);
    });

    it('package and type select exactly', () => {
      const typed = [...all, makePackage({ name: 'inp', version: '1.0.0', manifest: { type: 'input' } })];
      expect(sel(typed, { packageName: 'alpha' })).to.deep.equal(['alpha@1.1.0']);
      expect(sel(typed, { packageName: 'alph' })).to.deep.equal([]);
      expect(sel(typed, { type: 'input' })).to.deep.equal(['inp@1.0.0']);
      expect(sel(typed, { type: 'integration', packageName: 'inp' })).to.deep.equal([]);
    });
  });

  describe('conditions', () => {
    const all = [
      makePackage({ name: 'any', version: '1.0.0' }),
      makePackage({ name: 'k7', version: '1.0.0', manifest: { conditions: { kibana: { version: '^7.14.0' } } } }),
      makePackage({ name: 'k78', version: '1.0.0', manifest: { conditions: { kibana: { version: '^7.14.0 || ^8.0.0' } } } }),
      makePackage({ name: 'k8', version: '1.0.0', manifest: { 'conditions.kibana.version': '>=8.10.0' } }),
      makePackage({ name: 'agent', version: '1.0.0', manifest: { conditions: { agent: { version: '^8.5.0' } } } }),
    ];

    it('kibana.version: packages without a constraint or whose constraint accepts it', () => {
      expect(sel(all, { kibanaVersion: v('7.15.0') })).to.deep.equal(['agent@1.0.0', 'any@1.0.0', 'k7@1.0.0', 'k78@1.0.0']);
      expect(sel(all, { kibanaVersion: v('8.1.0') })).to.deep.equal(['agent@1.0.0', 'any@1.0.0', 'k78@1.0.0']);
      expect(sel(all, { kibanaVersion: v('8.12.0') })).to.deep.equal(['agent@1.0.0', 'any@1.0.0', 'k78@1.0.0', 'k8@1.0.0']);
      expect(sel(all, { kibanaVersion: v('7.13.0') })).to.deep.equal(['agent@1.0.0', 'any@1.0.0']);
    });

    it('kibana.version picks the newest version that fits, not the newest overall', () => {
      const list = [
        makePackage({ name: 'p', version: '1.0.0', manifest: { conditions: { kibana: { version: '^7.0.0' } } } }),
        makePackage({ name: 'p', version: '2.0.0', manifest: { conditions: { kibana: { version: '^8.0.0' } } } }),
      ];
      expect(sel(list, { kibanaVersion: v('7.17.0') })).to.deep.equal(['p@1.0.0']);
      expect(sel(list, { kibanaVersion: v('8.1.0') })).to.deep.equal(['p@2.0.0']);
    });

    it('agent.version against conditions.agent.version', () => {
      expect(sel(all, { agentVersion: v('8.6.0') })).to.include('agent@1.0.0');
      expect(sel(all, { agentVersion: v('8.4.0') })).to.not.include('agent@1.0.0');
      expect(sel(all, { agentVersion: v('8.4.0') })).to.include('k7@1.0.0');
    });

    it('capabilities: every capability the package needs must be listed; none needed always matches', () => {
      const list = [
        makePackage({ name: 'none', version: '1.0.0' }),
        makePackage({ name: 'obs', version: '1.0.0', manifest: { conditions: { elastic: { capabilities: ['observability'] } } } }),
        makePackage({ name: 'both', version: '1.0.0', manifest: { conditions: { elastic: { capabilities: ['observability', 'security'] } } } }),
      ];
      expect(sel(list, { capabilities: ['observability'] })).to.deep.equal(['none@1.0.0', 'obs@1.0.0']);
      expect(sel(list, { capabilities: ['observability', 'security', 'x'] })).to.deep.equal(['both@1.0.0', 'none@1.0.0', 'obs@1.0.0']);
      expect(sel(list, { capabilities: [] })).to.deep.equal(['none@1.0.0']);
      expect(sel(list, {})).to.have.length(3);
    });

    it('spec.min/spec.max compare format_version cut to major.minor.0', () => {
      const list = [
        makePackage({ name: 'f2', version: '1.0.0', manifest: { format_version: '2.3.5' } }),
        makePackage({ name: 'f3', version: '1.0.0', manifest: { format_version: '3.0.2' } }),
        makePackage({ name: 'f31', version: '1.0.0', manifest: { format_version: '3.1.0' } }),
      ];
      expect(sel(list, { specMax: v('3.0.0') })).to.deep.equal(['f2@1.0.0', 'f3@1.0.0']);
      expect(sel(list, { specMin: v('3.0.0') })).to.deep.equal(['f3@1.0.0', 'f31@1.0.0']);
      expect(sel(list, { specMin: v('2.3.0'), specMax: v('2.3.0') })).to.deep.equal(['f2@1.0.0']);
      expect(sel(list, { specMin: v('4.0.0') })).to.deep.equal([]);
    });
  });

  describe('discovery', () => {
    const list = [
      makePackage({ name: 'none', version: '1.0.0' }),
      makePackage({ name: 'pid', version: '1.0.0', manifest: { discovery: { fields: [{ name: 'process.pid' }], datasets: [{ name: 'pid.access' }, { name: 'pid.errors' }] } } }),
      makePackage({ name: 'two', version: '1.0.0', manifest: { discovery: { fields: [{ name: 'process.pid' }, { name: 'host.name' }] } } }),
    ];
    it('fields: the package defines discovery fields and all are in the list', () => {
      expect(sel(list, { discovery: [{ kind: 'fields', values: ['process.pid'] }] })).to.deep.equal(['pid@1.0.0']);
      expect(sel(list, { discovery: [{ kind: 'fields', values: ['process.pid', 'host.name', 'x'] }] })).to.deep.equal(['pid@1.0.0', 'two@1.0.0']);
      expect(sel(list, { discovery: [{ kind: 'fields', values: ['x'] }] })).to.deep.equal([]);
    });
    it('datasets: at least one discovery dataset is in the list', () => {
      expect(sel(list, { discovery: [{ kind: 'datasets', values: ['pid.errors', 'other'] }] })).to.deep.equal(['pid@1.0.0']);
      expect(sel(list, { discovery: [{ kind: 'datasets', values: ['other'] }] })).to.deep.equal([]);
    });
    it('several discovery filters must all match', () => {
      expect(sel(list, { discovery: [{ kind: 'fields', values: ['process.pid', 'host.name'] }, { kind: 'datasets', values: ['pid.access'] }] })).to.deep.equal(['pid@1.0.0']);
      expect(sel(list, { discovery: [{ kind: 'fields', values: ['process.pid', 'host.name'] }, { kind: 'datasets', values: ['nope'] }] })).to.deep.equal([]);
    });
  });

  describe('category', () => {
    const list = [
      makePackage({ name: 'nginx', version: '1.0.0', manifest: { categories: ['web', 'security'] } }),
      makePackage({ name: 'obs', version: '1.0.0', manifest: { categories: ['observability'] } }),
      makePackage({ name: 'cloudy', version: '1.0.0', manifest: { categories: ['cloud'] } }),
      makePackage({
        name: 'multi', version: '1.0.0', manifest: {
          categories: ['custom'],
          policy_templates: [
            { name: 'tweb', title: 'T web', description: 'd', categories: ['web'] },
            { name: 'tsec', title: 'T sec', description: 'd', categories: ['security'] },
            { name: 'tnone', title: 'T none', description: 'd' },
          ],
        },
      }),
    ];

    it('matches the category itself', () => {
      expect(sel(list, { category: 'cloud' })).to.deep.equal(['cloudy@1.0.0']);
    });

    it('a parent category matches its subcategories (observability matches web)', () => {
      expect(sel(list, { category: 'observability' })).to.deep.equal(['multi@1.0.0', 'nginx@1.0.0', 'obs@1.0.0']);
    });

    it('a subcategory does not match its parent', () => {
      expect(sel(list, { category: 'web' })).to.deep.equal(['multi@1.0.0', 'nginx@1.0.0']);
    });

    it('a match on policy templates only narrows the templates returned', () => {
      const selected = selectPackages(new PackageIndex(list).all, { category: 'security' });
      expect(ids(selected)).to.deep.equal(['multi@1.0.0', 'nginx@1.0.0']);
      const multi = selected.find((s) => s.pkg.name === 'multi')!;
      expect([...multi.policyTemplateNames!]).to.deep.equal(['tsec']);
      const entry = searchEntry(multi);
      expect((entry.policy_templates as JsonObject[]).map((t) => t.name)).to.deep.equal(['tsec']);
      expect(searchEntry(selected.find((s) => s.pkg.name === 'nginx')!)).to.equal(selected.find((s) => s.pkg.name === 'nginx')!.pkg.summary);
    });

    it('a match on the package categories keeps every template', () => {
      const multi = selectPackages(list, { category: 'custom' })[0];
      expect(multi.policyTemplateNames).to.equal(undefined);
      expect((searchEntry(multi).policy_templates as JsonObject[]).map((t) => t.name)).to.deep.equal(['tweb', 'tsec', 'tnone']);
    });

    it('is applied after the newest version is chosen: a newest without the category hides the package', () => {
      const versions = [
        makePackage({ name: 'p', version: '1.0.0', manifest: { categories: ['cloud'] } }),
        makePackage({ name: 'p', version: '2.0.0', manifest: { categories: ['network'] } }),
      ];
      expect(sel(versions, { category: 'cloud' })).to.deep.equal([]);
      expect(sel(versions, { category: 'cloud', all: true })).to.deep.equal(['p@1.0.0']);
    });

    it('unknown package categories are dropped', () => {
      const p = makePackage({ name: 'u', version: '1.0.0', manifest: { categories: ['not_a_category', 'cloud'] } });
      expect(p.facts.categories).to.deep.equal(['cloud']);
      expect(sel([p], { category: 'not_a_category' })).to.deep.equal([]);
    });
  });

  describe('legacy experimental=true', () => {
    const list = [
      makePackage({ name: 'stable', version: '1.0.0' }),
      makePackage({ name: 'stable', version: '1.1.0' }),
      makePackage({ name: 'stable', version: '2.0.0-beta1' }),
      makePackage({ name: 'stable', version: '0.9.0' }),
      makePackage({ name: 'young', version: '0.1.0' }),
      makePackage({ name: 'young', version: '0.2.0-rc1' }),
      makePackage({ name: 'exp', version: '1.0.0', manifest: { release: 'experimental', conditions: { kibana: { version: '^8.0.0' } } } }),
      makePackage({ name: 'capped', version: '1.0.0', manifest: { conditions: { elastic: { capabilities: ['security'] } }, format_version: '9.0.0' } }),
    ];

    it('includes experimental packages and prefers the newest stable over a newer pre-release', () => {
      expect(sel(list, { experimental: true })).to.deep.equal(['capped@1.0.0', 'exp@1.0.0', 'stable@1.1.0', 'young@0.2.0-rc1']);
    });

    it('applies only kibana.version, package and type (capabilities and spec are ignored)', () => {
      expect(sel(list, { experimental: true, kibanaVersion: v('7.17.0'), capabilities: [], specMax: v('1.0.0') })).to.deep.equal(['capped@1.0.0', 'stable@1.1.0', 'young@0.2.0-rc1']);
      expect(sel(list, { experimental: true, packageName: 'exp' })).to.deep.equal(['exp@1.0.0']);
      expect(sel(list, { experimental: true, type: 'input' })).to.deep.equal([]);
    });

    it('with all=true drops pre-release and 0.x versions of packages that have a >= 1.0 stable version', () => {
      expect(sel(list, { experimental: true, all: true })).to.deep.equal(['capped@1.0.0', 'exp@1.0.0', 'stable@1.0.0', 'stable@1.1.0', 'young@0.1.0', 'young@0.2.0-rc1']);
    });
  });
});

describe('filters: satisfiesConstraint', () => {
  it('no constraint accepts everything', () => expect(satisfiesConstraint(v('1.0.0'), undefined)).to.equal(true));
  it('OR-ed ranges', () => {
    expect(satisfiesConstraint(v('7.14.1'), '^7.14.0 || ^8.0.0')).to.equal(true);
    expect(satisfiesConstraint(v('8.3.0'), '^7.14.0 || ^8.0.0')).to.equal(true);
    expect(satisfiesConstraint(v('7.13.0'), '^7.14.0 || ^8.0.0')).to.equal(false);
    expect(satisfiesConstraint(v('9.0.0'), '^7.14.0 || ^8.0.0')).to.equal(false);
  });
  it('Go-style commas AND comparators', () => {
    expect(satisfiesConstraint(v('8.5.0'), '>=8.0.0, <9.0.0')).to.equal(true);
    expect(satisfiesConstraint(v('9.1.0'), '>=8.0.0, <9.0.0')).to.equal(false);
  });
  it('a constraint that cannot be parsed matches nothing', () => {
    expect(satisfiesConstraint(v('8.5.0'), 'not a range')).to.equal(false);
  });
});

describe('filters: countCategories', () => {
  const plain = makePackage({ name: 'a', version: '1.0.0', manifest: { categories: ['web', 'security'] } });
  const single = makePackage({ name: 'b', version: '1.0.0', manifest: { categories: ['web'], policy_templates: [{ name: 't', title: 't', description: 'd' }] } });
  const templ = makePackage({
    name: 'c', version: '1.0.0', manifest: {
      categories: ['cloud'],
      policy_templates: [{ name: 'x', title: 'x', description: 'd', categories: ['aws'] }, { name: 'y', title: 'y', description: 'd' }],
    },
  });
  const all = [plain, single, templ].map((pkg) => ({ pkg }));

  it('counts the categories of each selected package', () => {
    expect(Object.fromEntries(countCategories(all, false))).to.deep.equal({ web: 2, security: 1, cloud: 1 });
  });

  it('with policy templates: each template counts its own categories and the package ones; a single template without categories adds nothing', () => {
    // c: cloud (package) + x: aws (own) + {aws, cloud} + y: {cloud}
    expect(Object.fromEntries(countCategories(all, true))).to.deep.equal({ web: 2, security: 1, cloud: 3, aws: 2 });
  });
});
