import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * Removes a folder and all it holds. Node's recursive rmSync tries to remove
 * each folder before it reads it, and on a tree of 100,000 entries (an
 * unpacked production layer) that took two minutes where the system's
 * `rm -rf` takes seconds; rmSync stays the fallback where there is no rm.
 */
export function removeTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const r = spawnSync('rm', ['-rf', '--', dir], { stdio: 'ignore', timeout: 600_000 });
  if (r.status === 0 && !fs.existsSync(dir)) return;
  fs.rmSync(dir, { recursive: true, force: true });
}
