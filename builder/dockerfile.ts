/**
 * Dockerfile.distribution, applied by the builder itself: the builder makes
 * the image from its layers directly (builder/assemble.ts) and adds what this
 * file says on top, exactly as `docker build` would, without a build
 * container per instruction. Only what a configuration layer needs is
 * understood: ARG, one FROM, COPY of context files into a folder, ENV and
 * LABEL. Anything else is an error naming the line, never silently skipped.
 */

export interface DistributionDockerfile {
  /** files of the build context copied into a folder (dest ends with /) */
  copies: Array<{ sources: string[]; dest: string }>;
  env: Array<[string, string]>;
  labels: Array<[string, string]>;
  /** each instruction as written, for the image history */
  history: Array<{ createdBy: string; emptyLayer: boolean }>;
}

export class DockerfileError extends Error {}

/** Instructions with their line numbers, continuations joined, comments dropped. */
function instructions(text: string): Array<{ line: number; keyword: string; args: string }> {
  const out: Array<{ line: number; keyword: string; args: string }> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let l = lines[i];
    if (/^\s*(#|$)/.test(l)) continue;
    while (/\\\s*$/.test(l) && i + 1 < lines.length) l = `${l.replace(/\\\s*$/, ' ')}${lines[++i].replace(/^\s*#.*$/, '')}`;
    const m = /^\s*(\w+)\s+(.*)$/.exec(l);
    if (!m) throw new DockerfileError(`line ${start + 1}: cannot read "${l.trim()}"`);
    out.push({ line: start + 1, keyword: m[1].toUpperCase(), args: m[2].trim().replace(/\s+/g, ' ') });
  }
  return out;
}

function unquote(v: string): string {
  return /^".*"$/.test(v) ? v.slice(1, -1).replace(/\\"/g, '"') : v;
}

/** `k=v k2="v 2"` pairs. */
function pairs(args: string, line: number, keyword: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const re = /([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  let rest = args;
  for (const m of args.matchAll(re)) {
    out.push([m[1], unquote(m[2])]);
    rest = rest.replace(m[0], '');
  }
  if (rest.trim() || out.length === 0) throw new DockerfileError(`line ${line}: ${keyword} wants key=value pairs`);
  if (out.some(([, v]) => v.includes('$'))) throw new DockerfileError(`line ${line}: ${keyword}: the builder does not expand \$variables`);
  return out;
}

export function parseDistributionDockerfile(text: string, layersArg = 'PACKAGE_LAYERS'): DistributionDockerfile {
  const d: DistributionDockerfile = { copies: [], env: [], labels: [], history: [] };
  let from = false;
  for (const { line, keyword, args } of instructions(text)) {
    switch (keyword) {
      case 'ARG':
        if (from && args !== layersArg) throw new DockerfileError(`line ${line}: ARG ${args}: the builder passes no build arguments but ${layersArg}`);
        break;
      case 'FROM':
        if (from) throw new DockerfileError(`line ${line}: one FROM only`);
        if (args !== `\${${layersArg}}` && args !== `$${layersArg}`) throw new DockerfileError(`line ${line}: FROM must be \${${layersArg}} (the package layers)`);
        from = true;
        break;
      case 'COPY': {
        if (/^--/.test(args)) throw new DockerfileError(`line ${line}: COPY options are not supported`);
        const parts = args.split(' ');
        const dest = parts.pop()!;
        if (parts.length === 0 || !dest.startsWith('/') || !dest.endsWith('/')) throw new DockerfileError(`line ${line}: COPY wants files of the context and an absolute folder ending with /`);
        if (parts.some((p) => p.includes('/') || p.includes('*') || p.startsWith('.'))) throw new DockerfileError(`line ${line}: COPY sources must be plain file names of the context`);
        d.copies.push({ sources: parts, dest });
        d.history.push({ createdBy: `COPY ${args}`, emptyLayer: false });
        break;
      }
      case 'ENV':
        d.env.push(...pairs(args, line, 'ENV'));
        d.history.push({ createdBy: `ENV ${args}`, emptyLayer: true });
        break;
      case 'LABEL':
        d.labels.push(...pairs(args, line, 'LABEL'));
        d.history.push({ createdBy: `LABEL ${args}`, emptyLayer: true });
        break;
      default:
        throw new DockerfileError(`line ${line}: ${keyword} is not applied by the builder (ARG, FROM, COPY, ENV and LABEL are)`);
    }
    if (!from && keyword !== 'ARG' && keyword !== 'FROM') throw new DockerfileError(`line ${line}: ${keyword} before FROM`);
  }
  if (!from) throw new DockerfileError(`no FROM \${${layersArg}}`);
  return d;
}
