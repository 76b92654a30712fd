import { expect } from 'chai';
import { imageLabels, imageTags, isStackVersion, sharedTags, stackVersions, REQUIRED_LABELS } from '../../builder/tags.js';

const COMMIT = 'a'.repeat(40);

describe('builder: the tag rule', () => {
  it('tags <repo>:<distribution> and <repo>:<commit>', () => {
    expect(imageTags({ repository: 'localhost:5000/pr/distribution', distribution: 'production', commit: COMMIT, gitTags: [] }))
      .to.deep.equal(['localhost:5000/pr/distribution:production', `localhost:5000/pr/distribution:${COMMIT}`]);
  });

  it('adds <repo>:<X.Y.Z> for each bare semver git tag on the commit, in version order', () => {
    const tags = imageTags({ repository: 'r/d', distribution: 'snapshot', commit: COMMIT, gitTags: ['v7.9.0', '7.10.0', '7.9.0', 'latest', '8.0.0-SNAPSHOT', '7.9'] });
    expect(tags).to.deep.equal(['r/d:snapshot', `r/d:${COMMIT}`, 'r/d:7.9.0', 'r/d:7.10.0']);
  });

  it('accepts only bare release versions as stack versions', () => {
    for (const ok of ['7.9.0', '0.0.1', '10.20.30']) expect(isStackVersion(ok), ok).to.equal(true);
    for (const no of ['v7.9.0', '7.9', '7.9.0-rc1', '7.9.0+build', '07.9.0', 'release-7.9.0', '7.9.0 ']) expect(isStackVersion(no), no).to.equal(false);
    expect(stackVersions(['8.1.0', '8.0.10', '8.0.9', 'v9.0.0'])).to.deep.equal(['8.0.9', '8.0.10', '8.1.0']);
  });

  it('gives no commit tag when the commit is unknown', () => {
    expect(imageTags({ repository: 'r/d', distribution: 'production', commit: 'unknown', gitTags: [] })).to.deep.equal(['r/d:production']);
  });

  it('labels say what the image holds', () => {
    const labels = imageLabels({
      distribution: 'staging', commit: COMMIT, stackVersions: ['7.9.0'], registryVersion: '1.40.1', baseImage: 'package-registry:1.40.1-x',
      packageCount: 11, packagesDigest: 'sha256:abc', layers: [{ name: 'production', commit: COMMIT, origin: '/x' }],
    });
    for (const l of REQUIRED_LABELS) expect(labels[l], l).to.be.a('string').and.not.equal('');
    expect(labels['org.elastic.package-registry.stack-versions']).to.equal('7.9.0');
    expect(labels['org.elastic.package-registry.package-count']).to.equal('11');
  });

  it('finds tags that several distributions claim', () => {
    const shared = sharedTags([
      { distribution: 'production', tags: ['r:production', `r:${COMMIT}`] },
      { distribution: 'staging', tags: ['r:staging', `r:${COMMIT}`] },
    ]);
    expect([...shared]).to.deep.equal([[`r:${COMMIT}`, ['production', 'staging']]]);
  });
});
