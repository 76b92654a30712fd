import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Docker from 'dockerode';

/**
 * Everything the builder asks of the Docker engine, through dockerode. The
 * engine answers long operations (build, push, load) with a stream of JSON
 * messages and an HTTP 200 even when they fail, so each stream is read to the
 * end and an `error`/`errorDetail` message in it is a failure. Every wait has
 * a time limit.
 */

export class EngineUnreachableError extends Error {}

const NO_ENGINE_HINT = 'start one (`sudo systemctl start docker`), point DOCKER_HOST at one, or build without an engine (--no-engine with --push or --save)';
export class EngineOperationError extends Error {
  constructor(message: string, readonly output: string[] = []) {
    super(message);
  }
}

export const TIMEOUTS = {
  ping: 10_000,
  quick: 60_000,
  build: 30 * 60_000,
  push: 30 * 60_000,
  save: 30 * 60_000,
  load: 30 * 60_000,
  http: 60_000,
};

export interface StreamMessage {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: { ID?: string; Digest?: string; Tag?: string; Size?: number };
}

export function engine(): Docker {
  return new Docker();
}

function where(): string {
  return process.env.DOCKER_HOST || '/var/run/docker.sock';
}

function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return ['ENOENT', 'ECONNREFUSED', 'EACCES', 'EPERM', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT'].includes(code ?? '')
    || /socket hang up|timeout|ECONNREFUSED|ENOENT/i.test((err as Error).message ?? '');
}

/** Promise with a time limit; `onTimeout` cancels what is still running. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { onTimeout?.(); reject(new EngineOperationError(`${what}: no answer within ${Math.round(ms / 1000)} s`)); }, ms);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Fails with one clear line when no engine answers. */
export async function ensureEngine(docker: Docker): Promise<string> {
  try {
    await withTimeout(docker.ping(), TIMEOUTS.ping, 'docker ping');
    const v = await withTimeout(docker.version(), TIMEOUTS.ping, 'docker version');
    return v.Version;
  } catch (err) {
    throw new EngineUnreachableError(`cannot reach the Docker engine at ${where()} (${(err as Error).message.split('\n')[0]}); ${NO_ENGINE_HINT}`);
  }
}

/** Reads a JSON-lines progress stream to its end; an error message in it rejects. */
export function followStream(stream: Readable, what: string, timeoutMs: number, onMessage?: (m: StreamMessage) => void): Promise<StreamMessage[]> {
  const messages: StreamMessage[] = [];
  const done = new Promise<StreamMessage[]>((resolve, reject) => {
    let buf = '';
    let failed: StreamMessage | undefined;
    // the build step running when an error came: named in the failure
    let step = '';
    const handle = (line: string) => {
      const text = line.trim();
      if (!text) return;
      let m: StreamMessage;
      try { m = JSON.parse(text) as StreamMessage; } catch { m = { stream: `${text}\n` }; }
      messages.push(m);
      const stepLine = /^Step (\d+\/\d+) : (.*)$/m.exec(m.stream ?? '');
      if (stepLine) step = ` at step ${stepLine[1]} (${stepLine[2].trim().slice(0, 80)})`;
      if ((m.error || m.errorDetail) && !failed) failed = m;
      onMessage?.(m);
    };
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) { handle(buf.slice(0, i)); buf = buf.slice(i + 1); }
    });
    stream.on('error', (err) => reject(new EngineOperationError(`${what}: ${err.message}`, tail(messages))));
    stream.on('end', () => {
      handle(buf);
      if (failed) reject(new EngineOperationError(`${what} failed${step}: ${(failed.errorDetail?.message ?? failed.error ?? 'unknown error').trim()}`, tail(messages)));
      else resolve(messages);
    });
  });
  return withTimeout(done, timeoutMs, what, () => stream.destroy());
}

function tail(messages: StreamMessage[]): string[] {
  return messages.map((m) => (m.stream ?? m.status ?? m.error ?? '').trimEnd()).filter(Boolean).slice(-30);
}

/** Wraps engine errors: a refused connection becomes the "start an engine" line. */
async function call<T>(what: string, p: Promise<T>, ms = TIMEOUTS.quick): Promise<T> {
  try {
    return await withTimeout(p, ms, what);
  } catch (err) {
    if (err instanceof EngineOperationError) throw err;
    if (isConnectionError(err)) throw new EngineUnreachableError(`cannot reach the Docker engine at ${where()} during ${what} (${(err as Error).message}); ${NO_ENGINE_HINT}`);
    const e = err as { statusCode?: number; json?: { message?: string }; message: string };
    throw new EngineOperationError(`${what} failed: ${e.json?.message ?? e.message}`.trim());
  }
}

export interface BuildOptions {
  /** a tar stream of the build context */
  context: Readable;
  dockerfile: string;
  /** temporary unique tag; the real tags are applied after success */
  tag: string;
  buildargs?: Record<string, string>;
  labels?: Record<string, string>;
  nocache?: boolean;
  onOutput?: (line: string) => void;
}

/** Builds with the classic builder; resolves to the image id. */
export async function buildImage(docker: Docker, o: BuildOptions): Promise<string> {
  const stream = await call('docker build', docker.buildImage(o.context as unknown as NodeJS.ReadableStream, {
    t: o.tag,
    dockerfile: o.dockerfile,
    buildargs: o.buildargs,
    labels: o.labels,
    nocache: o.nocache,
    rm: true,
    forcerm: true,
    abortSignal: AbortSignal.timeout(TIMEOUTS.build),
  } as Docker.ImageBuildOptions) as Promise<NodeJS.ReadableStream>, TIMEOUTS.build);
  let id: string | undefined;
  await followStream(stream as unknown as Readable, 'docker build', TIMEOUTS.build, (m) => {
    if (m.aux?.ID) id = m.aux.ID;
    if (m.stream) for (const line of m.stream.split('\n')) if (line.trim()) o.onOutput?.(line);
  });
  const info = await inspectImage(docker, o.tag);
  if (!info) throw new EngineOperationError(`docker build: finished but ${o.tag} does not exist`);
  if (id && id !== info.Id) throw new EngineOperationError(`docker build: built ${id} but ${o.tag} is ${info.Id}`);
  return info.Id;
}

export async function inspectImage(docker: Docker, ref: string): Promise<Docker.ImageInspectInfo | undefined> {
  try {
    return await call(`docker image inspect ${ref}`, docker.getImage(ref).inspect());
  } catch (err) {
    if (err instanceof EngineOperationError && /no such image|404/i.test(err.message)) return undefined;
    throw err;
  }
}

export function splitRef(ref: string): { repo: string; tag: string } {
  const i = ref.lastIndexOf(':');
  if (i < 0 || ref.slice(i).includes('/')) return { repo: ref, tag: 'latest' };
  return { repo: ref.slice(0, i), tag: ref.slice(i + 1) };
}

export async function tagImage(docker: Docker, imageId: string, ref: string): Promise<void> {
  const { repo, tag } = splitRef(ref);
  await call(`docker tag ${ref}`, docker.getImage(imageId).tag({ repo, tag }));
}

/** Removes one reference (never forced: an image in use stays). */
export async function untag(docker: Docker, ref: string): Promise<void> {
  try {
    await call(`docker rmi ${ref}`, docker.getImage(ref).remove({ noprune: false }));
  } catch (err) {
    if (!(err instanceof EngineOperationError && /no such image|404/i.test(err.message))) throw err;
  }
}

interface DockerConfigFile { auths?: Record<string, { auth?: string; username?: string; password?: string }> }

/** Credentials for the registry host of `repo` from ~/.docker/config.json, if any. */
export function registryAuth(repo: string): Docker.AuthConfig | undefined {
  const first = repo.split('/')[0];
  const host = repo.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : 'https://index.docker.io/v1/';
  const file = path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
  if (!fs.existsSync(file)) return undefined;
  let cfg: DockerConfigFile;
  try { cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as DockerConfigFile; } catch { return undefined; }
  const entry = Object.entries(cfg.auths ?? {}).find(([k]) => k === host || k.replace(/^https?:\/\//, '').replace(/\/.*$/, '') === host)?.[1];
  if (!entry) return undefined;
  let { username, password } = entry;
  if (entry.auth) [username, password] = Buffer.from(entry.auth, 'base64').toString('utf8').split(/:(.*)/s);
  if (!username) return undefined;
  return { username, password: password ?? '', serveraddress: host };
}

/** Pushes one reference; an error in the push stream (refused, unauthorised) is a failure. Returns the digest. */
export async function pushImage(docker: Docker, ref: string, onOutput?: (line: string) => void): Promise<string | undefined> {
  const { repo, tag } = splitRef(ref);
  const auth = registryAuth(repo);
  const stream = await call(`docker push ${ref}`, docker.getImage(repo).push({ tag, authconfig: auth ?? {}, abortSignal: AbortSignal.timeout(TIMEOUTS.push) }) as Promise<NodeJS.ReadableStream>);
  let digest: string | undefined;
  await followStream(stream as unknown as Readable, `docker push ${ref}`, TIMEOUTS.push, (m) => {
    if (m.aux?.Digest) digest = m.aux.Digest;
    if (m.status && !m.progress) onOutput?.(`${m.id ? `${m.id}: ` : ''}${m.status}`);
  });
  return digest;
}

export async function pullImage(docker: Docker, ref: string): Promise<void> {
  const { repo } = splitRef(ref);
  const auth = registryAuth(repo);
  const stream = await call(`docker pull ${ref}`, docker.pull(ref, { authconfig: auth }) as Promise<NodeJS.ReadableStream>);
  await followStream(stream as unknown as Readable, `docker pull ${ref}`, TIMEOUTS.push);
}

/** `docker save` of all `refs` into `file`, written next to it first and renamed: never a partial tar. */
export async function saveImages(docker: Docker, refs: string[], file: string): Promise<number> {
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.partial`);
  try {
    const stream = await call('docker save', (docker as unknown as { getImages(o: object): Promise<NodeJS.ReadableStream> }).getImages({ names: refs, abortSignal: AbortSignal.timeout(TIMEOUTS.save) }) as Promise<NodeJS.ReadableStream>);
    await withTimeout(pipeline(stream as unknown as Readable, fs.createWriteStream(tmp)), TIMEOUTS.save, 'docker save', () => (stream as unknown as Readable).destroy());
    const size = fs.statSync(tmp).size;
    fs.renameSync(tmp, file);
    return size;
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** `docker load` of a tar; returns the references it loaded. */
export async function loadImages(docker: Docker, file: string): Promise<string[]> {
  if (!fs.existsSync(file)) throw new EngineOperationError(`docker load: ${file} does not exist`);
  const stream = await call('docker load', docker.loadImage(fs.createReadStream(file), { quiet: true }) as Promise<NodeJS.ReadableStream>, TIMEOUTS.load);
  const refs: string[] = [];
  await followStream(stream as unknown as Readable, 'docker load', TIMEOUTS.load, (m) => {
    const match = /Loaded image(?: ID)?: (\S+)/.exec(m.stream ?? '');
    if (match) refs.push(match[1]);
  });
  return refs;
}

export interface RunningContainer {
  id: string;
  /** http://127.0.0.1:<published port> */
  url: string;
}

/** Runs an image with 8080 published on 127.0.0.1 at a free port. */
export async function runImage(docker: Docker, image: string, env: string[] = []): Promise<RunningContainer> {
  const container = await call('docker create', docker.createContainer({
    Image: image,
    Env: env,
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    Labels: { 'org.elastic.package-registry.builder-check': 'true' },
  }));
  try {
    await call('docker start', container.start());
    const info = await call('docker inspect', container.inspect());
    const port = info.NetworkSettings.Ports?.['8080/tcp']?.[0]?.HostPort;
    if (!port) throw new EngineOperationError('docker run: port 8080 was not published');
    return { id: container.id, url: `http://127.0.0.1:${port}` };
  } catch (err) {
    await removeContainer(docker, container.id);
    throw err;
  }
}

export async function removeContainer(docker: Docker, id: string): Promise<void> {
  try {
    await call('docker rm', docker.getContainer(id).remove({ force: true, v: true }));
  } catch { /* already gone */ }
}

/** The last `tail` lines of a container's output (0: all of it). */
export async function containerLogs(docker: Docker, id: string, tail = 50): Promise<string> {
  try {
    const buf = await call('docker logs', docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, tail: (tail > 0 ? tail : 'all') as number }) as unknown as Promise<Buffer>);
    return demux(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
  } catch { return ''; }
}

/** Strips the 8-byte frame headers of a non-TTY container's log stream. */
function demux(buf: Buffer): string {
  const out: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length && (buf[i] === 1 || buf[i] === 2) && buf[i + 1] === 0) {
    const len = buf.readUInt32BE(i + 4);
    out.push(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return i === 0 ? buf.toString('utf8') : Buffer.concat(out).toString('utf8');
}

/** GETs `url` until it answers 200 or the time is up. */
export async function waitForHttp(url: string, ms = TIMEOUTS.http): Promise<Response> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    try {
      // withTimeout's timer keeps the process alive: fetch's own sockets and AbortSignal.timeout do not
      const r = await withTimeout(fetch(url, { signal: AbortSignal.timeout(5_000) }), 6_000, `GET ${url}`);
      if (r.ok) return r;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new EngineOperationError(`${url} did not answer within ${Math.round(ms / 1000)} s (${last})`);
}
