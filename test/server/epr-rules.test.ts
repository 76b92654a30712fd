/**
 * Three of EPR's rules on a real server (../shared/docs/epr-api.md, "Three rules
 * of EPR's worth stating exactly"): the 301 for unclean request paths, the
 * policy-template readme, and (in package info) ingestion_method.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { cleanupTmp, PNG_1x1, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';
import { rawRequest, startRegistry, type RawResponse, type TestRegistry } from '../helpers/server.js';

const SECRET = 'TOP-SECRET-CONTENT';

/** Follows redirects as Kibana's fetch does (Location against the same origin), returning every answer. */
async function follow(base: string, rawPath: string, method = 'GET'): Promise<RawResponse[]> {
  const chain: RawResponse[] = [];
  let p = rawPath;
  for (let i = 0; i < 5; i++) {
    const r = await rawRequest(base, p, { method });
    chain.push(r);
    if (r.status !== 301) return chain;
    p = String(r.headers.location);
  }
  throw new Error(`more than 5 redirects from ${rawPath}`);
}

function expectBare301(r: RawResponse, location: string, method = 'GET'): void {
  expect(r.status, r.text).to.equal(301);
  expect(r.headers.location).to.equal(location);
  expect(r.body.length).to.equal(0);
  // sent before any route is matched: no CORS, no caching, no content type
  for (const h of ['access-control-allow-origin', 'cache-control', 'content-type', 'etag', 'last-modified']) expect(r.headers, h).to.not.have.property(h);
  if (method === 'GET') expect(r.headers['content-length']).to.equal('0');
  else expect(r.headers).to.not.have.property('content-length');
}

describe('server: EPR\'s exact rules on a real port', function () {
  this.timeout(20000);
  let reg: TestRegistry;
  let base: string;
  let root: string;

  before(async () => {
    root = tmpDir();
    fs.writeFileSync(path.join(root, 'secret.txt'), SECRET);
    const pkgs = path.join(root, 'pkgs');
    writeDirPackage(pkgs, {
      name: 'nginx', version: '1.2.0',
      manifest: {
        format_version: '1.0.0',
        icons: [{ src: '/img//logo.png', type: 'image/png' }],
        screenshots: [{ src: '/img/./shot.png', title: 'shot' }],
        policy_templates: [
          { name: 'nginx', title: 'Nginx', description: 'logs and metrics', inputs: [{ type: 'logfile' }, { type: 'nginx/metrics' }, { type: 'prometheus/metrics' }, { type: 'jolokia/metrics' }, { type: 'ceph/metrics' }] },
          { name: 'other', title: 'Other', description: 'no readme of its own' },
        ],
      },
      files: { 'img/logo.png': PNG_1x1, 'img/shot.png': PNG_1x1, 'docs/nginx.md': '# The nginx policy template\n' },
      dataStreams: {
        access: { title: 'Access', type: 'logs', streams: [{ input: 'logfile', title: 'a' }, { input: 'log', title: 'b' }] },
        jmx: { title: 'JMX', type: 'metrics', streams: [{ input: 'jolokia/metrics', title: 'j' }, { input: 'ceph/metrics', title: 'c' }] },
      },
    });
    await writeZipPackage(pkgs, { name: 'zipped', version: '1.0.0', manifest: { policy_templates: [{ name: 'z', title: 'Z', description: 'z' }] }, files: { 'docs/z.md': '# z\n', 'img/a.png': PNG_1x1 } });
    reg = await startRegistry([pkgs]);
    expect(reg.problems).to.deep.equal([]);
    base = reg.url;
  });
  after(async () => {
    await reg?.close();
    cleanupTmp();
  });

  describe('unclean request paths: 301 to the cleaned path', () => {
    it('the icon src as Kibana requests it (`img//logo.png`) ends, after the redirect, at the file', async () => {
      const [first, last] = await follow(base, '/package/nginx/1.2.0/img//logo.png');
      expectBare301(first, '/package/nginx/1.2.0/img/logo.png');
      expect(last.status).to.equal(200);
      expect(last.headers['content-type']).to.equal('image/png');
      expect(last.body.equals(PNG_1x1)).to.equal(true);
    });

    it('package info gives src as written and path cleaned, and both reach the file', async () => {
      const info = JSON.parse((await rawRequest(base, '/package/nginx/1.2.0/')).text);
      expect(info.icons[0]).to.include({ src: '/img//logo.png', path: '/package/nginx/1.2.0/img/logo.png' });
      expect(info.screenshots[0]).to.include({ src: '/img/./shot.png', path: '/package/nginx/1.2.0/img/shot.png' });
      for (const img of [...info.icons, ...info.screenshots]) {
        expect((await rawRequest(base, img.path)).status, img.path).to.equal(200);
        expect((await follow(base, `/package/nginx/1.2.0${img.src}`)).at(-1)!.status, img.src).to.equal(200);
      }
    });

    it('inside a zip package too', async () => {
      const chain = await follow(base, '/package/zipped/1.0.0/img/../img//a.png');
      expect(chain.map((r) => r.status)).to.deep.equal([301, 200]);
      expect(chain[0].headers.location).to.equal('/package/zipped/1.0.0/img/a.png');
    });

    it('HEAD gets the same 301, without a Content-Length (as Go answers it)', async () => {
      const [first, last] = await follow(base, '/package/nginx/1.2.0/img//logo.png', 'HEAD');
      expectBare301(first, '/package/nginx/1.2.0/img/logo.png', 'HEAD');
      expect(last.status).to.equal(200);
      expect(last.body.length).to.equal(0);
    });

    it('the query string is kept as it came', async () => {
      const r = await rawRequest(base, '//search?kibana.version=7.17.0&package=nginx&q=%2F..%2F');
      expectBare301(r, '/search?kibana.version=7.17.0&package=nginx&q=%2F..%2F');
      expectBare301(await rawRequest(base, '/search/.?'), '/search?');
      const chain = await follow(base, '/./search?package=nginx');
      expect(chain.map((x) => x.status)).to.deep.equal([301, 200]);
      expect(JSON.parse(chain[1].text).map((e: { name: string }) => e.name)).to.deep.equal(['nginx']);
    });

    it('dot and empty segments around the package info route, with or without the trailing slash', async () => {
      expectBare301(await rawRequest(base, '/package/nginx/1.2.0/./'), '/package/nginx/1.2.0/');
      expectBare301(await rawRequest(base, '/package//nginx/1.2.0/'), '/package/nginx/1.2.0/');
      expectBare301(await rawRequest(base, '/package/nginx/1.2.0//'), '/package/nginx/1.2.0/');
      expectBare301(await rawRequest(base, '/package/nginx/1.2.0/docs/..'), '/package/nginx/1.2.0');
      // .../docs/.. -> /package/nginx/1.2.0 -> its own 301 to the slashed URL -> the package info
      const chain = await follow(base, '/package/nginx/1.2.0/docs/..');
      expect(chain.map((r) => r.status)).to.deep.equal([301, 301, 200]);
      expect(JSON.parse(chain[2].text).name).to.equal('nginx');
    });

    it('unclean paths on every route, unknown ones included', async () => {
      expectBare301(await rawRequest(base, '//'), '/');
      expectBare301(await rawRequest(base, '/epr/nginx/./nginx-1.2.0.zip'), '/epr/nginx/nginx-1.2.0.zip');
      expectBare301(await rawRequest(base, '/nowhere//x'), '/nowhere/x');
      // no method check comes first: the router cleans before it matches anything
      expectBare301(await rawRequest(base, '/a//b', { method: 'POST' }), '/a/b');
    });

    const hostile: Array<[string, string]> = [
      ['/package/x/1.0.0/../../../etc/passwd', '/etc/passwd'],
      ['/package/nginx/1.2.0/../../../secret.txt', '/secret.txt'],
      ['/package/nginx/1.2.0/docs/../../../../../../secret.txt', '/secret.txt'],
      ['/package/nginx/1.2.0/%2e%2e/%2e%2e/%2e%2e/secret.txt', '/secret.txt'],
      ['/package/nginx/1.2.0/%2E%2E/%2E%2E/%2E%2E/etc/passwd', '/etc/passwd'],
      ['/package/nginx/1.2.0/..%2F..%2F..%2Fsecret.txt', '/secret.txt'],
      ['/package/nginx/1.2.0/%2e%2e%2f%2e%2e%2fsecret.txt', '/package/secret.txt'],
      ['/package/nginx/1.2.0/%2Fetc%2Fpasswd', '/package/nginx/1.2.0/etc/passwd'],
      ['/package/nginx/1.2.0//etc/passwd', '/package/nginx/1.2.0/etc/passwd'],
      ['/package/nginx/%2e%2e/%2e%2e/secret.txt', '/secret.txt'],
      ['/epr/../../secret.txt', '/secret.txt'],
      ['/epr/nginx/..%2F..%2Fsecret.txt', '/secret.txt'],
      ['//127.0.0.2/secret.txt', '/127.0.0.2/secret.txt'],
      ['/.//evil.example/', '/evil.example/'],
    ];
    for (const [p, location] of hostile) {
      it(`${p}: 301 to ${location}, and nothing outside a package after it`, async () => {
        const chain = await follow(base, p);
        expectBare301(chain[0], location);
        expect(String(chain[0].headers.location)).to.match(/^\/(?!\/)/);
        const last = chain.at(-1)!;
        expect(last.status, `${last.status} ${last.text}`).to.be.within(400, 499);
        expect(last.text).to.not.include(SECRET);
        expect(last.text).to.not.include('root:');
      });
    }

    it('the server keeps serving afterwards', async () => {
      expect((await rawRequest(base, '/package/nginx/1.2.0/docs/README.md')).status).to.equal(200);
    });
  });

  describe("a policy template's readme", () => {
    it('is /package/{n}/{v}/docs/{template}.md when the package has the file, else absent; the file is served', async () => {
      const info = JSON.parse((await rawRequest(base, '/package/nginx/1.2.0/')).text);
      expect(info.policy_templates[0].readme).to.equal('/package/nginx/1.2.0/docs/nginx.md');
      expect(info.policy_templates[1]).to.not.have.property('readme');
      const r = await rawRequest(base, info.policy_templates[0].readme);
      expect(r.status).to.equal(200);
      expect(r.text).to.equal('# The nginx policy template\n');
      const search = JSON.parse((await rawRequest(base, '/search?package=nginx')).text);
      expect(search[0].policy_templates[0]).to.not.have.property('readme');
    });

    it('in a zip package too', async () => {
      const info = JSON.parse((await rawRequest(base, '/package/zipped/1.0.0/')).text);
      expect(info.policy_templates[0].readme).to.equal('/package/zipped/1.0.0/docs/z.md');
    });

    it('a folder where the readme would be is a package error', async () => {
      const pkgs = path.join(tmpDir(), 'pkgs');
      writeDirPackage(pkgs, { name: 'bad', version: '1.0.0', manifest: { policy_templates: [{ name: 'x', title: 'X', description: 'x' }] }, files: { 'docs/x.md/inside.md': 'a folder, not a file\n' } });
      const other = await startRegistry([pkgs]);
      try {
        expect(other.problems).to.have.length(1);
        expect(other.problems[0]).to.include(path.join('bad', '1.0.0', 'docs', 'x.md'));
        expect(other.problems[0]).to.include('is a folder');
        expect(other.loaded.index.size).to.equal(0);
      } finally {
        await other.close();
      }
      const tolerant = await startRegistry([pkgs], { validate: false });
      try {
        const info = JSON.parse((await rawRequest(tolerant.url, '/package/bad/1.0.0/')).text);
        expect(info.policy_templates[0]).to.not.have.property('readme');
      } finally {
        await tolerant.close();
      }
    });
  });

  describe('ingestion_method in package info', () => {
    it('streams: from EPR\'s table; an input it lacks (log, ceph/metrics) gets no field', async () => {
      const info = JSON.parse((await rawRequest(base, '/package/nginx/1.2.0/')).text);
      const byInput = Object.fromEntries(info.data_streams.flatMap((d: { streams: Array<{ input: string; ingestion_method?: string }> }) => d.streams.map((s) => [s.input, s.ingestion_method ?? null])));
      expect(byInput).to.deep.equal({ logfile: 'File', log: null, 'jolokia/metrics': 'Jolokia', 'ceph/metrics': null });
    });
  });
});
