import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { DistributionError, loadDistribution } from '../distribution.js';
import { projectCommit } from '../sources.js';
import { fileName, manifests, ManifestError, parseHpa, toJsonList, toYaml, NAMESPACE, DEFAULT_HPA_CPU, isPinnedTag, type K8sObject } from './manifests.js';
import { Kubectl, KubectlError } from './kubectl.js';
import { rollout, summary } from './rollout.js';

/**
 * npm run manifests -- <distribution>...   the Kubernetes objects of a distribution
 * npm run rollout -- <distribution>        move its Deployment to a new image and wait
 *
 * Exit codes: 0 done, 1 failed (cluster, kubectl, rollout), 2 usage.
 */

export const USAGE = `Usage:
  npm run manifests -- <distribution>... [options]
  npm run rollout -- <distribution> [options]

manifests: prints the Deployment, Service (and HorizontalPodAutoscaler) that run
a distribution, as YAML for kubectl apply -f -.
  --image-tag <tag>     image tag to pin: a full commit hash or X.Y.Z (default: git rev-parse HEAD)
  --repository <repo>   image repository (default: image.repository of distributions/<name>.yml)
  --namespace <ns>      namespace of the objects (default: ${NAMESPACE})
  --replicas <n>        replicas (default: 3 for production, 2 otherwise)
  --hpa <min>-<max>     add a HorizontalPodAutoscaler (the Deployment then leaves replicas to it)
  --hpa-cpu <percent>   its target CPU utilisation (default: ${DEFAULT_HPA_CPU})
  --out <dir>           write one file per object into <dir> instead of printing
  --json                one JSON v1 List instead of YAML

rollout: points deployment/package-registry-<distribution>-vanilla at
<repository>:<image-tag> (or restarts it when it already runs that image), then
waits with kubectl rollout status. Uses kubectl and the current KUBECONFIG.
  --image-tag <tag>     the tag to roll out (default: git rev-parse HEAD)
  --repository <repo>   image repository (default: from distributions/<name>.yml)
  --context <name>      kubeconfig context (default: the current one)
  --namespace <ns>      namespace (default: ${NAMESPACE})
  --timeout <duration>  how long to wait for the rollout, e.g. 300s, 10m (default: 10m)
  --undo                if the rollout does not finish, roll back and wait for that
  --json                the result as JSON on stdout

  -h, --help            this text

Exit codes: 0 done, 1 failed (kubectl missing, no cluster reachable, namespace or
deployment missing, rollout not finished), 2 usage error.
`;

export class UsageError extends Error {}

/** `90`, `90s`, `5m`, `1h` -> seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(s|m|h)?$/.exec(text.trim());
  if (!m || Number(m[1]) === 0) throw new UsageError(`--timeout ${text}: must be a duration such as 300s, 10m or 1h`);
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] ?? 's'] ?? 1);
}

interface Target { distribution: string; repository: string }

/** The distribution's name and repository: --repository wins over the definition file, which is then not needed. */
function target(arg: string, repository: string | undefined): Target {
  if (repository !== undefined) {
    if (arg.includes('/') || /\.ya?ml$/.test(arg)) return { distribution: loadDistribution(arg).name, repository };
    return { distribution: arg, repository };
  }
  const d = loadDistribution(arg);
  return { distribution: d.name, repository: d.repository };
}

function imageTag(given: string | undefined): string {
  if (given !== undefined) return given;
  const commit = projectCommit();
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit)) throw new UsageError('this tree is not a git checkout with a commit; give --image-tag <commit>');
  return commit;
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} ${v}: must be a whole number`);
  return Number(v);
}

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

async function manifestsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'image-tag': { type: 'string' }, repository: { type: 'string' }, namespace: { type: 'string' },
      replicas: { type: 'string' }, hpa: { type: 'string' }, 'hpa-cpu': { type: 'string' },
      out: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { out(USAGE); return 0; }
  if (positionals.length === 0) throw new UsageError('manifests: name at least one distribution');
  if (values['hpa-cpu'] !== undefined && values.hpa === undefined) throw new UsageError('--hpa-cpu needs --hpa <min>-<max>');
  if (values.hpa !== undefined && values.replicas !== undefined) throw new UsageError('--replicas and --hpa exclude each other: with an autoscaler the replica count is its business');
  const tag = imageTag(values['image-tag']);
  const hpa = values.hpa === undefined ? undefined : parseHpa(values.hpa, int('hpa-cpu', values['hpa-cpu']) ?? DEFAULT_HPA_CPU);
  const objects: K8sObject[] = [];
  for (const arg of positionals) {
    const t = target(arg, values.repository);
    objects.push(...manifests({ ...t, tag, namespace: values.namespace, replicas: int('replicas', values.replicas), hpa }));
  }
  if (values.out === undefined) {
    out(values.json ? toJsonList(objects) : toYaml(objects));
    return 0;
  }
  fs.mkdirSync(values.out, { recursive: true });
  const files = objects.map((o) => {
    const file = path.join(values.out!, fileName(o));
    fs.writeFileSync(file, values.json ? `${JSON.stringify(o, null, 2)}\n` : toYaml([o]));
    return file;
  });
  if (values.json) out(`${JSON.stringify({ files }, null, 2)}\n`);
  else out(`wrote ${files.length} manifests to ${values.out}: ${files.map((f) => path.basename(f)).join(', ')}\n`);
  return 0;
}

async function rolloutCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'image-tag': { type: 'string' }, repository: { type: 'string' }, context: { type: 'string' }, namespace: { type: 'string' },
      timeout: { type: 'string' }, undo: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { out(USAGE); return 0; }
  if (positionals.length !== 1) throw new UsageError('rollout: name exactly one distribution');
  const tag = imageTag(values['image-tag']);
  if (!isPinnedTag(tag)) throw new UsageError(`--image-tag ${tag}: must be a full commit hash (40 hex digits) or a stack version X.Y.Z`);
  const timeoutSeconds = parseDuration(values.timeout ?? '10m');
  const k = new Kubectl({ context: values.context });
  let r;
  try {
    r = await rollout(k, {
      ...target(positionals[0], values.repository),
      tag,
      namespace: values.namespace ?? NAMESPACE,
      timeoutSeconds,
      undo: values.undo ?? false,
      log: (l) => err(`  ${l}\n`),
    });
  } catch (e) {
    // machines get JSON on stdout whatever happened; the one line still goes to stderr
    if (values.json) out(`${JSON.stringify({ ok: false, error: (e as Error).message })}\n`);
    throw e;
  }
  if (values.json) out(`${JSON.stringify(r, null, 2)}\n`);
  else (r.ok ? out : err)(`${summary(r)}\n`);
  return r.ok ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'manifests': return await manifestsCommand(rest);
      case 'rollout': return await rolloutCommand(rest);
      case '-h': case '--help': case 'help': out(USAGE); return 0;
      default: throw new UsageError(command ? `unknown command "${command}"` : 'name a command: manifests or rollout');
    }
  } catch (e) {
    const error = e as Error & { code?: string };
    // parseArgs reports unknown or malformed options with these codes
    if (e instanceof UsageError || e instanceof ManifestError || error.code?.startsWith('ERR_PARSE_ARGS')) {
      err(`error: ${error.message}\n(see --help)\n`);
      return 2;
    }
    if (e instanceof DistributionError || e instanceof KubectlError) {
      err(`error: ${error.message}\n`);
      return 1;
    }
    throw e;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
    process.stderr.write(`error: ${e.stack ?? e.message}\n`);
    process.exitCode = 1;
  });
}
