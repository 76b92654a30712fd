import { expect } from 'chai';
import { expandDottedKeys, parseConfigYaml, YamlError } from '../../server/packages/yamlconfig.js';

describe('yamlconfig', () => {
  it('expands a dotted key into nested maps', () => {
    expect(expandDottedKeys({ 'owner.github': 'elastic/x' })).to.deep.equal({ owner: { github: 'elastic/x' } });
    expect(expandDottedKeys({ 'a.b.c': 1 })).to.deep.equal({ a: { b: { c: 1 } } });
  });

  it('merges a dotted key with a nested sibling that names the same path, in both orders', () => {
    expect(expandDottedKeys({ owner: { type: 'elastic' }, 'owner.github': 'x' })).to.deep.equal({ owner: { type: 'elastic', github: 'x' } });
    expect(expandDottedKeys({ 'owner.github': 'x', owner: { type: 'elastic' } })).to.deep.equal({ owner: { github: 'x', type: 'elastic' } });
  });

  it('merges deeply', () => {
    const v = expandDottedKeys({ 'conditions.kibana.version': '^8.0.0', conditions: { elastic: { subscription: 'gold' }, kibana: { other: 1 } } });
    expect(v).to.deep.equal({ conditions: { kibana: { version: '^8.0.0', other: 1 }, elastic: { subscription: 'gold' } } });
  });

  it('expands inside lists and nested maps', () => {
    expect(expandDottedKeys({ list: [{ 'a.b': 1 }, 'x'], m: { 'c.d': true } })).to.deep.equal({ list: [{ a: { b: 1 } }, 'x'], m: { c: { d: true } } });
  });

  it('keeps scalars and null as they are; dates become ISO strings', () => {
    expect(expandDottedKeys({ a: null, b: 1, c: 'x', d: false })).to.deep.equal({ a: null, b: 1, c: 'x', d: false });
    expect(expandDottedKeys(new Date('2020-01-02T03:04:05Z'))).to.equal('2020-01-02T03:04:05.000Z');
  });

  it('parseConfigYaml reads a manifest with dotted keys', () => {
    const m = parseConfigYaml('name: x\nconditions.kibana.version: "^8.1.0"\nconditions:\n  elastic.subscription: basic\n');
    expect(m).to.deep.equal({ name: 'x', conditions: { kibana: { version: '^8.1.0' }, elastic: { subscription: 'basic' } } });
  });

  it('parseConfigYaml: an empty document is an empty map', () => {
    expect(parseConfigYaml('')).to.deep.equal({});
    expect(parseConfigYaml('# only a comment\n')).to.deep.equal({});
  });

  it('parseConfigYaml: invalid YAML is a YamlError', () => {
    expect(() => parseConfigYaml('name: x\ntitle: [unclosed\nversion: 1.0.0\n')).to.throw(YamlError, /^invalid YAML: /);
  });

  // BUG: parseConfigYaml parses with prettyErrors: false, so err.linePos is never set and the
  // line of a YAML syntax error in a manifest is always lost (a LineCounter is needed).
  it('parseConfigYaml: invalid YAML is a YamlError with its line', () => {
    let err: unknown;
    try { parseConfigYaml('name: x\ntitle: [unclosed\nversion: 1.0.0\n'); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(YamlError);
    expect((err as YamlError).message).to.match(/^invalid YAML: /);
    expect((err as YamlError).line).to.be.within(2, 3);
  });

  it('parseConfigYaml: a top level that is not a mapping is refused', () => {
    expect(() => parseConfigYaml('- a\n- b\n')).to.throw(YamlError, 'expected a YAML mapping at the top level');
    expect(() => parseConfigYaml('just a string\n')).to.throw(YamlError, 'expected a YAML mapping');
  });
});
