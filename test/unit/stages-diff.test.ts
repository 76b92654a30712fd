import { expect } from 'chai';
import { diffDetails, diffLine, diffPackages, formatSizeDelta, type BakedPackage } from '../../builder/stages/diff.js';
import { resolveImageRef } from '../../builder/stages/diff-cli.js';

const h = (c: string) => `sha256:${c.repeat(64)}`;
const p = (name: string, version: string, hash: string, layer = 'production'): BakedPackage => ({ name, version, hash, layer });

describe('stages: distribution diff', () => {
  const A = [p('nginx', '1.0.0', h('a')), p('nginx', '1.2.0', h('b')), p('redis', '0.4.0', h('c'))];
  const B = [p('redis', '0.4.0', h('c')), p('nginx', '1.2.0', h('d'), 'staging'), p('apache', '2.0.0', h('e')), p('nginx', '1.3.0', h('f'))];

  it('added, removed and changed versions by name+version and content hash', () => {
    const d = diffPackages(A, B);
    expect(d.added.map((x) => `${x.name}@${x.version}`)).to.deep.equal(['apache@2.0.0', 'nginx@1.3.0']);
    expect(d.removed.map((x) => `${x.name}@${x.version}`)).to.deep.equal(['nginx@1.0.0']);
    expect(d.changed).to.deep.equal([{ name: 'nginx', version: '1.2.0', before: h('b'), after: h('d') }]);
    expect(d.unchanged).to.equal(1);
  });

  it('is symmetric: B -> A swaps added and removed', () => {
    const d = diffPackages(B, A);
    expect(d.added.map((x) => `${x.name}@${x.version}`)).to.deep.equal(['nginx@1.0.0']);
    expect(d.removed.map((x) => `${x.name}@${x.version}`)).to.deep.equal(['apache@2.0.0', 'nginx@1.3.0']);
    expect(d.changed[0]).to.deep.include({ before: h('d'), after: h('b') });
  });

  it('identical and empty lists', () => {
    expect(diffPackages(A, A)).to.deep.equal({ added: [], removed: [], changed: [], unchanged: 3 });
    expect(diffPackages([], A).added).to.have.length(3);
  });

  it('one summary line and one line per difference', () => {
    const d = diffPackages(A, B);
    expect(diffLine(d, 2_500_000)).to.equal('+2 added, -1 removed, ~1 changed, size +2.5 MB');
    expect(formatSizeDelta(-1_240_000)).to.equal('-1.2 MB');
    expect(diffDetails(d)).to.deep.equal([
      '+ apache 2.0.0 (production)', '+ nginx 1.3.0 (production)', '- nginx 1.0.0 (production)', `~ nginx 1.2.0: ${'b'.repeat(12)} -> ${'d'.repeat(12)}`,
    ]);
  });

  it('image references: full refs and ids as given, a bare tag in the repository of its definition or of production', () => {
    expect(resolveImageRef('127.0.0.1:5000/epr/distribution:staging')).to.equal('127.0.0.1:5000/epr/distribution:staging');
    expect(resolveImageRef('sha256:abc')).to.equal('sha256:abc');
    expect(resolveImageRef('staging', 'example.org/r')).to.equal('example.org/r:staging');
    expect(resolveImageRef('production')).to.equal('localhost:5000/package-registry/distribution:production');
    expect(resolveImageRef('8.15.0')).to.equal('localhost:5000/package-registry/distribution:8.15.0');
  });
});
