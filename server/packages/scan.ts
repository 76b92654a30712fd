import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { byteCompare } from './source.js';

/** What one package path holds: package directories and zip files, in a stable order. */
export interface ScanResult {
  directories: string[];
  zips: string[];
}

const SKIP_DIRS = new Set(['.git', 'node_modules']);

/**
 * Finds packages below `root` at any depth: `<name>/<version>/manifest.yml`
 * directories and `*.zip` files. A package directory is not searched further.
 */
export function scanPackagePath(root: string): ScanResult {
  const result: ScanResult = { directories: [], zips: [] };
  const visit = (dir: string) => {
    const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => byteCompare(a.name, b.name));
    for (const e of entries) {
      const abs = path.join(dir, e.name);
      const isDir = e.isDirectory() || (e.isSymbolicLink() && safeIsDir(abs));
      if (isDir) {
        if (SKIP_DIRS.has(e.name) || e.name.startsWith('.')) continue;
        if (semver.valid(e.name) && fs.existsSync(path.join(abs, 'manifest.yml'))) result.directories.push(abs);
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
