import fs from 'node:fs';
import { distributionFile, loadDistribution } from '../distribution.js';
import { engine, ensureEngine, EngineOperationError } from '../image.js';
import { diffDetails, diffLine, diffPackages } from './diff.js';
import { readPublished, type PublishedFrom, type PublishedImage } from './published.js';
import { eachArg } from '../args.js';
import { formatBytes, LAYER_SIZES_LABEL, readSavingsLabel, type LayerSaving } from '../merge.js';

/**
 * diff:distribution <A> <B>: what B serves that A does not (added), what it
 * no longer serves (removed), what it serves with other content (changed),
 * and the image size delta. Both lists are the ones baked into the images.
 */

export class DiffUsageError extends Error {}

export const DIFF_HELP = `Usage: diff <image A> <image B> [--source auto|local|registry] [--repository <repo>] [--json]

Compares the package lists baked into two distribution images
(/package-registry/packages.json): versions added, removed and changed
(other content hash), and the image size delta, from A to B.

An image is a full reference (127.0.0.1:5000/epr/distribution:staging), an
image id (sha256:...), or a bare tag: "staging" means <repository>:staging,
where <repository> is --repository, else the image.repository of
distributions/staging.yml if there is one, else that of production.yml
(so "production", "snapshot", a commit hash or "8.15.0" all work).

Options:
  --source <where>       auto (default): the local engine, else pull from the
                         registry; local: never pull; registry: always pull
                         (the local tag is put back afterwards)
  --repository <repo>    repository for bare tags
  --json                 print one JSON object
  -h, --help             show this help

Exit codes: 0 compared, 1 failed (an image is missing or has no package list), 2 usage error.
`;

/** A bare tag -> <repository>:<tag>; anything with '/', ':' or '@' is used as it is. */
export function resolveImageRef(text: string, repository?: string, exists: (f: string) => boolean = fs.existsSync): string {
  if (/[/:@]/.test(text)) return text;
  if (repository) return `${repository}:${text}`;
  const own = distributionFile(text);
  const definition = /^[a-z0-9][a-z0-9_-]*$/.test(text) && exists(own) ? text : 'production';
  return `${loadDistribution(definition).repository}:${text}`;
}

interface DiffArgs { refs: string[]; source: PublishedFrom; repository?: string; json: boolean; help: boolean }

function parseDiffArgs(argv: string[]): DiffArgs {
  const a: DiffArgs = { refs: [], source: 'auto', json: false, help: false };
  eachArg(argv, DiffUsageError, (arg, value) => {
    if (arg === '--help' || arg === '-h') a.help = true;
    else if (arg === '--json') a.json = true;
    else if (arg === '--repository' || arg.startsWith('--repository=')) a.repository = value('--repository');
    else if (arg === '--source' || arg.startsWith('--source=')) {
      const v = value('--source');
      if (v !== 'auto' && v !== 'local' && v !== 'registry') throw new DiffUsageError(`--source is auto, local or registry, not "${v}"`);
      a.source = v;
    } else if (arg.startsWith('-')) throw new DiffUsageError(`unknown option ${arg} (see diff --help)`);
    else a.refs.push(arg);
  });
  if (!a.help && a.refs.length !== 2) throw new DiffUsageError('diff wants two images: diff <image A> <image B> (see diff --help)');
  return a;
}

export async function diffCommand(argv: string[]): Promise<number> {
  const args = parseDiffArgs(argv);
  if (args.help) { process.stdout.write(DIFF_HELP); return 0; }
  const docker = engine();
  await ensureEngine(docker);
  const images: PublishedImage[] = [];
  for (const text of args.refs) {
    const ref = resolveImageRef(text, args.repository);
    const r = await readPublished(docker, ref, args.source);
    if (!r.found) throw new EngineOperationError(`cannot read the package list of ${text}: ${r.why}`);
    images.push(r.published);
  }
  const [a, b] = images;
  const d = diffPackages(a.list.packages, b.list.packages);
  const sizeDelta = b.size - a.size;
  const side = (p: PublishedImage) => ({
    ref: p.ref, image: p.image, source: p.source, size: p.size, distribution: p.list.distribution, packages: p.list.packages.length, packagesDigest: p.list.packagesDigest,
    // each package layer's figures as its build summary gave them (none for an image built before they were recorded)
    layers: readSavingsLabel(p.labels[LAYER_SIZES_LABEL]),
  });
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ a: side(a), b: side(b), added: d.added, removed: d.removed, changed: d.changed, unchanged: d.unchanged, sizeDelta })}\n`);
    return 0;
  }
  process.stdout.write(`${a.ref} (${a.image.slice(7, 19)}) -> ${b.ref} (${b.image.slice(7, 19)}): ${diffLine(d, sizeDelta)}, ${d.unchanged} unchanged\n`);
  for (const l of layerSizeLines(side(a).layers, side(b).layers)) process.stdout.write(`  ${l}\n`);
  for (const l of diffDetails(d)) process.stdout.write(`  ${l}\n`);
  return 0;
}

type Figures = Omit<LayerSaving, 'layer'>;
const mb = formatBytes;
const figures = (f: Figures | undefined) => (f ? `${mb(f.tarBytes)} written for ${mb(f.treeBytes)} of files, ${f.parts} part${f.parts === 1 ? '' : 's'} (biggest ${mb(f.biggestPart)})` : 'none');

/** One line per package layer of either image: what it wrote against its files, A -> B. */
export function layerSizeLines(a: Record<string, Figures>, b: Record<string, Figures>): string[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return names.map((n) => `layer ${n}: ${figures(a[n])} -> ${figures(b[n])}`);
}
