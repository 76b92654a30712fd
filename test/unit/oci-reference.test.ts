import { expect } from 'chai';
import { ReferenceError, apiHost, formatReference, isLoopbackRegistry, parseReference } from '../../builder/oci/reference.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('OCI image references', () => {
  it('reads Docker Hub short forms into library/ and docker.io', () => {
    expect(parseReference('node')).to.deep.equal({ registry: 'docker.io', repository: 'library/node' });
    expect(parseReference('node:20-slim')).to.deep.equal({ registry: 'docker.io', repository: 'library/node', tag: '20-slim' });
    expect(parseReference('elastic/package-registry:main')).to.deep.equal({ registry: 'docker.io', repository: 'elastic/package-registry', tag: 'main' });
    expect(parseReference('index.docker.io/library/node').registry).to.equal('docker.io');
    expect(parseReference('registry-1.docker.io/library/node:20').registry).to.equal('docker.io');
  });

  it('takes the first component as a registry when it has a dot, a port or is localhost', () => {
    expect(parseReference('docker.elastic.co/package-registry/distribution:production')).to.deep.equal({
      registry: 'docker.elastic.co',
      repository: 'package-registry/distribution',
      tag: 'production',
    });
    expect(parseReference('localhost:5000/epr/distribution:1')).to.deep.equal({ registry: 'localhost:5000', repository: 'epr/distribution', tag: '1' });
    expect(parseReference('localhost/epr').registry).to.equal('localhost');
    expect(parseReference('[::1]:5000/epr').registry).to.equal('[::1]:5000');
    // a plain first component stays part of the Docker Hub path
    expect(parseReference('epr/distribution')).to.deep.equal({ registry: 'docker.io', repository: 'epr/distribution' });
  });

  it('reads digests, alone or after a tag', () => {
    expect(parseReference(`127.0.0.1:5000/epr@${DIGEST}`)).to.deep.equal({ registry: '127.0.0.1:5000', repository: 'epr', digest: DIGEST });
    expect(parseReference(`127.0.0.1:5000/epr:1@${DIGEST}`)).to.deep.equal({ registry: '127.0.0.1:5000', repository: 'epr', tag: '1', digest: DIGEST });
  });

  it('refuses what Docker refuses, saying why', () => {
    expect(() => parseReference('  ')).to.throw(ReferenceError, 'empty');
    expect(() => parseReference('Epr/Distribution')).to.throw(ReferenceError, '"Epr" is not a valid repository name component');
    expect(() => parseReference('epr:bad!tag')).to.throw(ReferenceError, '"bad!tag" is not a valid tag');
    expect(() => parseReference('epr@sha256:abc')).to.throw(ReferenceError, 'sha256:<64 hex digits>');
    expect(() => parseReference('epr//x')).to.throw(ReferenceError, 'not a valid repository name component');
  });

  it('writes references back the way Docker prints them', () => {
    for (const text of ['node:20', 'elastic/package-registry:main', 'localhost:5000/epr/distribution:1', `127.0.0.1:5000/epr:1@${DIGEST}`, 'docker.elastic.co/x/y']) {
      expect(formatReference(parseReference(text))).to.equal(text);
    }
    expect(formatReference({ registry: 'docker.io', repository: 'library/node', tag: '20' })).to.equal('node:20');
  });

  it("reaches Docker Hub's API at its own host", () => {
    expect(apiHost('docker.io')).to.equal('registry-1.docker.io');
    expect(apiHost('127.0.0.1:5000')).to.equal('127.0.0.1:5000');
  });

  it('counts only this machine as loopback (plain http)', () => {
    for (const r of ['localhost', 'localhost:5000', '127.0.0.1', '127.0.0.1:5000', '127.3.2.1:80', '[::1]:5000', '[::1]']) expect(isLoopbackRegistry(r), r).to.equal(true);
    for (const r of ['docker.io', '10.0.0.1:5000', 'localhost.example.com', '127.0.0.1.example.com:5000', 'registry.local:5000']) expect(isLoopbackRegistry(r), r).to.equal(false);
  });
});
