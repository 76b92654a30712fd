import path from 'node:path';
import { expect } from 'chai';
import { DistributionError, parseDistributionText } from '../../builder/distribution.js';

const VALID = `name: staging
image:
  repository: localhost:5000/package-registry/distribution
package_registry:
  version: 1.40.1
layers:
  - name: production
    source:
      directory: layers/production
  - name: staging
    source:
      git: { repo: ../storage, ref: main, path: packages/ }
cache_time:
  index: 10s
policy:
  overwrite: flag
  removal: never
`;

function problemsOf(text: string, file = '/d/staging.yml'): string[] {
  try {
    parseDistributionText(text, file);
  } catch (err) {
    expect(err).to.be.instanceOf(DistributionError);
    return (err as DistributionError).problems;
  }
  throw new Error('expected a DistributionError');
}

describe('builder: distribution definitions', () => {
  it('reads a valid definition; paths are relative to the file', () => {
    const d = parseDistributionText(VALID, '/d/staging.yml');
    expect(d.name).to.equal('staging');
    expect(d.repository).to.equal('localhost:5000/package-registry/distribution');
    expect(d.baseImage).to.equal('node:20-bookworm-slim');
    expect(d.layers).to.deep.equal([
      { name: 'production', source: { kind: 'directory', directory: path.resolve('/d/layers/production') } },
      { name: 'staging', source: { kind: 'git', repo: path.resolve('/storage'), ref: 'main', path: 'packages' } },
    ]);
    expect(d.cacheTime).to.deep.equal({ index: '10s' });
    expect(d.policy).to.deep.equal({ overwrite: 'flag', removal: 'never' });
  });

  it('reports every problem with its key and line', () => {
    const text = `name: staging
image:
  repository: Not A Repo:tag
package_registry:
  version: one
layers:
  - name: production
    source: {}
  - name: Bad Name
    source:
      directory: x
      git: { repo: r, ref: main }
  - name: third
    sorce:
      directory: y
cache_time:
  index: soon
policy:
  overwrite: maybe
extra: 1
`;
    const problems = problemsOf(text);
    const expectOne = (re: RegExp) => expect(problems.some((p) => re.test(p)), `${re} in\n${problems.join('\n')}`).to.equal(true);
    expectOne(/^image\.repository \(line 3\): must be an image repository/);
    expectOne(/^package_registry\.version \(line 5\): must be a version/);
    expectOne(/^layers\[0\]\.source \(line 8\): must have exactly one of directory or git/);
    expectOne(/^layers\[1\]\.name \(line 9\): must be lower-case/);
    expectOne(/^layers\[1\]\.source \(line 10\): must have exactly one of directory or git/);
    expectOne(/^layers\[2\]\.sorce \(line 14\): unknown key/);
    expectOne(/^layers\[2\]\.source \(line 13\): is required/);
    expectOne(/^cache_time\.index \(line 17\): must be a duration/);
    expectOne(/^policy\.overwrite \(line 19\): must be one of allow, flag, never/);
    expectOne(/^extra \(line 20\): unknown key/);
  });

  it('reports missing top-level keys, duplicate layers and a name that disagrees with the file', () => {
    expect(problemsOf('name: staging\n')).to.include.members(['image: is required', 'package_registry: is required', 'layers: is required']);
    const dup = VALID.replace('- name: staging', '- name: production');
    expect(problemsOf(dup).join('\n')).to.match(/layers\[1\]\.name \(line 10\): layer "production" is already defined by layers\[0\]/);
    expect(problemsOf(VALID, '/d/snapshot.yml').join('\n')).to.match(/^name \(line 1\): is "staging" but the file is snapshot\.yml/);
  });

  it('reports invalid YAML with its line', () => {
    expect(problemsOf('name: staging\nlayers: [\n')[0]).to.match(/^line \d+: invalid YAML/);
  });
});
