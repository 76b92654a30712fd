import { expect } from 'chai';
import { HttpError } from '../../server/http/errors.js';
import { checkUnknown, first, parseBool, parseFilter, parseLenientVersion, queryOf, SEARCH_PARAMS, CATEGORIES_PARAMS } from '../../server/http/query.js';

function badRequest(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(HttpError);
    expect((err as HttpError).status).to.equal(400);
    return (err as HttpError).text;
  }
  throw new Error('expected a 400');
}

const q = (s: string) => queryOf(`/search?${s}`);

describe('http/query', () => {
  describe('queryOf / first', () => {
    it('reads the query of a URL; no query is empty', () => {
      expect(queryOf('/search').toString()).to.equal('');
      expect(first(queryOf('/search?package=a'), 'package')).to.equal('a');
    });
    it('the first value of a repeated parameter counts', () => {
      expect(first(q('package=a&package=b'), 'package')).to.equal('a');
    });
    it('an empty value is ignored', () => {
      expect(first(q('package='), 'package')).to.equal(undefined);
      expect(first(q('package'), 'package')).to.equal(undefined);
    });
    it('values are percent-decoded', () => {
      expect(first(q('kibana.version=%5E8.0.0'), 'kibana.version')).to.equal('^8.0.0');
    });
  });

  describe('parseBool (Go strconv.ParseBool)', () => {
    for (const v of ['1', 't', 'T', 'TRUE', 'true', 'True']) it(`${v} is true`, () => expect(parseBool(q(`all=${v}`), 'all')).to.equal(true));
    for (const v of ['0', 'f', 'F', 'FALSE', 'false', 'False']) it(`${v} is false`, () => expect(parseBool(q(`all=${v}`), 'all')).to.equal(false));
    it('absent or empty is undefined', () => {
      expect(parseBool(q(''), 'all')).to.equal(undefined);
      expect(parseBool(q('all='), 'all')).to.equal(undefined);
    });
    for (const v of ['foo', 'yes', 'tRUE', '2', 'on']) {
      it(`"${v}" is a 400 naming the parameter and value`, () => {
        expect(badRequest(() => parseBool(q(`prerelease=${v}`), 'prerelease'))).to.equal(`invalid 'prerelease' query param: '${v}'`);
      });
    }
    it('only the first value counts', () => {
      expect(parseBool(q('all=true&all=foo'), 'all')).to.equal(true);
      expect(badRequest(() => parseBool(q('all=foo&all=true'), 'all'))).to.equal("invalid 'all' query param: 'foo'");
    });
  });

  describe('parseLenientVersion', () => {
    const ok: Array<[string, string]> = [['7', '7.0.0'], ['7.2', '7.2.0'], ['7.2.1', '7.2.1'], ['v7.2.1', '7.2.1'], ['8.0.0-SNAPSHOT', '8.0.0-SNAPSHOT'], ['8.1-beta1', '8.1.0-beta1'], [' 8.1.0 ', '8.1.0']];
    for (const [raw, v] of ok) it(`"${raw}" is ${v}`, () => expect(String(parseLenientVersion(raw))).to.equal(v));
    for (const raw of ['foo', '', 'x7', '7.2.1.5', '7..1']) {
      it(`"${raw}" is not a version`, () => expect(parseLenientVersion(raw)).to.equal('Invalid Semantic Version'));
    }
  });

  describe('parseFilter', () => {
    it('reads every parameter', () => {
      const f = parseFilter(q('package=p&type=input&kibana.version=8.1&agent.version=v8.2.0&category=web&all=1&prerelease=t&experimental=false&capabilities=a,b,&spec.min=2.1&spec.max=3.0&discovery=fields:a,b&discovery=datasets:x'));
      expect(f.packageName).to.equal('p');
      expect(f.type).to.equal('input');
      expect(String(f.kibanaVersion)).to.equal('8.1.0');
      expect(String(f.agentVersion)).to.equal('8.2.0');
      expect(f.category).to.equal('web');
      expect(f.all).to.equal(true);
      expect(f.prerelease).to.equal(true);
      expect(f.experimental).to.equal(false);
      expect(f.capabilities).to.deep.equal(['a', 'b']);
      expect(String(f.specMin)).to.equal('2.1.0');
      expect(String(f.specMax)).to.equal('3.0.0');
      expect(f.discovery).to.deep.equal([{ kind: 'fields', values: ['a', 'b'] }, { kind: 'datasets', values: ['x'] }]);
    });

    it('nothing set is an empty filter', () => {
      const f = parseFilter(q(''));
      for (const v of Object.values(f)) expect(v).to.equal(undefined);
    });

    it('bad Kibana and agent versions are 400s with the reason', () => {
      expect(badRequest(() => parseFilter(q('kibana.version=foo')))).to.equal("invalid Kibana version 'foo': Invalid Semantic Version");
      expect(badRequest(() => parseFilter(q('agent.version=x.y')))).to.equal("invalid agent version 'x.y': Invalid Semantic Version");
    });

    it('spec.min/spec.max must be exactly major.minor', () => {
      expect(badRequest(() => parseFilter(q('spec.max=2.10.1')))).to.equal("invalid 'spec.max' version: invalid version '2.10.1': it should be <major.version>");
      expect(badRequest(() => parseFilter(q('spec.min=3')))).to.equal("invalid 'spec.min' version: invalid version '3': it should be <major.version>");
      expect(badRequest(() => parseFilter(q('spec.min=v3.1')))).to.equal("invalid 'spec.min' version: invalid version 'v3.1': it should be <major.version>");
    });

    it('a discovery value without a filter kind cannot be parsed', () => {
      expect(badRequest(() => parseFilter(q('discovery=bar')))).to.equal(`invalid 'discovery' query param: 'bar': could not parse filter "bar"`);
      expect(badRequest(() => parseFilter(q('discovery=:x')))).to.equal(`invalid 'discovery' query param: ':x': could not parse filter ":x"`);
    });

    it('an unknown discovery filter kind is a 400', () => {
      expect(badRequest(() => parseFilter(q('discovery=bar:x')))).to.equal(`invalid 'discovery' query param: 'bar:x': unknown discovery filter "bar"`);
    });

    it('bad booleans are 400s', () => {
      for (const p of ['all', 'prerelease', 'experimental']) expect(badRequest(() => parseFilter(q(`${p}=foo`)))).to.equal(`invalid '${p}' query param: 'foo'`);
    });
  });

  describe('checkUnknown', () => {
    it('allows unknown parameters when told to', () => expect(() => checkUnknown(q('x=1'), SEARCH_PARAMS, true)).to.not.throw());
    it('otherwise names the first unknown one', () => {
      expect(badRequest(() => checkUnknown(q('package=a&x=1&y=2'), SEARCH_PARAMS, false))).to.equal('unknown query parameter: "x"');
    });
    it('every documented /search and /categories parameter is known', () => {
      for (const p of ['package', 'type', 'kibana.version', 'agent.version', 'category', 'all', 'prerelease', 'experimental', 'internal', 'capabilities', 'spec.min', 'spec.max', 'discovery']) {
        expect(() => checkUnknown(q(`${p}=1`), SEARCH_PARAMS, false), p).to.not.throw();
      }
      for (const p of ['kibana.version', 'agent.version', 'prerelease', 'experimental', 'internal', 'capabilities', 'spec.min', 'spec.max', 'discovery', 'include_policy_templates']) {
        expect(() => checkUnknown(q(`${p}=1`), CATEGORIES_PARAMS, false), p).to.not.throw();
      }
      expect(badRequest(() => checkUnknown(q('package=a'), CATEGORIES_PARAMS, false))).to.equal('unknown query parameter: "package"');
    });
  });
});
