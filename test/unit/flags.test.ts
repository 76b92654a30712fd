import { expect } from 'chai';
import { envName, FLAGS, parseFlags, usage, UsageError } from '../../server/flags.js';

describe('flags', () => {
  it('env names are EPR_ + the flag in upper snake case', () => {
    expect(envName('address')).to.equal('EPR_ADDRESS');
    expect(envName('allow-unknown-query-parameters')).to.equal('EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS');
  });

  it('defaults when nothing is set', () => {
    const { values, explicit } = parseFlags([], {});
    for (const f of FLAGS) expect(values[f.name], f.name).to.equal(f.default);
    expect(explicit.size).to.equal(0);
    expect(values.address).to.equal('localhost:8080');
    expect(values.config).to.equal('config.yml');
    expect(values['allow-unknown-query-parameters']).to.equal(true);
    expect(values['require-package-signatures']).to.equal(true);
  });

  it('reads EPR_* variables', () => {
    const { values, explicit } = parseFlags([], { EPR_ADDRESS: '127.0.0.1:9', EPR_DRY_RUN: 'true', EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS: 'false', EPR_CONFIG: '/c.yml' });
    expect(values.address).to.equal('127.0.0.1:9');
    expect(values['dry-run']).to.equal(true);
    expect(values['allow-unknown-query-parameters']).to.equal(false);
    expect(values.config).to.equal('/c.yml');
    expect([...explicit].sort()).to.deep.equal(['address', 'allow-unknown-query-parameters', 'config', 'dry-run']);
  });

  it('an empty EPR_* variable is not set', () => {
    const { values, explicit } = parseFlags([], { EPR_ADDRESS: '' });
    expect(values.address).to.equal('localhost:8080');
    expect(explicit.has('address')).to.equal(false);
  });

  it('the command line overrides the environment', () => {
    const { values } = parseFlags(['--address', '127.0.0.1:2', '--require-package-signatures=true'], { EPR_ADDRESS: '127.0.0.1:1', EPR_REQUIRE_PACKAGE_SIGNATURES: 'false' });
    expect(values.address).to.equal('127.0.0.1:2');
    expect(values['require-package-signatures']).to.equal(true);
  });

  it('accepts --flag value, --flag=value and Go-style -flag', () => {
    expect(parseFlags(['--config', 'a.yml'], {}).values.config).to.equal('a.yml');
    expect(parseFlags(['--config=b.yml'], {}).values.config).to.equal('b.yml');
    expect(parseFlags(['-config', 'c.yml'], {}).values.config).to.equal('c.yml');
    expect(parseFlags(['-config=d.yml'], {}).values.config).to.equal('d.yml');
    expect(parseFlags(['--config=a=b'], {}).values.config).to.equal('a=b');
    expect(parseFlags(['--config='], {}).values.config).to.equal('');
  });

  it('a bare boolean flag is true; the last occurrence wins', () => {
    expect(parseFlags(['--dry-run'], {}).values['dry-run']).to.equal(true);
    expect(parseFlags(['--dry-run', '--dry-run=false'], {}).values['dry-run']).to.equal(false);
    expect(parseFlags(['--address=a:1', '--address=b:2'], {}).values.address).to.equal('b:2');
  });

  it('-h is --help', () => expect(parseFlags(['-h'], {}).values.help).to.equal(true));

  for (const t of ['1', 't', 'T', 'true', 'TRUE', 'True']) {
    it(`boolean "${t}" is true (flag and env)`, () => {
      expect(parseFlags([`--dry-run=${t}`], {}).values['dry-run']).to.equal(true);
      expect(parseFlags([], { EPR_DRY_RUN: t }).values['dry-run']).to.equal(true);
    });
  }
  for (const f of ['0', 'f', 'F', 'false', 'FALSE', 'False']) {
    it(`boolean "${f}" is false (flag and env)`, () => {
      expect(parseFlags([`--allow-unknown-query-parameters=${f}`], {}).values['allow-unknown-query-parameters']).to.equal(false);
      expect(parseFlags([], { EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS: f }).values['allow-unknown-query-parameters']).to.equal(false);
    });
  }

  it('a bad boolean is a usage error naming the flag or variable', () => {
    expect(() => parseFlags(['--dry-run=yes'], {})).to.throw(UsageError, 'command line: invalid boolean "yes" for --dry-run');
    expect(() => parseFlags([], { EPR_DRY_RUN: 'yes' })).to.throw(UsageError, 'EPR_DRY_RUN: invalid boolean "yes" for dry-run');
  });

  it('a boolean flag does not take the next argument as its value', () => {
    expect(() => parseFlags(['--dry-run', 'false'], {})).to.throw(UsageError, 'unexpected argument "false"');
  });

  it('an unknown flag is a usage error', () => {
    expect(() => parseFlags(['--no-such-flag'], {})).to.throw(UsageError, 'unknown flag --no-such-flag');
  });

  it('a positional argument is a usage error', () => {
    expect(() => parseFlags(['serve'], {})).to.throw(UsageError, 'unexpected argument "serve"');
  });

  it('a string flag without a value is a usage error', () => {
    expect(() => parseFlags(['--address'], {})).to.throw(UsageError, 'flag --address needs a value');
  });

  it('--help and --version are command-line only: EPR_HELP / EPR_VERSION are not read', () => {
    expect(FLAGS.filter((f) => f.cliOnly).map((f) => f.name).sort()).to.deep.equal(['help', 'version']);
    const { values } = parseFlags([], { EPR_VERSION: 'true', EPR_HELP: 'true' });
    expect(values.version).to.equal(false);
    expect(values.help).to.equal(false);
    expect(usage()).to.not.include('EPR_VERSION');
  });

  it('unknown EPR_* variables are ignored', () => {
    expect(() => parseFlags([], { EPR_SOMETHING_ELSE: 'x' })).to.not.throw();
  });

  it('has every flag epr-api.md lists', () => {
    const documented = ['address', 'config', 'log-level', 'log-type', 'tls-cert', 'tls-key', 'tls-min-version', 'metrics-address', 'dry-run',
      'disable-package-validation', 'allow-unknown-query-parameters', 'require-package-signatures', 'feature-proxy-mode', 'proxy-to',
      'proxy-allow-insecure', 'httpprof', 'version'];
    expect(documented.filter((n) => !FLAGS.some((f) => f.name === n))).to.deep.equal([]);
  });

  it('usage lists every flag with its env variable and default', () => {
    const text = usage();
    for (const f of FLAGS) {
      expect(text).to.include(`--${f.name}`);
      if (!f.cliOnly) expect(text).to.include(`Env: ${envName(f.name)}`);
      if (f.type === 'string') expect(text).to.include(`(default "${f.default}")`);
    }
  });
});
