/**
 * The server as a process: `node dist/server/main.js` with flags, EPR_*
 * variables and config files; exit codes and messages.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { cleanupTmp, tmpDir, writeConfig, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';
import { get, runServer, spawnServer, startAll, type RunResult, type ServerProcess } from '../helpers/server.js';
import { envName, FLAGS } from '../../server/flags.js';

const NO_STACK = /\n\s+at /;

describe('server process: validation at start-up', function () {
  this.timeout(30000);
  after(cleanupTmp);

  let goodPath: string;
  let goodConfig: string;
  before(() => {
    const root = tmpDir();
    goodPath = path.join(root, 'good');
    writeDirPackage(goodPath, { name: 'good', version: '1.0.0' });
    writeDirPackage(goodPath, { name: 'good', version: '1.1.0' });
    writeDirPackage(goodPath, { name: 'other', version: '0.1.0' });
    goodConfig = writeConfig(root, [goodPath]);
  });

  /** A config with the good path plus one package path holding the package `write` makes. */
  function brokenConfig(write: (dir: string) => void): { config: string; dir: string } {
    const root = tmpDir();
    const dir = path.join(root, 'broken');
    fs.mkdirSync(dir);
    write(dir);
    return { config: writeConfig(root, [goodPath, dir]), dir };
  }

  /**
   * Each refused start-up is its own process; they are started together in
   * before() (a few at a time) and each test awaits its own.
   */
  interface RefusedCase { title: string; write: (dir: string) => void; mentions: (dir: string) => string[] }
  const refused: RefusedCase[] = [
    {
      title: 'a missing required manifest field: exits 1 naming the file and the field',
      write: (d) => writeDirPackage(d, { name: 'notitle', version: '1.0.0', omit: ['title'] }),
      mentions: (d) => [`${path.join(d, 'notitle', '1.0.0', 'manifest.yml')}: title: is required`],
    },
    {
      title: 'several missing fields are all listed',
      write: (d) => writeDirPackage(d, { name: 'bare', version: '1.0.0', omit: ['title', 'description', 'format_version'] }),
      mentions: (d) => ['title', 'description', 'format_version'].map((f) => `${path.join(d, 'bare', '1.0.0', 'manifest.yml')}: ${f}: is required`),
    },
    {
      title: 'a name/version that disagrees with its folder',
      write: (d) => writeDirPackage(d, { name: 'real_name', version: '1.0.0' }, { name: 'folder_name', version: '1.0.0' }),
      mentions: (d) => [`${path.join(d, 'folder_name', '1.0.0', 'manifest.yml')}: name/version: manifest says real_name 1.0.0 but the package folder is folder_name/1.0.0`],
    },
    {
      title: 'a version that disagrees with its folder',
      write: (d) => writeDirPackage(d, { name: 'ver', version: '1.0.1' }, { name: 'ver', version: '1.0.0' }),
      mentions: () => ['manifest says ver 1.0.1 but the package folder is ver/1.0.0'],
    },
    {
      title: 'invalid YAML in manifest.yml',
      write: (d) => writeDirPackage(d, { name: 'badyaml', version: '1.0.0', rawManifest: 'name: badyaml\ntitle: [oops\nversion: 1.0.0\n' }),
      mentions: (d) => [`${path.join(d, 'badyaml', '1.0.0', 'manifest.yml')}: invalid YAML`],
    },
    {
      title: 'a manifest that is not a mapping',
      write: (d) => writeDirPackage(d, { name: 'listy', version: '1.0.0', rawManifest: '- a\n- b\n' }),
      mentions: (d) => [`${path.join(d, 'listy', '1.0.0', 'manifest.yml')}: expected a YAML mapping`],
    },
    {
      title: 'a missing docs/README.md',
      write: (d) => writeDirPackage(d, { name: 'noreadme', version: '1.0.0', readme: false }),
      mentions: (d) => [`${path.join(d, 'noreadme', '1.0.0', 'docs', 'README.md')}: file is missing`],
    },
    {
      title: 'a data stream manifest without its required fields',
      write: (d) => writeDirPackage(d, { name: 'ds', version: '1.0.0', dataStreams: { logs: { title: 'Logs' } } }),
      mentions: (d) => [`${path.join(d, 'ds', '1.0.0', 'data_stream', 'logs', 'manifest.yml')}: type: is required`],
    },
    {
      title: 'an invalid package name and version in the manifest',
      write: (d) => writeDirPackage(d, { name: 'Bad-Name', version: '1.0' }, { name: 'x', version: '1.0.0' }),
      mentions: (d) => [`${path.join(d, 'x', '1.0.0', 'manifest.yml')}: name: must match pattern`, 'version: must be a semantic version'],
    },
  ];
  let results: Record<string, Promise<RunResult & { dir: string }>> = {};
  before(() => {
    const tasks: Record<string, () => Promise<RunResult & { dir: string }>> = {};
    for (const c of refused) {
      const { config, dir } = brokenConfig(c.write);
      tasks[c.title] = async () => Object.assign(await runServer(['--config', config, '--address', '127.0.0.1:0'], { timeoutMs: 25_000 }), { dir });
    }
    results = startAll(tasks);
  });

  for (const c of refused) {
    it(c.title, async () => {
      const r = await results[c.title];
      expect(r.code, r.stderr).to.equal(1);
      for (const m of c.mentions(r.dir)) expect(r.stderr).to.include(m);
      expect(r.stderr).to.not.match(NO_STACK);
      expect(r.stderr).to.include('1 package(s) failed to load; not starting');
      expect(r.stdout).to.equal('');
    });
  }

  async function expectRefused(config: string, ...mentions: string[]): Promise<string> {
    const r = await runServer(['--config', config, '--address', '127.0.0.1:0']);
    expect(r.code, r.stderr).to.equal(1);
    for (const m of mentions) expect(r.stderr).to.include(m);
    expect(r.stderr).to.not.match(NO_STACK);
    expect(r.stderr).to.include('not starting');
    return r.stderr;
  }

  it('a package path that does not exist', async () => {
    const root = tmpDir();
    const config = writeConfig(root, [goodPath, path.join(root, 'missing')]);
    await expectRefused(config, path.join(root, 'missing'), 'does not exist');
  });

  it('--dry-run exits 0 on good packages and says how many', async () => {
    const r = await runServer(['--config', goodConfig, '--dry-run']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('dry run: 3 package versions of 2 packages are valid (1 package paths)\n');
  });

  it('--dry-run exits non-zero naming each broken package', async () => {
    const { config, dir } = brokenConfig((d) => {
      writeDirPackage(d, { name: 'notitle', version: '1.0.0', omit: ['title'] });
      writeDirPackage(d, { name: 'noreadme', version: '1.0.0', readme: false });
      writeDirPackage(d, { name: 'badyaml', version: '1.0.0', rawManifest: 'a: [\n' });
      writeDirPackage(d, { name: 'real', version: '1.0.0' }, { name: 'wrong', version: '1.0.0' });
    });
    const r = await runServer(['--config', config, '--dry-run']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include('dry run: 4 package(s) with problems:');
    for (const p of ['notitle/1.0.0/manifest.yml: title: is required', 'noreadme/1.0.0/docs/README.md', 'badyaml/1.0.0/manifest.yml', 'wrong/1.0.0/manifest.yml: name/version']) {
      expect(r.stderr).to.include(path.join(dir, p));
    }
    expect(r.stderr).to.not.match(NO_STACK);
  });

  it('EPR_DRY_RUN=true is --dry-run', async () => {
    const r = await runServer(['--config', goodConfig], { env: { EPR_DRY_RUN: 'true' } });
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^dry run: 3 package versions/);
  });

  describe('--disable-package-validation', () => {
    let server: ServerProcess | undefined;
    afterEach(async () => { await server?.stop(); server = undefined; });

    it('starts anyway: serves what can be read, skips what cannot', async () => {
      const { config } = brokenConfig((d) => {
        writeDirPackage(d, { name: 'noreadme', version: '1.0.0', readme: false });
        writeDirPackage(d, { name: 'notitle', version: '1.0.0', omit: ['title'] });
      });
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0', '--disable-package-validation']);
      expect((await get(server.url, '/health')).status).to.equal(200);
      expect((await get(server.url, '/package/good/1.1.0/')).status).to.equal(200);
      expect((await get(server.url, '/package/noreadme/1.0.0/manifest.yml')).status).to.equal(200);
      expect((await get(server.url, '/package/notitle/1.0.0/')).status).to.equal(404);
      expect(server.stderr()).to.include('package skipped');
    });

    it('EPR_DISABLE_PACKAGE_VALIDATION=true too', async () => {
      const { config } = brokenConfig((d) => writeDirPackage(d, { name: 'noreadme', version: '1.0.0', readme: false }));
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0'], { env: { EPR_DISABLE_PACKAGE_VALIDATION: 'true' } });
      expect((await get(server.url, '/package/noreadme/1.0.0/')).status).to.equal(200);
    });
  });

  describe('signatures', () => {
    let server: ServerProcess | undefined;
    let config: string;
    let zip: string;
    afterEach(async () => { await server?.stop(); server = undefined; });
    before(async () => {
      const root = tmpDir();
      zip = await writeZipPackage(path.join(root, 'zips'), { name: 'unsigned', version: '1.0.0' }, { signature: false });
      config = writeConfig(root, [path.join(root, 'zips')]);
    });

    it('a zip without its .sig stops the start', async () => {
      const r = await runServer(['--config', config, '--address', '127.0.0.1:0']);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include(`${zip}.sig`);
      expect(r.stderr).to.include('signature is missing');
      expect(r.stderr).to.not.match(NO_STACK);
    });

    it('--require-package-signatures=false starts and serves it without signature_path', async () => {
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0', '--require-package-signatures=false']);
      const [e] = JSON.parse((await get(server.url, '/search')).text) as Array<Record<string, unknown>>;
      expect(e.name).to.equal('unsigned');
      expect(e).to.not.have.property('signature_path');
      expect((await get(server.url, '/epr/unsigned/unsigned-1.0.0.zip')).body.equals(fs.readFileSync(zip))).to.equal(true);
      expect((await get(server.url, '/epr/unsigned/unsigned-1.0.0.zip.sig')).text).to.equal('signature file not found\n');
    });

    it('EPR_REQUIRE_PACKAGE_SIGNATURES=false too', async () => {
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0'], { env: { EPR_REQUIRE_PACKAGE_SIGNATURES: 'false' } });
      expect((await get(server.url, '/package/unsigned/1.0.0/')).status).to.equal(200);
    });
  });

  describe('zip packages that cannot be served', () => {
    it('a zip-slip entry is refused at start with a clear message', async () => {
      const { writeZipSlipPackage } = await import('../helpers/fixtures.js');
      const root = tmpDir();
      const zip = await writeZipSlipPackage(path.join(root, 'zips'), { name: 'slip', version: '1.0.0' });
      const config = writeConfig(root, [path.join(root, 'zips')]);
      const r = await runServer(['--config', config, '--address', '127.0.0.1:0']);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include(zip);
      expect(r.stderr).to.include('slip-1.0.0/../evil.txt');
      expect(r.stderr).to.not.match(NO_STACK);
      expect(fs.existsSync(path.join(root, 'evil.txt'))).to.equal(false);
    });

    it('a zip whose top folder disagrees with its manifest', async () => {
      const root = tmpDir();
      const zip = await writeZipPackage(path.join(root, 'zips'), { name: 'zname', version: '1.0.0' }, { topFolder: 'other-1.0.0' });
      const config = writeConfig(root, [path.join(root, 'zips')]);
      const r = await runServer(['--config', config, '--dry-run']);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include(`${zip}: name/version: manifest says zname 1.0.0 but the zip's top folder is other-1.0.0/`);
    });

    it('a file that is not a zip', async () => {
      const root = tmpDir();
      fs.mkdirSync(path.join(root, 'zips'));
      fs.writeFileSync(path.join(root, 'zips', 'junk-1.0.0.zip'), 'not a zip at all');
      const r = await runServer(['--config', writeConfig(root, [path.join(root, 'zips')]), '--dry-run']);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include('cannot read zip junk-1.0.0.zip');
      expect(r.stderr).to.not.match(NO_STACK);
    });
  });

  describe('config.yml', () => {
    it('an invalid config.yml is rejected listing every problem with key and line', async () => {
      const root = tmpDir();
      const file = path.join(root, 'config.yml');
      fs.writeFileSync(file, 'package_paths: nope\ncache_time:\n  index: soon\n  search: 1m\nextra_key: 1\n');
      const r = await runServer(['--config', file, '--address', '127.0.0.1:0']);
      expect(r.code).to.equal(2);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines[0]).to.equal(`error: invalid configuration ${file}: 3 problems:`);
      expect(lines.slice(1)).to.have.members([
        '  - package_paths (line 1): must be array',
        '  - cache_time.index (line 3): must be a duration such as 10s, 5m or 1h',
        '  - extra_key (line 5): unknown key',
      ]);
    });

    it('an explicit config file that does not exist', async () => {
      const r = await runServer(['--config', '/nonexistent/epr/config.yml']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.equal('error: invalid configuration /nonexistent/epr/config.yml: file not found\n');
    });

    it('relative package paths are relative to the config file, not the working directory', async () => {
      const root = tmpDir();
      writeDirPackage(path.join(root, 'rel'), { name: 'rel', version: '1.0.0' });
      fs.writeFileSync(path.join(root, 'config.yml'), 'package_paths:\n  - ./rel\n');
      const r = await runServer(['--config', path.join(root, 'config.yml'), '--dry-run'], { cwd: tmpDir() });
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/^dry run: 1 package versions of 1 packages are valid/);
    });
  });
});

describe('server process: flags and EPR_* variables', function () {
  this.timeout(30000);
  let root: string;
  let config: string;
  let server: ServerProcess | undefined;

  before(() => {
    root = tmpDir();
    writeDirPackage(path.join(root, 'pkgs'), { name: 'envpkg', version: '1.0.0' });
    config = writeConfig(root, [path.join(root, 'pkgs')]);
  });
  afterEach(async () => { await server?.stop(); server = undefined; });
  after(cleanupTmp);

  it('EPR_ADDRESS and EPR_CONFIG', async () => {
    server = await spawnServer([], { env: { EPR_ADDRESS: '127.0.0.1:0', EPR_CONFIG: config } });
    expect(server.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    const names = (JSON.parse((await get(server.url, '/search')).text) as Array<{ name: string }>).map((p) => p.name);
    expect(names).to.deep.equal(['envpkg']);
  });

  it('ELASTIC_APM_SERVICE_NAME names the service in /', async () => {
    server = await spawnServer(['--config', config, '--address', '127.0.0.1:0'], { env: { ELASTIC_APM_SERVICE_NAME: 'my-epr' } });
    expect(JSON.parse((await get(server.url, '/')).text)).to.deep.equal({ 'service.name': 'my-epr', 'service.version': '1.40.1' });
  });

  it('EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS=false: an unknown parameter is a 400', async () => {
    server = await spawnServer(['--config', config, '--address', '127.0.0.1:0'], { env: { EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS: 'false' } });
    const r = await get(server.url, '/search?x=1');
    expect(r.status).to.equal(400);
    expect(r.text).to.equal('unknown query parameter: "x"\n');
    expect((await get(server.url, '/categories?x=1')).text).to.equal('unknown query parameter: "x"\n');
    expect((await get(server.url, '/search?package=envpkg&internal=true')).status).to.equal(200);
  });

  it('a flag on the command line overrides its EPR_* variable', async () => {
    server = await spawnServer(['--config', config, '--address', '127.0.0.1:0', '--allow-unknown-query-parameters=true'], {
      env: { EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS: 'false', EPR_ADDRESS: 'not-an-address', EPR_CONFIG: '/nonexistent/config.yml' },
    });
    const r = await get(server.url, '/search?x=1');
    expect(r.status).to.equal(200);
  });

  it('--flag=value and Go-style -flag value', async () => {
    server = await spawnServer([`-config=${config}`, '-address', '127.0.0.1:0']);
    expect((await get(server.url, '/package/envpkg/1.0.0/')).status).to.equal(200);
  });

  let quick: Record<string, Promise<RunResult>> = {};
  before(() => {
    quick = startAll({
      help: () => runServer(['--help']),
      h: () => runServer(['-h']),
      version: () => runServer(['--version']),
      bogus: () => runServer(['--bogus']),
      badBool: () => runServer(['--config', config], { env: { EPR_DRY_RUN: 'maybe' } }),
      logLevel: () => runServer(['--log-level', 'loud']),
      logType: () => runServer(['--log-type', 'xml']),
    });
  });

  it('--help exits 0 listing every flag with its EPR_* name', async () => {
    const r = await quick.help;
    expect(r.code).to.equal(0);
    for (const f of FLAGS) {
      expect(r.stdout).to.include(`--${f.name}`);
      if (!f.cliOnly) expect(r.stdout, f.name).to.include(envName(f.name));
    }
    expect((await quick.h).stdout).to.equal(r.stdout);
  });

  it('--version exits 0 with the version', async () => {
    const r = await quick.version;
    expect(r.code).to.equal(0);
    expect(r.stdout).to.equal('package-registry 1.40.1\n');
  });

  it('an unknown flag exits 2 with a usage error', async () => {
    const r = await quick.bogus;
    expect(r.code).to.equal(2);
    expect(r.stderr).to.equal('error: unknown flag --bogus (see --help)\n');
  });

  it('a bad boolean in an EPR_* variable exits 2 naming the variable', async () => {
    const r = await quick.badBool;
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include('EPR_DRY_RUN');
    expect(r.stderr).to.include('"maybe"');
  });

  it('a bad --log-level or --log-type exits 2', async () => {
    expect((await quick.logLevel).code).to.equal(2);
    expect((await quick.logType).code).to.equal(2);
  });

  it('an address that cannot be listened on exits 1', async () => {
    server = await spawnServer(['--config', config, '--address', '127.0.0.1:0']);
    const port = new URL(server.url).port;
    const r = await runServer(['--config', config, '--address', `127.0.0.1:${port}`]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include(`cannot listen on 127.0.0.1:${port}`);
  });

  it('logs are JSON lines with ECS fields, the configuration logged once', async () => {
    server = await spawnServer(['--config', config, '--address', '127.0.0.1:0']);
    await get(server.url, '/search');
    await new Promise((r) => setTimeout(r, 200));
    const records = server.stderr().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const rec of records) {
      expect(rec).to.have.property('@timestamp');
      expect(rec).to.have.property('log.level');
      expect(rec).to.have.property('message');
    }
    expect(records.filter((r) => r.message === 'configuration')).to.have.length(1);
    const access = records.find((r) => r.message === 'access' && r['url.original'] === '/search');
    expect(access).to.include({ 'http.request.method': 'GET', 'http.response.status_code': 200 });
    expect(access!['event.duration']).to.be.a('number');
  });
});
