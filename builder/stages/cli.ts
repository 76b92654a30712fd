#!/usr/bin/env node
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { DistributionError } from '../distribution.js';
import { PromotionError } from './layer.js';
import { promote, summary, type Step } from './promote.js';
import { isStage, parsePackageId, STAGES, type PackageId, type Stage } from './stages.js';
import { eachArg } from '../args.js';

/**
 * npm run promote -- <name>-<version> --from <stage> --to <stage>.
 * Errors are mapped to exit codes here only: 0 ok, 1 failure, 2 usage.
 */

class UsageError extends Error {}

export const HELP = `Usage: promote <name>-<version> --from <stage> --to <stage> [options]

Moves one package version to the next stage (${STAGES.join(' → ')}): adds it
to the target layer, reads it back and verifies it there (validation, same
content hash), and only then removes it from the source layer. The package is
never in neither layer; a re-run after an interruption finishes the job.

Layers are the ones named snapshot, staging and production in the
distribution definitions. A folder layer is changed in place (through a
temporary name and a rename; a zip travels with its .sig). A git-branch layer
gets one commit per branch ("[staging] promote nginx-1.2.3"), made with git
plumbing: no working tree or index is touched, and a stage branch that is
checked out somewhere is refused.

Options:
  --from <stage>          the stage the package is in: snapshot or staging
  --to <stage>            the next stage: staging or production
  --dry-run               print what would change, change nothing
  --distribution <name>   read every stage's layer from this definition
  --definitions <dir>     folder of the distribution definitions (default distributions/)
  --json                  no progress lines; print one JSON object with the result
  -h, --help              show this help

Examples:
  npm run promote -- nginx_lite-2.0.0-beta1 --from snapshot --to staging --dry-run
  npm run promote -- nginx_lite-2.0.0-beta1 --from snapshot --to staging
  npm run promote -- redis_lite-0.4.0 --from staging --to production

Exit codes: 0 promoted (or nothing left to do), 1 refused or failed, 2 usage error.
`;

interface Args { id?: PackageId; from?: Stage; to?: Stage; dryRun: boolean; json: boolean; help: boolean; distribution?: string; definitions?: string }

export function parseArgs(argv: string[]): Args {
  const a: Args = { dryRun: false, json: false, help: false };
  const positional: string[] = [];
  eachArg(argv, UsageError, (arg, value) => {
    const stage = (flag: string) => {
      const s = value(flag);
      if (!isStage(s)) throw new UsageError(`${flag} "${s}" is not a stage (${STAGES.join(', ')})`);
      return s;
    };
    if (arg === '--help' || arg === '-h') a.help = true;
    else if (arg === '--dry-run') a.dryRun = true;
    else if (arg === '--json') a.json = true;
    else if (arg === '--from' || arg.startsWith('--from=')) a.from = stage('--from');
    else if (arg === '--to' || arg.startsWith('--to=')) a.to = stage('--to');
    else if (arg === '--distribution' || arg.startsWith('--distribution=')) a.distribution = value('--distribution');
    else if (arg === '--definitions' || arg.startsWith('--definitions=')) a.definitions = value('--definitions');
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg} (see --help)`);
    else positional.push(arg);
  });
  if (a.help) return a;
  if (positional.length !== 1) throw new UsageError(positional.length === 0 ? 'which package? promote <name>-<version> --from <stage> --to <stage>' : `one package at a time, got ${positional.join(', ')}`);
  a.id = parsePackageId(positional[0]);
  if (!a.id) throw new UsageError(`"${positional[0]}" is not <name>-<version> (e.g. nginx_lite-1.2.0)`);
  if (!a.from || !a.to) throw new UsageError('give both --from and --to (e.g. --from snapshot --to staging)');
  return a;
}

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  let args: Args;
  try {
    const [command, ...rest] = argv;
    if (command === '--help' || command === '-h' || command === undefined) { out(HELP); return command === undefined ? 2 : 0; }
    if (command !== 'promote') throw new UsageError(`unknown command "${command}" (promote)`);
    args = parseArgs(rest);
  } catch (e) {
    if (e instanceof UsageError) { err(`error: ${e.message}\n`); return 2; }
    throw e;
  }
  if (args.help) { out(HELP); return 0; }
  try {
    const result = await promote({
      package: args.id!,
      from: args.from!,
      to: args.to!,
      dryRun: args.dryRun,
      distribution: args.distribution,
      definitions: args.definitions,
      onStep: args.json ? undefined : (s: Step) => out(`${s.step.padEnd(6)} ${s.message}\n`),
    });
    if (args.json) out(`${JSON.stringify({ ok: true, ...result }, null, 2)}\n`);
    else out(`${summary(result)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof PromotionError || e instanceof DistributionError) {
      const code = e instanceof PromotionError ? e.code : 'definition';
      if (args.json) out(`${JSON.stringify({ ok: false, error: { code, message: e.message } }, null, 2)}\n`);
      err(`error: ${e.message}\n`);
      return 1;
    }
    err(`error: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
if (invokedDirectly) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
