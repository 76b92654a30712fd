/**
 * Zip packages kept as recipes against a real Docker engine: an image built
 * from two layers of signed zips (successive versions sharing most of their
 * entries) holds each zip as its recipe and each shared entry once per layer,
 * and serves every route, every zip (sha256) and every signature byte for
 * byte as a registry scanning the plain folders; each downloaded zip verifies
 * against its signature with gpg.
 *
 * Containers are reached only through ports published on 127.0.0.1; every
 * image tag is in a test-only repository, removed at the end.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { engine, type RunningContainer } from '../../builder/image.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';
import { rawRequest, type TestRegistry } from '../helpers/server.js';
import { exec } from '../helpers/builder-cli.js';
import { imageBesidePlainRegistry, prepareEngine, type ImageBesidePlain } from '../helpers/image-beside-plain.js';
import { sha256, zipVersions } from '../helpers/zip-recipes.js';

describe('zip packages as recipes (Docker engine)', function () {
  this.timeout(900_000);
  const docker = engine();
  let image: ImageBesidePlain | undefined;
  let container: RunningContainer | undefined;
  let plain: TestRegistry | undefined;
  let gnupg = '';
  const gpg = (args: string[]) => spawnSync('gpg', ['--batch', '--homedir', gnupg, ...args], { encoding: 'utf8' });

  before(async function () {
    if (spawnSync('gpg', ['--version']).status !== 0) this.skip();
    await prepareEngine(docker);
    const work = tmpDir('epr-it-recipes-');
    gnupg = tmpDir('epr-it-gnupg-');
    fs.chmodSync(gnupg, 0o700);
    const key = gpg(['--passphrase', '', '--quick-gen-key', 'EPR test signing key <test@example.invalid>', 'ed25519', 'sign', 'never']);
    expect(key.status, key.stderr).to.equal(0);
    const lower = path.join(work, 'lower');
    const upper = path.join(work, 'upper');
    const web = zipVersions('web_zips', ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '2.0.0']);
    for (const s of web.slice(0, 3)) await writeZipPackage(lower, s, { signature: false });
    for (const s of zipVersions('db_zips', ['0.1.0', '0.2.0'])) await writeZipPackage(path.join(lower, 'db_zips'), s, { signature: false });
    // the upper layer repeats entries of the lower one: it keeps its own copies (never shared across layers)
    for (const s of web.slice(3)) await writeZipPackage(upper, s, { signature: false });
    writeDirPackage(upper, zipVersions('folder_zips', ['1.0.0'])[0]);
    for (const dir of [lower, path.join(lower, 'db_zips'), upper]) {
      for (const z of fs.readdirSync(dir).filter((n) => n.endsWith('.zip'))) {
        const r = gpg(['--armor', '--detach-sign', '-o', path.join(dir, `${z}.sig`), path.join(dir, z)]);
        expect(r.status, r.stderr).to.equal(0);
      }
    }
    image = await imageBesidePlainRegistry('recipes', [{ name: 'lower', directory: lower }, { name: 'upper', directory: upper }], docker);
    ({ container, plain } = image);
  });

  after(async () => {
    await image?.cleanup();
    cleanupTmp();
  });

  it('the image holds each zip as its recipe and each layer its own entry store', async () => {
    const script = `
      const fs = require('fs');
      const out = {};
      for (const l of ['lower', 'upper']) {
        const root = '/packages/' + l;
        const zips = [];
        const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = d + '/' + e.name; if (e.isDirectory() && e.name !== '.zip-entries') walk(p); else if (e.name.endsWith('.zip')) zips.push(p); } };
        walk(root);
        out[l] = { zips: zips.map((z) => [z.slice(root.length + 1), fs.readFileSync(z).subarray(0, 17).toString()]), entries: fs.readdirSync(root + '/.zip-entries').length };
      }
      console.log(JSON.stringify(out));`;
    const r = await exec(docker, container!.id, ['node', '-e', script]);
    expect(r.code, r.out).to.equal(0);
    const held = JSON.parse(r.out.trim().split('\n').pop()!) as Record<string, { zips: Array<[string, string]>; entries: number }>;
    expect(held.lower.zips.map(([z]) => z).sort()).to.deep.equal(['db_zips/db_zips-0.1.0.zip', 'db_zips/db_zips-0.2.0.zip', 'web_zips-1.0.0.zip', 'web_zips-1.1.0.zip', 'web_zips-1.2.0.zip']);
    expect(held.upper.zips.map(([z]) => z).sort()).to.deep.equal(['web_zips-1.3.0.zip', 'web_zips-2.0.0.zip']);
    for (const l of ['lower', 'upper']) for (const [z, head] of held[l].zips) expect(head, z).to.equal('EPR-ZIP-RECIPE/1\n');
    // per package: the overview image and the dashboard once, a screenshot per two versions
    expect(held.lower.entries).to.be.within(4, 12);
    expect(held.upper.entries).to.be.within(2, 6);
  });

  it('every route, every file, every zip and its sha256: the same bytes as a registry scanning the plain folders; every signature verifies', async () => {
    const both = async (p: string, headers?: Record<string, string>) => {
      const [a, b] = await Promise.all([rawRequest(container!.url, p, { timeoutMs: 30_000, headers }), rawRequest(plain!.url, p, { timeoutMs: 30_000, headers })]);
      expect(a.status, `${p} status`).to.equal(b.status);
      for (const h of ['content-type', 'content-length', 'content-range', 'accept-ranges', 'cache-control']) expect(a.headers[h], `${p} ${h}`).to.equal(b.headers[h]);
      expect(a.body.equals(b.body), `${p} body`).to.equal(true);
      return a;
    };
    for (const p of ['/', '/health', '/index.json', '/search', '/search?all=true&prerelease=true', '/categories', '/categories?include_policy_templates=true&prerelease=true']) await both(p);
    const all = JSON.parse((await both('/search?all=true&prerelease=true')).text) as Array<{ name: string; version: string }>;
    expect(all.map((p) => `${p.name}@${p.version}`).sort()).to.deep.equal([
      'db_zips@0.1.0', 'db_zips@0.2.0', 'folder_zips@1.0.0', 'web_zips@1.0.0', 'web_zips@1.1.0', 'web_zips@1.2.0', 'web_zips@1.3.0', 'web_zips@2.0.0',
    ]);
    let files = 0;
    const check = tmpDir('epr-it-recipes-dl-');
    for (const { name, version } of all) {
      const info = JSON.parse((await both(`/package/${name}/${version}/`)).text) as { assets: string[]; download: string; signature_path?: string };
      for (const asset of info.assets) {
        await both(asset);
        files++;
      }
      const zip = await both(info.download);
      expect(sha256(zip.body)).to.equal(sha256((await rawRequest(plain!.url, info.download)).body));
      await both(info.download, { range: 'bytes=100-2099' });
      const [head, plainHead] = await Promise.all([container!.url, plain!.url].map((u) => rawRequest(u, info.download, { method: 'HEAD' })));
      expect(head.status).to.equal(plainHead.status);
      // (validators differ: the image's files have its fixed time; test/server/zip-recipes.test.ts compares them at equal times)
      for (const h of ['content-type', 'content-length', 'accept-ranges']) expect(head.headers[h], `HEAD ${info.download} ${h}`).to.equal(plainHead.headers[h]);
      if (name !== 'folder_zips') expect(head.headers['content-length']).to.equal(String(zip.body.length));
      if (name !== 'folder_zips') expect((await rawRequest(container!.url, info.download, { headers: { 'if-none-match': String(head.headers.etag) } })).status).to.equal(304);
      if (name === 'folder_zips') continue;
      const sig = await both(`${info.download}.sig`);
      const zf = path.join(check, `${name}-${version}.zip`);
      fs.writeFileSync(zf, zip.body);
      fs.writeFileSync(`${zf}.sig`, sig.body);
      const v = gpg(['--verify', `${zf}.sig`, zf]);
      expect(v.status, `${name} ${version}: ${v.stderr}`).to.equal(0);
      expect(v.stderr).to.contain('Good signature');
    }
    expect(files).to.be.greaterThan(50);
  });
});
