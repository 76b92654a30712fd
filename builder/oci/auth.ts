/**
 * Registry authentication the way Docker clients do it: anonymous until the
 * registry answers 401, then what its `WWW-Authenticate` asks for, either
 * Basic (the credentials on every request) or Bearer (a token from the
 * realm for the scopes the request needs, cached per scope set).
 *
 * Credentials come from explicit options, or from Docker's own config
 * (`$DOCKER_CONFIG/config.json`, else ~/.docker/config.json): `credHelpers`
 * for the host, then `credsStore`, then `auths`, each helper run through the
 * docker-credential-helper protocol. They are looked up only when a registry
 * asks, so an open registry never runs a helper.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { DOCKER_HUB } from './reference.js';
import { TransientError, parseRetryAfter } from './retry.js';
import { header, send, TransportError, type HttpResponse } from './transport.js';

export interface Credentials {
  username: string;
  password: string;
  /** an OAuth2 refresh token (what `docker login` keeps for some registries) instead of a password */
  identityToken?: string;
}

/** Where the credentials came from, for messages ("the credentials from credHelpers.ecr-login were refused"). */
export interface FoundCredentials extends Credentials {
  from: string;
}

export class AuthError extends Error {}

// ---- challenges -------------------------------------------------------------

export interface Challenge {
  /** lower case: basic, bearer */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header (RFC 7235): one or more challenges, each a
 * scheme and comma-separated key=value parameters, values quoted or not.
 */
export function parseChallenges(value: string | undefined): Challenge[] {
  if (!value) return [];
  const out: Challenge[] = [];
  let i = 0;
  const s = value;
  const skip = (re: RegExp) => {
    while (i < s.length && re.test(s[i])) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i])) i++;
    return s.slice(start, i);
  };
  while (i < s.length) {
    skip(/[\s,]/);
    const scheme = token();
    if (!scheme) break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    for (;;) {
      skip(/[\s,]/);
      const save = i;
      const key = token();
      skip(/\s/);
      if (!key || s[i] !== '=') {
        // not a parameter: the start of the next challenge
        i = save;
        break;
      }
      i++;
      skip(/\s/);
      let val = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          val += s[i++];
        }
        i++;
      } else {
        const start = i;
        while (i < s.length && s[i] !== ',' && !/\s/.test(s[i])) i++;
        val = s.slice(start, i);
      }
      challenge.params[key.toLowerCase()] = val;
      if (i >= s.length) break;
    }
  }
  return out;
}

// ---- credentials from Docker's config ----------------------------------------

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/** The hosts Docker files a registry under: Docker Hub has historical names; others are the host, maybe with a scheme and path. */
function hostAliases(registry: string): string[] {
  return registry === DOCKER_HUB ? ['index.docker.io', 'docker.io', 'registry-1.docker.io'] : [registry];
}

/** A config key (`host`, `https://host`, `https://host/v1/`) reduced to the host it names. */
export function configKeyHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

/** The server URL a credential helper knows the registry by: what `docker login` stored it under. */
function helperServerUrl(registry: string): string {
  return registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry;
}

export interface CredentialLookup {
  /** config.json to read (default: dockerConfigPath()) */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
}

/** The credentials Docker would use for `registry`, or undefined for anonymous access. */
export async function dockerCredentials(registry: string, lookup: CredentialLookup = {}): Promise<FoundCredentials | undefined> {
  const env = lookup.env ?? process.env;
  const file = lookup.configPath ?? dockerConfigPath(env);
  let config: DockerConfigFile;
  try {
    config = JSON.parse(fs.readFileSync(file, 'utf8')) as DockerConfigFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AuthError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const aliases = hostAliases(registry.toLowerCase());
  const helper = Object.entries(config.credHelpers ?? {}).find(([k]) => aliases.includes(configKeyHost(k)))?.[1];
  if (helper) {
    const c = await runCredentialHelper(helper, helperServerUrl(registry), env);
    if (c) return { ...c, from: `credHelpers (docker-credential-${helper})` };
  } else if (config.credsStore) {
    const c = await runCredentialHelper(config.credsStore, helperServerUrl(registry), env);
    if (c) return { ...c, from: `credsStore (docker-credential-${config.credsStore})` };
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (!aliases.includes(configKeyHost(key))) continue;
    let { username, password } = entry;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new AuthError(`${file}: auths["${key}"].auth is not base64 of user:password`);
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    if (entry.identitytoken) return { username: username ?? '', password: '', identityToken: entry.identitytoken, from: `${file} (auths)` };
    if (username !== undefined && password !== undefined && (username || password)) return { username, password, from: `${file} (auths)` };
  }
  return undefined;
}

/**
 * `docker-credential-<name> get` with the server URL on stdin; JSON
 * {Username, Secret} on stdout. "credentials not found" is anonymous access,
 * any other failure is an error (a helper that is set up but broken should
 * be fixed, not silently skipped).
 */
export function runCredentialHelper(name: string, serverUrl: string, env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000): Promise<Credentials | undefined> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new AuthError(e.code === 'ENOENT' ? `the Docker config names the credential helper "${name}", but ${program} is not on PATH` : `${program}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const said = (out.trim() || err.trim()).split('\n')[0];
      if (code !== 0) {
        if (/credentials not found/i.test(said)) return resolve(undefined);
        return reject(new AuthError(signal ? `${program} get did not answer within ${timeoutMs / 1000} s` : `${program} get failed: ${said || `exit ${code}`}`));
      }
      try {
        const j = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!j.Secret && !j.Username) return resolve(undefined);
        // "<token>" is the helpers' way of saying the secret is an identity (refresh) token
        if (j.Username === '<token>') return resolve({ username: '', password: '', identityToken: j.Secret ?? '' });
        resolve({ username: j.Username ?? '', password: j.Secret ?? '' });
      } catch {
        reject(new AuthError(`${program} get printed something that is not JSON`));
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(serverUrl);
  });
}

// ---- scopes and tokens -----------------------------------------------------------

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

function scopeKey(scopes: string[]): string {
  return [...new Set(scopes)].sort().join(' ');
}

interface CachedToken {
  value: string;
  expiresAt: number;
}

export interface AuthenticatorOptions {
  /** the registry as in references (for messages and for Docker's config) */
  registry: string;
  /** explicit credentials win over Docker's config; null means anonymous, never looking */
  credentials?: Credentials | null;
  lookup?: CredentialLookup;
  timeoutMs?: number;
  insecureTls?: boolean;
}

/**
 * One registry's authentication state: what it challenged with, the
 * credentials (looked up once), and bearer tokens per scope set.
 */
export class Authenticator {
  private challenge?: Challenge;
  private creds?: FoundCredentials | null;
  private readonly tokens = new Map<string, Promise<CachedToken>>();

  constructor(private readonly opts: AuthenticatorOptions) {}

  /** The Authorization header for a request needing `scopes`, when the registry has asked for one. */
  async authorization(scopes: string[]): Promise<string | undefined> {
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === 'basic') {
      const creds = await this.credentials();
      return creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    }
    const key = scopeKey(scopes);
    const now = Date.now();
    let pending = this.tokens.get(key);
    // parallel requests needing the same scopes share one token request
    if (!pending || ((await pending.catch(() => undefined))?.expiresAt ?? 0) <= now) {
      pending = this.fetchToken(c, [...new Set(scopes)]);
      this.tokens.set(key, pending);
      pending.catch(() => this.tokens.get(key) === pending && this.tokens.delete(key));
    }
    return `Bearer ${(await pending).value}`;
  }

  /**
   * Takes a 401's challenge; true when a new try with fresh authorization
   * may succeed, false when it would only repeat what was refused.
   */
  async challenged(res: HttpResponse, scopes: string[], hadAuthorization: boolean): Promise<boolean> {
    const all = parseChallenges(header(res.headers, 'www-authenticate'));
    const c = all.find((x) => x.scheme === 'bearer') ?? all.find((x) => x.scheme === 'basic');
    if (!c) throw new AuthError(`${this.opts.registry} asks for authentication without a challenge this client knows (${header(res.headers, 'www-authenticate') ?? 'no WWW-Authenticate header'})`);
    const changed = !this.challenge || this.challenge.scheme !== c.scheme || this.challenge.params.realm !== c.params.realm;
    this.challenge = c;
    if (c.scheme === 'bearer') {
      // the registry may name a scope the caller did not think of: it joins the caller's list
      let added = false;
      for (const s of (c.params.scope ?? '').split(' ').filter(Boolean)) {
        if (!scopes.includes(s)) {
          scopes.push(s);
          added = true;
        }
      }
      if (hadAuthorization && !changed && !added) return false;
      this.tokens.delete(scopeKey(scopes));
      return true;
    }
    if (hadAuthorization && !changed) return false;
    return (await this.credentials()) !== undefined;
  }

  /** The registry answered, so what it asked for is known without a 401 per request (from the /v2/ ping). */
  learn(res: HttpResponse): void {
    if (res.status !== 401) return;
    const all = parseChallenges(header(res.headers, 'www-authenticate'));
    this.challenge = all.find((x) => x.scheme === 'bearer') ?? all.find((x) => x.scheme === 'basic') ?? this.challenge;
  }

  /** What a refusal should tell the user about credentials. */
  async describeCredentials(): Promise<string> {
    const c = await this.credentials();
    if (!c) return `no credentials for ${this.opts.registry} (\`docker login ${this.opts.registry}\`, or without Docker \`skopeo login --authfile ~/.docker/config.json ${this.opts.registry}\`; DOCKER_CONFIG names another folder)`;
    return c.identityToken ? `the identity token from ${c.from}` : `user "${c.username}" from ${c.from}`;
  }

  get scheme(): string | undefined {
    return this.challenge?.scheme;
  }

  async credentials(): Promise<FoundCredentials | undefined> {
    if (this.creds === undefined) {
      if (this.opts.credentials === null) this.creds = null;
      else if (this.opts.credentials) this.creds = { ...this.opts.credentials, from: 'the given credentials' };
      else this.creds = (await dockerCredentials(this.opts.registry, this.opts.lookup)) ?? null;
    }
    return this.creds ?? undefined;
  }

  private async fetchToken(c: Challenge, scopes: string[]): Promise<CachedToken> {
    const realm = c.params.realm;
    if (!realm) throw new AuthError(`${this.opts.registry} asks for a bearer token without naming a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new AuthError(`${this.opts.registry} names a token realm that is not a URL: ${realm}`);
    }
    try {
      return await this.requestToken(c, url, scopes);
    } catch (err) {
      const at = `the token service at ${url.origin}${url.pathname}`;
      if (err instanceof TransientError && !err.message.startsWith('the token service')) throw new TransientError(`${at}: ${err.message}`, err.retryAfterMs);
      if (err instanceof TransportError) throw new AuthError(`${at}: ${err.message}`);
      throw err;
    }
  }

  private async requestToken(c: Challenge, url: URL, scopes: string[]): Promise<CachedToken> {
    const creds = await this.credentials();
    const common = { timeoutMs: this.opts.timeoutMs, insecureTls: this.opts.insecureTls, followRedirects: true };
    let res: HttpResponse;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'epr-builder', ...(c.params.service ? { service: c.params.service } : {}), scope: scopes.join(' ') });
      res = await send({ ...common, method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()) });
    } else {
      if (c.params.service) url.searchParams.set('service', c.params.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (creds) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      res = await send({ ...common, method: 'GET', url, headers });
    }
    const body = await res.buffer(1024 * 1024);
    if (res.status >= 500 || res.status === 429) throw new TransientError(`the token service at ${url.origin}${url.pathname} answered ${res.status}`, parseRetryAfter(res.headers['retry-after']));
    if (res.status !== 200) {
      const said = body.toString('utf8').trim().split('\n')[0].slice(0, 200);
      throw new AuthError(`the token service at ${url.origin}${url.pathname} refused ${await this.describeCredentials()}: ${res.status}${said ? ` ${said}` : ''}`);
    }
    let j: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      j = JSON.parse(body.toString('utf8'));
    } catch {
      throw new AuthError(`the token service at ${url.origin}${url.pathname} answered with something that is not JSON`);
    }
    const value = j.token || j.access_token;
    if (!value) throw new AuthError(`the token service at ${url.origin}${url.pathname} answered without a token`);
    // the spec's default lifetime is 60 s; renew a little early so a token never expires mid-request
    const lifetime = Math.max(10, (j.expires_in ?? 60) - 5) * 1000;
    return { value, expiresAt: Date.now() + lifetime };
  }
}
