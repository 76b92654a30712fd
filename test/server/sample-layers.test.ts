/**
 * The bundled sample layers (distributions/layers/{production,staging,snapshot}):
 * what `npm start` serves without a config.yml. Skipped when they are absent.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { BUNDLED_LAYERS } from '../../server/config.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';
import { get, getJson, runServer, startRegistry, type TestRegistry } from '../helpers/server.js';
import { readZip } from '../helpers/zip.js';

type Entry = { name: string; version: string; title: string; release: string };
type Image = { src: string; path: string };
type Info = Entry & { download: string; icons?: Image[]; screenshots?: Image[]; format_version: string; policy_templates?: Array<{ icons?: Image[] }> };

/** A GET as Kibana makes it: registry URL + the path, redirects followed. */
async function kibanaGet(base: string, p: string): Promise<{ status: number; hops: number; body: Buffer }> {
  let r = await get(base, p);
  let hops = 0;
  while (r.status === 301 && hops < 5) { r = await get(base, String(r.headers.location)); hops++; }
  return { status: r.status, hops, body: r.body };
}

describe('server: the bundled sample layers', function () {
  this.timeout(20000);
  let reg: TestRegistry | undefined;

  before(async function () {
    if (!BUNDLED_LAYERS.every((l) => fs.existsSync(l))) this.skip();
    reg = await startRegistry(BUNDLED_LAYERS);
  });
  after(async () => {
    await reg?.close();
    cleanupTmp();
  });

  it('load without problems', () => {
    expect(reg!.problems).to.deep.equal([]);
    expect(reg!.loaded.index.size).to.be.greaterThan(0);
  });

  it('`--dry-run` without a config.yml checks them and exits 0', async () => {
    const r = await runServer(['--dry-run'], { cwd: tmpDir() });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^dry run: \d+ package versions of \d+ packages are valid \(3 package paths\)\n$/);
  });

  it('host_metrics 1.0.0 is in production and staging: the production copy wins', async function () {
    const info = await getJson<Entry>(reg!.url, '/package/host_metrics/1.0.0/');
    expect(info.title).to.equal('Host Metrics');
    const readme = await get(reg!.url, '/package/host_metrics/1.0.0/docs/README.md');
    expect(readme.text).to.not.match(/staging copy/i);
  });

  it('the zip package is served as it is, with its signature', async () => {
    const zip = path.join(BUNDLED_LAYERS[0], 'apache_httpd-1.3.0.zip');
    const r = await get(reg!.url, '/epr/apache_httpd/apache_httpd-1.3.0.zip');
    expect(r.status).to.equal(200);
    expect(r.body.equals(fs.readFileSync(zip))).to.equal(true);
    const sig = await get(reg!.url, '/epr/apache_httpd/apache_httpd-1.3.0.zip.sig');
    expect(sig.body.equals(fs.readFileSync(`${zip}.sig`))).to.equal(true);
  });

  it('pre-releases and experimental packages only with prerelease=true', async () => {
    const stable = await getJson<Entry[]>(reg!.url, '/search');
    const pre = await getJson<Entry[]>(reg!.url, '/search?prerelease=true');
    expect(stable.map((e) => e.name)).to.not.include('otel_gateway');
    expect(pre.map((e) => e.name)).to.include('otel_gateway');
    for (const e of stable) expect(e.version, e.name).to.not.include('-');
    expect(stable.find((e) => e.name === 'redis_lite')?.release).to.equal('beta');
  });

  it('a Kibana 7.x finds a package: /search?kibana.version=7.17.0 answers apache_httpd 1.1.0 (format 1.0.0)', async () => {
    const found = await getJson<Entry[]>(reg!.url, '/search?kibana.version=7.17.0');
    expect(found.map((e) => `${e.name}@${e.version}`)).to.deep.equal(['apache_httpd@1.1.0']);
    // 7.x's own find-latest query
    const latest = await getJson<Entry[]>(reg!.url, '/search?package=apache_httpd&internal=true&experimental=true&kibana.version=7.17.0');
    expect(latest.map((e) => e.version)).to.deep.equal(['1.1.0']);
    // a Kibana 8.8+ still gets the newest
    expect((await getJson<Entry[]>(reg!.url, '/search?package=apache_httpd&kibana.version=8.11.0'))[0].version).to.equal('1.4.0');
  });

  it('the 7.x install path: package info, the zip with one top folder, the icon as its src is written', async () => {
    const info = await getJson<Info>(reg!.url, '/package/apache_httpd/1.1.0/');
    expect(info.format_version).to.equal('1.0.0');
    expect(info.download).to.equal('/epr/apache_httpd/apache_httpd-1.1.0.zip');
    const zip = await get(reg!.url, info.download);
    expect(zip.status).to.equal(200);
    const names = (await readZip(zip.body)).map((e) => e.name);
    expect(names).to.include('apache_httpd-1.1.0/manifest.yml');
    expect(new Set(names.map((n) => n.split('/')[0]))).to.deep.equal(new Set(['apache_httpd-1.1.0']));
    // src `/img//apache_httpd-logo.svg`: Kibana asks for it as written and follows EPR's 301
    expect(info.icons![0]).to.deep.include({ src: '/img//apache_httpd-logo.svg', path: '/package/apache_httpd/1.1.0/img/apache_httpd-logo.svg' });
    const icon = await kibanaGet(reg!.url, `/package/apache_httpd/1.1.0${info.icons![0].src}`);
    expect([icon.status, icon.hops]).to.deep.equal([200, 1]);
  });

  it('every icon and screenshot can be fetched by its path, and by its src as Kibana asks for it', async () => {
    for (const e of await getJson<Entry[]>(reg!.url, '/search?all=true&prerelease=true')) {
      const info = await getJson<Info>(reg!.url, `/package/${e.name}/${e.version}/`);
      const images = [...(info.icons ?? []), ...(info.screenshots ?? []), ...(info.policy_templates ?? []).flatMap((t) => t.icons ?? [])];
      for (const img of images) {
        expect((await get(reg!.url, img.path)).status, img.path).to.equal(200);
        expect((await kibanaGet(reg!.url, `/package/${e.name}/${e.version}${img.src}`)).status, img.src).to.equal(200);
      }
    }
  });

  it('every package info and every asset it lists can be fetched', async () => {
    for (const e of await getJson<Entry[]>(reg!.url, '/search?all=true&prerelease=true')) {
      const info = await getJson<{ assets: string[] }>(reg!.url, `/package/${e.name}/${e.version}/`);
      for (const a of info.assets) expect((await get(reg!.url, a)).status, a).to.equal(200);
    }
  });
});
