/**
 * The lite distribution against a real Docker engine: builds snapshot and the
 * sample lite distribution (distributions/lite.yml) under a test-only
 * repository, runs the lite image and checks it serves exactly the selected
 * set, checks the size line, and that a pinned version missing from the
 * layers fails the build and tags nothing.
 *
 * The repository names 127.0.0.1:<free port>, where nothing listens: the
 * stage policy's look for a published image ends there, nothing else is
 * reached. Containers are reached only through ports published on 127.0.0.1.
 * Every tag and container created is removed at the end.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { engine, ensureEngine, inspectImage, removeContainer, runImage, untag, waitForHttp } from '../../builder/image.js';
import { loadDistribution } from '../../builder/distribution.js';
import { selectVersions } from '../../builder/lite.js';
import { loadPackagePath } from '../../server/packages/index.js';
import { mergeFirstWins } from '../../server/packages/precedence.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';
import { PROJECT_ROOT } from '../helpers/server.js';
import { cli, freePort, type CliResult } from '../helpers/builder-cli.js';

const DEFINITIONS = path.join(PROJECT_ROOT, 'distributions');




/** What the lite definition selects, by the shared package model and the server's own /search selection. */
async function expectedLite(): Promise<{ selected: string[]; total: number }> {
  const d = loadDistribution('lite');
  const loaded = [];
  for (const l of d.layers) {
    if (l.source.kind !== 'directory') throw new Error('the sample layers are folders');
    loaded.push((await loadPackagePath(l.source.directory, { validate: true })).packages);
  }
  const winners = mergeFirstWins(loaded).winners;
  return { selected: selectVersions(winners, d.select!, d.file).selected.map((p) => `${p.name}@${p.version}`).sort(), total: winners.length };
}

describe('lite distribution (Docker engine)', function () {
  this.timeout(900_000);
  const docker = engine();
  const containers: string[] = [];
  const createdRefs = new Set<string>();
  let repo = '';
  let built: CliResult;
  const times: string[] = [];

  before(async () => {
    await ensureEngine(docker);
    const r = spawnSync('bash', [path.join(PROJECT_ROOT, '..', 'shared', 'ci', 'node-base-image.sh')], { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`node base image: ${r.stderr}`);
    repo = `127.0.0.1:${await freePort()}/epr-lite-it/distribution`;
    // the refs this suite may create, so `after` removes them even when a build half-fails
    createdRefs.add(`${repo}:snapshot`).add(`${repo}:lite`).add(`${repo}:lite-missing`);
    const snapshot = await cli(['build', 'snapshot', '--repository', repo, '--json']);
    expect(snapshot.code, snapshot.stderr).to.equal(0);
    for (const t of (JSON.parse(snapshot.stdout) as { tags: string[] }).tags) createdRefs.add(t);
    times.push(`snapshot ${snapshot.seconds.toFixed(1)} s`);
    built = await cli(['build', 'lite', '--repository', repo]);
    expect(built.code, built.stderr + built.stdout).to.equal(0);
    times.push(`lite ${built.seconds.toFixed(1)} s`);
  });

  after(async () => {
    for (const c of containers) await removeContainer(docker, c);
    for (const ref of createdRefs) await untag(docker, ref).catch(() => undefined);
    cleanupTmp();
    process.stdout.write(`      build times: ${times.join(', ')}\n`);
  });

  it('prints the size of the lite image against the full one', async () => {
    const { selected, total } = await expectedLite();
    const line = built.stdout.split('\n').find((l) => l.startsWith('lite: '));
    expect(line, built.stdout).to.match(new RegExp(`^lite: ${selected.length} of ${total} package versions, image \\d+\\.\\d MB vs full snapshot image \\d+\\.\\d MB \\(\\d+ kB (smaller|larger)\\); package layers \\d+\\.\\d MB written for \\d+\\.\\d MB of files vs \\d+\\.\\d MB for \\d+\\.\\d MB in the full image$`));
    const [lite, full] = [await inspectImage(docker, `${repo}:lite`), await inspectImage(docker, `${repo}:snapshot`)];
    expect(lite!.Size).to.be.below(full!.Size);
    process.stdout.write(`      ${line}\n`);
  });

  it('a container of the lite image serves exactly the selected set, pinned version included', async () => {
    const { selected } = await expectedLite();
    expect(selected).to.include('nginx_lite@1.0.0');
    expect(selected).to.not.include('nginx_lite@1.1.0');
    const c = await runImage(docker, `${repo}:lite`);
    containers.push(c.id);
    await waitForHttp(`${c.url}/health`, 60_000);
    const r = await fetch(`${c.url}/search?all=true&prerelease=true`, { signal: AbortSignal.timeout(30_000) });
    expect(r.status).to.equal(200);
    const served = (await r.json() as Array<{ name: string; version: string }>).map((p) => `${p.name}@${p.version}`).sort();
    expect(served).to.deep.equal(selected);
    const pinned = await fetch(`${c.url}/package/nginx_lite/1.0.0/`, { signal: AbortSignal.timeout(30_000) });
    expect(pinned.status).to.equal(200);
    const left = await fetch(`${c.url}/package/web_overview/1.0.0/`, { signal: AbortSignal.timeout(30_000) });
    expect(left.status).to.equal(404);
  });

  it('is tagged by name only: the commit tag stays with the full image', async () => {
    const lite = await inspectImage(docker, `${repo}:lite`);
    expect(lite!.RepoTags).to.deep.equal([`${repo}:lite`]);
    expect(lite!.Config.Labels!['org.elastic.package-registry.distribution']).to.equal('lite');
  });

  it('a pinned version that is not in the layers fails the build, naming it, and tags nothing', async () => {
    const dir = tmpDir('epr-lite-it-');
    fs.copyFileSync(path.join(DEFINITIONS, 'snapshot.yml'), path.join(dir, 'snapshot.yml'));
    fs.symlinkSync(path.join(DEFINITIONS, 'layers'), path.join(dir, 'layers'));
    fs.writeFileSync(path.join(dir, 'lite-missing.yml'), fs.readFileSync(path.join(DEFINITIONS, 'lite.yml'), 'utf8')
      .replace('name: lite', 'name: lite-missing')
      .replace('- nginx_lite@1.0.0', '- nginx_lite@0.9.0'));
    const r = await cli(['build', path.join(dir, 'lite-missing.yml'), '--repository', repo]);
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stderr).to.match(/select\.packages\[3\] \(line \d+\): nginx_lite@0\.9\.0 is pinned but not in the layers of snapshot \(nginx_lite there: 1\.0\.0, 1\.1\.0, 1\.2\.0, 2\.0\.0-beta1\)/);
    expect(await inspectImage(docker, `${repo}:lite-missing`)).to.equal(undefined);
  });
});
