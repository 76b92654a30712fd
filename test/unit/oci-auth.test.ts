/**
 * Registry authentication without a registry: challenges, Docker's
 * config.json, credential helpers (real scripts on PATH speaking the
 * docker-credential protocol) and bearer tokens from a real token service
 * on 127.0.0.1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { AuthError, Authenticator, configKeyHost, dockerConfigPath, dockerCredentials, parseChallenges, pullScope, pushScope, runCredentialHelper } from '../../builder/oci/auth.js';
import type { HttpResponse } from '../../builder/oci/transport.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A 401 as the Authenticator sees it: only its challenge matters. */
function unauthorized(challenge: string): HttpResponse {
  return { status: 401, headers: { 'www-authenticate': challenge } } as unknown as HttpResponse;
}

function jwtClaims(authorization: string): { sub: string; access: Array<{ name: string; actions: string[] }> } {
  return JSON.parse(Buffer.from(authorization.replace(/^Bearer /, '').split('.')[1], 'base64url').toString('utf8'));
}

/** A docker-credential-<name> script: answers for `host` only, logs each call. */
function writeHelper(bin: string, name: string, host: string, answer: string): string {
  fs.mkdirSync(bin, { recursive: true });
  const log = path.join(bin, `${name}.log`);
  fs.writeFileSync(
    path.join(bin, `docker-credential-${name}`),
    `#!/bin/sh\nread server\necho "$1 $server" >> '${log}'\nif [ "$server" = '${host}' ]; then echo '${answer}'; else echo 'credentials not found in native keychain'; exit 1; fi\n`,
    { mode: 0o755 },
  );
  return log;
}

describe('registry authentication', () => {
  after(() => cleanupTmp());

  describe('WWW-Authenticate challenges', () => {
    it("reads Docker Hub's bearer challenge", () => {
      expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/node:pull"')).to.deep.equal([
        { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/node:pull' } },
      ]);
    });

    it('reads basic, unquoted values, escapes, and several challenges in one header', () => {
      expect(parseChallenges('Basic realm="Registry Realm"')).to.deep.equal([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
      expect(parseChallenges('bearer realm=http://127.0.0.1:1/token, service=reg')).to.deep.equal([{ scheme: 'bearer', params: { realm: 'http://127.0.0.1:1/token', service: 'reg' } }]);
      expect(parseChallenges('Basic realm="say \\"hi\\", then"')[0].params.realm).to.equal('say "hi", then');
      expect(parseChallenges('Basic realm="a", Bearer realm="b",service="c"')).to.deep.equal([
        { scheme: 'basic', params: { realm: 'a' } },
        { scheme: 'bearer', params: { realm: 'b', service: 'c' } },
      ]);
      expect(parseChallenges('Negotiate')).to.deep.equal([{ scheme: 'negotiate', params: {} }]);
      expect(parseChallenges(undefined)).to.deep.equal([]);
    });

    it('names scopes as the token protocol does', () => {
      expect(pullScope('epr/distribution')).to.equal('repository:epr/distribution:pull');
      expect(pushScope('epr/distribution')).to.equal('repository:epr/distribution:pull,push');
    });
  });

  describe("Docker's config.json", () => {
    let dir = '';
    const write = (config: unknown) => {
      const file = path.join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
      fs.writeFileSync(file, JSON.stringify(config));
      return file;
    };
    before(() => (dir = tmpDir('epr-oci-auth-')));

    it('lives in $DOCKER_CONFIG, else ~/.docker', () => {
      expect(dockerConfigPath({ DOCKER_CONFIG: '/etc/ci-docker', HOME: '/home/x' })).to.equal('/etc/ci-docker/config.json');
      expect(dockerConfigPath({ HOME: '/home/x' })).to.equal('/home/x/.docker/config.json');
    });

    it('files a registry under its host, with or without a scheme and /v1/', () => {
      expect(['reg.example:5000', 'https://reg.example:5000', 'https://reg.example:5000/v1/', 'HTTP://Reg.Example:5000/'].map(configKeyHost)).to.deep.equal(Array(4).fill('reg.example:5000'));
    });

    it('reads auths: base64 auth, username and password, identity tokens, Docker Hub by its old name', async () => {
      const file = write({
        auths: {
          'https://reg.example:5000/v1/': { auth: b64('ci:pa:ss') },
          'other.example': { username: 'u', password: 'p' },
          'token.example': { identitytoken: 'refresh-me' },
          'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') },
        },
      });
      expect(await dockerCredentials('reg.example:5000', { configPath: file })).to.deep.equal({ username: 'ci', password: 'pa:ss', from: `${file} (auths)` });
      expect(await dockerCredentials('other.example', { configPath: file })).to.include({ username: 'u', password: 'p' });
      expect(await dockerCredentials('token.example', { configPath: file })).to.include({ identityToken: 'refresh-me' });
      expect(await dockerCredentials('docker.io', { configPath: file })).to.include({ username: 'hubuser', password: 'hubpass' });
      expect(await dockerCredentials('reg.example', { configPath: file })).to.equal(undefined);
    });

    it('is anonymous without a config file, and says what is wrong with a broken one', async () => {
      expect(await dockerCredentials('reg.example', { configPath: path.join(dir, 'none.json') })).to.equal(undefined);
      const bad = path.join(dir, 'bad.json');
      fs.writeFileSync(bad, '{ not json');
      const err = await dockerCredentials('reg.example', { configPath: bad }).catch((e: Error) => e);
      expect(err).to.be.instanceOf(AuthError);
      expect((err as Error).message).to.include(`cannot read ${bad}`);
      const badAuth = write({ auths: { 'reg.example': { auth: b64('no-colon') } } });
      expect(((await dockerCredentials('reg.example', { configPath: badAuth }).catch((e: Error) => e)) as Error).message).to.include('is not base64 of user:password');
    });

    it('asks credHelpers for their host, credsStore for the others, and falls back to auths when a helper has nothing', async () => {
      const bin = path.join(dir, 'bin');
      const helperLog = writeHelper(bin, 'epr-ecr', 'ecr.example', '{"ServerURL":"ecr.example","Username":"AWS","Secret":"ecr-pass"}');
      const storeLog = writeHelper(bin, 'epr-store', 'https://index.docker.io/v1/', '{"Username":"<token>","Secret":"hub-refresh"}');
      const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
      const file = write({ credHelpers: { 'ecr.example': 'epr-ecr' }, credsStore: 'epr-store', auths: { 'plain.example': { auth: b64('a:b') } } });
      expect(await dockerCredentials('ecr.example', { configPath: file, env })).to.deep.equal({ username: 'AWS', password: 'ecr-pass', from: 'credHelpers (docker-credential-epr-ecr)' });
      expect(await dockerCredentials('docker.io', { configPath: file, env })).to.include({ identityToken: 'hub-refresh' });
      expect(await dockerCredentials('plain.example', { configPath: file, env })).to.include({ username: 'a', password: 'b' });
      expect(await dockerCredentials('nobody.example', { configPath: file, env })).to.equal(undefined);
      expect(fs.readFileSync(helperLog, 'utf8').trim().split('\n')).to.deep.equal(['get ecr.example']);
      expect(fs.readFileSync(storeLog, 'utf8').trim().split('\n')).to.deep.equal(['get https://index.docker.io/v1/', 'get plain.example', 'get nobody.example']);
    });

    it('fails clearly when a helper is missing or broken', async () => {
      const missing = await runCredentialHelper('epr-not-installed', 'x').catch((e: Error) => e);
      expect((missing as Error).message).to.equal('the Docker config names the credential helper "epr-not-installed", but docker-credential-epr-not-installed is not on PATH');
      const bin = path.join(dir, 'bin-broken');
      fs.mkdirSync(bin);
      fs.writeFileSync(path.join(bin, 'docker-credential-epr-broken'), '#!/bin/sh\necho "keychain locked" >&2\nexit 3\n', { mode: 0o755 });
      const broken = await runCredentialHelper('epr-broken', 'x', { ...process.env, PATH: `${bin}:${process.env.PATH}` }).catch((e: Error) => e);
      expect((broken as Error).message).to.equal('docker-credential-epr-broken get failed: keychain locked');
    });
  });

  describe('the Authenticator', () => {
    let tokens: TokenService;
    let oauth: TokenService;
    before(async () => {
      const dir = tmpDir('epr-oci-tokens-');
      tokens = await startTokenService({ dir, user: 'ci', password: 'pw' });
      oauth = await startTokenService({ dir: tmpDir('epr-oci-tokens-'), user: 'ci', password: 'pw', field: 'access_token', anonymousPull: true });
    });
    after(async () => {
      await tokens.close();
      await oauth.close();
    });

    it('is anonymous until challenged, then fetches a token per scope set and reuses it', async () => {
      const auth = new Authenticator({ registry: '127.0.0.1:1', credentials: { username: 'ci', password: 'pw' } });
      const scopes = [pushScope('epr/a')];
      expect(await auth.authorization(scopes)).to.equal(undefined);
      expect(await auth.challenged(unauthorized(`Bearer realm="${tokens.realm}",service="test-registry"`), scopes, false)).to.equal(true);
      const [a, b] = await Promise.all([auth.authorization(scopes), auth.authorization([pushScope('epr/a')])]);
      expect(a).to.equal(b);
      expect(jwtClaims(a!)).to.deep.include({ sub: 'ci', access: [{ type: 'repository', name: 'epr/a', actions: ['pull', 'push'] }] });
      const mount = await auth.authorization([pushScope('epr/b'), pullScope('epr/a')]);
      expect(jwtClaims(mount!).access.map((x) => `${x.name}:${x.actions}`).sort()).to.deep.equal(['epr/a:pull', 'epr/b:pull,push']);
      expect(tokens.requests.map((r) => r.scopes.join(' '))).to.deep.equal(['repository:epr/a:pull,push', 'repository:epr/b:pull,push repository:epr/a:pull']);
    });

    it("adds the scope a challenge names, and does not retry what was refused", async () => {
      const auth = new Authenticator({ registry: '127.0.0.1:1', credentials: null });
      const scopes = [pullScope('epr/a')];
      const challenge = unauthorized(`Bearer realm="${oauth.realm}",service="test-registry",scope="repository:epr/a:pull repository:epr/x:pull"`);
      expect(await auth.challenged(challenge, scopes, false)).to.equal(true);
      expect(scopes).to.deep.equal(['repository:epr/a:pull', 'repository:epr/x:pull']);
      const token = await auth.authorization(scopes);
      expect(jwtClaims(token!).access.map((x) => x.name)).to.deep.equal(['epr/a', 'epr/x']);
      expect(oauth.requests.at(-1)?.user).to.equal(undefined);
      expect(await auth.challenged(challenge, scopes, true)).to.equal(false);
    });

    it("says what the token service refused", async () => {
      const auth = new Authenticator({ registry: '127.0.0.1:1', credentials: { username: 'ci', password: 'wrong' } });
      await auth.challenged(unauthorized(`Bearer realm="${tokens.realm}",service="test-registry"`), [], false);
      const err = await auth.authorization([pullScope('epr/a')]).catch((e: Error) => e);
      expect(err).to.be.instanceOf(AuthError);
      expect((err as Error).message).to.equal(`the token service at ${tokens.realm} refused user "ci" from the given credentials: 401 {"details":"wrong user name or password"}`);
    });

    it('answers a basic challenge with the credentials, and gives up without any', async () => {
      const auth = new Authenticator({ registry: '127.0.0.1:1', credentials: { username: 'ci', password: 'pw' } });
      expect(await auth.challenged(unauthorized('Basic realm="registry"'), [], false)).to.equal(true);
      expect(await auth.authorization([])).to.equal(`Basic ${b64('ci:pw')}`);
      expect(await auth.challenged(unauthorized('Basic realm="registry"'), [], true)).to.equal(false);
      const anonymous = new Authenticator({ registry: '127.0.0.1:1', credentials: null });
      expect(await anonymous.challenged(unauthorized('Basic realm="registry"'), [], false)).to.equal(false);
      expect(await anonymous.describeCredentials()).to.equal('no credentials for 127.0.0.1:1 (`docker login 127.0.0.1:1`, or without Docker `skopeo login --authfile ~/.docker/config.json 127.0.0.1:1`; DOCKER_CONFIG names another folder)');
    });
  });
});
