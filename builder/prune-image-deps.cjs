// Run inside the base image's build stage (Dockerfile.base), after
// `npm prune --omit=dev`: removes from node_modules every package that only
// the image builder needs. Offline and without npm: it follows the installed
// packages' own `dependencies`/`optionalDependencies`/`peerDependencies` from
// the project's dependencies minus the ones named on the command line, and
// deletes the packages nothing kept reaches.
//   node prune-image-deps.cjs <project dir> <dep> [<dep>...]
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [root, ...drop] = process.argv.slice(2);
const manifest = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));

/** Where node would find `name` from a package in `fromDir`. */
function resolve(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return fs.realpathSync(candidate);
    if (dir === root || dir === path.dirname(dir)) return undefined;
  }
}

const keep = new Set();
const queue = Object.keys(manifest(root).dependencies || {}).filter((d) => !drop.includes(d)).map((d) => [d, root]);
while (queue.length > 0) {
  const [name, from] = queue.pop();
  const dir = resolve(name, from);
  if (!dir || keep.has(dir)) continue;
  keep.add(dir);
  const m = manifest(dir);
  for (const d of Object.keys({ ...m.dependencies, ...m.optionalDependencies, ...m.peerDependencies })) queue.push([d, dir]);
}

let removed = 0;
const nm = path.join(root, 'node_modules');
for (const entry of fs.readdirSync(nm)) {
  if (entry.startsWith('.')) continue;
  const names = entry.startsWith('@') ? fs.readdirSync(path.join(nm, entry)).map((n) => `${entry}/${n}`) : [entry];
  for (const name of names) {
    const dir = fs.realpathSync(path.join(nm, name));
    // a kept package's own nested node_modules stay with it
    if (![...keep].some((k) => k === dir || k.startsWith(`${dir}${path.sep}`))) {
      fs.rmSync(path.join(nm, name), { recursive: true, force: true });
      removed++;
    }
  }
  if (entry.startsWith('@') && fs.readdirSync(path.join(nm, entry)).length === 0) fs.rmdirSync(path.join(nm, entry));
}
fs.rmSync(path.join(nm, '.bin'), { recursive: true, force: true });
console.log(`prune-image-deps: kept ${keep.size} packages, removed ${removed} (only needed by: ${drop.join(', ')})`);
