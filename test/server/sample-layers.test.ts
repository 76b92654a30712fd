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

type Entry = { name: string; version: string; title: string; release: string };

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

  it('every package info and every asset it lists can be fetched', async () => {
    for (const e of await getJson<Entry[]>(reg!.url, '/search?all=true&prerelease=true')) {
      const info = await getJson<{ assets: string[] }>(reg!.url, `/package/${e.name}/${e.version}/`);
      for (const a of info.assets) expect((await get(reg!.url, a)).status, a).to.equal(200);
    }
  });
});
