/**
 * Layers with each distinct file once (repeated contents as hard links)
 * against a real Docker engine: the image built from two folder layers whose
 * package versions repeat most of their files serves every answer and every
 * file byte for byte as a registry scanning the plain folders does, and the
 * repeated files in the image really are hard links.
 *
 * Containers are reached only through ports published on 127.0.0.1; every
 * image tag is in a test-only repository, removed at the end.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import { engine, type RunningContainer } from '../../builder/image.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage, type PackageSpec } from '../helpers/fixtures.js';
import { rawRequest, type TestRegistry } from '../helpers/server.js';
import { exec } from '../helpers/builder-cli.js';
import { imageBesidePlainRegistry, prepareEngine, type ImageBesidePlain } from '../helpers/image-beside-plain.js';

/** Bytes that do not repeat inside themselves (an image, say), the same for the same seed. */
function noise(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, block = 0; i < size; i += 32, block++) crypto.createHash('sha256').update(`${seed}${block}`).digest().copy(out, i);
  return out;
}

/** Versions of one package: each keeps the images, licence and most data streams of the one before, and changes its manifest, readme and one fields file. */
function versionsOf(name: string, versions: string[]): PackageSpec[] {
  const shared: Record<string, Buffer | string> = {
    [`img/${name}-logo.svg`]: `<svg xmlns="http://www.w3.org/2000/svg">${name}</svg>\n`,
    'img/overview.png': noise(`${name}-overview`, 250_000),
    'img/details.png': noise(`${name}-details`, 90_000),
    'LICENSE.txt': `Elastic License 2.0 (${name})\n`.repeat(300),
    [`kibana/dashboard/${name}-${'overview-dashboard-with-a-long-name'.repeat(2)}.json`]: JSON.stringify({ title: name, panels: noise(name, 3000).toString('base64') }),
  };
  return versions.map((version, i) => ({
    name, version, readme: `# ${name} ${version}\n\nWhat changed: ${i}\n`,
    dataStreams: { access: { title: `${name} access`, type: 'logs' }, error: { title: `${name} errors`, type: 'logs' } },
    files: {
      ...shared,
      'data_stream/access/fields/fields.yml': `- name: ${name}.access.f\n  type: keyword\n`,
      'data_stream/error/fields/fields.yml': `- name: ${name}.error.f${i}\n  type: keyword\n`,
      // a screenshot replaced half-way through the versions
      'img/screenshot.png': noise(`${name}-screenshot-${Math.floor(i / 2)}`, 120_000),
    },
  }));
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

describe('layers with hard links (Docker engine)', function () {
  this.timeout(900_000);
  const docker = engine();
  let image: ImageBesidePlain | undefined;
  let container: RunningContainer | undefined;
  let plain: TestRegistry | undefined;

  before(async () => {
    await prepareEngine(docker);
    const work = tmpDir('epr-it-links-');
    const lower = path.join(work, 'lower');
    const upper = path.join(work, 'upper');
    for (const s of versionsOf('web_links', ['1.0.0', '1.1.0', '1.2.0', '2.0.0'])) writeDirPackage(lower, s);
    for (const s of versionsOf('db_links', ['0.1.0', '0.2.0'])) writeDirPackage(lower, s);
    // the upper layer repeats contents of the lower one (never linked across layers) and of itself
    for (const s of versionsOf('web_links', ['2.1.0', '2.2.0'])) writeDirPackage(upper, s);
    await writeZipPackage(upper, { name: 'zip_links', version: '1.0.0', files: { 'img/overview.png': noise('web_links-overview', 250_000) } });
    image = await imageBesidePlainRegistry('links', [{ name: 'lower', directory: lower }, { name: 'upper', directory: upper }], docker);
    ({ container, plain } = image);
  });

  after(async () => {
    await image?.cleanup();
    cleanupTmp();
  });

  it('repeated files are hard links inside the image, within their own layer only', async () => {
    const nlink = async (p: string) => {
      const r = await exec(docker, container!.id, ['node', '-e', `console.log(require('fs').statSync(${JSON.stringify(p)}).nlink)`]);
      expect(r.code, r.out).to.equal(0);
      return Number(r.out.trim());
    };
    // four versions in the lower layer share one overview image; the two in the upper layer share another copy
    expect(await nlink('/packages/lower/web_links/1.0.0/img/overview.png')).to.equal(4);
    expect(await nlink('/packages/lower/web_links/2.0.0/img/overview.png')).to.equal(4);
    expect(await nlink('/packages/upper/web_links/2.2.0/img/overview.png')).to.equal(2);
    // a link whose target is past 100 bytes (a pax linkpath) unpacked too
    const dash = `kibana/dashboard/web_links-${'overview-dashboard-with-a-long-name'.repeat(2)}.json`;
    expect(await nlink(`/packages/lower/web_links/1.2.0/${dash}`)).to.equal(4);
    // the screenshot changes every two versions
    expect(await nlink('/packages/lower/web_links/1.1.0/img/screenshot.png')).to.equal(2);
  });

  it('every route, every file, every zip and its sha256: the same bytes as a registry scanning the plain folders', async () => {
    const both = async (p: string) => {
      const [a, b] = await Promise.all([rawRequest(container!.url, p, { timeoutMs: 30_000 }), rawRequest(plain!.url, p, { timeoutMs: 30_000 })]);
      expect(a.status, `${p} status`).to.equal(b.status);
      expect(a.headers['content-type'], `${p} content type`).to.equal(b.headers['content-type']);
      expect(a.body.equals(b.body), `${p} body`).to.equal(true);
      return a;
    };
    for (const p of ['/', '/health', '/index.json', '/search', '/search?all=true&prerelease=true', '/search?package=web_links&all=true', '/categories', '/categories?include_policy_templates=true&prerelease=true']) await both(p);

    const all = JSON.parse((await both('/search?all=true&prerelease=true')).text) as Array<{ name: string; version: string }>;
    expect(all.map((p) => `${p.name}@${p.version}`).sort()).to.deep.equal([
      'db_links@0.1.0', 'db_links@0.2.0', 'web_links@1.0.0', 'web_links@1.1.0', 'web_links@1.2.0', 'web_links@2.0.0', 'web_links@2.1.0', 'web_links@2.2.0', 'zip_links@1.0.0',
    ]);
    let files = 0;
    for (const { name, version } of all) {
      const info = JSON.parse((await both(`/package/${name}/${version}/`)).text) as { assets: string[]; download: string };
      for (const asset of info.assets) {
        await both(asset);
        files++;
      }
      const zip = await both(info.download);
      expect(sha256(zip.body)).to.equal(sha256((await rawRequest(plain!.url, info.download)).body));
      await both(`${info.download}.sig`);
    }
    expect(files).to.be.greaterThan(90);
  });
});
