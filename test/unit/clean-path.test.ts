import { expect } from 'chai';
import { cleanPath, joinPath } from '../../server/packages/go-path.js';
import { cleanPathRedirect, routerClean } from '../../server/http/clean-path.js';

describe('Go path rules (server/packages/go-path.ts)', () => {
  // the table of Go's own path_test.go (TestClean)
  const goClean: Array<[string, string]> = [
    ['', '.'], ['abc', 'abc'], ['abc/def', 'abc/def'], ['a/b/c', 'a/b/c'], ['.', '.'], ['..', '..'], ['../..', '../..'],
    ['../../abc', '../../abc'], ['/abc', '/abc'], ['/', '/'],
    ['abc/', 'abc'], ['abc/def/', 'abc/def'], ['a/b/c/', 'a/b/c'], ['./', '.'], ['../', '..'], ['../../', '../..'], ['/abc/', '/abc'],
    ['abc//def//ghi', 'abc/def/ghi'], ['//abc', '/abc'], ['///abc', '/abc'], ['//abc//', '/abc'], ['abc//', 'abc'],
    ['abc/./def', 'abc/def'], ['/./abc/def', '/abc/def'], ['abc/.', 'abc'],
    ['abc/def/ghi/../jkl', 'abc/def/jkl'], ['abc/def/../ghi/../jkl', 'abc/jkl'], ['abc/def/..', 'abc'], ['abc/def/../..', '.'],
    ['/abc/def/../..', '/'], ['abc/def/../../..', '..'], ['/abc/def/../../..', '/'], ['abc/def/../../../ghi/jkl/../../../mno', '../../mno'],
    ['abc/./../def', 'def'], ['abc//./../def', 'def'], ['abc/../../././../def', '../../def'],
  ];
  for (const [input, want] of goClean) it(`path.Clean(${JSON.stringify(input)}) = ${JSON.stringify(want)}`, () => expect(cleanPath(input)).to.equal(want));

  it('path.Join: empty elements ignored, the result cleaned', () => {
    expect(joinPath('/package/n/1.0.0', '/img//logo.png')).to.equal('/package/n/1.0.0/img/logo.png');
    expect(joinPath('/package/n/1.0.0', 'img/logo.png')).to.equal('/package/n/1.0.0/img/logo.png');
    expect(joinPath('/package/n/1.0.0', '/img/logo.png/')).to.equal('/package/n/1.0.0/img/logo.png');
    expect(joinPath('/package/n/1.0.0', '../../../etc/passwd')).to.equal('/etc/passwd');
    expect(joinPath('docs', '../../x.md')).to.equal('../x.md');
    expect(joinPath('', '')).to.equal('');
    expect(joinPath('', 'a', '')).to.equal('a');
  });

  it("the router's clean keeps a trailing slash and roots the path", () => {
    expect(routerClean('/package/n/1.0.0/./')).to.equal('/package/n/1.0.0/');
    expect(routerClean('/package/n/1.0.0/.')).to.equal('/package/n/1.0.0');
    expect(routerClean('//')).to.equal('/');
    expect(routerClean('/../')).to.equal('/');
    expect(routerClean('a/b')).to.equal('/a/b');
  });
});

describe('unclean request paths: the 301 target (server/http/clean-path.ts)', () => {
  const redirects: Array<[string, string]> = [
    ['/package/nginx/1.2.0/img//logo.png', '/package/nginx/1.2.0/img/logo.png'],
    ['/package/nginx/1.2.0/./img/logo.png', '/package/nginx/1.2.0/img/logo.png'],
    ['/package/nginx/1.2.0/docs/../img/logo.png', '/package/nginx/1.2.0/img/logo.png'],
    ['//', '/'],
    ['//search', '/search'],
    ['/search/.', '/search'],
    ['/package/n/1.0.0/.', '/package/n/1.0.0'],
    ['/package/n/1.0.0/./', '/package/n/1.0.0/'],
    ['/package/n/1.0.0//', '/package/n/1.0.0/'],
    ['/package/n/1.0.0/..', '/package/n'],
    ['/package/n/1.0.0/../', '/package/n/'],
    // `..` never climbs above the root
    ['/package/x/1.0.0/../../../etc/passwd', '/etc/passwd'],
    ['/../../../../etc/passwd', '/etc/passwd'],
    ['/..', '/'],
    // decoded first, as Go reads the path: %2e is a dot, %2f a slash
    ['/package/x/1.0.0/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/etc/passwd'],
    ['/package/x/1.0.0/%2E%2E/secret', '/package/x/secret'],
    ['/package/x/1.0.0/..%2f..%2fsecret', '/package/secret'],
    ['/package/x/1.0.0/img%2f%2flogo.png', '/package/x/1.0.0/img/logo.png'],
    ['/package/x/1.0.0/%2fetc%2fpasswd', '/package/x/1.0.0/etc/passwd'],
    // the cleaned path is written again as Go escapes a path
    ['/package/x/1.0.0//a%20b.png', '/package/x/1.0.0/a%20b.png'],
    ['/package/x/1.0.0//caf%c3%a9.md', '/package/x/1.0.0/caf%C3%A9.md'],
    ['/package/x/1.0.0//%ff', '/package/x/1.0.0/%FF'],
    ['/package/x/1.0.0//a%3fb', '/package/x/1.0.0/a%3Fb'],
    ['/package/x/1.0.0//(a)!*\'', '/package/x/1.0.0/%28a%29%21%2A%27'],
    ['/package/x/1.0.0//a+b$&,:;=@~-_.', '/package/x/1.0.0/a+b$&,:;=@~-_.'],
    ['/package/x/1.0.0//%5c..%5cx', '/package/x/1.0.0/%5C..%5Cx'],
    ['/a//b#c', '/a/b%23c'],
    // a `//host` form can never become another origin: the cleaned path has one leading slash
    ['//evil.example/x', '/evil.example/x'],
    ['/.//evil.example', '/evil.example'],
  ];
  for (const [from, to] of redirects) it(`${from} -> ${to}`, () => expect(cleanPathRedirect(from)).to.equal(to));

  it('the query string is kept as it came, a lone "?" too', () => {
    expect(cleanPathRedirect('/search/.?kibana.version=7.17.0&x=%2F..%2F')).to.equal('/search?kibana.version=7.17.0&x=%2F..%2F');
    expect(cleanPathRedirect('/a//b?')).to.equal('/a/b?');
    expect(cleanPathRedirect('/a//b??x=1')).to.equal('/a/b??x=1');
    expect(cleanPathRedirect('/a//b?q=../..//')).to.equal('/a/b?q=../..//');
  });

  it('clean paths are left alone, whatever their query or escapes', () => {
    for (const p of [
      '/', '/search', '/search?q=//..', '/package/n/1.0.0/', '/package/n/1.0.0/img/logo.png', '/package/n/1.0.0/img%2Flogo.png',
      '/package/n/1.0.0/.hidden', '/package/n/1.0.0/...', '/package/n/1.0.0/a..b', '/package/n/1.0.0/..%5C..%5Csecret', '/epr/n/n-1.0.0.zip',
      '/package/n/1.0.0/a%20b', '/package/n/1.0.0/docs/README.md%00.png',
    ]) expect(cleanPathRedirect(p), p).to.equal(undefined);
  });

  it('what is not a path, or cannot be decoded, is left to the routes', () => {
    for (const p of ['*', 'http://h/a//b', '/a//%zz', '/a/%2', '/..%']) expect(cleanPathRedirect(p), p).to.equal(undefined);
  });
});
