import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, parseConfigText, type RegistryConfig } from '../../server/config.js';
import { parseFlags, UsageError, type FlagValues } from '../../server/flags.js';
import { silentLogger } from '../../server/logger.js';
import { describeFailures, listen, loadRegistry, type RunningServer } from '../../server/registry.js';
import { EngineOperationError } from '../image.js';
import type { BlobSource, OciImage } from './model.js';
import { applyLayers, UnpackError } from './unpack.js';
import { removeTree } from '../remove-tree.js';

/**
 * The build-time check of an image made with no engine at hand (`--no-engine`):
 * the image's layers above its base are unpacked into a temporary folder as a
 * runtime would, and this tree's own server is started in this process over
 * them, with the flags, environment and config.yml the image would start
 * with. It must read every package path from its baked index (none scanned),
 * serve the number of package versions the build merged, answer /health, and
 * list them all in /search?all=true&prerelease=true; as the container check
 * (builder/image-check.ts) does, and as `load` verifies after loading.
 *
 * The base image's layers are not unpacked: they hold Node and the server
 * built from this same tree, which is what runs here. Only what the server
 * serves is checked, so TLS, metrics, profiling and proxy mode are not
 * started.
 */

export class InProcessCheckError extends EngineOperationError {}

export interface InProcessCheck {
  versions: number;
  millis: number;
  kind: 'in-process';
}

export interface InProcessCheckOptions {
  /** the base image's layers, bottom first: not unpacked */
  skipLayers: number;
  expect: { versions: number; paths: number };
  /** where the temporary folder goes (default: the system's) */
  tmpDir?: string;
}

interface ImageRunConfig {
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
}

const CHECK_LIMIT_MS = 120_000;
/** the search listing every version */
const SEARCH_ALL = '/search?all=true&prerelease=true';

/** KEY=value lines of an image config, as the container gets them (the builder's own environment plays no part). */
function envOf(lines: string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const l of lines) {
    const i = l.indexOf('=');
    if (i > 0) env[l.slice(0, i)] = l.slice(i + 1);
  }
  return env;
}

/** The server's own arguments: what follows its main.js in ENTRYPOINT + CMD. */
function serverArgs(run: ImageRunConfig): string[] {
  const argv = [...(run.Entrypoint ?? []), ...(run.Cmd ?? [])];
  const main = argv.findIndex((a) => /(^|\/)server\/main\.js$/.test(a));
  if (main < 0) throw new InProcessCheckError(`the image does not start the registry server (ENTRYPOINT + CMD: ${JSON.stringify(argv)})`);
  return argv.slice(main + 1);
}

export async function checkInProcess(source: BlobSource, image: OciImage, opts: InProcessCheckOptions): Promise<InProcessCheck> {
  const started = Date.now();
  const cfg = JSON.parse(image.config.toString('utf8')) as { config?: ImageRunConfig };
  const run = cfg.config ?? {};
  const { skipLayers, expect } = opts;
  if (!Number.isInteger(skipLayers) || skipLayers < 0 || skipLayers > image.layers.length) {
    throw new InProcessCheckError(`the image has ${image.layers.length} layers, cannot skip ${skipLayers} base layers`);
  }
  let flags: FlagValues;
  let explicit: Set<string>;
  try {
    ({ values: flags, explicit } = parseFlags(serverArgs(run), envOf(run.Env ?? [])));
  } catch (err) {
    if (err instanceof UsageError) throw new InProcessCheckError(`the image's server would not start: ${err.message}`);
    throw err;
  }

  const root = fs.mkdtempSync(path.join(opts.tmpDir ?? os.tmpdir(), 'epr-check-'));
  const inImage = (p: string) => `/${path.relative(root, p).split(path.sep).join('/')}`;
  let running: RunningServer | undefined;
  const timer = new AbortController();
  const limit = setTimeout(() => timer.abort(), CHECK_LIMIT_MS);
  try {
    const layers = image.layers.slice(skipLayers);
    for (const l of layers) if (!source.has(l.digest)) throw new InProcessCheckError(`layer ${l.digest} of the image is not in the builder's store`);
    try {
      await applyLayers(root, layers.map((l) => () => source.open(l.digest)), {
        layers: layers.map((l, i) => ({ digest: l.digest, diffId: l.diffId, name: `layer ${skipLayers + i + 1} (${l.digest.slice(7, 19)})` })),
      });
    } catch (err) {
      if (err instanceof UnpackError) throw new InProcessCheckError(`the image's layers cannot be unpacked: ${err.message}`);
      throw err;
    }

    const config = readConfig(root, run, String(flags.config), explicit.has('config'));
    if (config.packagePaths.length !== expect.paths) {
      throw new InProcessCheckError(`the image's config names ${config.packagePaths.length} package paths, the build has ${expect.paths}`);
    }
    const validate = !flags['disable-package-validation'];
    const loaded = await loadRegistry({
      config,
      validate,
      requireSignatures: Boolean(flags['require-package-signatures']),
      allowUnknownQueryParameters: Boolean(flags['allow-unknown-query-parameters']),
      useBakedIndex: !flags['dry-run'],
    });
    for (const p of config.packagePaths) {
      const note = loaded.notes.find((n) => n.path === path.resolve(p));
      if (!note) throw new InProcessCheckError(`the image has no package path ${inImage(p)}`);
      if (!note.baked) throw new InProcessCheckError(`the image's server scanned ${inImage(p)} instead of reading its baked index (${note.reason ?? 'no reason given'})`);
    }
    const problems = describeFailures(loaded.failures).map((p) => p.split(root).join(''));
    // as main.ts: with validation on, a package that fails to load stops the server
    if (validate && problems.length > 0) throw new InProcessCheckError(`the image's server would not start: ${problems.length} package problem(s), the first: ${problems[0]}`);
    if (loaded.index.size !== expect.versions) throw new InProcessCheckError(`the image serves ${loaded.index.size} package versions, the build merged ${expect.versions}`);

    running = await listen(loaded.ctx, '127.0.0.1:0', silentLogger);
    const health = await get(`${running.url}/health`, timer.signal);
    if (health.status !== 200) throw new InProcessCheckError(`the image's server answered /health with HTTP ${health.status}`);
    const search = await get(`${running.url}${SEARCH_ALL}`, timer.signal);
    if (search.status !== 200) throw new InProcessCheckError(`the image's server answered ${SEARCH_ALL} with HTTP ${search.status}`);
    let listed: unknown;
    try { listed = JSON.parse(search.body); } catch { listed = undefined; }
    if (!Array.isArray(listed)) throw new InProcessCheckError(`the image's server answered ${SEARCH_ALL} with something other than a JSON list`);
    if (listed.length !== expect.versions) throw new InProcessCheckError(`${SEARCH_ALL} lists ${listed.length} packages, the build merged ${expect.versions}`);
    return { versions: loaded.index.size, millis: Date.now() - started, kind: 'in-process' };
  } finally {
    clearTimeout(limit);
    // connections still open are cut: nothing else talks to this server
    await running?.close(0);
    removeTree(root);
  }
}

/**
 * The config the image starts with: its path as the container resolves it
 * (against WORKDIR), read from the unpacked tree; the package paths it
 * names, image paths, moved into the tree.
 */
function readConfig(root: string, run: ImageRunConfig, configFlag: string, explicit: boolean): RegistryConfig {
  const inImage = path.posix.resolve(run.WorkingDir || '/', configFlag);
  const file = path.join(root, inImage);
  if (!fs.existsSync(file)) {
    throw new InProcessCheckError(explicit
      ? `the image's config ${inImage} is not in its layers above the base`
      : `the image has no ${inImage}: its server would serve the bundled sample layers`);
  }
  let config: RegistryConfig;
  try {
    config = parseConfigText(fs.readFileSync(file, 'utf8'), inImage);
  } catch (err) {
    if (err instanceof ConfigError) throw new InProcessCheckError(`the image's config is invalid: ${err.message.split('\n')[0]}`);
    throw err;
  }
  return { ...config, packagePaths: config.packagePaths.map((p) => path.join(root, p)) };
}

async function get(url: string, signal: AbortSignal): Promise<{ status: number; body: string }> {
  try {
    const r = await fetch(url, { signal });
    return { status: r.status, body: await r.text() };
  } catch (err) {
    throw new InProcessCheckError(`the image's server did not answer ${new URL(url).pathname}: ${signal.aborted ? `not within ${CHECK_LIMIT_MS / 1000} s` : (err as Error).message}`);
  }
}
