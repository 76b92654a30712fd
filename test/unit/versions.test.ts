import { expect } from 'chai';
import semver from 'semver';
import { compareVersions, isPrerelease, isStrictSemver } from '../../server/packages/versions.js';

describe('versions', () => {
  it('orders by semantic version precedence, pre-releases below their release', () => {
    const list = ['1.10.0', '1.2.0', '1.2.0-beta.2', '1.2.0-beta.10', '0.9.0', '1.2.0-alpha', '2.0.0'];
    expect([...list].sort(compareVersions)).to.deep.equal(['0.9.0', '1.2.0-alpha', '1.2.0-beta.2', '1.2.0-beta.10', '1.2.0', '1.10.0', '2.0.0']);
  });

  it('build metadata breaks no ties', () => {
    expect(compareVersions('1.0.0+a', '1.0.0+b')).to.equal(0);
    expect(compareVersions('1.0.0+build', '1.0.0')).to.equal(0);
  });

  it('accepts SemVer objects and strings alike', () => {
    expect(compareVersions(semver.parse('1.0.0')!, '1.0.1')).to.equal(-1);
    expect(compareVersions('2.0.0', semver.parse('1.0.1')!)).to.equal(1);
  });

  for (const v of ['1.0.0', '0.0.1', '10.20.30', '1.0.0-beta', '1.0.0-beta.1', '1.0.0-rc.1+build.5', '1.0.0+20130313144700', '8.0.0-SNAPSHOT']) {
    it(`"${v}" is strict semver`, () => expect(isStrictSemver(v)).to.equal(true));
  }
  for (const v of ['1', '1.0', 'v1.0.0', '=1.0.0', '01.0.0', '1.0.0.0', 'latest', '', '1.0.x', ' 1.0.0', '1.0.0-', '1.0.0-01']) {
    it(`"${v}" is not strict semver`, () => expect(isStrictSemver(v)).to.equal(false));
  }

  // BUG: semver.valid() trims its input and the check only anchors the start, so "1.0.0 " and
  // "1.0.0\n" pass; /package/n/1.0.0%20/ then answers 404 instead of 400 invalid package version.
  for (const v of ['1.0.0 ', '1.0.0\n', '1.0.0\t']) {
    it(`${JSON.stringify(v)} (trailing whitespace) is not strict semver`, () => expect(isStrictSemver(v)).to.equal(false));
  }

  it('isPrerelease looks at the semver pre-release tag only', () => {
    expect(isPrerelease(semver.parse('1.0.0-beta.1')!)).to.equal(true);
    expect(isPrerelease(semver.parse('0.1.0')!)).to.equal(false);
    expect(isPrerelease(semver.parse('1.0.0+build')!)).to.equal(false);
  });
});
