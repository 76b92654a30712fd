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
const server = path.join(root, 'dist', 'server', 'main.js');
const spawnCmd = `node ${JSON.stringify(server)} --config {config} --address 127.0.0.1:{port} --log-level warn`;
const r = spawnSync(process.execPath, [path.join(suite, 'run.mjs'), '--cases', suite, '--spawn', spawnCmd, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
