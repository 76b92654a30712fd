/**
 * Image references as Docker clients read them: `[host[:port]/]path[:tag][@sha256:...]`.
 * The first component is a registry host when it has a `.` or a `:` or is
 * `localhost`; otherwise the image is on Docker Hub (one-component paths in
 * `library/`).
 */

export const DOCKER_HUB = 'docker.io';
/** where Docker Hub's API answers */
export const DOCKER_HUB_API = 'registry-1.docker.io';

export interface ImageReference {
  /** host[:port] as written (docker.io for Docker Hub) */
  registry: string;
  /** the repository path inside the registry (library/node on Docker Hub) */
  repository: string;
  tag?: string;
  digest?: string;
}

export class ReferenceError extends Error {}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export function parseReference(ref: string): ImageReference {
  const text = ref.trim();
  if (!text) throw new ReferenceError('an image reference is empty');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new ReferenceError(`"${ref}": the digest after @ must be sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ReferenceError(`"${ref}": "${tag}" is not a valid tag`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) registry = parts.shift()!;
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p)) throw new ReferenceError(`"${ref}": "${p}" is not a valid repository name component (lower case letters, digits and . _ -)`);
  }
  return { registry, repository: parts.join('/'), ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** The reference written back, the way Docker prints it. */
export function formatReference(r: ImageReference): string {
  const repo = r.registry === DOCKER_HUB ? r.repository.replace(/^library\//, '') : `${r.registry}/${r.repository}`;
  return `${repo}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The host the registry API is reached at. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** Plain HTTP is only for this machine's loopback, unless the user names the registry insecure. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
