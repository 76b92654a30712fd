import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { scanPackagePath } from '../../server/packages/scan.js';
import { relativePath } from '../../server/packages/source.js';
import { BAKED_INDEX_FILE } from '../../server/packages/baked.js';
import { copiesIn, versionsIn, PromotionError, type AddReceipt, type LocalCopy, type PackageCopy, type StageLayer } from './layer.js';
import type { PackageId } from './stages.js';

/**
 * A stage layer that is a folder. Every change goes through a hidden temporary
 * name in the same folder and a rename, so the registry's scanner (which skips
 * dot-names) never sees half a package: a copy is either all there or absent.
 */
export class DirectoryLayer implements StageLayer {
  readonly kind = 'directory' as const;

  constructor(readonly stage: string, readonly root: string) {}

  get origin(): string { return this.root; }

  preflight(): void {
    if (!fs.existsSync(this.root) || !fs.statSync(this.root).isDirectory()) {
      throw new PromotionError('layer-missing', `the ${this.stage} layer folder ${this.root} does not exist`);
    }
  }

  /** What the registry's scanner sees, as layer-relative paths: package manifests, zips and their signatures. */
  private scanned(): string[] {
    const found = scanPackagePath(this.root);
    const rel = (abs: string) => relativePath(this.root, abs);
    return [
      ...found.directories.map((d) => `${rel(d)}/manifest.yml`),
      ...found.zips.flatMap((z) => (fs.existsSync(`${z}.sig`) ? [rel(z), `${rel(z)}.sig`] : [rel(z)])),
    ];
  }

  find(id: PackageId): PackageCopy[] { return copiesIn(this.scanned(), id); }
  versions(name: string): string[] { return versionsIn(this.scanned(), name); }

  /** A baked index no longer matches the folder: the server would scan it (with a warning) until it is baked again. */
  private bakedNote(): string {
    const baked = path.join(this.root, BAKED_INDEX_FILE);
    return fs.existsSync(baked) ? `; ${baked} is now out of date, bake it again (node dist/server/bake.js ${this.root})` : '';
  }

  private abs(rel: string): string {
    return path.join(this.root, ...rel.split('/'));
  }

  async readCopy(copy: PackageCopy): Promise<LocalCopy> {
    const location = this.abs(copy.rel);
    return { copy, location, signatureFile: copy.signature ? `${location}.sig` : undefined, release: () => {} };
  }

  describeAdd(copy: PackageCopy): string {
    return `copy to ${this.abs(copy.rel)}${copy.kind === 'zip' && copy.signature ? ' (+ .sig)' : ''}`;
  }

  describeRemove(copy: PackageCopy): string {
    return `delete ${this.abs(copy.rel)}${copy.kind === 'zip' && copy.signature ? ' (+ .sig)' : ''}`;
  }

  async add(from: LocalCopy): Promise<AddReceipt> {
    const dest = this.abs(from.copy.rel);
    const parent = path.dirname(dest);
    // the folders made here (e.g. <name>/ for a new package) go again on undo
    const firstNew = fs.mkdirSync(parent, { recursive: true });
    const placed: string[] = [];
    const undo = async () => {
      // the zip goes before its signature, the folder through a hidden name: never half a package
      for (const p of placed.reverse()) await removeAtomically(p);
      if (firstNew) removeEmptyDirs(parent, path.dirname(firstNew));
      return `removed the copy from ${this.stage} again (${dest})`;
    };
    try {
      if (from.copy.kind === 'zip') {
        if (from.signatureFile) {
          const sigDest = `${dest}.sig`;
          if (fs.existsSync(sigDest)) {
            // left by an interrupted promotion: fine when it is the same signature
            if (!fs.readFileSync(sigDest).equals(fs.readFileSync(from.signatureFile))) {
              throw new PromotionError('conflict', `${sigDest} already exists with another signature; remove it or promote by hand`);
            }
          } else {
            await placeByRename(from.signatureFile, sigDest, false);
            placed.push(sigDest);
          }
        }
        if (fs.existsSync(dest)) throw new PromotionError('conflict', `${dest} already exists`);
        await placeByRename(from.location, dest, false);
        placed.push(dest);
      } else {
        if (fs.existsSync(dest)) throw new PromotionError('conflict', `${dest} already exists but is not a package of that name and version; tidy the ${this.stage} layer first`);
        await placeByRename(from.location, dest, true);
        placed.push(dest);
      }
    } catch (err) {
      await undo();
      if (err instanceof PromotionError) throw err;
      throw new PromotionError('io', `copying to ${dest} failed: ${(err as Error).message}`);
    }
    return { detail: `copied to ${dest}${from.signatureFile ? ' (+ .sig)' : ''}${this.bakedNote()}`, undo };
  }

  async remove(copy: PackageCopy): Promise<{ detail: string }> {
    const location = this.abs(copy.rel);
    await removeAtomically(location);
    if (copy.kind === 'zip' && copy.signature) fs.rmSync(`${location}.sig`, { force: true });
    // a package folder <name>/<version>: drop <name>/ too when it was the last version
    if (copy.kind === 'directory') removeEmptyDirs(path.dirname(location), this.root);
    return { detail: `deleted ${location}${copy.kind === 'zip' && copy.signature ? ' (+ .sig)' : ''}${this.bakedNote()}` };
  }
}

function hiddenSibling(p: string, what: string): string {
  return path.join(path.dirname(p), `.${path.basename(p)}.${what}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
}

/** Copies `from` to a hidden name next to `dest`, then renames it into place. */
async function placeByRename(from: string, dest: string, recursive: boolean): Promise<void> {
  const tmp = hiddenSibling(dest, 'promote');
  try {
    if (recursive) await fs.promises.cp(from, tmp, { recursive: true, dereference: true, errorOnExist: true, force: false });
    else await fs.promises.copyFile(from, tmp, fs.constants.COPYFILE_EXCL);
    await fs.promises.rename(tmp, dest);
  } catch (err) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Renames to a hidden name first (one atomic step out of the scanner's view), then deletes. */
async function removeAtomically(p: string): Promise<void> {
  if (!fs.existsSync(p)) return;
  const tmp = hiddenSibling(p, 'removing');
  await fs.promises.rename(p, tmp);
  await fs.promises.rm(tmp, { recursive: true, force: true });
}

/** Removes `dir` and its parents while they are empty, up to (not including) `stop`. */
function removeEmptyDirs(dir: string, stop: string): void {
  let d = dir;
  while (d !== stop && d.startsWith(stop + path.sep)) {
    try {
      if (fs.readdirSync(d).length > 0) return;
      fs.rmdirSync(d);
    } catch {
      return;
    }
    d = path.dirname(d);
  }
}
