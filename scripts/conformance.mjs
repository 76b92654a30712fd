#!/usr/bin/env node
// Runs the reference suite of ../shared/epr-conformance against this server:
// one server per profile, started from dist/ with the profile's config.yml.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const suite = path.resolve(root, '..', 'shared', 'epr-conformance');
if (!fs.existsSync(path.join(suite, 'run.mjs'))) {
  console.log(`conformance: skipped, ${suite} is absent (the reference suite lives in ../shared next to this project)`);
  process.exit(0);
}
// run.mjs starts only when invoked by its real path (it compares argv[1] with its own URL),
// so a ../shared reached through a symbolic link must be resolved first.
const runner = fs.realpathSync(path.join(suite, 'run.mjs'));
const server = path.join(root, 'dist', 'server', 'main.js');
const spawnCmd = `node ${JSON.stringify(server)} --config {config} --address 127.0.0.1:{port} --log-level warn`;
const r = spawnSync(process.execPath, [runner, '--cases', path.dirname(runner), '--spawn', spawnCmd, ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
process.stdout.write(r.stdout ?? '');
// a runner that printed no verdict ran nothing: that is a failure, not a pass
const reportsNoVerdict = process.argv.slice(2).some((a) => a === '--list' || a.startsWith('--prepare'));
if (r.status === 0 && !reportsNoVerdict && !/\d+ passed, \d+ failed/.test(r.stdout ?? '')) {
  console.error('conformance: the runner printed no result line; nothing was checked');
  process.exit(1);
}
process.exit(r.status ?? 1);
