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
import { describeShadows, mergeLayers, type MergeResult, type ShadowEntry } from './merge.js';
import { defaultCacheDir } from './package-cache.js';
import { assembleImage, LAYER_KEYS_LABEL, readBaseImage } from './assemble.js';
import { planLayers, type PlannedLayers } from './layer-plan.js';
import { checkImageStarts, type StartCheck } from './image-check.js';
import { DockerfileError, parseDistributionDockerfile, type DistributionDockerfile } from './dockerfile.js';
import { withParents, type TarEntry } from './tar.js';
import { selectVersions, type LiteSizes } from './lite.js';
import { imageLabels, imageTags, stackVersions } from './tags.js';
import { buildImage, inspectImage, pushImage, tagImage, untag } from './image.js';
import { LABEL_PREFIX } from './tags.js';
import { checkStagePolicy, PolicyViolationError, type PolicyFlags, type PolicyResult } from './stages/policy.js';
import { bakedList, readPublished, type PublishedFrom, type PublishedLookup } from './stages/published.js';
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
  /** the builder's cache (packages, git trees, base image configs); default defaultCacheDir() */
  cacheDir?: string;
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
  /** the image's own server, started by the builder before anything is tagged */
  startCheck?: StartCheck;
  /** seconds per step of the image build: where the time goes */
  timings: Record<string, number>;
  /** what that check found: the image was kept, or made again from the files */
  speculation?: 'confirmed' | 'redone';
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
  return {
    distribution,
    opts,
    work: fs.mkdtempSync(path.join(os.tmpdir(), `epr-build-${distribution.name}-`)),
    layers: [],
    stackVersions: [],
    dirtyLayers: [],
    tags: [],
    baseBuilt: false,
    previous: new Map(),
    pushed: [],
    timings: {},
  };
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
export async function checkPolicy(s: BuildState, docker: Docker): Promise<string> {
  if (!s.merge) throw new Error('merge first');
  const ref = `${repositoryOf(s)}:${s.distribution.name}`;
  s.published = await readPublished(docker, ref, s.opts.publishedFrom ?? 'auto');
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

/** Builds package-registry:<version>-<digest> unless it exists (or --no-cache: then once per run). */
export async function ensureBaseImage(s: BuildState, docker: Docker): Promise<string> {
  // one base per run and Node image: `build --all` keeps one base even if server/ changes meanwhile
  const tag = baseForRun.get(s.distribution.baseImage) ?? baseImageTag(s.distribution.baseImage, (await inspectImage(docker, s.distribution.baseImage))?.Id);
  baseForRun.set(s.distribution.baseImage, tag);
  const ref = `${BASE_REPOSITORY}:${tag}`;
  s.baseTag = tag;
  if ((!s.opts.noCache || builtThisRun.has(ref)) && await inspectImage(docker, ref)) return `${ref} present`;
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
    return `${ref} built`;
  } finally {
    await untag(docker, temp).catch(() => undefined);
  }
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
  const l = [...s.layers].reverse().find((x) => x.commit === s.commit);
  const r = s.commit && s.commit !== 'unknown' ? git(l?.repo ?? PROJECT_ROOT, ['show', '-s', '--format=%cI', s.commit]) : undefined;
  const t = r?.ok ? new Date(r.out) : new Date();
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
 * The image, put together from the base image, the package layers (those the
 * engine holds from an earlier build are reused, the others streamed from
 * the package folders) and what Dockerfile.distribution adds; then started
 * once with no network as the build-time check.
 */
export async function buildDistributionImage(s: BuildState, docker: Docker): Promise<string> {
  if (!s.merge || !s.baseTag || !s.commit) throw new Error('merge and base image first');
  const merge = s.merge;
  const df = parseDistributionDockerfile(fs.readFileSync(DOCKERFILE, 'utf8'));
  const base = await timed(s, 'base image config', () => readBaseImage(docker, `${BASE_REPOSITORY}:${s.baseTag}`, cacheDirOf(s)));
  const planned = await timed(s, 'find reusable layers', () => planLayers(docker, base, merge.contributions, { reuse: !s.opts.noCache, delta: !s.opts.noCache && !s.opts.noDelta, cacheDir: cacheDirOf(s) }));
  s.plan = planned;

  const labels = imageLabels({
    distribution: s.distribution.name,
    commit: s.commit,
    stackVersions: s.stackVersions,
    registryVersion: SERVICE_VERSION,
    baseImage: `${BASE_REPOSITORY}:${s.baseTag}`,
    packageCount: merge.served.length,
    packagesDigest: merge.packagesDigest,
    layers: s.layers.map((l) => ({ name: l.name, commit: l.commit, origin: l.origin, dirty: l.dirty })),
  });
  const reason = s.opts.policyFlags?.reason?.trim();
  if (s.policy?.overrides.length) labels[`${LABEL_PREFIX}.policy-overrides`] = s.policy.overrides.join(',');
  if (reason) labels[`${LABEL_PREFIX}.policy-reason`] = reason;
  labels['package-registry'] = s.baseTag;
  labels[LAYER_KEYS_LABEL] = planned.labelEntries.join(',');
  const context = writeContext(s);

  // the temporary tag keeps the image alive until the real tags are on it
  s.tempTag = `${TEMP_REPOSITORY}:${s.distribution.name}-${crypto.randomBytes(6).toString('hex')}`;
  const tag = s.tempTag;
  let failure: unknown;
  try {
    s.imageId = await timed(s, 'package layers and Dockerfile.distribution (docker load)', () => assembleImage(docker, {
      base,
      reused: planned.reused,
      layers: planned.sent,
      top: topEntries(df, context),
      env: df.env,
      topHistory: df.history,
      labels: { ...Object.fromEntries(df.labels), ...labels },
      created: commitTime(s),
      tag,
      onProgress: s.opts.log,
    }));
    const imageId = s.imageId;
    s.startCheck = await timed(s, 'start check', () => checkImageStarts(docker, imageId, { versions: merge.served.length, paths: s.layers.length }));
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
      await validateAndMerge(s, { trust: false });
      await checkPolicy(s, docker);
      return buildDistributionImage(s, docker);
    }
  }
  return s.imageId!;
}

/** A lite build: its size against the full image of the distribution it selects from, if that is in the engine. */
export async function measureLite(s: BuildState, docker: Docker): Promise<LiteSizes> {
  const sel = s.distribution.select;
  if (!sel || !s.merge || !s.imageId) throw new Error('a lite distribution, built');
  const fromRef = `${s.opts.repository ?? sel.fromRepository ?? s.distribution.repository}:${sel.from}`;
  const [lite, full] = [await inspectImage(docker, s.imageId), await inspectImage(docker, fromRef)];
  s.lite = { from: sel.from, fromRef, selected: s.merge.served.length, total: s.merge.available, bytes: lite?.Size ?? 0, fromBytes: full?.Size };
  return s.lite;
}

/** Points every tag at the new image, remembering where each pointed before. */
export async function applyTags(s: BuildState, docker: Docker): Promise<void> {
  if (!s.imageId) throw new Error('build first');
  for (const ref of s.tags) s.previous.set(ref, (await inspectImage(docker, ref))?.Id);
  for (const ref of s.tags) await tagImage(docker, s.imageId, ref);
  await dropTempTag(s, docker);
}

/** Removes the temporary build tag; without other tags (a failed step) the image goes with it. */
export async function dropTempTag(s: BuildState, docker: Docker): Promise<void> {
  if (!s.tempTag) return;
  await untag(docker, s.tempTag).catch(() => undefined);
  s.tempTag = undefined;
}

/** Puts the tags back where they were (after a refused push). */
export async function restoreTags(s: BuildState, docker: Docker): Promise<void> {
  for (const [ref, prev] of s.previous) {
    if (prev) await tagImage(docker, prev, ref);
    else await untag(docker, ref);
  }
}

export async function pushTags(s: BuildState, docker: Docker): Promise<void> {
  try {
    for (const ref of s.tags) s.pushed.push({ ref, digest: await pushImage(docker, ref, s.opts.log) });
  } catch (err) {
    await restoreTags(s, docker).catch(() => undefined);
    throw err;
  }
}

export function cleanup(s: BuildState): void {
  fs.rmSync(s.work, { recursive: true, force: true });
}

export interface BuildSummary {
  distribution: string;
  image: string;
  tags: string[];
  commit: string;
  packages: number;
  packagesDigest: string;
  layers: Array<{ name: string; packages: number; commit: string; origin: string }>;
  /** layers with uncommitted changes: no commit or version tag was given */
  dirtyLayers: string[];
  shadowed: number;
  shadowedDiffering: number;
  /** the shadow report's entries (also in the image at /package-registry/shadow-report.json) */
  shadowReport: ShadowEntry[];
  baseImage: string;
  baseBuilt: boolean;
  pushed: Array<{ ref: string; digest?: string }>;
  saved?: { file: string; bytes: number };
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
    layers: s.layers.map((l, i) => ({ name: l.name, packages: m.contributions[i].packages.length, commit: l.commit, origin: l.origin })),
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
    timings: s.timings,
    seconds,
  };
}
