import { expect } from 'chai';
import YAML from 'yaml';
import { parsePlainYaml } from '../../server/packages/plain-yaml.js';
import { expandDottedKeys, parseConfigYaml } from '../../server/packages/yamlconfig.js';

/** What the full library makes of a document: its value, or undefined when it reports errors. */
function library(text: string): unknown {
  const doc = YAML.parseDocument(text, { uniqueKeys: false, prettyErrors: false });
  return doc.errors.length > 0 ? undefined : doc.toJS({ maxAliasCount: 1000 });
}

/** The plain reader either gives up or agrees with the library, value and key order alike. */
function expectAgrees(text: string): void {
  const plain = parsePlainYaml(text);
  if (plain === undefined) return;
  const lib = library(text);
  expect(lib, `the library refuses what the plain reader read:\n${text}`).to.not.equal(undefined);
  expect(JSON.stringify(plain), text).to.equal(JSON.stringify(lib));
  expect(plain, text).to.deep.equal(lib);
}

describe('plain-yaml: the fast manifest reader', () => {
  const handled: string[] = [
    'name: x\nversion: 1.0.0\n',
    'a: 1\nb: 1.0\nc: 1.50\nd: 010\ne: 0o17\nf: 0x1F\ng: 1e3\nh: .5\ni: -.inf\nj: .NaN\nk: +12\nl: 1_000\nm: 8.10\n',
    'a: true\nb: False\nc: TRUE\nd: yes\ne: on\nf: ~\ng: null\nh: Null\ni:\nj: NULL\n',
    'a: "x # y"  # comment\nb: \'it\'\'s\'\nc: "tab\\there \\u00e9 \\"q\\" \\\\ \\/"\nd: plain # comment\ne: a#b\nf: http://x:80/y\n',
    'list:\n- a\n- b\nafter: 1\n',
    'list:\n  - a\n  -   b\n  -\n    c: 1\n    d: 2\n  - e: [x, "y", 3, true]\n    f: []\n',
    'nested:\n  deep:\n    deeper: 1\n  back: 2\ntop: 3\n',
    '# a comment\n\nkey: value   \n\n  # indented comment\nother: v\n',
    'owner.github: elastic/x\nconditions.kibana.version: "^8.0.0"\n',
    'dup: 1\nother: 2\ndup: 3\n',
    'd1: |\n  line one\n\n  line three\n    indented\n',
    'd2: |-\n  stripped\n  text\n\n\nnext: 1\n',
    'd3: >\n  folded\n  into one\n\n  second paragraph\n\n\n  third\n',
    'd4: >-\n  folded\n  stripped\nnext: 1\n',
    'items:\n  - |\n    a literal\n    in a list\n  - b\n',
    'desc: |\n  # not a comment\n  text\n# a comment\nnext: 1\n',
    'k: "é ü 漢字 😀"\nl: é plain\n',
  ];
  for (const text of handled) {
    it(`reads ${JSON.stringify(text.slice(0, 40))}... as the library does`, () => {
      expect(parsePlainYaml(text), 'expected the plain reader to handle it').to.not.equal(undefined);
      expectAgrees(text);
    });
  }

  const refused: string[] = [
    'a: &x 1\nb: *x\n',
    'a: !!str 1\n',
    'a: {b: 1}\n',
    'a: [1,\n  2]\n',
    'a: "multi\n  line"\n',
    'a: plain\n  continued\n',
    'a:\n\tb: 1\n',
    'a: 1\r\nb: 2\r\n',
    '---\na: 1\n',
    '%YAML 1.2\n---\na: 1\n',
    '- a\n- b\n',
    'just a string\n',
    '',
    '# only a comment\n',
    '"quoted key": 1\n',
    '? complex\n: key\n',
    'a: |+\n  keep\n\n',
    'a: |2\n    indicator\n',
    'a: >\n  folded\n    more indented\n',
    'a: b: c\n',
    'a:\n  b: 1\n c: 2\n',
    'true: 1\n',
    '1: one\n',
    '__proto__: x\n',
    'a: |\n  no final newline',
    'a: "\\x41"\n',
  ];
  for (const text of refused) {
    it(`leaves ${JSON.stringify(text.slice(0, 40))} to the library`, () => {
      expect(parsePlainYaml(text)).to.equal(undefined);
    });
  }

  it('parseConfigYaml gives what it gave with the library alone', () => {
    for (const text of handled) expect(parseConfigYaml(text), text).to.deep.equal(expandDottedKeys(library(text)));
  });

  it('agrees with the library on 4,000 generated documents full of edge cases', () => {
    let handledCount = 0;
    for (const text of generatedDocuments(Number(process.env.PLAIN_YAML_DOCS ?? 4000))) {
      if (parsePlainYaml(text) !== undefined) handledCount++;
      expectAgrees(text);
    }
    // the generator must exercise the reader, not only its refusals
    expect(handledCount).to.be.greaterThan(400);
  });

  it('parseConfigYaml (plain reader, then js-yaml, then the library) reads every document as the library alone', function () {
    this.timeout(30_000);
    const corners = [
      '~: a\nb: 1\n', 'null: a\n', 'a: 1e400\n', 'a: "1e400"\n', '%YAML 1.1\n---\na: yes\n', 'a: &x 1\nb: *x\n', 'a: 1\na: 2\n',
      'a: !!binary aGVsbG8=\n', 'a: !foo x\n', 'a: "10"\nb: \'true\'\nc: ""\n', 'a: {b: 1, c: [x, "y"]}\n', 'a: plain\n  continued\n',
      'a: "multi\n  line"\n', 'a: >\n  folded\n    more indented\n  back\n', 'a: |+\n  keep\n\n', 'a: .inf\nb: .nan\n', 'k: [1, 2,]\n',
    ];
    let viaJsYaml = 0;
    for (const text of [...handled, ...refused, ...corners, ...generatedDocuments(4000)]) {
      const doc = YAML.parseDocument(text, { uniqueKeys: false, prettyErrors: false });
      let value: unknown;
      try { value = doc.errors.length > 0 ? 'refused' : doc.toJS({ maxAliasCount: 1000 }) ?? {}; } catch { value = 'refused'; }
      const want = typeof value === 'object' && !Array.isArray(value) ? expandDottedKeys(value) : 'refused';
      let got: unknown;
      try { got = parseConfigYaml(text); } catch { got = 'refused'; }
      expect(JSON.stringify(got), text).to.equal(JSON.stringify(want));
      if (got !== 'refused' && parsePlainYaml(text) === undefined) viaJsYaml++;
    }
    expect(viaJsYaml).to.be.greaterThan(200);
  });
});

/** Documents full of edge cases, the same ones for a seed. */
function generatedDocuments(count: number): string[] {
  {
    let seed = 42;
    const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
    const goodKeys = ['name', 'a.b', 'x-y', 'k_1', '1a', 'a/b', 'dup', 'dup', 'on'];
    const badKeys = ['true', '12', 'null', '__proto__', 'a b', '"q"', '-k'];
    const key = () => pick(rnd() < 0.05 ? badKeys : goodKeys);
    const goodScalars = [
      'plain', 'two words', 'a#b', 'a #b', 'x: y', 'x:', 'http://h:1', '1', '-1', '+1', '1.0', '1.50', '1e5', '.5', '0x1f', '0o7', '007', '1_0',
      '.inf', '-.Inf', '.nan', 'true', 'True', 'yes', 'no', '~', 'null', 'NULL', '"dq"', '"d\\"q"', '"\\u0041\\t"', '"\\x41"', "'sq'", "'s''q'",
      '[a, b]', '[]', '[ ]', '["x", 1, true]', '-x', '|', '|-', '>', '>-', 'é', 'a  ', '"a" # c', '# only comment',
    ];
    const badScalars = ['"unterminated', "'unterminated", '[a, [b]]', '[a,]', '{}', '{a: 1}', '&anchor x', '*alias', '!tag x', '- x', '? x', ': x', '%x', '@x', '`x', '|+', '|2', '| # c', '"a" b'];
    const scalar = () => pick(rnd() < 0.05 ? badScalars : goodScalars);
    const blockBodies = ['  one\n  two\n', '  one\n\n  two\n\n', '  one\n\n\n  two\n  three\n', '  one\n  two\n\n  three\n', '  one\n    more\n', '  # hash\n  text\n', '    deep\n  shallow\n', '\n  late\n', '  x\n   \n  y\n'];
    const gen = (indent: number, depth: number): string => {
      const pad = ' '.repeat(indent);
      const n = 1 + Math.floor(rnd() * 3);
      let out = '';
      const asSeq = depth > 0 && rnd() < 0.35;
      for (let i = 0; i < n; i++) {
        if (rnd() < 0.1) out += `${pad}# comment ${i}\n`;
        if (rnd() < 0.08) out += '\n';
        const lead = asSeq ? `${pad}-${pick([' ', ' ', '   '])}` : `${pad}${key()}:${pick([' ', ' ', '  ', ''])}`;
        const r = rnd();
        if (r < 0.55 || depth > 3) {
          const v = scalar();
          out += `${lead}${v}${rnd() < 0.1 ? '  # trailing' : ''}${rnd() < 0.05 ? '  ' : ''}\n`;
          if (/^[|>]/.test(v)) out += pick(blockBodies).replace(/^ {2}/gm, `${pad}  `);
        } else if (r < 0.75) {
          out += `${lead.trimEnd()}\n${gen(indent + pick([2, 2, 2, 4, 1]), depth + 1)}`;
        } else if (r < 0.85 && !asSeq) {
          out += `${lead.trimEnd()}\n${gen(indent, depth + 1).replace(/^( *)(?!-)(\S)/gm, '$1- $2')}`;
        } else {
          out += `${lead}${key()}: ${scalar()}\n`;
          if (rnd() < 0.5) out += `${pad}${asSeq ? '  ' : ''}${key()}: ${scalar()}\n`;
        }
        if (rnd() < 0.01) out += `${pad} stray\n`;
      }
      return out;
    };
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const text = gen(0, 0);
      out.push(rnd() < 0.05 ? text.trimEnd() : text);
    }
    return out;
  }
}
