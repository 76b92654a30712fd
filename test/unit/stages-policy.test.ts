import { expect } from 'chai';
import { checkStagePolicy, type PolicyFlags } from '../../builder/stages/policy.js';
import type { StagePolicy } from '../../builder/distribution.js';
import type { BakedPackage } from '../../builder/stages/diff.js';

const POLICIES: Record<'snapshot' | 'staging' | 'production', StagePolicy> = {
  snapshot: { overwrite: 'allow', removal: 'allow' },
  staging: { overwrite: 'flag', removal: 'flag' },
  production: { overwrite: 'never', removal: 'never' },
};

const pkg = (name: string, version: string, hash = `sha256:${name}-${version}`.padEnd(71, '0')): BakedPackage => ({ name, version, hash, layer: 'l' });
const PUBLISHED = [pkg('nginx', '1.0.0'), pkg('nginx', '1.2.0'), pkg('redis', '0.4.0')];
const OVERWRITTEN = [pkg('nginx', '1.0.0'), pkg('nginx', '1.2.0', `sha256:${'f'.repeat(64)}`), pkg('redis', '0.4.0')];
const REMOVED = [pkg('nginx', '1.2.0'), pkg('redis', '0.4.0')];
const NONE: PolicyFlags = { allowOverwrite: false, allowRemoval: false };
const ALL: PolicyFlags = { allowOverwrite: true, allowRemoval: true, reason: 'withdrawn: CVE-2026-1' };

function check(stage: keyof typeof POLICIES, next: BakedPackage[], flags: PolicyFlags = NONE) {
  return checkStagePolicy(stage, POLICIES[stage], PUBLISHED, next, flags);
}

describe('stages: stage policy (overwrite and removal per stage)', () => {
  it('the same list passes everywhere', () => {
    for (const stage of ['snapshot', 'staging', 'production'] as const) expect(check(stage, PUBLISHED).violations, stage).to.deep.equal([]);
  });

  describe('snapshot', () => {
    it('overwrite: allowed without a flag', () => {
      const r = check('snapshot', OVERWRITTEN);
      expect(r.violations).to.deep.equal([]);
      expect(r.diff.changed.map((c) => `${c.name}@${c.version}`)).to.deep.equal(['nginx@1.2.0']);
      expect(r.overrides).to.deep.equal([]);
    });
    it('removal: allowed without a flag or reason', () => {
      const r = check('snapshot', REMOVED);
      expect(r.violations).to.deep.equal([]);
      expect(r.diff.removed.map((c) => `${c.name}@${c.version}`)).to.deep.equal(['nginx@1.0.0']);
    });
  });

  describe('staging', () => {
    it('overwrite: refused without --allow-overwrite, naming the package and the flag', () => {
      const r = check('staging', OVERWRITTEN);
      expect(r.violations).to.have.length(1);
      expect(r.violations[0]).to.deep.include({ name: 'nginx', version: '1.2.0', rule: 'overwrite' });
      expect(r.violations[0].message).to.match(/^nginx 1\.2\.0: content changed .*staging overwrites a published version only with --allow-overwrite$/);
    });
    it('overwrite: allowed with --allow-overwrite (and recorded as an override)', () => {
      const r = check('staging', OVERWRITTEN, { ...NONE, allowOverwrite: true });
      expect(r.violations).to.deep.equal([]);
      expect(r.overrides).to.deep.equal(['overwrite']);
    });
    it('removal: refused without --allow-removal', () => {
      const r = check('staging', REMOVED);
      expect(r.violations.map((v) => [v.name, v.version, v.rule])).to.deep.equal([['nginx', '1.0.0', 'removal']]);
      expect(r.violations[0].message).to.match(/^nginx 1\.0\.0: removed .*only with --allow-removal --reason/);
    });
    it('removal: refused with --allow-removal but no --reason', () => {
      for (const reason of [undefined, '  ']) {
        const r = check('staging', REMOVED, { ...NONE, allowRemoval: true, reason });
        expect(r.violations.map((v) => v.rule)).to.deep.equal(['removal']);
        expect(r.violations[0].message).to.match(/--allow-removal also needs --reason/);
      }
    });
    it('removal: allowed with --allow-removal --reason', () => {
      const r = check('staging', REMOVED, { ...NONE, allowRemoval: true, reason: 'yanked' });
      expect(r.violations).to.deep.equal([]);
      expect(r.overrides).to.deep.equal(['removal']);
    });
    it('adding a lower version is fine in staging', () => {
      expect(check('staging', [...PUBLISHED, pkg('nginx', '1.1.0')]).violations).to.deep.equal([]);
    });
  });

  describe('production', () => {
    it('overwrite: refused even with every flag', () => {
      for (const flags of [NONE, ALL]) {
        const r = check('production', OVERWRITTEN, flags);
        expect(r.violations.map((v) => [v.name, v.version, v.rule])).to.deep.equal([['nginx', '1.2.0', 'overwrite']]);
        expect(r.violations[0].message).to.match(/production never overwrites a published version \(not even with --allow-overwrite\)/);
      }
    });
    it('removal: refused even with --allow-removal --reason', () => {
      for (const flags of [NONE, ALL]) {
        const r = check('production', REMOVED, flags);
        expect(r.violations.map((v) => [v.name, v.version, v.rule])).to.deep.equal([['nginx', '1.0.0', 'removal']]);
        expect(r.violations[0].message).to.match(/never removes a published version .*only newer versions are added/);
      }
    });
    it('adding a version lower than the newest published one is refused', () => {
      const r = check('production', [...PUBLISHED, pkg('nginx', '1.1.0'), pkg('nginx', '1.2.0-beta1')], ALL);
      expect(r.violations.map((v) => [v.name, v.version, v.rule])).to.deep.equal([['nginx', '1.1.0', 'older-version'], ['nginx', '1.2.0-beta1', 'older-version']]);
      expect(r.violations[0].message).to.equal('nginx 1.1.0: added below the newest published version 1.2.0: production only adds newer versions (no flag allows this)');
    });
    it('adding a newer version, or a new package, is allowed', () => {
      const r = check('production', [...PUBLISHED, pkg('nginx', '1.3.0'), pkg('apache', '0.1.0')]);
      expect(r.violations).to.deep.equal([]);
      expect(r.diff.added.map((c) => `${c.name}@${c.version}`)).to.deep.equal(['apache@0.1.0', 'nginx@1.3.0']);
    });
    it('every offending package is named, one violation each', () => {
      const next = [pkg('nginx', '1.2.0', `sha256:${'e'.repeat(64)}`), pkg('nginx', '0.9.0')];
      const r = check('production', next, ALL);
      expect(r.violations.map((v) => `${v.rule} ${v.name}@${v.version}`)).to.deep.equal([
        'overwrite nginx@1.2.0', 'removal nginx@1.0.0', 'removal redis@0.4.0', 'older-version nginx@0.9.0',
      ]);
    });
  });
});
