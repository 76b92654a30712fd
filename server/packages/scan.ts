import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { byteCompare, listFolders, type FolderListings } from './source.js';

/** What one package path holds: package directories and zip files, in a stable order. */
export interface ScanResult {
  directories: string[];
  zips: string[];
}

const SKIP_DIRS = new Set(['.git', 'node_modules']);

function skipped(name: string): boolean {
  return SKIP_DIRS.has(name) || name.startsWith('.');
}

/** A package folder: named after a version, with a manifest.yml. */
function isPackageFolder(name: string, hasManifest: () => boolean): boolean {
  return semver.valid(name) !== null && hasManifest();
}

/**
 * Finds packages below `root` at any depth: `<name>/<version>/manifest.yml`
 * directories and `*.zip` files. A package directory is not searched further.
 * Folders already listed (`listed`) are not read again.
 */
export function scanPackagePath(root: string, listed?: FolderListings): ScanResult {
  const result: ScanResult = { directories: [], zips: [] };
  const visit = (dir: string) => {
    const entries = (listed?.get(dir) ?? fs.readdirSync(dir, { withFileTypes: true })).sort((a, b) => byteCompare(a.name, b.name));
    for (const e of entries) {
      const abs = path.join(dir, e.name);
      const isDir = e.isDirectory() || (e.isSymbolicLink() && safeIsDir(abs));
      if (isDir) {
        if (skipped(e.name)) continue;
        if (isPackageFolder(e.name, () => fs.existsSync(path.join(abs, 'manifest.yml')))) result.directories.push(abs);
        else visit(abs);
      } else if (e.name.endsWith('.zip') && (e.isFile() || e.isSymbolicLink())) {
        result.zips.push(abs);
      }
    }
  };
  visit(root);
  return result;
}

function safeIsDir(p: string): boolean {
  try { return fs.statSync(p).isDirectory(); } catch { return false; }
}

/** Lists, all at once (see listFolders), the folders scanPackagePath reads: down to the package folders. */
export function listScanFolders(root: string): Promise<FolderListings> {
  return listFolders(root, {
    descend: (dir, entries) => !isPackageFolder(path.basename(dir), () => entries.some((e) => e.name === 'manifest.yml')),
    include: (name) => !skipped(name),
  });
}
