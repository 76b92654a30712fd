#!/usr/bin/env node
import path from 'node:path';
import { loadPackagePath } from './packages/index.js';
import { writeBakedIndex } from './packages/baked.js';
import { formatProblem } from './packages/validate.js';

/**
 * Writes the baked index of each package path given: every package is read
 * and validated first, and nothing is written for a path with problems.
 *   node dist/server/bake.js <package path>...
 */
async function main(args: string[]): Promise<number> {
  if (args.length === 0 || args.includes('--help') || args.includes('-h')) {
    process.stdout.write('Usage: node dist/server/bake.js <package path>...\nValidates every package of each path and writes <path>/.epr-index for a fast start.\n');
    return args.length === 0 ? 2 : 0;
  }
  let failed = 0;
  for (const arg of args) {
    const root = path.resolve(arg);
    const { packages, failures } = await loadPackagePath(root, { validate: true });
    if (failures.length > 0) {
      failed++;
      process.stderr.write(`${root}: not baked, ${failures.length} package(s) with problems:\n${failures.flatMap((f) => f.problems.map((p) => `  - ${formatProblem(p)}\n`)).join('')}`);
      continue;
    }
    const file = writeBakedIndex(root, packages);
    process.stdout.write(`${file}: ${packages.length} packages\n`);
  }
  return failed > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e: Error) => { process.stderr.write(`error: ${e.message}\n`); process.exitCode = 1; });
