/**
 * The registry target (and reader): images straight over the OCI
 * distribution API, with no engine. A push sends only what the registry
 * lacks (HEAD each blob, mount it from a sibling repository when it can,
 * else upload it whole), and writes manifests last, so a push that fails
 * moves no tag and its rerun sends only what is still missing. A pull takes
 * what the sink lacks and checks every digest on the way.
 */
import { Readable, Transform } from 'node:stream';
import crypto from 'node:crypto';
import { Authenticator, AuthError, pullScope, pushScope, type Credentials, type CredentialLookup } from './auth.js';
import { DEFAULT_RETRY, TransientError, parseRetryAfter, withRetry, type RetryPolicy } from './retry.js';
import { header, send, TransportError, type HttpResponse } from './transport.js';
import { MEDIA_TYPES, emptyReport, imageFromManifest, isDigest, sha256Digest, type BlobSink, type BlobSource, type Descriptor, type OciImage, type TransferReport } from './model.js';
import { formatReference, isLoopbackRegistry, apiHost, type ImageReference } from './reference.js';

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly registry: string,
    readonly repository?: string,
    /** the HTTP status, when the registry answered */
    readonly status?: number,
    /** the first OCI error code in the registry's answer (MANIFEST_BLOB_UNKNOWN, DENIED, ...) */
    readonly code?: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface RegistryOptions {
  /** explicit credentials (tests, a CLI flag); null forces anonymous access; absent: Docker's config */
  credentials?: Credentials | null;
  /** where Docker's config is read (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json) */
  credentialLookup?: CredentialLookup;
  /** registries (host or host:port) reached over plain http or unverified https (--insecure-registry) */
  insecureRegistries?: string[];
  /** per-request inactivity timeout (default 30 s): a connection with nothing sent or received for this long is a stall */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** blobs moved at once (default 3) */
  concurrency?: number;
  onProgress?(line: string): void;
}

export interface PushOptions extends RegistryOptions {
  /** repositories in the same registry that may hold some of the blobs already (cross-repository mount) */
  mountFrom?: string[];
}

export interface PullOptions extends RegistryOptions {
  /** the platform to take from an index (default: linux on this machine's architecture, else linux/amd64) */
  platform?: Platform;
}

export interface PushReport extends TransferReport {
  /** summed over the repositories pushed: a blob present in one and mounted into another counts in both */
  blobsMounted: number;
  manifestDigest: string;
  /** every reference written, as Docker prints them */
  references: string[];
}

const MANIFEST_ACCEPT = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList].join(', ');
const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
const PROGRESS_EVERY_MS = 2_000;

function short(digest: string): string {
  return digest.slice(0, 19);
}

function megabytes(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

/** The OCI error body ({errors: [{code, message, detail}]}) as one line; the raw text when it is not one. */
export function describeRegistryAnswer(status: number, body: Buffer): { text: string; code?: string } {
  const raw = body.toString('utf8').trim();
  try {
    const j = JSON.parse(raw) as { errors?: Array<{ code?: string; message?: string }> };
    if (Array.isArray(j.errors) && j.errors.length) {
      const text = j.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
      return { text: `${status} ${text}`, code: j.errors[0].code };
    }
  } catch {
    // not JSON: a proxy's or a load balancer's page
  }
  const line = raw.split('\n')[0].replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
  return { text: line ? `${status} ${line}` : `${status}` };
}

/** A 401 that fresh authorization cannot fix; the operation that met it adds what it was doing. */
class Refused extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

interface Exchange {
  method: string;
  /** a path on the registry, or a URL it gave (an upload location) */
  target: string | URL;
  scopes: string[];
  headers?: Record<string, string>;
  body?: Buffer | (() => Readable);
  contentLength?: number;
  followRedirects?: boolean;
  onBytesSent?(n: number): void;
}

interface Endpoint {
  origin: URL;
  insecureTls: boolean;
}

/** One registry: its endpoint (found by a /v2/ ping), its authentication state, and the API calls. */
export class RegistryClient {
  readonly host: string;
  private endpointFound?: Promise<Endpoint>;
  private readonly auth: Authenticator;
  private readonly policy: RetryPolicy;
  private readonly insecure: boolean;

  constructor(
    readonly registry: string,
    private readonly opts: RegistryOptions = {},
  ) {
    this.host = apiHost(registry);
    const named = opts.insecureRegistries ?? [];
    this.insecure = named.includes(registry) || named.includes(this.host) || named.includes(this.host.replace(/:\d+$/, ''));
    this.policy = { ...DEFAULT_RETRY, ...opts.retry };
    this.auth = new Authenticator({ registry, credentials: opts.credentials, lookup: opts.credentialLookup, timeoutMs: opts.timeoutMs, insecureTls: this.insecure });
  }

  progress(line: string): void {
    this.opts.onProgress?.(line);
  }

  /** HEAD the manifest: its descriptor, or undefined when the registry has no such tag or digest. */
  async headManifest(ref: ImageReference): Promise<Descriptor | undefined> {
    const reference = manifestReference(ref);
    return this.retrying(`looking up ${reference}`, ref.repository, async () => {
      const res = await this.exchange({ method: 'HEAD', target: `/v2/${ref.repository}/manifests/${reference}`, scopes: [pullScope(ref.repository)], headers: { accept: MANIFEST_ACCEPT } });
      await res.discard();
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw this.failure(res, Buffer.alloc(0), `looking up ${reference}`, ref.repository);
      const digest = header(res.headers, 'docker-content-digest');
      const mediaType = (header(res.headers, 'content-type') ?? '').split(';')[0].trim();
      const size = Number(header(res.headers, 'content-length'));
      if (digest && isDigest(digest) && mediaType && Number.isFinite(size)) return { mediaType, digest, size };
      return 'get' as const;
    }).then(async (d) => (d === 'get' ? (await this.getManifest(ref))?.descriptor : d));
  }

  /** GET the manifest (or index) bytes, checked against a digest reference; undefined on 404. */
  async getManifest(ref: ImageReference): Promise<{ bytes: Buffer; descriptor: Descriptor } | undefined> {
    const reference = manifestReference(ref);
    const what = `reading the manifest ${reference}`;
    return this.retrying(what, ref.repository, async () => {
      const res = await this.exchange({ method: 'GET', target: `/v2/${ref.repository}/manifests/${reference}`, scopes: [pullScope(ref.repository)], headers: { accept: MANIFEST_ACCEPT } });
      const bytes = await res.buffer();
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw this.failure(res, bytes, what, ref.repository);
      const digest = sha256Digest(bytes);
      const expected = ref.digest ?? header(res.headers, 'docker-content-digest');
      if (expected && expected !== digest) throw new RegistryError(`${this.where(ref.repository)}: the manifest ${reference} has digest ${digest}, not ${expected}`, this.registry, ref.repository);
      let mediaType = (header(res.headers, 'content-type') ?? '').split(';')[0].trim();
      try {
        const j = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; schemaVersion?: number; manifests?: unknown };
        if (j.schemaVersion === 1) throw new RegistryError(`${this.where(ref.repository)}: ${reference} is a schema 1 manifest, which this client does not read`, this.registry, ref.repository);
        if (j.mediaType) mediaType = j.mediaType;
        else if (!mediaType || mediaType === 'application/json') mediaType = j.manifests ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.ociManifest;
      } catch (err) {
        if (err instanceof RegistryError) throw err;
        throw new RegistryError(`${this.where(ref.repository)}: the manifest ${reference} is not JSON`, this.registry, ref.repository);
      }
      return { bytes, descriptor: { mediaType, digest, size: bytes.length } };
    });
  }

  async blobExists(repository: string, digest: string): Promise<boolean> {
    return this.retrying(`looking up blob ${short(digest)}`, repository, async () => {
      const res = await this.exchange({ method: 'HEAD', target: `/v2/${repository}/blobs/${digest}`, scopes: [pullScope(repository)] });
      await res.discard();
      if (res.status === 200) return true;
      if (res.status === 404) return false;
      throw this.failure(res, Buffer.alloc(0), `looking up blob ${short(digest)}`, repository);
    });
  }

  /**
   * Puts a blob into `repository`: a mount from one of `mountFrom` when the
   * registry has it there, else a monolithic upload from `source`. Each try
   * starts over (a new upload session, the blob from its first byte).
   */
  async putBlob(repository: string, desc: Descriptor, source: BlobSource, mountFrom: string[] = []): Promise<'uploaded' | 'mounted'> {
    const what = `uploading blob ${short(desc.digest)}`;
    return this.retrying(what, repository, async () => {
      let location: URL | undefined;
      for (const from of mountFrom) {
        const res = await this.exchange({
          method: 'POST',
          target: `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
          scopes: [pushScope(repository), pullScope(from)],
        });
        const body = await res.buffer();
        if (res.status === 201) return 'mounted';
        // 202: the registry could not mount and opened an upload session instead
        if (res.status !== 202) throw this.failure(res, body, `mounting blob ${short(desc.digest)} from ${from}`, repository);
        location = this.uploadLocation(res, repository);
      }
      if (!source.has(desc.digest)) {
        throw new RegistryError(`${this.where(repository)}: blob ${desc.digest} is neither in the registry nor in the local store`, this.registry, repository);
      }
      if (!location) {
        const res = await this.exchange({ method: 'POST', target: `/v2/${repository}/blobs/uploads/`, scopes: [pushScope(repository)] });
        const body = await res.buffer();
        if (res.status !== 202) throw this.failure(res, body, 'starting a blob upload', repository);
        location = this.uploadLocation(res, repository);
      }
      location.searchParams.set('digest', desc.digest);
      let lastReport = Date.now();
      const res = await this.exchange({
        method: 'PUT',
        target: location,
        scopes: [pushScope(repository)],
        headers: { 'content-type': 'application/octet-stream' },
        body: () => source.open(desc.digest),
        contentLength: desc.size,
        onBytesSent: (n) => {
          if (Date.now() - lastReport < PROGRESS_EVERY_MS) return;
          lastReport = Date.now();
          this.progress(`${this.where(repository)}: blob ${short(desc.digest)}: ${Math.floor((100 * n) / Math.max(1, desc.size))}% of ${megabytes(desc.size)}`);
        },
      });
      const body = await res.buffer();
      if (res.status !== 201 && res.status !== 204) throw this.failure(res, body, what, repository);
      const stored = header(res.headers, 'docker-content-digest');
      if (stored && stored !== desc.digest) throw new RegistryError(`${this.where(repository)}: the registry stored blob ${desc.digest} as ${stored}`, this.registry, repository);
      return 'uploaded';
    });
  }

  /** PUTs manifest bytes under a tag or their digest; the digest the registry took them as. */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const digest = sha256Digest(bytes);
    const what = isDigest(reference) ? `pushing the manifest ${short(reference)}` : `pushing the manifest for tag ${reference}`;
    return this.retrying(what, repository, async () => {
      const res = await this.exchange({ method: 'PUT', target: `/v2/${repository}/manifests/${reference}`, scopes: [pushScope(repository)], headers: { 'content-type': mediaType }, body: bytes });
      const body = await res.buffer();
      if (res.status !== 201 && res.status !== 200) throw this.failure(res, body, what, repository);
      const stored = header(res.headers, 'docker-content-digest');
      if (stored && stored !== digest) throw new RegistryError(`${this.where(repository)}: the registry took the manifest as ${stored}, not ${digest}`, this.registry, repository);
      return digest;
    });
  }

  /** A small blob (a config) read whole and checked. */
  async readBlob(repository: string, desc: Descriptor): Promise<Buffer> {
    const what = `reading blob ${short(desc.digest)}`;
    return this.retrying(what, repository, async () => {
      const res = await this.exchange({ method: 'GET', target: `/v2/${repository}/blobs/${desc.digest}`, scopes: [pullScope(repository)], followRedirects: true });
      const bytes = await res.buffer(Math.max(desc.size, 1) + 1);
      if (res.status !== 200) throw this.failure(res, bytes, what, repository);
      if (sha256Digest(bytes) !== desc.digest) throw new RegistryError(`${this.where(repository)}: blob ${desc.digest} came with digest ${sha256Digest(bytes)}`, this.registry, repository);
      return bytes;
    });
  }

  /** Streams a blob into the sink, checking size and digest on the way; a dropped download starts over. */
  async pullBlob(repository: string, desc: Descriptor, sink: BlobSink): Promise<void> {
    const what = `downloading blob ${short(desc.digest)}`;
    await this.retrying(what, repository, async () => {
      const res = await this.exchange({ method: 'GET', target: `/v2/${repository}/blobs/${desc.digest}`, scopes: [pullScope(repository)], followRedirects: true });
      if (res.status !== 200) throw this.failure(res, await res.buffer(), what, repository);
      let dropped: unknown;
      let mismatch: string | undefined;
      const hash = crypto.createHash('sha256');
      let n = 0;
      const check = new Transform({
        transform(chunk: Buffer, _e, cb) {
          n += chunk.length;
          hash.update(chunk);
          if (n > desc.size) {
            mismatch = `is longer than its ${desc.size} bytes`;
            return cb(new Error(`blob ${desc.digest} ${mismatch}`));
          }
          cb(null, chunk);
        },
        flush(cb) {
          const got = `sha256:${hash.digest('hex')}`;
          if (n !== desc.size) mismatch = `has ${n} bytes, not ${desc.size}`;
          else if (got !== desc.digest) mismatch = `came with digest ${got}`;
          cb(mismatch ? new Error(`blob ${desc.digest} ${mismatch}`) : null);
        },
      });
      res.body.on('error', (err) => {
        dropped = err;
        check.destroy(err);
      });
      res.body.pipe(check);
      try {
        await sink.write(desc, check);
      } catch (err) {
        res.body.destroy();
        if (dropped) throw new TransientError(`${classifyDrop(dropped, res.url)}`);
        if (mismatch) throw new RegistryError(`${this.where(repository)}: blob ${desc.digest} ${mismatch}`, this.registry, repository);
        throw err;
      }
    });
  }

  // ---- plumbing -----------------------------------------------------------

  private where(repository?: string): string {
    return repository ? `${this.registry}/${repository}` : this.registry;
  }

  private uploadLocation(res: HttpResponse, repository: string): URL {
    const loc = header(res.headers, 'location');
    if (!loc) throw new RegistryError(`${this.where(repository)}: the registry opened an upload without saying where (no Location header)`, this.registry, repository, res.status);
    return new URL(loc, res.url);
  }

  private failure(res: HttpResponse, body: Buffer, what: string, repository?: string): RegistryError {
    const said = describeRegistryAnswer(res.status, body);
    return new RegistryError(`${this.where(repository)}: ${what}: the registry answered ${said.text}`, this.registry, repository, res.status, said.code);
  }

  /** Runs one operation with the retry policy; every failure leaves as a RegistryError with its context. */
  private async retrying<T>(what: string, repository: string | undefined, op: () => Promise<T>): Promise<T> {
    try {
      return await withRetry(op, this.policy, (last, n) => new RegistryError(`${this.where(repository)}: ${what}: gave up after ${n} ${n === 1 ? 'try' : 'tries'}: ${last.message}`, this.registry, repository), {
        onRetry: (err, n, delay) => this.progress(`${this.where(repository)}: ${what}: ${err.message}; retry ${n} in ${(delay / 1000).toFixed(1)} s`),
      });
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      if (err instanceof Refused) throw new RegistryError(`${this.where(repository)}: ${what}: ${err.message}`, this.registry, repository, err.status, err.code);
      if (err instanceof TransportError || err instanceof AuthError) throw new RegistryError(`${this.where(repository)}: ${what}: ${err.message}`, this.registry, repository);
      throw err;
    }
  }

  /** The registry's base URL, found once: http for loopback (then https), https for others (http too when named insecure). */
  private endpoint(): Promise<Endpoint> {
    this.endpointFound ??= this.ping().catch((err) => {
      this.endpointFound = undefined;
      throw err;
    });
    return this.endpointFound;
  }

  private async ping(): Promise<Endpoint> {
    const candidates: Endpoint[] = isLoopbackRegistry(this.host)
      ? [{ origin: new URL(`http://${this.host}`), insecureTls: false }, { origin: new URL(`https://${this.host}`), insecureTls: this.insecure }]
      : this.insecure
        ? [{ origin: new URL(`https://${this.host}`), insecureTls: true }, { origin: new URL(`http://${this.host}`), insecureTls: false }]
        : [{ origin: new URL(`https://${this.host}`), insecureTls: false }];
    let last: Error | undefined;
    for (const c of candidates) {
      try {
        const res = await withRetry(
          async () => {
            const r = await send({ method: 'GET', url: new URL('/v2/', c.origin), timeoutMs: this.opts.timeoutMs, insecureTls: c.insecureTls });
            const body = await r.buffer(64 * 1024);
            if (r.status >= 500 || r.status === 429) throw new TransientError(describeRegistryAnswer(r.status, body).text, parseRetryAfter(r.headers['retry-after']));
            return { r, body };
          },
          this.policy,
          (e, n) => new RegistryError(`${this.registry}: the registry API at ${c.origin.origin}/v2/ gave up after ${n} tries: ${e.message}`, this.registry),
          { onRetry: (e, n, d) => this.progress(`${this.registry}: ${e.message}; retry ${n} in ${(d / 1000).toFixed(1)} s`) },
        );
        if (res.r.status === 200 || res.r.status === 401) {
          this.auth.learn(res.r);
          return c;
        }
        // an https server answering plain http says so with a 400; anything else is not a registry
        last = new RegistryError(`${this.registry}: ${c.origin.origin}/v2/ does not answer as a registry: ${describeRegistryAnswer(res.r.status, res.body).text}`, this.registry, undefined, res.r.status);
      } catch (err) {
        if (err instanceof RegistryError) throw err;
        // transport messages name the host already
        last = new RegistryError((err as Error).message, this.registry);
        // refused or unknown: the other scheme on the same port will not do better
        if (err instanceof TransportError && (err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND')) break;
      }
    }
    throw last!;
  }

  /** One request with authentication: anonymous first, then what a 401 asks for; 5xx and 429 are transient. */
  private async exchange(x: Exchange): Promise<HttpResponse> {
    const ep = await this.endpoint();
    const url = typeof x.target === 'string' ? new URL(x.target, ep.origin) : x.target;
    const scopes = [...x.scopes];
    for (let round = 0; ; round++) {
      // an upload location on another host gets no credentials meant for the registry
      const authorization = url.host === ep.origin.host ? await this.auth.authorization(scopes) : undefined;
      const res = await send({
        method: x.method,
        url,
        headers: { ...(x.headers ?? {}), ...(authorization ? { authorization } : {}) },
        body: x.body,
        contentLength: x.contentLength,
        timeoutMs: this.opts.timeoutMs,
        insecureTls: ep.insecureTls,
        followRedirects: x.followRedirects,
        onBytesSent: x.onBytesSent,
      });
      if (res.status === 401) {
        const body = await res.buffer(64 * 1024).catch(() => Buffer.alloc(0));
        if (round < 2 && (await this.auth.challenged(res, scopes, authorization !== undefined))) continue;
        const said = describeRegistryAnswer(res.status, body);
        const why = (await this.auth.credentials()) ? `refused ${await this.auth.describeCredentials()}` : `requires authentication and there are ${await this.auth.describeCredentials()}`;
        throw new Refused(`the registry ${why}: ${said.text}`, 401, said.code);
      }
      if (res.status >= 500 || res.status === 429 || res.status === 408) {
        const body = await res.buffer(64 * 1024).catch(() => Buffer.alloc(0));
        throw new TransientError(describeRegistryAnswer(res.status, body).text, parseRetryAfter(res.headers['retry-after']));
      }
      return res;
    }
  }
}

function classifyDrop(err: unknown, url: URL): string {
  const e = err as NodeJS.ErrnoException;
  return e instanceof TransientError ? e.message : `connection to ${url.host} dropped during the download (${e.code ?? e.message})`;
}

function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** Runs `fn` over items, `limit` at a time; on the first failure starts no more, lets the running ones end, then throws it. */
async function eachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.err;
}

function uniqueBlobs(image: OciImage): Descriptor[] {
  const seen = new Set<string>();
  const out: Descriptor[] = [];
  for (const d of [...image.layers, image.configDescriptor]) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    out.push(d);
  }
  return out;
}

/**
 * Pushes one image to one or more references in one registry. Every blob of
 * every repository is in place before the first manifest is written, so a
 * failure on the way moves no tag; a rerun finds the blobs already sent.
 * The second and later repositories mount blobs from the first.
 */
export async function pushImage(image: OciImage, source: BlobSource, refs: ImageReference[], opts: PushOptions = {}): Promise<PushReport> {
  if (!refs.length) throw new RegistryError('no image reference to push to', '');
  const registry = refs[0].registry;
  const manifestDigest = image.manifestDescriptor.digest;
  for (const r of refs) {
    if (r.registry !== registry) throw new RegistryError(`one push goes to one registry: ${formatReference(r)} is not on ${registry}`, registry, r.repository);
    if (r.digest && r.digest !== manifestDigest) throw new RegistryError(`${formatReference(r)}: the image's manifest digest is ${manifestDigest}`, registry, r.repository);
  }
  const client = new RegistryClient(registry, opts);
  const repositories = [...new Set(refs.map((r) => r.repository))];
  const mountFrom = (opts.mountFrom ?? []).map((m) => (m.startsWith(`${registry}/`) ? m.slice(registry.length + 1) : m));
  const blobs = uniqueBlobs(image);
  const report: PushReport = { ...emptyReport(), blobsMounted: 0, manifestDigest, references: [] };

  for (const [i, repository] of repositories.entries()) {
    const from = [...new Set([...(i > 0 ? [repositories[0]] : []), ...mountFrom])].filter((r) => r !== repository);
    await eachLimit(blobs, opts.concurrency ?? 3, async (b) => {
      if (await client.blobExists(repository, b.digest)) {
        report.blobsPresent++;
        report.bytesPresent += b.size;
        return;
      }
      const how = await client.putBlob(repository, b, source, from);
      if (how === 'mounted') report.blobsMounted++;
      else {
        report.blobsSent++;
        report.bytesSent += b.size;
      }
      client.progress(`${registry}/${repository}: blob ${short(b.digest)} ${how} (${megabytes(b.size)})`);
    });
  }

  // manifests last: until here no tag has moved
  for (const r of refs) {
    const reference = r.tag ?? r.digest ?? 'latest';
    await client.putManifest(r.repository, reference, image.manifest, image.manifestDescriptor.mediaType);
    report.references.push(formatReference({ registry, repository: r.repository, ...(r.digest && !r.tag ? { digest: r.digest } : { tag: reference }) }));
  }
  client.progress(
    `pushed ${manifestDigest} to ${report.references.join(', ')}: ${report.blobsSent} blobs uploaded (${megabytes(report.bytesSent)}), ${report.blobsMounted} mounted, ${report.blobsPresent} already there`,
  );
  return report;
}

export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

/** The manifest an index names for a platform: the one asked for, else this machine's, else linux/amd64. */
export function choosePlatform(manifests: Descriptor[], wanted?: Platform): Descriptor | undefined {
  const matches = (d: Descriptor, p: Platform) => d.platform?.os === p.os && d.platform?.architecture === p.architecture && (!p.variant || d.platform?.variant === p.variant);
  const usable = manifests.filter((d) => d.platform?.os !== 'unknown');
  if (wanted) return usable.find((d) => matches(d, wanted));
  return usable.find((d) => matches(d, hostPlatform())) ?? usable.find((d) => matches(d, { os: 'linux', architecture: 'amd64' }));
}

/**
 * Pulls an image into the sink: the manifest (through an index when the
 * reference names one), the config and the layers the sink lacks. Returns
 * the image as the registry holds it.
 */
export async function pullImage(ref: ImageReference, sink: BlobSink, opts: PullOptions = {}): Promise<OciImage> {
  const client = new RegistryClient(ref.registry, opts);
  const where = formatReference(ref);
  let m = await client.getManifest(ref);
  if (!m) throw new RegistryError(`${where}: not found in the registry`, ref.registry, ref.repository, 404);
  if (INDEX_TYPES.has(m.descriptor.mediaType)) {
    const index = JSON.parse(m.bytes.toString('utf8')) as { manifests?: Descriptor[] };
    const chosen = choosePlatform(index.manifests ?? [], opts.platform);
    if (!chosen) {
      const have = (index.manifests ?? []).map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ''}` : '?')).join(', ');
      const want = opts.platform ? `${opts.platform.os}/${opts.platform.architecture}` : `${hostPlatform().os}/${hostPlatform().architecture} or linux/amd64`;
      throw new RegistryError(`${where}: the index has no image for ${want} (it has ${have || 'none'})`, ref.registry, ref.repository);
    }
    m = await client.getManifest({ registry: ref.registry, repository: ref.repository, digest: chosen.digest });
    if (!m) throw new RegistryError(`${where}: the index names ${chosen.digest}, which the registry does not have`, ref.registry, ref.repository, 404);
  }
  const manifest = JSON.parse(m.bytes.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] };
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new RegistryError(`${where}: the manifest has no config or no layers`, ref.registry, ref.repository);
  const config = await client.readBlob(ref.repository, manifest.config);
  const image = imageFromManifest(m.bytes, config);
  image.manifestDescriptor.mediaType = m.descriptor.mediaType;

  let fetched = 0;
  let bytes = 0;
  await eachLimit(image.layers, opts.concurrency ?? 3, async (l) => {
    if (sink.has(l.digest)) return;
    await client.pullBlob(ref.repository, l, sink);
    fetched++;
    bytes += l.size;
  });
  // config and manifest last: a sink holding them holds the whole image
  if (!sink.has(image.configDescriptor.digest)) await sink.write(image.configDescriptor, Readable.from([config]));
  if (!sink.has(image.manifestDescriptor.digest)) await sink.write(image.manifestDescriptor, Readable.from([m.bytes]));
  client.progress(`pulled ${where} (${image.manifestDescriptor.digest}): ${fetched} layers fetched (${megabytes(bytes)}), ${image.layers.length - fetched} already here`);
  return image;
}

/** HEAD a manifest by reference; undefined when the registry has no such image (to find a base or an earlier image). */
export function headManifest(ref: ImageReference, opts: RegistryOptions = {}): Promise<Descriptor | undefined> {
  return new RegistryClient(ref.registry, opts).headManifest(ref);
}

export function getManifest(ref: ImageReference, opts: RegistryOptions = {}): Promise<{ bytes: Buffer; descriptor: Descriptor } | undefined> {
  return new RegistryClient(ref.registry, opts).getManifest(ref);
}

export function blobExists(ref: ImageReference, digest: string, opts: RegistryOptions = {}): Promise<boolean> {
  return new RegistryClient(ref.registry, opts).blobExists(ref.repository, digest);
}
