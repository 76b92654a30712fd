import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { cleanupTmp, PNG_1x1 } from '../helpers/fixtures.js';
import { writeCorpus, WEB_README, type Corpus } from '../helpers/corpus.js';
import { get, rawRequest, startRegistry, type RawResponse, type TestRegistry } from '../helpers/server.js';
import { readTarGz, readZip } from '../helpers/zip.js';

const CACHE = { index: 11, search: 22, categories: 33, catchAll: 44 };

function expectError(r: RawResponse, status: number, text: string): void {
  expect(r.status, r.text).to.equal(status);
  expect(r.text).to.equal(`${text}\n`);
  expect(r.headers['content-type']).to.equal('text/plain; charset=utf-8');
  const cc = String(r.headers['cache-control']);
  expect(cc).to.include('max-age=0');
  expect(cc).to.include('private');
  expect(cc).to.include('no-store');
}

describe('server: routes on a real port', function () {
  this.timeout(20000);
  let corpus: Corpus;
  let reg: TestRegistry;
  let base: string;

  before(async () => {
    corpus = await writeCorpus();
    reg = await startRegistry([corpus.zips, corpus.dirs], { cacheTime: CACHE });
    expect(reg.problems).to.deep.equal([]);
    base = reg.url;
    expect(base).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
  after(async () => {
    await reg?.close();
    cleanupTmp();
  });

  describe('/ and /index.json', () => {
    for (const p of ['/', '/index.json']) {
      it(`${p}: service name and version, cache_time.index, CORS`, async () => {
        const r = await get(base, p);
        expect(r.status).to.equal(200);
        expect(r.headers['content-type']).to.equal('application/json');
        expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.index}, public`);
        expect(r.headers['access-control-allow-origin']).to.equal('*');
        expect(JSON.parse(r.text)).to.deep.equal({ 'service.name': 'package-registry', 'service.version': '1.40.1' });
        expect(r.text).to.match(/^\{\n {2}"service\.name": "package-registry",\n {2}"service\.version": "1\.40\.1"\n\}/);
      });
    }

    it('the service name can be changed (ELASTIC_APM_SERVICE_NAME)', async () => {
      const other = await startRegistry([corpus.dirs], { serviceName: 'my-registry' });
      try {
        expect(JSON.parse((await get(other.url, '/')).text)['service.name']).to.equal('my-registry');
      } finally {
        await other.close();
      }
    });
  });

  describe('/health and /favicon.ico', () => {
    it('/health: 200 with an empty body', async () => {
      const r = await get(base, '/health');
      expect(r.status).to.equal(200);
      expect(r.body.length).to.equal(0);
    });
    it('/health?ready=true: the same', async () => {
      const r = await get(base, '/health?ready=true');
      expect(r.status).to.equal(200);
      expect(r.body.length).to.equal(0);
    });
    it('/favicon.ico: an icon, image/x-icon, cache_time.catch_all', async () => {
      const r = await get(base, '/favicon.ico');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('image/x-icon');
      expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.catchAll}, public`);
      expect(r.body.subarray(0, 4).toString('hex')).to.equal('00000100');
    });
  });

  describe('/search', () => {
    const names = async (q: string) => (JSON.parse((await get(base, `/search${q}`)).text) as Array<{ name: string; version: string }>).map((p) => `${p.name}@${p.version}`);

    it('default: the newest released version of each package, sorted by name; cache_time.search', async () => {
      const r = await get(base, '/search');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('application/json');
      expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.search}, public`);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
      expect(await names('')).to.deep.equal(['input_pkg@1.0.0', 'multi_tpl@1.0.0', 'web_pkg@1.0.0', 'zipped@1.0.0']);
    });

    it('a search entry has the EPR summary fields, unknown categories dropped, no HTML escaping', async () => {
      const r = await get(base, '/search?package=web_pkg');
      const [e] = JSON.parse(r.text) as Array<Record<string, unknown>>;
      expect(e).to.deep.equal({
        name: 'web_pkg',
        title: 'Web package',
        version: '1.0.0',
        release: 'ga',
        description: 'Web <b>logs</b> & metrics',
        type: 'integration',
        download: '/epr/web_pkg/web_pkg-1.0.0.zip',
        path: '/package/web_pkg/1.0.0',
        icons: [{ src: '/img/icon.png', path: '/package/web_pkg/1.0.0/img/icon.png', title: 'icon', size: '1x1', type: 'image/png' }],
        policy_templates: [{ name: 'web', title: 'Web', description: 'Collect web logs', data_streams: ['access'] }],
        conditions: { kibana: { version: '^7.14.0 || ^8.0.0' } },
        owner: { type: 'elastic', github: 'elastic/test' },
        categories: ['web'],
        discovery: { fields: [{ name: 'process.pid' }], datasets: [{ name: 'web_pkg.access' }] },
        data_streams: [{ type: 'logs', dataset: 'web_pkg.access', title: 'Access logs' }],
      });
      expect(r.text).to.include('"description": "Web <b>logs</b> & metrics"');
    });

    it('a zip package with a signature has signature_path', async () => {
      const [e] = JSON.parse((await get(base, '/search?package=zipped')).text) as Array<Record<string, unknown>>;
      expect(e.signature_path).to.equal('/epr/zipped/zipped-1.0.0.zip.sig');
      const [w] = JSON.parse((await get(base, '/search?package=web_pkg')).text) as Array<Record<string, unknown>>;
      expect(w).to.not.have.property('signature_path');
    });

    it('package=', async () => expect(await names('?package=zipped')).to.deep.equal(['zipped@1.0.0']));
    it('package= with an unknown name: []', async () => {
      const r = await get(base, '/search?package=nope');
      expect(r.status).to.equal(200);
      expect(r.text.trim()).to.equal('[]');
    });
    it('type=input', async () => expect(await names('?type=input')).to.deep.equal(['input_pkg@1.0.0']));
    it('type= unknown', async () => expect(await names('?type=nope')).to.deep.equal([]));
    it('all=true: every released version, ascending within a name', async () => {
      expect(await names('?all=true')).to.deep.equal(['input_pkg@1.0.0', 'multi_tpl@1.0.0', 'web_pkg@0.9.0', 'web_pkg@1.0.0', 'zipped@0.5.0', 'zipped@1.0.0']);
    });
    it('prerelease=true: experimental packages and pre-release versions', async () => {
      expect(await names('?prerelease=true')).to.deep.equal(['exp_pkg@1.0.0', 'input_pkg@1.0.0', 'multi_tpl@1.0.0', 'web_pkg@2.0.0-beta.1', 'zipped@1.0.0']);
    });
    it('prerelease=1 with all=T', async () => {
      expect(await names('?prerelease=1&all=T')).to.include.members(['web_pkg@0.9.0', 'web_pkg@1.0.0', 'web_pkg@2.0.0-beta.1', 'exp_pkg@1.0.0']);
    });
    it('kibana.version (lenient: 7, 7.15, v8.1.0)', async () => {
      expect(await names('?kibana.version=7.15')).to.include('web_pkg@1.0.0');
      expect(await names('?kibana.version=v8.1.0')).to.include('web_pkg@1.0.0');
      expect(await names('?kibana.version=7')).to.not.include('web_pkg@1.0.0');
      // the newest version that fits: 0.9.0 has no Kibana condition
      expect(await names('?kibana.version=7.13.0')).to.deep.equal(['input_pkg@1.0.0', 'multi_tpl@1.0.0', 'web_pkg@0.9.0', 'zipped@1.0.0']);
    });
    it('agent.version', async () => {
      expect(await names('?type=input&agent.version=8.6.0')).to.deep.equal(['input_pkg@1.0.0']);
      expect(await names('?type=input&agent.version=8.4.0')).to.deep.equal([]);
    });
    it('capabilities', async () => {
      expect(await names('?type=input&capabilities=observability,security')).to.deep.equal(['input_pkg@1.0.0']);
      expect(await names('?type=input&capabilities=observability')).to.deep.equal([]);
      expect(await names('?capabilities=observability')).to.deep.equal(['multi_tpl@1.0.0', 'web_pkg@1.0.0', 'zipped@1.0.0']);
      expect(await names('?capabilities=security')).to.deep.equal(await names(''));
    });
    it('spec.min and spec.max', async () => {
      expect(await names('?spec.min=3.1')).to.deep.equal(['multi_tpl@1.0.0']);
      expect(await names('?spec.max=3.0')).to.deep.equal(['input_pkg@1.0.0', 'web_pkg@1.0.0', 'zipped@1.0.0']);
      expect(await names('?type=input&spec.max=2.3')).to.deep.equal(['input_pkg@1.0.0']);
      expect(await names('?type=input&spec.max=2.2')).to.deep.equal([]);
    });
    it('discovery=fields and discovery=datasets (repeatable)', async () => {
      expect(await names('?discovery=fields:process.pid,host.name')).to.deep.equal(['web_pkg@1.0.0']);
      expect(await names('?discovery=fields:host.name')).to.deep.equal([]);
      expect(await names('?discovery=datasets:web_pkg.access,x')).to.deep.equal(['web_pkg@1.0.0']);
      expect(await names('?discovery=fields:process.pid&discovery=datasets:nope')).to.deep.equal([]);
    });
    it('category, with a parent matching its subcategories', async () => {
      expect(await names('?category=web')).to.deep.equal(['web_pkg@1.0.0']);
      expect(await names('?category=observability')).to.deep.equal(['web_pkg@1.0.0']);
      expect(await names('?category=network')).to.deep.equal(['zipped@1.0.0']);
    });
    it('category applied after the newest version is chosen', async () => {
      expect(await names('?category=web&prerelease=true')).to.deep.equal(['web_pkg@2.0.0-beta.1']);
    });
    it('category matching a policy template only returns that template', async () => {
      const r = JSON.parse((await get(base, '/search?category=aws')).text) as Array<{ name: string; policy_templates: Array<{ name: string }> }>;
      expect(r.map((p) => p.name)).to.deep.equal(['multi_tpl']);
      expect(r[0].policy_templates.map((t) => t.name)).to.deep.equal(['aws_tpl']);
      const full = JSON.parse((await get(base, '/search?category=cloud')).text) as Array<{ policy_templates: Array<{ name: string }> }>;
      expect(full[0].policy_templates.map((t) => t.name)).to.deep.equal(['aws_tpl', 'sec_tpl']);
    });
    it('experimental=true (legacy): experimental packages, newest stable preferred', async () => {
      expect(await names('?experimental=true')).to.deep.equal(['exp_pkg@1.0.0', 'input_pkg@1.0.0', 'multi_tpl@1.0.0', 'web_pkg@1.0.0', 'zipped@1.0.0']);
    });
    it('internal is accepted and ignored', async () => {
      expect(await names('?internal=true')).to.deep.equal(await names(''));
    });
    it('only the first value of a repeated parameter counts', async () => {
      expect(await names('?package=zipped&package=web_pkg')).to.deep.equal(['zipped@1.0.0']);
      expect((await get(base, '/search?all=true&all=foo')).status).to.equal(200);
    });
    it('an empty value is ignored', async () => {
      expect(await names('?package=&type=&kibana.version=&all=')).to.deep.equal(await names(''));
    });
    it('unknown parameters are ignored by default', async () => {
      expect(await names('?x=1')).to.deep.equal(await names(''));
    });
    it('bad values: 400 with the exact texts', async () => {
      const cases: Array<[string, string]> = [
        ['all=foo', "invalid 'all' query param: 'foo'"],
        ['prerelease=yes', "invalid 'prerelease' query param: 'yes'"],
        ['experimental=2', "invalid 'experimental' query param: '2'"],
        ['kibana.version=foo', "invalid Kibana version 'foo': Invalid Semantic Version"],
        ['agent.version=bar', "invalid agent version 'bar': Invalid Semantic Version"],
        ['spec.max=2.10.1', "invalid 'spec.max' version: invalid version '2.10.1': it should be <major.version>"],
        ['spec.min=2', "invalid 'spec.min' version: invalid version '2': it should be <major.version>"],
        ['discovery=bar', `invalid 'discovery' query param: 'bar': could not parse filter "bar"`],
        ['discovery=bar:x', `invalid 'discovery' query param: 'bar:x': unknown discovery filter "bar"`],
      ];
      for (const [qs, text] of cases) expectError(await get(base, `/search?${qs}`), 400, text);
    });
  });

  describe('/categories', () => {
    type Cat = { id: string; title: string; count: number; parent_id?: string; parent_title?: string };
    const cats = async (q = '') => JSON.parse((await get(base, `/categories${q}`)).text) as Cat[];

    it('counts the newest released version of each package, sorted by id, with titles and parents; cache_time.categories', async () => {
      const r = await get(base, '/categories');
      expect(r.status).to.equal(200);
      expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.categories}, public`);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
      expect(await cats()).to.deep.equal([
        { id: 'cloud', title: 'Cloud', count: 1 },
        { id: 'custom', title: 'Custom', count: 1 },
        { id: 'network', title: 'Network', count: 1 },
        { id: 'web', title: 'Web Server', count: 1, parent_id: 'observability', parent_title: 'Observability' },
      ]);
    });

    it('prerelease=true counts the pre-release and experimental versions', async () => {
      expect((await cats('?prerelease=true')).map((c) => `${c.id}:${c.count}`)).to.deep.equal(['cloud:1', 'custom:1', 'network:1', 'security:1', 'web:1']);
    });

    it('include_policy_templates=true adds the template categories', async () => {
      expect((await cats('?include_policy_templates=true')).map((c) => `${c.id}:${c.count}`)).to.deep.equal(['aws:2', 'cloud:3', 'custom:1', 'network:1', 'security:2', 'web:1']);
      const aws = (await cats('?include_policy_templates=true')).find((c) => c.id === 'aws')!;
      expect(aws).to.deep.equal({ id: 'aws', title: 'AWS', count: 2 });
    });

    it('kibana.version, agent.version, capabilities and spec filters apply', async () => {
      expect((await cats('?agent.version=8.4.0')).map((c) => c.id)).to.deep.equal(['cloud', 'network', 'web']);
      expect((await cats('?capabilities=observability')).map((c) => c.id)).to.deep.equal(['cloud', 'network', 'web']);
      expect((await cats('?prerelease=true&agent.version=8.4.0')).map((c) => c.id)).to.not.include('custom');
      expect((await cats('?spec.min=3.1')).map((c) => c.id)).to.deep.equal(['cloud']);
      expect((await cats('?discovery=fields:process.pid')).map((c) => c.id)).to.deep.equal(['web']);
    });

    it('experimental=true (legacy) counts experimental packages too', async () => {
      expect((await cats('?experimental=true')).map((c) => c.id)).to.include('security');
      expect((await cats()).map((c) => c.id)).to.not.include('security');
    });

    it('bad values are 400s', async () => {
      expectError(await get(base, '/categories?include_policy_templates=maybe'), 400, "invalid 'include_policy_templates' query param: 'maybe'");
      expectError(await get(base, '/categories?kibana.version=foo'), 400, "invalid Kibana version 'foo': Invalid Semantic Version");
    });
  });

  describe('/package/{name}/{version}/', () => {
    it('package info JSON, cache_time.index, CORS', async () => {
      const r = await get(base, '/package/web_pkg/1.0.0/');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('application/json');
      expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.index}, public`);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
      const info = JSON.parse(r.text) as Record<string, unknown>;
      expect(info.name).to.equal('web_pkg');
      expect(info.version).to.equal('1.0.0');
      expect(info.format_version).to.equal('3.0.0');
      expect(info.readme).to.equal('/package/web_pkg/1.0.0/docs/README.md');
      expect(info.license).to.equal('basic');
      expect(info.download).to.equal('/epr/web_pkg/web_pkg-1.0.0.zip');
      expect(info.assets).to.deep.equal([
        '/package/web_pkg/1.0.0/LICENSE.txt',
        '/package/web_pkg/1.0.0/changelog.yml',
        '/package/web_pkg/1.0.0/manifest.yml',
        '/package/web_pkg/1.0.0/docs/README.md',
        '/package/web_pkg/1.0.0/docs/extra file.md',
        '/package/web_pkg/1.0.0/img/icon.png',
        '/package/web_pkg/1.0.0/data_stream/access/manifest.yml',
        '/package/web_pkg/1.0.0/data_stream/access/fields/fields.yml',
      ]);
      const [tpl] = info.policy_templates as Array<Record<string, unknown>>;
      expect(tpl.multiple).to.equal(true);
      expect(tpl.inputs).to.deep.equal([{ type: 'logfile', title: 'Logs', description: 'Logs' }]);
      const [ds] = info.data_streams as Array<Record<string, unknown>>;
      expect(ds).to.include({ type: 'logs', dataset: 'web_pkg.access', title: 'Access logs', release: 'ga', package: 'web_pkg', path: 'access' });
    });

    it('a zip package has its info too (release beta for 0.x)', async () => {
      const info = JSON.parse((await get(base, '/package/zipped/0.5.0/')).text) as Record<string, unknown>;
      expect(info.release).to.equal('beta');
      expect(info.signature_path).to.equal('/epr/zipped/zipped-0.5.0.zip.sig');
    });

    it('without the trailing slash: 301 to the slashed URL (query kept)', async () => {
      const r = await get(base, '/package/web_pkg/1.0.0');
      expect(r.status).to.equal(301);
      expect(r.headers.location).to.equal('/package/web_pkg/1.0.0/');
      const q = await get(base, '/package/web_pkg/1.0.0?x=1');
      expect(q.status).to.equal(301);
      expect(q.headers.location).to.equal('/package/web_pkg/1.0.0/?x=1');
    });

    it('the redirect cannot be used to inject headers', async () => {
      const r = await rawRequest(base, '/package/web_pkg/%0d%0aSet-Cookie:%20x=1');
      expect(r.status).to.equal(301);
      expect(r.headers['set-cookie']).to.equal(undefined);
      expect(r.headers.location).to.equal('/package/web_pkg/%0d%0aSet-Cookie:%20x=1/');
    });

    it('an unknown version or package: 404 package revision not found', async () => {
      expectError(await get(base, '/package/web_pkg/9.9.9/'), 404, 'package revision not found');
      expectError(await get(base, '/package/nope/1.0.0/'), 404, 'package revision not found');
      expectError(await get(base, '/package/nope/1.0.0/docs/README.md'), 404, 'package revision not found');
    });

    it('an invalid version: 400 invalid package version', async () => {
      for (const v of ['1.0', 'latest', 'v1.0.0', '1.0.0.0', '01.0.0']) expectError(await get(base, `/package/web_pkg/${v}/`), 400, 'invalid package version');
    });
  });

  describe('package files', () => {
    it('docs/README.md: text/markdown; charset=utf-8, Last-Modified, cache_time.catch_all, CORS', async () => {
      const r = await get(base, '/package/web_pkg/1.0.0/docs/README.md');
      expect(r.status).to.equal(200);
      expect(r.text).to.equal(WEB_README);
      expect(r.headers['content-type']).to.equal('text/markdown; charset=utf-8');
      expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.catchAll}, public`);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
      expect(r.headers['accept-ranges']).to.equal('bytes');
      const mtime = fs.statSync(path.join(corpus.webDir, 'docs', 'README.md')).mtime;
      expect(r.headers['last-modified']).to.equal(mtime.toUTCString());
    });

    it('manifest.yml: text/yaml; charset=UTF-8', async () => {
      const r = await get(base, '/package/web_pkg/1.0.0/manifest.yml');
      expect(r.headers['content-type']).to.equal('text/yaml; charset=UTF-8');
      expect(r.text).to.equal(fs.readFileSync(path.join(corpus.webDir, 'manifest.yml'), 'utf8'));
    });

    it('img/icon.png: image/png, the exact bytes', async () => {
      const r = await get(base, '/package/web_pkg/1.0.0/img/icon.png');
      expect(r.headers['content-type']).to.equal('image/png');
      expect(r.body.equals(PNG_1x1)).to.equal(true);
      expect(Number(r.headers['content-length'])).to.equal(PNG_1x1.length);
    });

    it('a file name with a space (percent-encoded)', async () => {
      const r = await get(base, '/package/web_pkg/1.0.0/docs/extra%20file.md');
      expect(r.status).to.equal(200);
      expect(r.text).to.equal('spaces in the name\n');
    });

    it('a file inside a zip package (image/svg+xml, application/json)', async () => {
      const svg = await get(base, '/package/zipped/1.0.0/img/logo.svg');
      expect(svg.status).to.equal(200);
      expect(svg.headers['content-type']).to.equal('image/svg+xml');
      expect(svg.text).to.equal('<svg xmlns="http://www.w3.org/2000/svg"/>\n');
      const json = await get(base, '/package/zipped/1.0.0/kibana/dashboard/d.json');
      expect(json.headers['content-type']).to.equal('application/json');
      expect(json.text).to.equal('{"a":1}\n');
    });

    it('Range: 206 with Content-Range', async () => {
      const full = fs.readFileSync(path.join(corpus.webDir, 'LICENSE.txt'));
      const r = await get(base, '/package/web_pkg/1.0.0/LICENSE.txt', { Range: 'bytes=15-29' });
      expect(r.status).to.equal(206);
      expect(r.headers['content-range']).to.equal(`bytes 15-29/${full.length}`);
      expect(Number(r.headers['content-length'])).to.equal(15);
      expect(r.body.equals(full.subarray(15, 30))).to.equal(true);
      const suffix = await get(base, '/package/web_pkg/1.0.0/LICENSE.txt', { Range: 'bytes=-10' });
      expect(suffix.status).to.equal(206);
      expect(suffix.body.equals(full.subarray(full.length - 10))).to.equal(true);
    });

    it('Range inside a zip package entry', async () => {
      const r = await get(base, '/package/zipped/1.0.0/kibana/dashboard/d.json', { Range: 'bytes=1-3' });
      expect(r.status).to.equal(206);
      expect(r.text).to.equal('"a"');
      expect(r.headers['content-range']).to.equal('bytes 1-3/8');
    });

    it('an unsatisfiable range: 416 with bytes */size', async () => {
      const r = await get(base, '/package/web_pkg/1.0.0/docs/README.md', { Range: 'bytes=100000-' });
      expect(r.status).to.equal(416);
      expect(r.headers['content-range']).to.equal(`bytes */${Buffer.byteLength(WEB_README)}`);
    });

    it('If-Modified-Since at or after Last-Modified: 304 without a body; before: 200', async () => {
      const first = await get(base, '/package/web_pkg/1.0.0/docs/README.md');
      const lm = String(first.headers['last-modified']);
      const r = await get(base, '/package/web_pkg/1.0.0/docs/README.md', { 'If-Modified-Since': lm });
      expect(r.status).to.equal(304);
      expect(r.body.length).to.equal(0);
      const older = new Date(Date.parse(lm) - 60_000).toUTCString();
      expect((await get(base, '/package/web_pkg/1.0.0/docs/README.md', { 'If-Modified-Since': older })).status).to.equal(200);
    });

    it('a missing file: 404 resource not found', async () => {
      expectError(await get(base, '/package/web_pkg/1.0.0/docs/NOPE.md'), 404, 'resource not found');
      expectError(await get(base, '/package/zipped/1.0.0/nope.txt'), 404, 'resource not found');
    });

    it('a directory is not a file: 404 resource not found', async () => {
      expectError(await get(base, '/package/web_pkg/1.0.0/docs'), 404, 'resource not found');
    });
  });

  describe('/epr downloads', () => {
    it('a zip package: the file itself, application/zip, Last-Modified, ranges', async () => {
      const bytes = fs.readFileSync(corpus.zipFile);
      const r = await get(base, '/epr/zipped/zipped-1.0.0.zip');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('application/zip');
      expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.catchAll}, public`);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
      expect(r.headers['last-modified']).to.equal(fs.statSync(corpus.zipFile).mtime.toUTCString());
      expect(Number(r.headers['content-length'])).to.equal(bytes.length);
      expect(r.body.equals(bytes)).to.equal(true);
      const part = await get(base, '/epr/zipped/zipped-1.0.0.zip', { Range: 'bytes=0-3' });
      expect(part.status).to.equal(206);
      expect(part.body.equals(bytes.subarray(0, 4))).to.equal(true);
      expect(part.headers['content-range']).to.equal(`bytes 0-3/${bytes.length}`);
    });

    it('a zip found deeper in the package path is served too', async () => {
      const r = await get(base, '/epr/zipped/zipped-0.5.0.zip');
      expect(r.status).to.equal(200);
      expect(r.body.equals(fs.readFileSync(path.join(corpus.zips, 'nested', 'deeper', 'zipped-0.5.0.zip')))).to.equal(true);
    });

    it('the first path segment is not used for the lookup', async () => {
      const r = await get(base, '/epr/anything/zipped-1.0.0.zip');
      expect(r.status).to.equal(200);
      expect(r.body.equals(fs.readFileSync(corpus.zipFile))).to.equal(true);
    });

    it('the signature: .zip.sig', async () => {
      const r = await get(base, '/epr/zipped/zipped-1.0.0.zip.sig');
      expect(r.status).to.equal(200);
      expect(r.body.equals(fs.readFileSync(`${corpus.zipFile}.sig`))).to.equal(true);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
    });

    it('a directory package has no signature: 404 signature file not found', async () => {
      expectError(await get(base, '/epr/web_pkg/web_pkg-1.0.0.zip.sig'), 404, 'signature file not found');
      expectError(await get(base, '/epr/nope/nope-1.0.0.zip.sig'), 404, 'signature file not found');
    });

    it('a directory package is zipped: <name>-<version>/... in sorted walk order with directory entries, no ranges', async () => {
      const r = await get(base, '/epr/web_pkg/web_pkg-1.0.0.zip');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('application/zip');
      expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.catchAll}, public`);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
      expect(r.headers['accept-ranges']).to.equal(undefined);
      // a made zip offers no ranges: a Range header is ignored
      const ranged = await get(base, '/epr/web_pkg/web_pkg-1.0.0.zip', { Range: 'bytes=0-3' });
      expect(ranged.status).to.equal(200);
      expect(ranged.body.equals(r.body)).to.equal(true);
      const entries = await readZip(r.body, true);
      const names = entries.map((e) => e.name);
      const files = names.filter((n) => !n.endsWith('/'));
      expect(files).to.deep.equal([
        'web_pkg-1.0.0/LICENSE.txt',
        'web_pkg-1.0.0/changelog.yml',
        'web_pkg-1.0.0/data_stream/access/fields/fields.yml',
        'web_pkg-1.0.0/data_stream/access/manifest.yml',
        'web_pkg-1.0.0/docs/README.md',
        'web_pkg-1.0.0/docs/extra file.md',
        'web_pkg-1.0.0/img/icon.png',
        'web_pkg-1.0.0/manifest.yml',
      ]);
      expect(names).to.include.members(['web_pkg-1.0.0/data_stream/', 'web_pkg-1.0.0/data_stream/access/', 'web_pkg-1.0.0/data_stream/access/fields/', 'web_pkg-1.0.0/docs/', 'web_pkg-1.0.0/img/']);
      for (const n of names) expect(n.startsWith('web_pkg-1.0.0/'), n).to.equal(true);
      // every directory entry comes before the files inside it
      for (const [i, n] of names.entries()) {
        const parent = n.replace(/[^/]+\/?$/, '');
        if (parent !== 'web_pkg-1.0.0/') expect(names.indexOf(parent), `${parent} before ${n}`).to.be.within(0, i - 1);
      }
      const icon = entries.find((e) => e.name === 'web_pkg-1.0.0/img/icon.png')!;
      expect(icon.content!.equals(PNG_1x1)).to.equal(true);
      const readme = entries.find((e) => e.name === 'web_pkg-1.0.0/docs/README.md')!;
      expect(readme.content!.toString()).to.equal(WEB_README);
    });

    it('zipping on the fly is deterministic: two downloads give the same bytes', async () => {
      const a = await get(base, '/epr/web_pkg/web_pkg-1.0.0.zip');
      const b = await get(base, '/epr/web_pkg/web_pkg-1.0.0.zip');
      expect(a.body.length).to.be.greaterThan(0);
      expect(a.body.equals(b.body)).to.equal(true);
    });

    it('unknown artifact: 404 artifact not found', async () => {
      expectError(await get(base, '/epr/web_pkg/web_pkg-9.9.9.zip'), 404, 'artifact not found');
      expectError(await get(base, '/epr/nope/nope-1.0.0.zip'), 404, 'artifact not found');
    });

    it('an invalid version in the artifact name: 400 invalid package version', async () => {
      expectError(await get(base, '/epr/web_pkg/web_pkg-1.0.zip'), 400, 'invalid package version');
    });
  });

  describe('legacy API (Kibana 7.8-7.9)', () => {
    it('/package/{name}-{version}: the package info with a tar.gz download', async () => {
      const r = await get(base, '/package/web_pkg-1.0.0');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('application/json');
      expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.index}, public`);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
      const info = JSON.parse(r.text) as Record<string, unknown>;
      const current = JSON.parse((await get(base, '/package/web_pkg/1.0.0/')).text) as Record<string, unknown>;
      expect(info).to.deep.equal({ ...current, download: '/epr/web_pkg/web_pkg-1.0.0.tar.gz' });
    });

    for (const p of ['/epr/web_pkg/web_pkg-1.0.0.tar.gz', '/package/web_pkg-1.0.0.tar.gz']) {
      it(`${p}: a gzipped tar with <name>-<version>/ and every file`, async () => {
        const r = await get(base, p);
        expect(r.status).to.equal(200);
        expect(r.headers['content-type']).to.equal('application/gzip');
        expect(r.headers['cache-control']).to.equal(`max-age=${CACHE.catchAll}, public`);
        const entries = await readTarGz(r.body);
        expect(entries[0]).to.include({ name: 'web_pkg-1.0.0/', type: 'directory' });
        expect(entries.filter((e) => e.type === 'file').map((e) => e.name)).to.deep.equal([
          'web_pkg-1.0.0/LICENSE.txt',
          'web_pkg-1.0.0/changelog.yml',
          'web_pkg-1.0.0/data_stream/access/fields/fields.yml',
          'web_pkg-1.0.0/data_stream/access/manifest.yml',
          'web_pkg-1.0.0/docs/README.md',
          'web_pkg-1.0.0/docs/extra file.md',
          'web_pkg-1.0.0/img/icon.png',
          'web_pkg-1.0.0/manifest.yml',
        ]);
        expect(entries.find((e) => e.name === 'web_pkg-1.0.0/img/icon.png')!.content.equals(PNG_1x1)).to.equal(true);
        expect(entries.find((e) => e.name === 'web_pkg-1.0.0/docs/README.md')!.content.toString()).to.equal(WEB_README);
      });
    }

    it('installs the way Kibana 7.9 does: info -> download -> one top folder whose manifest matches', async () => {
      const info = JSON.parse((await get(base, '/package/web_pkg-1.0.0')).text) as { name: string; version: string; download: string };
      expect(info.download).to.match(/\.tar\.gz$/);
      const entries = await readTarGz((await get(base, info.download)).body);
      const tops = new Set(entries.map((e) => e.name.split('/')[0]));
      expect([...tops]).to.deep.equal([`${info.name}-${info.version}`]);
      const manifest = YAML.parse(entries.find((e) => e.name === `${info.name}-${info.version}/manifest.yml`)!.content.toString()) as Record<string, unknown>;
      expect([manifest.name, manifest.version]).to.deep.equal([info.name, info.version]);
      for (const e of entries.filter((x) => /^[^/]+\/data_stream\/[^/]+\/manifest\.yml$/.test(x.name))) {
        const ds = YAML.parse(e.content.toString()) as Record<string, unknown>;
        expect(ds.title, e.name).to.be.a('string');
        expect(ds.type, e.name).to.be.a('string');
      }
    });

    it('a zip package is offered as tar.gz too', async () => {
      const entries = await readTarGz((await get(base, '/epr/zipped/zipped-1.0.0.tar.gz')).body);
      expect(entries.find((e) => e.name === 'zipped-1.0.0/kibana/dashboard/d.json')!.content.toString()).to.equal('{"a":1}\n');
    });

    it('the tar.gz is deterministic', async () => {
      const a = await get(base, '/epr/web_pkg/web_pkg-1.0.0.tar.gz');
      const b = await get(base, '/package/web_pkg-1.0.0.tar.gz');
      expect(a.body.equals(b.body)).to.equal(true);
    });

    it('unknown packages and bad versions', async () => {
      expectError(await get(base, '/package/web_pkg-9.9.9'), 404, 'package revision not found');
      expectError(await get(base, '/epr/web_pkg/web_pkg-9.9.9.tar.gz'), 404, 'artifact not found');
      expectError(await get(base, '/package/web_pkg-1.0.tar.gz'), 400, 'invalid package version');
    });

    // BUG: routes/legacy.ts calls decodeURIComponent(m[2]) unguarded (as artifacts.ts does): a 500.
    it('invalid percent-encoding in a legacy URL: 4xx, not 500', async () => {
      expect((await get(base, '/package/web_pkg-1.0.%zz')).status).to.be.within(400, 499);
      expect((await get(base, '/epr/web_pkg/web_pkg-1.0.%zz.tar.gz')).status).to.be.within(400, 499);
    });
  });

  describe('ETags, conditional requests and compression', () => {
    it('JSON answers carry a strong ETag; If-None-Match with it: 304 without a body', async () => {
      for (const p of ['/', '/search', '/categories?include_policy_templates=true', '/package/web_pkg/1.0.0/']) {
        const r = await get(base, p);
        const etag = String(r.headers.etag);
        expect(etag, p).to.match(/^"[^"]+"$/);
        const again = await get(base, p, { 'If-None-Match': etag });
        expect(again.status, p).to.equal(304);
        expect(again.body.length).to.equal(0);
        expect(again.headers.etag).to.equal(etag);
        expect((await get(base, p, { 'If-None-Match': '"something-else"' })).status, p).to.equal(200);
      }
    });

    it('different queries have different answers and ETags', async () => {
      const a = await get(base, '/search?package=zipped');
      const b = await get(base, '/search?package=web_pkg');
      expect(a.text).to.not.equal(b.text);
      expect(a.headers.etag).to.not.equal(b.headers.etag);
      expect((await get(base, '/search?package=zipped', { 'If-None-Match': String(b.headers.etag) })).status).to.equal(200);
    });

    it('a repeated request gets the same bytes and headers', async () => {
      const a = await get(base, '/search?all=true');
      const b = await get(base, '/search?all=true');
      expect(b.body.equals(a.body)).to.equal(true);
      for (const h of ['content-type', 'cache-control', 'etag', 'access-control-allow-origin', 'content-length']) expect(b.headers[h], h).to.equal(a.headers[h]);
    });

    it('gzip and br when the client takes them; the decoded body is the plain one', async () => {
      const { gunzipSync, brotliDecompressSync } = await import('node:zlib');
      const plain = await get(base, '/search?all=true');
      expect(plain.headers['content-encoding']).to.equal(undefined);
      const gz = await get(base, '/search?all=true', { 'Accept-Encoding': 'gzip' });
      expect(gz.headers['content-encoding']).to.equal('gzip');
      expect(gunzipSync(gz.body).equals(plain.body)).to.equal(true);
      const br = await get(base, '/search?all=true', { 'Accept-Encoding': 'gzip, br' });
      expect(br.headers['content-encoding']).to.equal('br');
      expect(brotliDecompressSync(br.body).equals(plain.body)).to.equal(true);
      expect(String(gz.headers.vary)).to.match(/accept-encoding/i);
      const refused = await get(base, '/search?all=true', { 'Accept-Encoding': 'gzip;q=0, br;q=0' });
      expect(refused.headers['content-encoding']).to.equal(undefined);
    });

    it('errors are never cached: the same bad request is a 400 every time', async () => {
      for (let i = 0; i < 3; i++) expectError(await get(base, '/search?all=foo'), 400, "invalid 'all' query param: 'foo'");
    });

    it('a package file asked for again keeps its type, Last-Modified and range support', async () => {
      const a = await get(base, '/package/web_pkg/1.0.0/changelog.yml');
      const b = await get(base, '/package/web_pkg/1.0.0/changelog.yml');
      for (const h of ['content-type', 'last-modified', 'cache-control', 'access-control-allow-origin']) expect(b.headers[h], h).to.equal(a.headers[h]);
      expect(b.headers['content-type']).to.equal('text/yaml; charset=UTF-8');
      const part = await get(base, '/package/web_pkg/1.0.0/changelog.yml', { Range: 'bytes=2-8' });
      expect(part.status).to.equal(206);
      expect(part.text).to.equal('version');
    });
  });

  describe('errors, CORS and methods', () => {
    it('an unknown route: 404 page not found, no CORS header', async () => {
      for (const p of ['/nope', '/package', '/package/', '/epr/web_pkg/web_pkg-1.0.0.rar', '/search/x']) {
        const r = await get(base, p);
        expectError(r, 404, '404 page not found');
        expect(r.headers['access-control-allow-origin'], p).to.equal(undefined);
      }
    });

    it('matched routes send only Access-Control-Allow-Origin', async () => {
      for (const p of ['/', '/search', '/categories', '/package/web_pkg/1.0.0/', '/package/web_pkg/1.0.0/manifest.yml', '/epr/zipped/zipped-1.0.0.zip', '/health']) {
        const r = await get(base, p);
        expect(r.headers['access-control-allow-origin'], p).to.equal('*');
        expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-') && h !== 'access-control-allow-origin'), p).to.deep.equal([]);
      }
    });

    it('errors on matched routes keep the CORS header', async () => {
      const r = await get(base, '/package/web_pkg/9.9.9/');
      expect(r.status).to.equal(404);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
    });

    it('HEAD is like GET without a body', async () => {
      for (const p of ['/', '/search', '/categories', '/package/web_pkg/1.0.0/', '/package/web_pkg/1.0.0/docs/README.md', '/epr/zipped/zipped-1.0.0.zip', '/epr/web_pkg/web_pkg-1.0.0.zip', '/favicon.ico', '/nope', '/package/web_pkg/9.9.9/']) {
        const g = await get(base, p);
        const h = await rawRequest(base, p, { method: 'HEAD' });
        expect(h.status, p).to.equal(g.status);
        expect(h.body.length, p).to.equal(0);
        // a directory package's zip is made on demand: HEAD need not know its length
        const headers = ['content-type', 'cache-control', 'access-control-allow-origin', 'last-modified', ...(p === '/epr/web_pkg/web_pkg-1.0.0.zip' ? [] : ['content-length'])];
        for (const name of headers) {
          expect(h.headers[name], `${p} ${name}`).to.equal(g.headers[name]);
        }
      }
    });

    it('POST, PUT, DELETE: 405', async () => {
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const r = await rawRequest(base, '/search', { method });
        expectError(r, 405, 'method not allowed');
        expect(r.headers.allow).to.equal('GET, HEAD');
      }
    });
  });
});
