import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import tarFs from 'tar-fs';
import type { Readable } from 'node:stream';
import YAML from 'yaml';
import { PROJECT_ROOT } from '../server/config.js';
import { SERVICE_VERSION } from '../server/context.js';
import { byteCompare, walkFiles } from '../server/packages/source.js';
import { DistributionError, type Distribution } from './distribution.js';
import { git, materialiseLayer, projectCommit, tagsPointingAt, type MaterialisedLayer } from './sources.js';
import { cachedSizes, describeShadows, imageLayerSizes, LAYER_SIZES_LABEL, layerSaving, mergeLayers, readSavingsLabel, savingsLabel, type LayerSaving, type LayerSplit, type MergeResult, type ShadowEntry } from './merge.js';
import { LAYER_PARTS_LABEL, partsLabel, readPartsLabel } from './layer-split.js';
import { defaultCacheDir } from './package-cache.js';
import { baseImageOf, composeImage, LAYER_KEYS_LABEL, type BaseImage } from './assemble.js';
import { OciStore } from './oci/store.js';
import { removeTree } from './remove-tree.js';
import { engineStoreKind, importFromEngine, loadIntoEngine, type EngineStoreKind, type LoadResult } from './oci/engine.js';
import type { OciImage } from './oci/model.js';
import { parseReference, formatReference } from './oci/reference.js';
import { pullImage, pushImage, headManifest, type PushReport } from './oci/registry.js';

import { checkInProcess } from './oci/check.js';
import { engineSince, sinceSet, writeBundle, type SinceSet } from './oci/bundle.js';
import { planLayers, type PlannedLayers } from './layer-plan.js';
import { checkImageStarts, type StartCheck } from './image-check.js';
import { DockerfileError, parseDistributionDockerfile, type DistributionDockerfile } from './dockerfile.js';
import { withParents, type TarEntry } from './tar.js';
import { selectVersions, type LiteSizes } from './lite.js';
import { imageLabels, imageTags, stackVersions } from './tags.js';
import { buildImage, EngineOperationError, inspectImage, tagImage, untag } from './image.js';
import { LABEL_PREFIX } from './tags.js';
import { checkStagePolicy, PolicyViolationError, type PolicyFlags, type PolicyResult } from './stages/policy.js';
import { bakedList, readPublished, readPublishedOci, type PublishedFrom, type PublishedLookup } from './stages/published.js';
import { diffPackages, type PackageDiff } from './stages/diff.js';

/**
 * The steps of one distribution build, each a function over one BuildState,
 * so the CLI can show them as tasks. Nothing outside a temporary folder and a
 * temporary image tag changes until the image is built; the real tags move
 * only after that, and move back if a push is refused.
 */

export const BASE_REPOSITORY = 'package-registry';
const TEMP_REPOSITORY = 'package-registry-build';

export interface BuildOptions {
  push: boolean;
  save?: string;
  noCache: boolean;
  /** send the top package layer whole even when a delta on an earlier image's would do (same input, same image ID anywhere) */
  noDelta?: boolean;
  /** overrides the definition's image repository (tests, other registries) */
  repository?: string;
  log: (line: string) => void;
  /** --allow-overwrite, --allow-removal, --reason: what the stage policy may let through */
  policyFlags?: PolicyFlags;
  /** where the last published image is read from (default auto: local engine, else the registry) */
  publishedFrom?: PublishedFrom;
  /** the builder's cache (packages, git trees, the image store); default defaultCacheDir() */
  cacheDir?: string;
  /** build with no Docker engine: the base from the store, --base or the registry; the check runs in-process */
  noEngine?: boolean;
  /** --base: the registry base image (an image reference, or an OCI layout folder or bundle) */
  base?: string;
  /** registries reached over plain HTTP although they are not on this machine */
  insecureRegistries?: string[];
}

export interface BuildState {
  distribution: Distribution;
  opts: BuildOptions;
  work: string;
  layers: MaterialisedLayer[];
  merge?: MergeResult;
  commit?: string;
  stackVersions: string[];
  /** layers whose content is not exactly their commit (uncommitted changes, no repository) */
  dirtyLayers: string[];
  tags: string[];
  baseTag?: string;
  baseBuilt: boolean;
  imageId?: string;
  tempTag?: string;
  /** previous image of each tag (undefined: the tag did not exist) */
  previous: Map<string, string | undefined>;
  pushed: Array<{ ref: string; digest?: string }>;
  /** a lite distribution: what it kept, and its size against the full image */
  lite?: LiteSizes;
  /** the last published image of this distribution, as read by the stage policy step */
  published?: PublishedLookup;
  policy?: PolicyResult;
  /** the image layers taken from the engine as they were, and those sent (the top one maybe as a delta) */
  plan?: PlannedLayers;
  /** how each package layer was split under max_layer_size, and what each holds against its tree */
  split?: Array<LayerSplit & { layer: string }>;
  savings?: LayerSaving[];
  /** the image's own server, started by the builder before anything is tagged */
  startCheck?: StartCheck;
  /** seconds per step of the image build: where the time goes */
  timings: Record<string, number>;
  /** what that check found: the image was kept, or made again from the files */
  speculation?: 'confirmed' | 'redone';
  /** the builder's image store (builder/oci/store.ts) */
  store: OciStore;
  /** the base image as the store holds it, and the names it has there */
  base?: BaseImage;
  baseNames: string[];
  /** the distribution image in the store */
  image?: OciImage;
  /** layers packed into the store by this build, and their compressed bytes */
  packed?: { layers: number; bytes: number };
  /** the engine's image store, and how the image went into it */
  engineStore?: EngineStoreKind;
  engineLoad?: LoadResult;
  /** which build-time check ran */
  check?: CheckKind;
  /** the engine's name of the image (classic: the config digest; containerd: the manifest digest) */
  engineImageId?: string;
  /** where each tag pointed in the store before this build */
  previousInStore: Map<string, string | undefined>;
  /** what the push sent and found, and where the base image went */
  pushReport?: PushReport;
  pushedBase?: string;
}

/** Runs one step, adding its seconds to s.timings[name]. */
async function timed<T>(s: BuildState, name: string, step: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await step();
  } finally {
    s.timings[name] = Math.round((s.timings[name] ?? 0) * 1000 + performance.now() - t0) / 1000;
  }
}

export function cacheDirOf(s: BuildState): string {
  return s.opts.cacheDir ?? defaultCacheDir();
}

export function newBuildState(distribution: Distribution, opts: BuildOptions): BuildState {
  if (distribution.registryVersion !== SERVICE_VERSION) {
    throw new DistributionError(distribution.file, [`package_registry.version: is ${distribution.registryVersion} but this tree's server is ${SERVICE_VERSION}`]);
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `epr-build-${distribution.name}-`));
  return {
    distribution,
    opts,
    work,
    layers: [],
    stackVersions: [],
    dirtyLayers: [],
    tags: [],
    baseBuilt: false,
    previous: new Map(),
    previousInStore: new Map(),
    baseNames: [],
    pushed: [],
    timings: {},
    store: openStore(opts, work),
  };
}

/** The store in the builder cache; one that cannot be written there lives in the build's scratch folder (it only costs time). */
function openStore(opts: BuildOptions, work: string): OciStore {
  const dir = path.join(opts.cacheDir ?? defaultCacheDir(), 'oci');
  try {
    const store = OciStore.open(dir);
    fs.accessSync(store.dir, fs.constants.W_OK);
    return store;
  } catch (err) {
    opts.log(`the builder's image store ${dir} cannot be written (${(err as Error).message.split('\n')[0]}): using a temporary one`);
    return OciStore.open(path.join(work, 'oci'));
  }
}

export function repositoryOf(s: BuildState): string {
  return s.opts.repository ?? s.distribution.repository;
}

export async function readLayers(s: BuildState): Promise<void> {
  await timed(s, 'read layers', async () => {
    for (const layer of s.distribution.layers) s.layers.push(await materialiseLayer(layer, { work: s.work, cacheDir: cacheDirOf(s) }));
  });
  // the distribution's commit: that of its last git layer, else of the repository holding its folders
  const git = [...s.layers].reverse().find((l) => l.kind === 'git');
  const from = git ?? s.layers[s.layers.length - 1];
  s.commit = from.commit === 'unknown' ? projectCommit() : from.commit;
  s.dirtyLayers = s.layers.filter((l) => l.dirty).map((l) => l.name);
  s.stackVersions = s.commit === 'unknown' ? [] : stackVersions(tagsPointingAt(from.commit === 'unknown' ? PROJECT_ROOT : from.repo, s.commit));
  // a commit or version tag promises that commit's content: not given when a layer has other content
  // a lite image in the repository of the full image it selects from would take that image's commit and version tags
  const sel = s.distribution.select;
  const sharesTags = sel !== undefined && (s.opts.repository !== undefined || sel.fromRepository === s.distribution.repository);
  const clean = s.dirtyLayers.length === 0 && !sharesTags;
  s.tags = imageTags({ repository: repositoryOf(s), distribution: s.distribution.name, commit: clean ? s.commit : 'unknown', gitTags: clean ? s.stackVersions : [] });
}

/**
 * Validates and merges the layers. Unless --no-cache, the layers below the
 * top one (production and staging under snapshot: the largest, and the ones
 * that change least in a snapshot build) are taken from the package cache on
 * trust, and checked against their files in worker threads while the image
 * is made and started; if one did change, the image is made again from the
 * files (buildDistributionImage). Nothing is tagged before the check.
 */
export async function validateAndMerge(s: BuildState, opts: { trust?: boolean } = {}): Promise<string[]> {
  const sel = s.distribution.select;
  const trust = opts.trust !== false && !s.opts.noCache ? s.layers.slice(0, -1).map((l) => l.name) : [];
  s.merge = await timed(s, 'validate and merge', () => mergeLayers(s.distribution.name, s.layers, {
    cacheDir: cacheDirOf(s),
    readCache: !s.opts.noCache,
    log: s.opts.log,
    trust,
    ...(sel ? { select: (winners) => selectVersions(winners, sel, s.distribution.file).keys } : {}),
  }));
  return describeShadows(s.merge.report);
}

/**
 * The stage policy against the last published image (<repo>:<distribution>):
 * throws PolicyViolationError naming every offending package, before anything
 * is built, tagged or pushed. Returns one line for the task title.
 */
export async function checkPolicy(s: BuildState, docker: Docker | undefined): Promise<string> {
  if (!s.merge) throw new Error('merge first');
  const ref = `${repositoryOf(s)}:${s.distribution.name}`;
  const from = s.opts.publishedFrom ?? 'auto';
  s.published = docker ? await readPublished(docker, ref, from) : await readPublishedOci(s.store, ref, from, { insecureRegistries: s.opts.insecureRegistries });
  const p = s.distribution.policy;
  const rules = `overwrite ${p.overwrite}, removal ${p.removal}`;
  if (!s.published.found) return `${rules}; no published image yet (${s.published.why}): no constraint`;
  const pub = s.published.published;
  const flags = s.opts.policyFlags ?? { allowOverwrite: false, allowRemoval: false };
  s.policy = checkStagePolicy(s.distribution.name, p, pub.list.packages, s.merge.served, flags);
  const where = `${pub.ref} (${pub.source}, ${pub.image.slice(7, 19)})`;
  if (s.policy.violations.length > 0) throw new PolicyViolationError(s.distribution.name, where, s.policy.violations);
  const d = s.policy.diff;
  return `${rules}; vs ${where}: +${d.added.length} -${d.removed.length} ~${d.changed.length}${s.policy.overrides.length ? `, allowed by --allow-${s.policy.overrides.join(', --allow-')}` : ''}`;
}

// ---------------------------------------------------------------------------
// base image

const BASE_FILES = ['Dockerfile.base', 'package.json', 'package-lock.json', 'tsconfig.json', 'builder/prune-image-deps.cjs'];

/** The base image's tag: the server version plus a digest of what it is built from (Node image included). */
export function baseImageTag(nodeImage: string, nodeImageId = ''): string {
  const h = crypto.createHash('sha256');
  h.update(`${nodeImage}\0${nodeImageId}\0`);
  const files = [...BASE_FILES, ...walkFiles(path.join(PROJECT_ROOT, 'server')).map((f) => `server/${f.path}`)].sort(byteCompare);
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(fs.readFileSync(path.join(PROJECT_ROOT, f)));
    h.update('\0');
  }
  return `${SERVICE_VERSION}-${h.digest('hex').slice(0, 12)}`;
}

function baseContext(): Readable {
  return tarFs.pack(PROJECT_ROOT, {
    entries: [...BASE_FILES, 'node_modules', 'server'],
    ignore: (name) => /[/\\]node_modules[/\\]\.cache([/\\]|$)/.test(name),
  }) as unknown as Readable;
}

/** This project's git output, or '' when git cannot say. */
function projectGit(args: string[]): string {
  const r = git(PROJECT_ROOT, args);
  return r.ok ? r.out : '';
}

const baseForRun = new Map<string, string>();
const builtThisRun = new Set<string>();

/** The store's name for the newest base built from this tree's server sources: how a build with no engine finds it. */
export function baseSourceName(nodeImage: string): string {
  return `${BASE_REPOSITORY}-source:${baseImageTag(nodeImage)}`;
}

/** Where --push puts the base image, next to the distribution; a --no-engine build to that repository looks there. */
export function registryBaseRef(repository: string, nodeImage: string): string {
  return `${repository}:base-${baseImageTag(nodeImage)}`;
}

/** Builds package-registry:<version>-<digest> unless it exists (or --no-cache: then once per run), and reads it into the store. */
export async function ensureBaseImage(s: BuildState, docker: Docker): Promise<string> {
  // one base per run and Node image: `build --all` keeps one base even if server/ changes meanwhile
  const tag = baseForRun.get(s.distribution.baseImage) ?? baseImageTag(s.distribution.baseImage, (await inspectImage(docker, s.distribution.baseImage))?.Id);
  baseForRun.set(s.distribution.baseImage, tag);
  const ref = `${BASE_REPOSITORY}:${tag}`;
  s.baseTag = tag;
  let said = `${ref} present`;
  if (!((!s.opts.noCache || builtThisRun.has(ref)) && await inspectImage(docker, ref))) {
    const temp = `${TEMP_REPOSITORY}:base-${crypto.randomBytes(6).toString('hex')}`;
    try {
      const id = await buildImage(docker, {
        context: baseContext(),
        dockerfile: 'Dockerfile.base',
        tag: temp,
        nocache: s.opts.noCache,
        buildargs: {
          NODE_IMAGE: s.distribution.baseImage,
          VERSION: SERVICE_VERSION,
          REVISION: projectCommit(),
          CREATED: projectGit(['log', '-1', '--format=%cI']) || new Date().toISOString(),
          SOURCE: projectGit(['config', '--get', 'remote.origin.url']) || 'https://github.com/elastic/package-registry',
        },
        onOutput: s.opts.log,
      });
      await tagImage(docker, id, ref);
      builtThisRun.add(ref);
      s.baseBuilt = true;
      said = `${ref} built`;
    } finally {
      await untag(docker, temp).catch(() => undefined);
    }
  }
  // the name the image labels give it (by its sources alone) finds it in this engine too
  const bySources = `${BASE_REPOSITORY}:${baseImageTag(s.distribution.baseImage)}`;
  if (bySources !== ref) await tagImage(docker, ref, bySources);
  await timed(s, 'base image into the store', () => baseIntoStore(s, docker, ref));
  return said;
}

/** The engine's base image as the store holds it: read with `docker save` once per image ID. */
async function baseIntoStore(s: BuildState, docker: Docker, ref: string): Promise<void> {
  const info = await inspectImage(docker, ref);
  if (!info) throw new EngineOperationError(`base image ${ref} is not in the engine`);
  let image = s.store.resolve(ref);
  if (!image || ![image.configDescriptor.digest, image.manifestDescriptor.digest].includes(info.Id)) {
    image = await importFromEngine(docker, ref, s.store);
  }
  s.baseNames = [ref, baseSourceName(s.distribution.baseImage)];
  for (const n of s.baseNames) s.store.tag(n, image, { [BASE_ANNOTATION]: 'true' });
  s.base = baseImageOf(image);
}

/** A build with no engine found no base image to build on. */
export class MissingBaseImageError extends Error {}

/** Marks the base images in the store's index (for whoever reads it: pruning keeps a build's base by its names, BuildState.baseNames). */
export const BASE_ANNOTATION = 'org.elastic.package-registry.base';

/**
 * The base image of a build with no engine: --base (an image reference, or
 * an OCI layout folder), else the one the store has for this tree's server
 * sources, else the one --push put next to the distribution in its registry.
 */
export async function baseWithoutEngine(s: BuildState): Promise<string> {
  const name = baseSourceName(s.distribution.baseImage);
  s.baseTag = baseImageTag(s.distribution.baseImage);
  const pulled = async (ref: string) => pullImage(parseReference(ref), s.store, { insecureRegistries: s.opts.insecureRegistries, onProgress: s.opts.log });
  let image: OciImage | undefined;
  let said: string;
  if (s.opts.base) {
    const given = s.opts.base;
    if (fs.existsSync(given)) {
      image = await readLayoutImage(s.store, given);
      said = `${given} (OCI layout)`;
    } else {
      image = await pulled(given);
      said = `${given} (registry)`;
    }
  } else {
    image = s.store.resolve(name);
    said = `${name} (builder store)`;
    if (!image) {
      const ref = registryBaseRef(repositoryOf(s), s.distribution.baseImage);
      const found = await headManifest(parseReference(ref), { insecureRegistries: s.opts.insecureRegistries }).catch(() => undefined);
      if (!found) {
        throw new MissingBaseImageError(`--no-engine: no registry base image for server ${SERVICE_VERSION} with these server sources: not in the builder's store (${name}) nor in the registry (${ref}). Build once with an engine and --push (that pushes it there), or name one with --base <image ref | OCI layout folder>`);
      }
      image = await pulled(ref);
      said = `${ref} (registry)`;
    }
  }
  s.baseNames = [name];
  s.store.tag(name, image, { [BASE_ANNOTATION]: 'true' });
  s.base = baseImageOf(image);
  return said;
}

/** The image of an OCI image layout folder (its only one, or the first of its index). */
async function readLayoutImage(store: OciStore, dir: string): Promise<OciImage> {
  if (!fs.existsSync(path.join(dir, 'oci-layout')) || !fs.existsSync(path.join(dir, 'index.json'))) throw new MissingBaseImageError(`--base ${dir}: not an OCI image layout folder (no oci-layout and index.json)`);
  // the folder is read as a store is: blob paths only from valid digests, every blob checked as it is copied
  const layout = OciStore.open(dir);
  const m = layout.manifestDescriptors()[0];
  if (!m) throw new MissingBaseImageError(`--base ${dir}: the layout names no image`);
  const image = layout.image(m.digest);
  for (const d of [image.manifestDescriptor, image.configDescriptor, ...image.layers]) await store.write(d, layout.open(d.digest));
  return store.image(m.digest);
}

// ---------------------------------------------------------------------------
// distribution image

const DOCKERFILE = path.join(PROJECT_ROOT, 'Dockerfile.distribution');

export function registryConfig(d: Distribution): string {
  const cfg: Record<string, unknown> = { package_paths: d.layers.map((l) => `/packages/${l.name}`) };
  if (Object.keys(d.cacheTime).length > 0) cfg.cache_time = d.cacheTime;
  return `# written by the distribution builder for ${d.name}\n${YAML.stringify(cfg)}`;
}

/** Writes the context of Dockerfile.distribution: the Dockerfile, config, shadow report and served list (`docker build` works on it too). */
export function writeContext(s: BuildState): string {
  if (!s.merge) throw new Error('merge first');
  const dir = path.join(s.work, 'context');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(DOCKERFILE, path.join(dir, 'Dockerfile'));
  fs.writeFileSync(path.join(dir, 'config.yml'), registryConfig(s.distribution));
  fs.writeFileSync(path.join(dir, 'shadow-report.json'), `${JSON.stringify(s.merge.report, null, 2)}\n`);
  // the served list the stage policy of the next build compares against
  fs.writeFileSync(path.join(dir, 'packages.json'), `${JSON.stringify(bakedList(s.distribution.name, s.merge.served, s.merge.packagesDigest), null, 2)}\n`);
  return dir;
}

/** The commit's time (the same input gives the same layers image), else now. */
function commitTime(s: BuildState): string {
  // SOURCE_DATE_EPOCH (reproducible-builds.org): the time to give builds of trees that are no commit
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const fixed = epoch && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : undefined;
  const l = [...s.layers].reverse().find((x) => x.commit === s.commit);
  const r = s.commit && s.commit !== 'unknown' ? git(l?.repo ?? PROJECT_ROOT, ['show', '-s', '--format=%cI', s.commit]) : undefined;
  const t = r?.ok ? new Date(r.out) : fixed ?? new Date();
  return (Number.isNaN(t.getTime()) ? new Date() : t).toISOString();
}

/** The top layer: Dockerfile.distribution's COPY of context files, with their folders. */
function topEntries(df: DistributionDockerfile, context: string): TarEntry[] {
  const files = new Map<string, string>();
  for (const c of df.copies) {
    for (const src of c.sources) {
      const abs = path.join(context, src);
      if (!fs.existsSync(abs)) throw new DockerfileError(`COPY ${src}: not in the build context`);
      files.set(`${c.dest.slice(1)}${src}`, abs);
    }
  }
  return withParents([...files.keys()]).map((name): TarEntry => {
    const abs = files.get(name);
    return abs ? { name, type: 'file', size: fs.statSync(abs).size, from: abs } : { name, type: 'directory' };
  });
}

/**
 * The image, put together in the store from the base image, the package
 * layers (those an earlier build packed are reused, the others packed from
 * the package folders) and what Dockerfile.distribution adds; then checked
 * before anything is tagged: started with no network in the engine, or with
 * no engine its server run in-process over the layers.
 */
export async function buildDistributionImage(s: BuildState, docker: Docker | undefined): Promise<string> {
  if (!s.merge || !s.base || !s.commit) throw new Error('merge and base image first');
  const merge = s.merge;
  const base = s.base;
  const df = parseDistributionDockerfile(fs.readFileSync(DOCKERFILE, 'utf8'));
  await timed(s, 'split layers', async () => splitLayers(s));
  const planned = await timed(s, 'find reusable layers', () => planLayers(s.store, base, merge.contributions, { reuse: !s.opts.noCache, delta: !s.opts.noCache && !s.opts.noDelta, cacheDir: cacheDirOf(s) }));
  s.plan = planned;

  const labels = imageLabels({
    distribution: s.distribution.name,
    commit: s.commit,
    stackVersions: s.stackVersions,
    registryVersion: SERVICE_VERSION,
    // named by its sources alone: an engine build and a --no-engine build of the same input give the same image
    baseImage: `${BASE_REPOSITORY}:${baseImageTag(s.distribution.baseImage)}`,
    packageCount: merge.served.length,
    packagesDigest: merge.packagesDigest,
    layers: s.layers.map((l) => ({ name: l.name, commit: l.commit, origin: l.origin, dirty: l.dirty })),
  });
  const reason = s.opts.policyFlags?.reason?.trim();
  if (s.policy?.overrides.length) labels[`${LABEL_PREFIX}.policy-overrides`] = s.policy.overrides.join(',');
  if (reason) labels[`${LABEL_PREFIX}.policy-reason`] = reason;
  labels['package-registry'] = baseImageTag(s.distribution.baseImage);
  labels[LAYER_KEYS_LABEL] = planned.labelEntries.join(',');
  labels[LAYER_PARTS_LABEL] = partsLabel(Object.fromEntries(s.split!.map((x) => [x.layer, x.bounds])));
  s.savings = await timed(s, 'layer sizes', async () => merge.contributions.map((c) => layerSaving(c, cacheDirOf(s))));
  // a baked index larger than the cap cannot be split: said like a package version over it
  merge.contributions.forEach((c, i) => {
    const index = c.imageLayers.find((p) => p.role === 'index');
    const bytes = index ? imageLayerSizes(index, cacheDirOf(s)).tarBytes : 0;
    if (bytes > s.distribution.maxLayerSize) s.split![i].oversized.push({ name: 'its baked index', version: `(${c.packages.length} package versions)`, bytes });
  });
  labels[LAYER_SIZES_LABEL] = savingsLabel(s.savings);
  const context = writeContext(s);

  let failure: unknown;
  try {
    const composed = await timed(s, 'pack layers into the store', () => composeImage(s.store, {
      base,
      reused: planned.reused,
      // the same key names the same tar: a layer packed before (by any build, under any layers) is taken from the store
      layers: planned.sent.map((l) => ({ ...l, key: s.opts.noCache ? undefined : l.key })),
      top: topEntries(df, context),
      env: df.env,
      topHistory: df.history,
      labels: { ...Object.fromEntries(df.labels), ...labels },
      created: commitTime(s),
      onProgress: s.opts.log,
    }));
    s.image = composed.image;
    s.packed = { layers: composed.packed, bytes: composed.packedBytes };
    s.imageId = composed.image.configDescriptor.digest;
    // the temporary name keeps the image (and its blobs) in the store until the real tags are on it
    s.tempTag = `${TEMP_REPOSITORY}:${s.distribution.name}-${crypto.randomBytes(6).toString('hex')}`;
    s.store.tag(s.tempTag, composed.image, { [LAYER_KEYS_LABEL]: labels[LAYER_KEYS_LABEL] });
    const image = composed.image;
    if (docker) {
      const tag = s.tempTag;
      s.engineStore ??= await engineStoreKind(docker);
      s.engineLoad = await timed(s, `load into the engine (${s.engineStore} store)`, () => loadIntoEngine(docker, s.store, image, tag, { kind: s.engineStore, alsoHeld: [`${BASE_REPOSITORY}:${s.baseTag}`] }));
      s.engineImageId = s.engineLoad.id;
      s.startCheck = await timed(s, 'start check', () => checkImageStarts(docker, s.engineLoad!.id, { versions: merge.served.length, paths: s.layers.length }));
      s.check = 'container';
    } else if (checkedBefore(s.store, image)) {
      // these very bytes were started and checked by an earlier build: nothing new to prove
      s.startCheck = { versions: merge.served.length, millis: 0 };
      s.check = 'checked before';
    } else {
      const check = await timed(s, 'start check (in-process)', () => checkInProcess(s.store, image, { skipLayers: base.diffIds.length, expect: { versions: merge.served.length, paths: s.layers.length } }));
      s.startCheck = { versions: check.versions, millis: check.millis };
      s.check = 'in-process';
    }
  } catch (err) {
    // a lower layer that changed under the trust can be what failed (a file changed while packed, a stale index)
    if (!merge.verification) throw err;
    failure = err;
  }
  const verification = merge.verification;
  if (verification) {
    if (await timed(s, 'check of the layers taken on trust', () => verification)) {
      s.speculation = 'confirmed';
      if (failure) throw failure;
    } else {
      s.speculation = 'redone';
      s.opts.log(`layer ${merge.trusted.join(', ')} changed since the last build: making the image again from its files`);
      await dropTempTag(s, docker);
      s.imageId = undefined;
      s.image = undefined;
      await validateAndMerge(s, { trust: false });
      await checkPolicy(s, docker);
      return buildDistributionImage(s, docker);
    }
  }
  return s.imageId!;
}

/**
 * Splits each package layer under max_layer_size, keeping the split of the
 * last image while each part fits: that of the published image (what nodes
 * hold), else of the store's image of this distribution, else of the newest
 * store image with that layer (so the layer shared by several distributions
 * is split alike in all of them).
 */
function splitLayers(s: BuildState): void {
  const previous: Record<string, string[]> = {};
  const take = (labels: Record<string, string> | null | undefined) => {
    for (const [layer, bounds] of Object.entries(readPartsLabel(labels?.[LAYER_PARTS_LABEL]))) previous[layer] ??= bounds;
  };
  const labelsOf = (image: OciImage | undefined) => {
    try {
      return image ? (JSON.parse(image.config.toString('utf8')) as { config?: { Labels?: Record<string, string> | null } }).config?.Labels : undefined;
    } catch {
      return undefined;
    }
  };
  if (s.published?.found) take(s.published.published.labels);
  take(labelsOf(s.store.resolve(`${repositoryOf(s)}:${s.distribution.name}`)));
  for (const e of [...s.store.entries()].reverse()) {
    if (!e.annotations[LAYER_KEYS_LABEL]) continue;
    try { take(labelsOf(s.store.image(e.digest))); } catch { /* pruned meanwhile */ }
  }
  const cacheDir = cacheDirOf(s);
  s.split = s.merge!.contributions.map((c) => ({ layer: c.name, ...c.split(s.distribution.maxLayerSize, previous[c.name], (k) => cachedSizes(cacheDir, k)?.tarBytes) }));
}

/** Which build-time check ran: the image started in the engine, its server in-process, or none since the same image passed one before. */
export type CheckKind = 'container' | 'in-process' | 'checked before';

/** The store's note on a named image: which check its bytes passed. */
const CHECKED_ANNOTATION = 'org.elastic.package-registry.checked';

function checkedBefore(store: OciStore, image: OciImage): boolean {
  return store.entries().some((e) => e.digest === image.manifestDescriptor.digest && !!e.annotations[CHECKED_ANNOTATION]);
}

/** Bytes of an image as a registry stores it: its compressed layers. */
function storedBytes(image: OciImage): number {
  return image.layers.reduce((n, l) => n + l.size, 0);
}

/** A lite build: its size against the full image of the distribution it selects from (the engine's, else the store's). */
export async function measureLite(s: BuildState, docker: Docker | undefined): Promise<LiteSizes> {
  const sel = s.distribution.select;
  if (!sel || !s.merge || !s.image) throw new Error('a lite distribution, built');
  const fromRef = `${s.opts.repository ?? sel.fromRepository ?? s.distribution.repository}:${sel.from}`;
  // the package layers' own figures, as the summaries of both builds give them
  const layers = (own: LayerSaving[], from: Record<string, Omit<LayerSaving, 'layer'>>) => {
    const full = Object.values(from);
    return {
      written: own.reduce((n, l) => n + l.tarBytes, 0),
      treeBytes: own.reduce((n, l) => n + l.treeBytes, 0),
      ...(full.length ? { fromWritten: full.reduce((n, l) => n + l.tarBytes, 0), fromTreeBytes: full.reduce((n, l) => n + l.treeBytes, 0) } : {}),
    };
  };
  const own = s.savings ?? [];
  if (docker && s.engineImageId) {
    const [lite, full] = [await inspectImage(docker, s.engineImageId), await inspectImage(docker, fromRef)];
    s.lite = { from: sel.from, fromRef, selected: s.merge.served.length, total: s.merge.available, bytes: lite?.Size ?? 0, fromBytes: full?.Size, ...layers(own, readSavingsLabel(full?.Config?.Labels?.[LAYER_SIZES_LABEL])) };
  } else {
    const full = s.store.resolve(fromRef);
    const labels = full ? (JSON.parse(full.config.toString('utf8')) as { config?: { Labels?: Record<string, string> | null } }).config?.Labels : undefined;
    s.lite = { from: sel.from, fromRef, selected: s.merge.served.length, total: s.merge.available, bytes: storedBytes(s.image), fromBytes: full ? storedBytes(full) : undefined, ...layers(own, readSavingsLabel(labels?.[LAYER_SIZES_LABEL])) };
  }
  return s.lite;
}

/** Points every tag at the new image, in the store and in the engine, remembering where each pointed before. */
export async function applyTags(s: BuildState, docker: Docker | undefined): Promise<void> {
  if (!s.image) throw new Error('build first');
  const annotations = { [LAYER_KEYS_LABEL]: s.plan?.labelEntries.join(',') ?? '', ...(s.check ? { [CHECKED_ANNOTATION]: s.check } : {}) };
  for (const ref of s.tags) {
    s.previous.set(ref, docker ? (await inspectImage(docker, ref))?.Id : undefined);
    s.previousInStore.set(ref, s.store.resolve(ref)?.manifestDescriptor.digest);
  }
  for (const ref of s.tags) {
    s.store.tag(ref, s.image, annotations);
    if (docker && s.engineImageId) await tagImage(docker, s.engineImageId, ref);
  }
  await dropTempTag(s, docker);
  // images older than the newest few go from the store, with the blobs only they used; this build's tags and base stay
  s.store.prune(KEEP_STORE_IMAGES, new Set([...s.tags, ...s.baseNames]));
}

/** Named images the store keeps (base images included): enough for every distribution's last builds and their delta bases. */
export const KEEP_STORE_IMAGES = 24;

/** Removes the temporary build tag; without other tags (a failed step) the image goes with it. */
export async function dropTempTag(s: BuildState, docker: Docker | undefined): Promise<void> {
  if (!s.tempTag) return;
  s.store.untag(s.tempTag);
  if (docker) await untag(docker, s.tempTag).catch(() => undefined);
  s.tempTag = undefined;
}

/** Puts the tags back where they were (after a refused push). */
export async function restoreTags(s: BuildState, docker: Docker | undefined): Promise<void> {
  for (const [ref, prev] of s.previousInStore) {
    if (prev) s.store.tag(ref, s.store.image(prev));
    else s.store.untag(ref);
  }
  if (!docker) return;
  for (const [ref, prev] of s.previous) {
    if (prev) await tagImage(docker, prev, ref);
    else await untag(docker, ref);
  }
}

/**
 * Pushes the image straight from the store to its registry (no engine):
 * every blob the registry lacks, then a manifest per tag; and the base image
 * next to it, where a --no-engine build looks for it. A push that fails
 * leaves no tag on a partial image (manifests go last) and the local tags
 * where they were.
 */
export async function pushTags(s: BuildState, docker: Docker | undefined): Promise<PushReport> {
  if (!s.image || !s.base) throw new Error('build first');
  try {
    const refs = s.tags.map((t) => parseReference(t));
    const baseRef = parseReference(registryBaseRef(repositoryOf(s), s.distribution.baseImage));
    const opts = { insecureRegistries: s.opts.insecureRegistries, onProgress: s.opts.log };
    const baseReport = await pushImage(s.base.image, s.store, [baseRef], opts);
    const report = await pushImage(s.image, s.store, refs, opts);
    for (const ref of s.tags) s.pushed.push({ ref, digest: report.manifestDigest });
    s.pushReport = { ...report, blobsSent: report.blobsSent + baseReport.blobsSent, bytesSent: report.bytesSent + baseReport.bytesSent };
    s.pushedBase = formatReference(baseRef);
    return s.pushReport;
  } catch (err) {
    await restoreTags(s, docker).catch(() => undefined);
    if (err instanceof EngineOperationError) throw err;
    throw new EngineOperationError(`push ${s.tags[0] ?? repositoryOf(s)} failed: ${(err as Error).message.split('\n')[0]}`);
  }
}

export function cleanup(s: BuildState): void {
  removeTree(s.work);
}

export interface BuildSummary {
  distribution: string;
  image: string;
  tags: string[];
  commit: string;
  packages: number;
  packagesDigest: string;
  /** per package layer: what it holds against its tree (files, distinct files, bytes written vs the tree's), its parts and the biggest */
  layers: Array<{ name: string; packages: number; commit: string; origin: string } & Partial<Omit<LayerSaving, 'layer'>> & { bounds?: string[] }>;
  /** package versions larger than max_layer_size: each went into an image layer of its own */
  oversized?: Array<{ layer: string; name: string; version: string; bytes: number }>;
  maxLayerSize: number;
  /** layers with uncommitted changes: no commit or version tag was given */
  dirtyLayers: string[];
  shadowed: number;
  shadowedDiffering: number;
  /** the shadow report's entries (also in the image at /package-registry/shadow-report.json) */
  shadowReport: ShadowEntry[];
  baseImage: string;
  baseBuilt: boolean;
  pushed: Array<{ ref: string; digest?: string }>;
  saved?: SavedBundle;
  /** a lite distribution: kept versions of the available ones, image size against the full image */
  lite?: LiteSizes;
  /** what this build changes against the last published image (none: nothing published yet) */
  vsPublished?: { ref: string; source: 'local' | 'registry'; image: string; added: number; removed: number; changed: number; sizeDelta: number; diff: PackageDiff };
  /** the layers below the top were taken on trust: confirmed, or the image was made again */
  speculation?: 'confirmed' | 'redone';
  /** package layers sent to the engine, and reused from it unchanged */
  layersSent?: number;
  layersReused?: number;
  /** the top package layer went as a delta: on which full layer (chain key), what it changes, its size against the full layer's */
  delta?: PlannedLayers['delta'];
  /** the image in the builder's store: its manifest digest and compressed size */
  digest: string;
  storedBytes: number;
  /** layers this build packed into the store (the others were there) */
  packed: { layers: number; bytes: number };
  /** how the image went into the engine (none: --no-engine) */
  engine?: LoadResult;
  /** which build-time check ran */
  check: CheckKind;
  /** what --push sent */
  push?: PushReport;
  pushedBase?: string;
  /** seconds per step */
  timings: Record<string, number>;
  seconds: number;
}

export function summarise(s: BuildState, seconds: number, imageSize?: number): BuildSummary {
  const m = s.merge!;
  const pub = s.published?.found ? s.published.published : undefined;
  const diff = pub ? (s.policy?.diff ?? diffPackages(pub.list.packages, m.served)) : undefined;
  return {
    distribution: s.distribution.name,
    image: s.imageId!,
    tags: s.tags,
    commit: s.commit!,
    packages: m.served.length,
    packagesDigest: m.packagesDigest,
    layers: s.layers.map((l, i) => {
      const { layer: _, ...saving } = s.savings?.[i] ?? { layer: '' };
      return { name: l.name, packages: m.contributions[i].packages.length, commit: l.commit, origin: l.origin, ...saving, bounds: s.split?.[i]?.bounds };
    }),
    oversized: s.split?.flatMap((x) => x.oversized.map((o) => ({ layer: x.layer, ...o }))),
    maxLayerSize: s.distribution.maxLayerSize,
    dirtyLayers: s.dirtyLayers,
    shadowed: m.report.shadowed.length,
    shadowedDiffering: m.report.shadowed.filter((x) => x.differs).length,
    shadowReport: m.report.shadowed,
    baseImage: `${BASE_REPOSITORY}:${s.baseTag}`,
    baseBuilt: s.baseBuilt,
    pushed: s.pushed,
    lite: s.lite,
    vsPublished: pub && diff ? {
      ref: pub.ref, source: pub.source, image: pub.image, added: diff.added.length, removed: diff.removed.length, changed: diff.changed.length, sizeDelta: (imageSize ?? pub.size) - pub.size, diff,
    } : undefined,
    speculation: s.speculation,
    layersSent: s.plan?.sent.length,
    layersReused: s.plan?.reused.length,
    delta: s.plan?.delta,
    digest: s.image!.manifestDescriptor.digest,
    storedBytes: storedBytes(s.image!),
    packed: s.packed ?? { layers: 0, bytes: 0 },
    engine: s.engineLoad,
    check: s.check ?? 'container',
    push: s.pushReport,
    pushedBase: s.pushedBase,
    timings: s.timings,
    seconds,
  };
}

export interface SavedBundle {
  file: string;
  bytes: number;
  /** an update bundle: the size of the full bundle it stands for, and what it left out */
  fullBytes?: number;
  since?: string;
  blobsLeftOut?: number;
}

/**
 * What `--since` names, read before the build moves any name: a tag this
 * build moves (`<repo>:snapshot`) means the image it named before. An engine
 * image is pinned by its ID; which of the new layers it holds is known only
 * once they are made (saveBundle).
 */
export async function pinSince(since: string, store: OciStore, docker: Docker | undefined, registry: { insecureRegistries?: string[] }): Promise<SinceSet> {
  return sinceSet(since, { store, docker, registry, images: [] });
}

/** Writes one bundle of every image built (every tag), from the store; with `since` (pinned before the build), without the blobs the site holds. */
export async function saveBundle(states: BuildState[], file: string, opts: { since?: SinceSet; docker?: Docker; log: (line: string) => void }): Promise<SavedBundle> {
  const images = states.filter((s) => s.image).map((s) => ({ image: s.image!, tags: s.tags }));
  const store = states[0].store;
  let since = opts.since;
  if (since?.from === 'engine' && opts.docker) {
    since = await engineSince(opts.docker, since.source, since.images[0].name, since.images[0].manifest, { store, images: images.map((i) => i.image) }) ?? since;
  }
  const r = await writeBundle(file, images, store, { exclude: since?.digests, since: since ? [since] : undefined, onProgress: opts.log });
  return { file, bytes: r.bytes, ...(since ? { fullBytes: r.fullBytes, since: since.source, blobsLeftOut: r.blobsLeftOut } : {}) };
}
