import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { baseImageOf, composeImage } from '../../builder/assemble.js';
import { registryConfig } from '../../builder/build.js';
import { loadDistribution, type Distribution } from '../../builder/distribution.js';
import { parseDistributionDockerfile } from '../../builder/dockerfile.js';
import { mergeLayers, type MergeResult } from '../../builder/merge.js';
import { checkInProcess, InProcessCheckError } from '../../builder/oci/check.js';
import type { OciImage } from '../../builder/oci/model.js';
import { OciStore } from '../../builder/oci/store.js';
import { materialiseLayer } from '../../builder/sources.js';
import { FIXED_MTIME, withParents, writeTar, type TarEntry } from '../../builder/tar.js';
import { PROJECT_ROOT } from '../../server/config.js';
import { BAKED_INDEX_FILE } from '../../server/packages/baked.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';

/**
 * Images made in a store as the builder makes them (merge, layer tars with
 * their baked indexes, Dockerfile.distribution's top layer and environment)
 * on a stand-in base image: one layer the check skips, and the base image's
 * ENTRYPOINT, WORKDIR and environment.
 */

const DOCKERFILE = parseDistributionDockerfile(fs.readFileSync(path.join(PROJECT_ROOT, 'Dockerfile.distribution'), 'utf8'));

async function baseImage(store: OciStore): Promise<OciImage> {
  const layer = await store.writeLayer((w) => writeTar([
    { name: 'app', type: 'directory' },
    { name: 'app/README', type: 'file', size: 4, data: Buffer.from('base') },
  ], w));
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production', 'EPR_ADDRESS=0.0.0.0:8080'],
      Entrypoint: ['node', '/app/dist/server/main.js'],
      WorkingDir: '/app',
    },
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
  };
  return store.putImage(Buffer.from(JSON.stringify(config)), [layer]);
}

/** Dockerfile.distribution's COPY: the builder's config.yml, and stand-ins for its reports. */
function topLayer(d: Distribution): TarEntry[] {
  const files = new Map<string, Buffer>();
  for (const c of DOCKERFILE.copies) {
    for (const src of c.sources) files.set(`${c.dest.slice(1)}${src}`, src === 'config.yml' ? Buffer.from(registryConfig(d)) : Buffer.from('{}\n'));
  }
  return withParents([...files.keys()]).map((name): TarEntry => {
    const data = files.get(name);
    return data ? { name, type: 'file', size: data.length, data } : { name, type: 'directory' };
  });
}

interface Sample {
  store: OciStore;
  distribution: Distribution;
  merge: MergeResult;
  base: OciImage;
  work: string;
}

async function compose(s: Sample, change: { layers?: (name: string, entries: TarEntry[]) => TarEntry[]; extra?: TarEntry[] } = {}): Promise<OciImage> {
  const layers = s.merge.contributions.map((c) => {
    const entries = change.layers ? change.layers(c.name, c.entries) : c.entries;
    return { name: c.name, entries, description: 'test', key: entries === c.entries ? c.key : undefined };
  });
  if (change.extra) layers.push({ name: 'delta', entries: change.extra, description: 'test delta', key: undefined });
  const { image } = await composeImage(s.store, {
    base: baseImageOf(s.base),
    reused: [],
    layers,
    top: topLayer(s.distribution),
    env: DOCKERFILE.env,
    topHistory: DOCKERFILE.history,
    labels: {},
    created: FIXED_MTIME.toISOString(),
  });
  return image;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  expect.fail('expected the check to fail');
}

describe('oci: the in-process check of an image (--no-engine)', function () {
  this.timeout(120_000);
  let s: Sample;
  let scratch: string;

  before(async () => {
    const work = tmpDir('oci-check-');
    const distribution = loadDistribution('snapshot');
    const layers = await Promise.all(distribution.layers.map((l) => materialiseLayer(l, { work })));
    const merge = await mergeLayers(distribution.name, layers);
    const store = OciStore.open(path.join(work, 'store'));
    s = { store, distribution, merge, base: await baseImage(store), work };
  });
  beforeEach(() => { scratch = tmpDir('oci-check-tmp-'); });
  afterEach(() => {
    // the unpacked tree is gone, whatever the outcome
    expect(fs.readdirSync(scratch)).to.deep.equal([]);
  });
  after(cleanupTmp);

  const expected = () => ({ versions: s.merge.served.length, paths: s.distribution.layers.length });

  it('passes for the image the builder makes: every merged version served from the baked indexes', async () => {
    const image = await compose(s);
    const r = await checkInProcess(s.store, image, { skipLayers: 1, expect: expected(), tmpDir: scratch });
    expect(r).to.include({ kind: 'in-process', versions: s.merge.served.length });
    expect(r.versions).to.be.greaterThan(10);
    expect(r.millis).to.be.a('number');
  });

  it('fails, naming the package path, when a layer lacks its baked index', async () => {
    const image = await compose(s, { layers: (name, entries) => (name === 'snapshot' ? entries.filter((e) => !e.name.endsWith(BAKED_INDEX_FILE)) : entries) });
    const err = await failure(checkInProcess(s.store, image, { skipLayers: 1, expect: expected(), tmpDir: scratch }));
    expect(err).to.be.instanceOf(InProcessCheckError);
    expect(err.message).to.equal('the image\'s server scanned /packages/snapshot instead of reading its baked index (no baked index)');
  });

  it('fails when a later layer removes a package under the baked index (whiteouts are applied)', async () => {
    const victim = s.merge.contributions.find((c) => c.name === 'staging')!.packages[0];
    const gone = `packages/staging/${victim.path}`;
    const slash = gone.lastIndexOf('/');
    const image = await compose(s, { extra: [{ name: `${gone.slice(0, slash)}/.wh.${gone.slice(slash + 1)}`, type: 'file', size: 0, data: Buffer.alloc(0) }] });
    const err = await failure(checkInProcess(s.store, image, { skipLayers: 1, expect: expected(), tmpDir: scratch }));
    expect(err.message).to.match(/^the image's server scanned \/packages\/staging instead of reading its baked index \(stale baked index: /);
  });

  it('fails when the image serves another number of versions than the build merged', async () => {
    const image = await compose(s);
    const want = expected();
    const err = await failure(checkInProcess(s.store, image, { skipLayers: 1, expect: { ...want, versions: want.versions + 1 }, tmpDir: scratch }));
    expect(err.message).to.equal(`the image serves ${want.versions} package versions, the build merged ${want.versions + 1}`);
  });

  it('fails when a layer blob is not the one the image names', async () => {
    const image = await compose(s);
    const broken = { ...image, layers: image.layers.map((l, i) => (i === 2 ? { ...l, diffId: `sha256:${'0'.repeat(64)}` } : l)) };
    const err = await failure(checkInProcess(s.store, broken, { skipLayers: 1, expect: expected(), tmpDir: scratch }));
    expect(err.message).to.match(/^the image's layers cannot be unpacked: layer 3 \(\w{12}\): the uncompressed tar has digest sha256:\w+, the image config names sha256:0{64}$/);
  });

  it('fails when the config the image names is not in its layers', async () => {
    const image = await compose(s);
    const cfg = JSON.parse(image.config.toString('utf8')) as { config: { Env: string[] } };
    cfg.config.Env = cfg.config.Env.map((e) => (e.startsWith('EPR_CONFIG=') ? 'EPR_CONFIG=/elsewhere/config.yml' : e));
    const moved = { ...image, config: Buffer.from(JSON.stringify(cfg)) };
    const err = await failure(checkInProcess(s.store, moved, { skipLayers: 1, expect: expected(), tmpDir: scratch }));
    expect(err.message).to.equal('the image\'s config /elsewhere/config.yml is not in its layers above the base');
  });
});
