#!/usr/bin/env node
import fs from 'node:fs';
import path from 'node:path';
import { Listr, ListrLogger, type ListrTask } from 'listr2';
import { DISTRIBUTIONS_DIR, DistributionError, distributionFile, listDistributions, loadDistribution, type Distribution } from './distribution.js';
import { SourceMissingError } from './sources.js';
import { describeSaving, InvalidPackagesError, type LayerSaving } from './merge.js';
import { describeOversized } from './layer-split.js';
import {
  EngineOperationError, EngineUnreachableError, containerLogs, engine, ensureEngine, inspectImage, loadImages, removeContainer, runImage, waitForHttp, withTimeout,
} from './image.js';
import { REQUIRED_LABELS, LABEL_PREFIX, sharedTags } from './tags.js';
import {
  applyTags, baseWithoutEngine, buildDistributionImage, checkPolicy, cleanup, dropTempTag, ensureBaseImage, measureLite, newBuildState, pushTags, readLayers, saveBundle, summarise, validateAndMerge,
  MissingBaseImageError, pinSince, type BuildState, type BuildSummary,
} from './build.js';
import { OciStore } from './oci/store.js';
import { defaultCacheDir } from './package-cache.js';
import { PolicyViolationError } from './stages/policy.js';
import { describeDelta } from './delta.js';
import { describeLite } from './lite.js';
import { formatSizeDelta } from './stages/diff.js';
import { DIFF_HELP, DiffUsageError, diffCommand } from './stages/diff-cli.js';
import type { PublishedFrom } from './stages/published.js';
import { eachArg } from './args.js';
import * as ociBundle from './oci/bundle.js';
import * as ociEngine from './oci/engine.js';
import * as ociRegistry from './oci/registry.js';
import * as ociRef from './oci/reference.js';

/**
 * build:distribution and load:distribution. Errors are mapped to exit codes
 * here only: 0 ok, 1 failure (one clear line first), 2 usage.
 */

class UsageError extends Error {}

const HELP = {
  main: `Usage: node dist/builder/cli.js <command> [options]

Commands:
  build <distribution> [options]   build the image of distributions/<distribution>.yml
  build --all [options]            build every distribution in distributions/
  load <bundle.tar> [options]      load a bundle into the engine (check it, run it once) or a registry
  diff <image A> <image B>         packages added, removed, changed between two images

Run "<command> --help" for the options of a command.
`,
  build: `Usage: build <distribution | path/to/file.yml> [options]
       build --all [options]

Builds a distribution image: reads its layers (folders in place, or git refs),
validates every package, merges them first-wins (printing what is shadowed),
builds the registry base image if missing, and puts the image together in the
builder's own OCI image store: one image layer per package layer on the base
(a layer packed by an earlier build of the same content is not packed again;
a changed top layer goes as a small delta on an earlier image's when it can),
then Dockerfile.distribution. The image goes into the Docker engine (classic
layer store: only the layers it lacks; containerd image store: only the blobs
it lacks), is started once with no network to check it serves every package
from its baked indexes, and only then is tagged <repo>:<distribution>,
<repo>:<commit> and <repo>:<X.Y.Z> for each stack-version git tag on that
commit. --push sends it from the store straight to the registry.

Options:
  --all                  build every distribution in ${DISTRIBUTIONS_DIR}
  --push                 push every tag straight from the builder's store (no
                         engine involved): only the blobs the registry lacks,
                         then the manifests; also the base image, as
                         <repo>:base-<version>-<digest>. Credentials as Docker
                         clients find them (~/.docker/config.json: auths,
                         credsStore, credHelpers)
  --save <file.tar>      write one bundle of every tag built: an OCI image
                         layout and a docker archive at once (docker load on
                         either image store, ctr images import, skopeo copy
                         oci-archive:, podman load); shared layers once
  --since <ref | file>   with --save: an update bundle, without the layers the
                         site holds already: those of an earlier bundle, or
                         of an image (builder store, engine or registry)
  --no-engine            no Docker engine at all: the base image comes from
                         the builder's store, --base, or the registry next to
                         the distribution (where --push put it); the check
                         runs the image's server in-process over its layers
  --base <ref | folder>  with --no-engine: the registry base image to build on
                         (an image reference, or an OCI image layout folder)
  --insecure-registry <host[:port]>
                         reach this registry over plain HTTP (only loopback
                         registries are by default); repeatable
  --no-cache             rebuild from scratch: load and validate every package
                         again, pack every layer, rebuild the base image
  --no-delta             pack the top package layer whole, not as a delta on
                         the one of an earlier image: the image ID and digest
                         are then the same for the same input on any machine
  --cache-dir <dir>      the builder's cache: packages validated and hashed
                         (by file stamps), git trees, the image store (oci/)
                         (default $EPR_BUILDER_CACHE, else ~/.cache/epr-builder)
  --repository <repo>    image repository instead of the definition's image.repository
  --allow-overwrite      let a published version get other content (policy: flag)
  --allow-removal        let a published version go (policy: flag); needs --reason
  --reason <text>        why; recorded in the image label ${LABEL_PREFIX}.policy-reason
  --published-from <where>
                         where the last published <repo>:<distribution> is read
                         for the stage policy: auto (default: local engine, else
                         the registry; an unreadable registry means no
                         constraint), local, or registry (pull; errors fail)
  --json                 no progress; print one JSON object with the result
  -h, --help             show this help

Stage policy: before building, the new package list is compared with the one
baked into the last published image (/package-registry/packages.json). The
definition's policy decides: overwrite (same version, other content) and
removal are allow, flag (only with the flag above) or never (production: and
a new version must not be lower than the newest published one). A violation
fails the build naming each package; nothing is built, tagged or pushed.

Lite distributions: a definition with select: instead of layers keeps only
the package versions its /search queries (kibana_versions x spec ranges) and
pinned name@version entries select from the layers of select.from; --all
builds it after that one and it prints its size against the full image.

Exit codes: 0 built, 1 failed (nothing tagged), 2 usage error.
`,
  diff: DIFF_HELP,
  load: `Usage: load <bundle.tar> [--json]
       load <bundle.tar> --to-registry <host[:port][/repository]> [--insecure-registry <host>] [--json]

Loads a bundle written by build --save (full, or incremental with --since),
or any docker save tar, and prints its size against the full images.

Into the Docker engine (default; the classic layer store and the containerd
image store alike): docker load the tar, check the distribution labels of
every image in it, run each once with port 8080 published on 127.0.0.1,
check that /health and /search answer, and remove the container.

With --to-registry: push every image and tag of the bundle straight into a
registry, with no engine: <host[:port]> keeps each image's repository path,
<host[:port]/repository> puts every tag into that repository. Credentials
come from ~/.docker/config.json; blobs the registry holds are not sent again.

An incremental bundle carries every manifest and config but only the layers
the site did not hold. Before anything is loaded or pushed, the engine (by
its images' layers) or the registry (HEAD of each blob) is checked for the
layers it left out; when any is missing, each is named (image, layer digest,
the earlier bundle or image it came with) and nothing is loaded.

Options:
  --to-registry <host[/repo]>  push into this registry instead of an engine
  --insecure-registry <host>   reach this registry over plain HTTP or
                               unverified HTTPS (localhost and 127.0.0.1 need
                               no flag); may be repeated
  --json                       no progress; print one JSON object
  -h, --help                   show this help

Exit codes: 0 ok, 1 failed (or layers missing), 2 usage error.
`,
};

interface BuildArgs {
  names: string[]; all: boolean; push: boolean; save?: string; since?: string; noCache: boolean; noDelta: boolean; cacheDir?: string; json: boolean; repository?: string; help: boolean;
  allowOverwrite: boolean; allowRemoval: boolean; reason?: string; publishedFrom: PublishedFrom;
  noEngine: boolean; base?: string; insecureRegistries: string[];
}

function parseBuildArgs(argv: string[]): BuildArgs {
  const a: BuildArgs = { names: [], all: false, push: false, noCache: false, noDelta: false, json: false, help: false, allowOverwrite: false, allowRemoval: false, publishedFrom: 'auto', noEngine: false, insecureRegistries: [] };
  eachArg(argv, UsageError, (arg, value) => {
    if (arg === '--help' || arg === '-h') a.help = true;
    else if (arg === '--all') a.all = true;
    else if (arg === '--push') a.push = true;
    else if (arg === '--no-cache') a.noCache = true;
    else if (arg === '--no-delta') a.noDelta = true;
    else if (arg === '--cache-dir' || arg.startsWith('--cache-dir=')) a.cacheDir = path.resolve(value('--cache-dir'));
    else if (arg === '--json') a.json = true;
    else if (arg === '--no-engine') a.noEngine = true;
    else if (arg === '--base' || arg.startsWith('--base=')) a.base = value('--base');
    else if (arg === '--since' || arg.startsWith('--since=')) a.since = value('--since');
    else if (arg === '--insecure-registry' || arg.startsWith('--insecure-registry=')) a.insecureRegistries.push(value('--insecure-registry'));
    else if (arg === '--save' || arg.startsWith('--save=')) a.save = value('--save');
    else if (arg === '--repository' || arg.startsWith('--repository=')) a.repository = value('--repository');
    else if (arg === '--allow-overwrite') a.allowOverwrite = true;
    else if (arg === '--allow-removal') a.allowRemoval = true;
    else if (arg === '--reason' || arg.startsWith('--reason=')) a.reason = value('--reason');
    else if (arg === '--published-from' || arg.startsWith('--published-from=')) {
      const v = value('--published-from');
      if (v !== 'auto' && v !== 'local' && v !== 'registry') throw new UsageError(`--published-from is auto, local or registry, not "${v}"`);
      a.publishedFrom = v;
    } else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg} (see build --help)`);
    else a.names.push(arg);
  });
  if (a.help) return a;
  if (a.all && a.names.length > 0) throw new UsageError('give either --all or distribution names, not both');
  if (!a.all && a.names.length === 0) throw new UsageError('which distribution? (build <name> or build --all; see build --help)');
  if (a.reason !== undefined && !a.reason.trim()) throw new UsageError('--reason wants a text saying why');
  if (a.save !== undefined && !a.save.endsWith('.tar')) throw new UsageError(`--save wants a .tar file name, got "${a.save}"`);
  if (a.since !== undefined && a.save === undefined) throw new UsageError('--since goes with --save (an update bundle holds what changed since an earlier bundle or image)');
  if (a.base !== undefined && !a.noEngine) throw new UsageError('--base goes with --no-engine (with an engine, the base image is built from Dockerfile.base)');
  if (a.noEngine && !a.push && a.save === undefined) throw new UsageError('--no-engine builds into the builder\'s store only: add --push, --save <file.tar> or both to put the image somewhere');
  // checked before building: a save that cannot happen should not leave freshly moved tags behind it
  if (a.save !== undefined && !fs.existsSync(path.dirname(path.resolve(a.save)))) throw new UsageError(`--save: folder ${path.dirname(path.resolve(a.save))} does not exist`);
  return a;
}

function out(line: string): void { process.stdout.write(`${line}\n`); }

async function imageSize(docker: ReturnType<typeof engine> | undefined, id: string | undefined): Promise<number | undefined> {
  return docker && id ? (await inspectImage(docker, id))?.Size : undefined;
}

async function build(argv: string[]): Promise<number> {
  const args = parseBuildArgs(argv);
  if (args.help) { process.stdout.write(HELP.build); return 0; }
  const started = Date.now();
  const names = args.all
    ? listDistributions().map((n) => loadDistribution(n)).sort((x, y) => Number(!!x.select) - Number(!!y.select) || x.layers.length - y.layers.length || x.name.localeCompare(y.name))
    : args.names.map((n) => {
      if (!fs.existsSync(distributionFile(n))) {
        const known = listDistributions();
        throw new UsageError(`no distribution "${n}" (${distributionFile(n)} does not exist; known: ${known.join(', ') || 'none'})`);
      }
      return loadDistribution(n);
    });
  let docker: ReturnType<typeof engine> | undefined;
  if (!args.noEngine) {
    docker = engine();
    await ensureEngine(docker);
  }

  // --since is read before any name moves: a tag this run moves means the image it named before
  const since = args.since !== undefined
    ? await pinSince(args.since, OciStore.open(path.join(args.cacheDir ?? defaultCacheDir(), 'oci')), docker, { insecureRegistries: args.insecureRegistries })
    : undefined;
  const states: BuildState[] = [];
  const summaries: BuildSummary[] = [];
  const shadowLines: string[] = [];
  const listr = new Listr(names.map((d): ListrTask => ({
    title: `${d.name}`,
    task: (_ctx, group) => group.newListr(stepsFor(d, args, docker, states, summaries, shadowLines), { concurrent: false, exitOnError: true }),
  })), {
    concurrent: false,
    exitOnError: true,
    renderer: args.json ? 'silent' : process.stdout.isTTY ? 'default' : 'simple',
    // progress goes to stdout; stderr is kept for the one-line error the exit code goes with
    rendererOptions: { collapseSubtasks: false, logger: new ListrLogger({ useIcons: true, toStderr: [] }) },
  } as never);
  try {
    await listr.run();
    if (args.save) {
      const saved = await saveBundle(states, args.save, { since, docker, log: (l) => { if (!args.json) out(l); } });
      for (const s of summaries) s.saved = saved;
    }
  } finally {
    for (const s of states) {
      await dropTempTag(s, docker);
      cleanup(s);
    }
  }
  const shared = sharedTags(summaries.map((s) => ({ distribution: s.distribution, tags: s.tags })));
  const warnings = [
    ...summaries.filter((s) => s.dirtyLayers.length > 0).map((s) => `${s.distribution}: layer(s) ${s.dirtyLayers.join(', ')} have uncommitted changes (or are not in a git repository): tagged by name only, no commit or version tag`),
    ...[...shared].map(([tag, owners]) => `${tag} was claimed by ${owners.join(', ')}: it now points at ${owners[owners.length - 1]}`),
    ...summaries.flatMap((s) => (s.oversized ?? []).map((o) => `${s.distribution}: ${describeOversized(o, s.maxLayerSize)}`)),
  ];
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summaries.length === 1 && !args.all ? { ...summaries[0], warnings } : { builds: summaries, warnings, seconds: (Date.now() - started) / 1000 })}\n`);
    return 0;
  }
  for (const l of shadowLines) out(l);
  for (const w of warnings) out(`warning: ${w}`);
  for (const s of summaries) {
    out(`built ${s.distribution}: ${s.image.slice(0, 19)} ${s.packages} packages from ${s.layers.length} layer(s), ${s.shadowed} shadowed (${s.shadowedDiffering} differing), tags ${s.tags.map((t) => t.slice(t.lastIndexOf(':') + 1)).join(' ')}`
      + `${s.pushed.length ? `, pushed ${s.pushed.length}` : ''}${s.saved ? `, saved ${s.saved.file} (${(s.saved.bytes / 1e6).toFixed(1)} MB)` : ''} in ${s.seconds.toFixed(1)} s`);
    const v = s.vsPublished;
    out(v
      ? `  vs published: +${v.added} added, -${v.removed} removed, ~${v.changed} changed, size ${formatSizeDelta(v.sizeDelta)} (${v.ref}, ${v.source})`
      : '  vs published: nothing published yet');
    if (s.lite) out(describeLite(s.lite));
    if (s.delta) out(`  top layer as a delta: ${describeDelta(s.delta)}`);
    for (const l of s.layers) if (l.tarBytes !== undefined) out(`  layer ${l.name}: ${describeSaving({ layer: l.name, ...l } as LayerSaving)}`);
    out(`  image: ${s.digest.slice(0, 19)} in the builder's store (${(s.storedBytes / 1e6).toFixed(1)} MB compressed), ${s.packed.layers} layer(s) packed (${(s.packed.bytes / 1e6).toFixed(1)} MB); `
      + `${s.engine ? `engine (${s.engine.store} store): ${s.engine.path}, ${s.engine.blobsSent} sent (${(s.engine.bytesSent / 1e6).toFixed(1)} MB), ${s.engine.blobsPresent} held; ` : 'no engine; '}check: ${s.check}`);
    if (s.push) out(`  push: ${describeTransfer(s.push)}`);
    out(`  time: ${Object.entries(s.timings).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`);
  }
  return 0;
}

function describeEngineLoad(s: BuildState): string {
  const l = s.engineLoad;
  return l ? `into the engine (${l.store} store, ${l.path}: ${l.blobsSent} sent, ${l.blobsPresent} held); ` : '';
}

function describeTransfer(r: { blobsSent: number; bytesSent: number; blobsPresent: number; blobsMounted?: number }): string {
  return `${r.blobsSent} blob(s) uploaded (${(r.bytesSent / 1e6).toFixed(1)} MB), ${r.blobsMounted ?? 0} mounted, ${r.blobsPresent} already there`;
}

function stepsFor(d: Distribution, args: BuildArgs, docker: ReturnType<typeof engine> | undefined, states: BuildState[], summaries: BuildSummary[], shadowLines: string[]): ListrTask[] {
  let s: BuildState;
  const t0 = Date.now();
  // engine output as the running task's one-line status on a terminal; a log would be too long
  const show = process.stdout.isTTY && !args.json;
  const log = { current: (_l: string) => { /* set per task */ } };
  return [
    {
      title: `definition ${d.file}`,
      task: (_c, task) => {
        s = newBuildState(d, {
          push: args.push, save: args.save, noCache: args.noCache, noDelta: args.noDelta, cacheDir: args.cacheDir, repository: args.repository, log: (l) => log.current(l),
          policyFlags: { allowOverwrite: args.allowOverwrite, allowRemoval: args.allowRemoval, reason: args.reason },
          publishedFrom: args.publishedFrom,
          noEngine: args.noEngine, base: args.base, insecureRegistries: args.insecureRegistries,
        });
        states.push(s);
        task.title = `definition: ${d.select ? `selects from ${d.select.from}'s ` : ''}${d.layers.length} layer(s): ${d.layers.map((l) => l.name).join(', ')}`;
      },
    },
    {
      title: 'read layers',
      task: async (_c, task) => {
        await readLayers(s);
        task.title = `read layers: ${s.layers.map((l) => `${l.name}@${l.commit.slice(0, 12)}`).join(', ')}`;
      },
    },
    {
      title: 'validate packages and merge',
      task: async (_c, task) => {
        if (show) log.current = (l) => { task.output = l; };
        const lines = await validateAndMerge(s);
        for (const l of lines) shadowLines.push(`${d.name}: shadowed: ${l}`);
        task.title = `validate and merge: ${s.merge!.served.length} packages served, ${lines.length} shadowed`;
        if (lines.length) task.output = lines.join('\n');
      },
    },
    {
      title: 'check stage policy',
      task: async (_c, task) => {
        task.title = `check stage policy: ${await checkPolicy(s, docker)}`;
      },
    },
    {
      title: 'registry base image',
      task: async (_c, task) => {
        if (show) log.current = (l) => { task.output = l; };
        task.title = `registry base image: ${docker ? await ensureBaseImage(s, docker) : await baseWithoutEngine(s)}`;
      },
    },
    {
      title: 'build distribution image',
      task: async (_c, task) => {
        if (show) log.current = (l) => { task.output = l; };
        const id = await buildDistributionImage(s, docker);
        task.title = `build distribution image: ${id.slice(0, 19)}; package layers: ${s.plan?.sent.length} packed${s.plan?.delta ? ` (${describeDelta(s.plan.delta)})` : ''}, ${s.plan?.reused.length} unchanged; `
          + `${describeEngineLoad(s)}${s.check === 'checked before'
            ? `the same image passed its check in an earlier build (${s.startCheck?.versions} package versions)`
            : `its server started ${s.check === 'in-process' ? 'in-process' : 'in a container'} in ${((s.startCheck?.millis ?? 0) / 1000).toFixed(1)} s serving ${s.startCheck?.versions} package versions`}`;
      },
    },
    {
      title: 'lite: compare with the full image',
      enabled: () => d.select !== undefined,
      task: async (_c, task) => {
        task.title = describeLite(await measureLite(s, docker));
      },
    },
    {
      title: 'tag',
      task: async (_c, task) => {
        await applyTags(s, docker);
        task.title = `tag: ${s.tags.join(', ')}`;
      },
    },
    {
      title: 'push',
      enabled: () => args.push,
      task: async (_c, task) => {
        if (show) log.current = (l) => { task.output = l; };
        const r = await pushTags(s, docker);
        task.title = `push: ${s.pushed.length} tag(s), ${r.manifestDigest.slice(0, 19)}: ${describeTransfer(r)}; base image as ${s.pushedBase}`;
      },
    },
    {
      title: 'summary',
      task: async (_c, task) => {
        summaries.push(summarise(s, (Date.now() - t0) / 1000, await imageSize(docker, s.imageId)));
        task.skip('done');
      },
    },
  ];
}

interface LoadArgs { file?: string; toRegistry?: string; insecure: string[]; json: boolean; help: boolean }

function parseLoadArgs(argv: string[]): LoadArgs {
  const a: LoadArgs = { insecure: [], json: false, help: false };
  const files: string[] = [];
  eachArg(argv, UsageError, (arg, value) => {
    if (arg === '--help' || arg === '-h') a.help = true;
    else if (arg === '--json') a.json = true;
    else if (arg === '--to-registry' || arg.startsWith('--to-registry=')) a.toRegistry = value('--to-registry');
    else if (arg === '--insecure-registry' || arg.startsWith('--insecure-registry=')) a.insecure.push(value('--insecure-registry'));
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg} (see load --help)`);
    else files.push(arg);
  });
  if (a.help) return a;
  if (files.length !== 1) throw new UsageError(`load wants exactly one <bundle.tar>${files.length ? `, got ${files.length}: ${files.join(' ')}` : ''} (see load --help)`);
  a.file = files[0];
  if (!fs.existsSync(a.file)) throw new UsageError(`${a.file} does not exist`);
  if (!fs.statSync(a.file).isFile()) throw new UsageError(`${a.file} is not a file`);
  if (a.insecure.length && !a.toRegistry) throw new UsageError('--insecure-registry goes with --to-registry');
  if (a.toRegistry !== undefined) parseRegistryTarget(a.toRegistry);
  return a;
}

/** --to-registry: `host[:port]` (each image keeps its repository path) or `host[:port]/repository` (every tag goes there). */
function parseRegistryTarget(to: string): { host: string } | { dest: ociRef.ImageReference } {
  if (!to.includes('/')) {
    if (!/^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+)(:\d+)?$/.test(to)) throw new UsageError(`--to-registry wants host[:port] or host[:port]/repository, got "${to}"`);
    return { host: to };
  }
  let dest: ociRef.ImageReference;
  try { dest = ociRef.parseReference(to); } catch (err) { throw new UsageError(`--to-registry: ${(err as Error).message}`); }
  if (dest.tag || dest.digest) throw new UsageError(`--to-registry wants a repository without a tag or digest (each image keeps its own tags), got "${to}"`);
  return { dest };
}

/** Where each bundle image goes with --to-registry. */
function registryTargets(bundle: ociBundle.Bundle, to: string): ociRef.ImageReference[][] {
  const t0 = parseRegistryTarget(to);
  const dest = 'dest' in t0 ? t0.dest : undefined;
  const host = 'host' in t0 ? t0.host : undefined;
  const claimed = new Map<string, string>();
  return bundle.images.map(({ image, tags }) => tags.map((t) => {
    const r = ociRef.parseReference(t);
    const target: ociRef.ImageReference = dest ? { registry: dest.registry, repository: dest.repository, tag: r.tag ?? 'latest' } : { registry: host!, repository: r.repository, tag: r.tag ?? 'latest' };
    const name = ociRef.formatReference(target);
    const other = claimed.get(name);
    if (other && other !== image.manifestDescriptor.digest) throw new UsageError(`--to-registry ${to}: two images of the bundle would both be ${name}; name a registry host alone to keep their repositories apart`);
    claimed.set(name, image.manifestDescriptor.digest);
    return target;
  }));
}

const loadMB = ociBundle.formatBytes;

/** The bundle against the full images it stands for. */
function bundleSizeLine(b: ociBundle.Bundle, holder: string): string {
  const inside = b.inside.size;
  const pct = b.full.bytes > 0 ? (100 * b.bytes) / b.full.bytes : 0;
  const share = b.full.bytes > 0 ? ` (${pct < 1 ? pct.toFixed(2) : pct.toFixed(1)}% of it)` : '';
  const lo = b.leftOut.reduce((n, l) => n + l.size, 0);
  return `bundle ${b.file}: ${loadMB(b.bytes)} for ${b.images.length} image(s) of ${loadMB(b.full.bytes)}${share}, `
    + (b.incremental ? `incremental: ${inside} blobs inside, ${b.leftOut.length} layer(s) left out (${loadMB(lo)}) that ${holder} holds` : `full: all ${inside} blobs inside`);
}

/** Names what an incremental bundle needs and the target lacks; the exit code 1 goes with it. */
function reportMissingBlobs(b: ociBundle.Bundle, target: string, missing: ociBundle.MissingBlob[], json: boolean): number {
  const since = [...new Set(b.since.map((s) => s.source))];
  process.stderr.write(`error: ${b.file} is an incremental bundle: ${target} lacks ${missing.length} layer(s) it left out; nothing was loaded`
    + `${since.length ? ` (load what it was made since first: ${since.join(', ')})` : ''}\n`);
  for (const l of ociBundle.describeMissing(missing)) process.stderr.write(`  - ${l}\n`);
  if (json) out(JSON.stringify({ file: b.file, ok: false, target, missing }));
  return 1;
}

async function load(argv: string[]): Promise<number> {
  const args = parseLoadArgs(argv);
  if (args.help) { process.stdout.write(HELP.load); return 0; }
  const file = args.file!;
  const json = args.json;
  let bundle: ociBundle.Bundle | undefined;
  try {
    bundle = ociBundle.readBundle(file);
  } catch (err) {
    // a `docker save` of an engine before Docker 25 is no OCI layout, but docker load reads it
    if (!(err instanceof ociBundle.NotABundleError && err.dockerArchive && !args.toRegistry)) throw err;
  }

  if (args.toRegistry) {
    const b = bundle!;
    const targets = registryTargets(b, args.toRegistry);
    if (targets.every((t) => t.length === 0)) throw new UsageError(`${file} names no tag to push`);
    const opts = { insecureRegistries: args.insecure, onProgress: json ? undefined : (l: string) => out(`  ${l}`) };
    const missing = await ociBundle.missingFromRegistry(b, targets, opts);
    if (missing.length) return reportMissingBlobs(b, args.toRegistry, missing, json);
    const repos = [...new Set(targets.flat().map((r) => r.repository))];
    const pushed: Array<{ image: string; references: string[]; blobsSent: number; bytesSent: number; blobsMounted: number; blobsPresent: number }> = [];
    for (const [i, { image }] of b.images.entries()) {
      if (!targets[i].length) continue;
      const r = await ociRegistry.pushImage(image, b, targets[i], { ...opts, mountFrom: repos });
      pushed.push({ image: r.manifestDigest, references: r.references, blobsSent: r.blobsSent, bytesSent: r.bytesSent, blobsMounted: r.blobsMounted, blobsPresent: r.blobsPresent });
    }
    if (json) {
      out(JSON.stringify({ file, ok: true, bundle: bundleSummary(b), registry: args.toRegistry, pushed }));
      return 0;
    }
    out(bundleSizeLine(b, 'the registry'));
    for (const p of pushed) out(`pushed ${p.image.slice(0, 19)} to ${p.references.join(', ')}: ${p.blobsSent} blobs uploaded (${loadMB(p.bytesSent)}), ${p.blobsMounted} mounted, ${p.blobsPresent} already there`);
    return 0;
  }

  const docker = engine();
  await ensureEngine(docker);
  const kind = await ociEngine.engineStoreKind(docker);
  const storeName = kind === 'containerd' ? 'the containerd image store' : 'the classic layer store';
  if (bundle?.incremental) {
    const missing = await ociBundle.missingFromEngine(docker, bundle, kind);
    if (missing.length) return reportMissingBlobs(bundle, `the engine (${storeName})`, missing, json);
  }
  const loaded = await loadImages(docker, file);
  const refs = bundle ? bundle.images.flatMap((i) => i.tags) : loaded;
  if (refs.length === 0) throw new EngineOperationError(`docker load: ${file} held no tagged image`);
  const byId = new Map<string, string[]>();
  for (const ref of refs) {
    const info = await inspectImage(docker, ref);
    if (!info) throw new EngineOperationError(`docker load: ${ref} is not there after loading`);
    byId.set(info.Id, [...(byId.get(info.Id) ?? []), ref]);
  }
  if (bundle) {
    // the engine names an image by its config (classic) or its manifest (containerd): either way the bundle's
    for (const { image, tags } of bundle.images) {
      const id = [...byId].find(([, names]) => names.includes(tags[0]))?.[0];
      if (tags.length && id !== image.configDescriptor.digest && id !== image.manifestDescriptor.digest) {
        throw new EngineOperationError(`docker load: ${tags[0]} is ${id?.slice(0, 19)} in the engine, not the bundle's ${image.manifestDescriptor.digest.slice(0, 19)}`);
      }
    }
  }
  const results: Array<{ image: string; refs: string[]; distribution: string; packages: number; searched: number }> = [];
  for (const [id, names] of byId) {
    const info = (await inspectImage(docker, id))!;
    const labels = info.Config?.Labels ?? {};
    const missing = REQUIRED_LABELS.filter((l) => !labels[l]);
    if (missing.length) throw new EngineOperationError(`${names[0]}: not a distribution image (labels missing: ${missing.join(', ')})`);
    const c = await runImage(docker, id);
    try {
      await waitForHttp(`${c.url}/health`);
      const list = await withTimeout((async () => {
        const r = await fetch(`${c.url}/search?all=true&prerelease=true`, { signal: AbortSignal.timeout(30_000) });
        if (!r.ok) throw new EngineOperationError(`${names[0]}: /search answered HTTP ${r.status}`);
        return await r.json() as unknown[];
      })(), 31_000, 'GET /search');
      const expected = Number(labels[`${LABEL_PREFIX}.package-count`]);
      if (list.length !== expected) throw new EngineOperationError(`${names[0]}: /search?all=true&prerelease=true lists ${list.length} packages, the label says ${expected}`);
      results.push({ image: id, refs: names, distribution: labels[`${LABEL_PREFIX}.distribution`], packages: expected, searched: list.length });
    } catch (err) {
      const logs = await containerLogs(docker, c.id);
      if (logs && !json) process.stderr.write(logs);
      throw err;
    } finally {
      await removeContainer(docker, c.id);
    }
  }
  if (json) {
    out(JSON.stringify({ file, ok: true, ...(bundle ? { bundle: bundleSummary(bundle) } : {}), engine: { store: kind }, images: results }));
    return 0;
  }
  if (bundle) out(bundleSizeLine(bundle, 'the engine'));
  for (const r of results) out(`loaded ${r.distribution} into ${storeName}: ${r.image.slice(0, 19)} (${r.refs.join(', ')}): /health ok, /search lists ${r.searched} packages`);
  return 0;
}

function bundleSummary(b: ociBundle.Bundle): object {
  return {
    bytes: b.bytes, incremental: b.incremental, images: b.images.length, blobsInside: b.inside.size,
    blobsLeftOut: b.leftOut.length, bytesLeftOut: b.leftOut.reduce((n, l) => n + l.size, 0), fullBytes: b.full.bytes,
  };
}

/** One clear line for what went wrong; details (if any) below it. */
function report(err: unknown): number {
  if (err instanceof UsageError || err instanceof DiffUsageError) { process.stderr.write(`error: ${err.message}\n`); return 2; }
  if (err instanceof PolicyViolationError) {
    process.stderr.write(`error: stage policy of ${err.distribution}: ${err.violations.length} package(s) break it against ${err.published}; nothing was built, tagged or pushed\n`);
    for (const v of err.violations) process.stderr.write(`  - ${v.message}\n`);
    return 1;
  }
  if (err instanceof InvalidPackagesError) {
    process.stderr.write(`error: invalid package: ${err.problems[0]}${err.problems.length > 1 ? ` (and ${err.problems.length - 1} more problem(s))` : ''}; nothing was tagged\n`);
    const shown = 100;
    for (const p of err.problems.slice(1, shown)) process.stderr.write(`  - ${p}\n`);
    if (err.problems.length > shown) process.stderr.write(`  ... and ${err.problems.length - shown} more\n`);
    return 1;
  }
  if (err instanceof DistributionError) {
    process.stderr.write(`error: invalid distribution ${err.file}: ${err.problems[0]}${err.problems.length > 1 ? ` (and ${err.problems.length - 1} more)` : ''}\n`);
    for (const p of err.problems.slice(1)) process.stderr.write(`  - ${p}\n`);
    return 1;
  }
  if (err instanceof EngineOperationError) {
    process.stderr.write(`error: ${err.message.split('\n')[0]}; nothing was tagged or moved\n`);
    for (const l of err.output.slice(-15)) process.stderr.write(`  | ${l}\n`);
    return 1;
  }
  if (err instanceof EngineUnreachableError || err instanceof SourceMissingError || err instanceof MissingBaseImageError) {
    process.stderr.write(`error: ${err.message}\n`);
    return 1;
  }
  process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'build': return await build(rest);
      case 'load': return await load(rest);
      case 'diff': return await diffCommand(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(HELP.main);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}" (build, load or diff; see --help)`);
    }
  } catch (err) {
    return report(err);
  }
}

// A wait that nothing keeps alive would let node exit quietly with 0: count that as a failure.
let finished = false;
process.exitCode = 1;
process.on('beforeExit', () => {
  if (!finished) {
    finished = true;
    process.stderr.write('error: stopped waiting for an answer that never came (engine or container); nothing more was done\n');
  }
});
main(process.argv.slice(2)).then((code) => { finished = true; process.exitCode = code; });
