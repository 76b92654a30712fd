import YAML from 'yaml';

/**
 * A fast reader for the plain subset of YAML that package manifests are
 * nearly always written in: block mappings and sequences, plain and quoted
 * one-line scalars, literal and folded block scalars, one-line flow
 * sequences of scalars, and comments.
 *
 * It gives exactly what `YAML.parse` (YAML 1.2, core schema) gives for the
 * documents it accepts, and gives up (undefined) on anything else: anchors,
 * tags, multi-line plain or quoted scalars, flow mappings, tabs, odd
 * indentation, directives... The caller then parses with the full library,
 * which also owns every error message. A registry's ~15,000 manifests are
 * read this way in about a tenth of the full library's time.
 */
export type PlainValue = string | number | boolean | null | PlainValue[] | { [key: string]: PlainValue };
type PlainMap = { [key: string]: PlainValue };

/** Thrown inside the parser to give up; never leaves this module. */
class GiveUp extends Error {}
const giveUp = (): never => { throw new GiveUp(); };

/** The core schema's scalar tags, in the order the library tries them on a plain scalar. */
const CORE_TAGS = (YAML.parseDocument('').schema.tags as Array<{ default?: boolean | 'key'; test?: RegExp; resolve: (s: string, onError: (m: string) => void, opts: object) => unknown }>)
  .filter((t) => t.default === true && t.test);

/** What a plain scalar means: null, a boolean, a number or the string itself (as the library resolves it). */
function resolvePlain(text: string): PlainValue {
  // nearly every scalar starts with a letter other than those of null/true/false/.inf: a string
  const c = text.charCodeAt(0);
  const maybeNotString = text === '' || c === 0x7e /* ~ */ || c === 0x2e /* . */ || c === 0x2b /* + */ || c === 0x2d /* - */
    || (c >= 0x30 && c <= 0x39) || c === 0x6e || c === 0x4e || c === 0x74 || c === 0x54 || c === 0x66 || c === 0x46;
  if (!maybeNotString) return text;
  for (const tag of CORE_TAGS) {
    if (!tag.test!.test(text)) continue;
    let failed = false;
    const res = tag.resolve(text, () => { failed = true; }, { intAsBigInt: false });
    if (failed) giveUp();
    return (YAML.isScalar(res) ? res.value : res) as PlainValue;
  }
  return text;
}

/** Whether a plain scalar with this text is a string under the core schema (not null, a boolean or a number). */
export function plainIsString(text: string): boolean {
  try {
    return typeof resolvePlain(text) === 'string';
  } catch (err) {
    if (err instanceof GiveUp) return false;
    throw err;
  }
}

/** Characters that cannot start a plain scalar (or that start something this reader leaves to the library). */
const NOT_PLAIN_START = new Set([...'?:,[]{}#&*!|>\'"%@`']);

interface Line {
  /** index in the document's raw lines */
  row: number;
  indent: number;
  /** the content after the indentation, comment-bearing, right-trimmed */
  text: string;
}

/** Tabs, carriage returns, control and other special characters have rules of their own. */
const SPECIAL_CHAR = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]/;

/** Parses `text`, or returns undefined when it is not in the subset this reader handles. */
export function parsePlainYaml(text: string): PlainMap | undefined {
  if (SPECIAL_CHAR.test(text)) return undefined;
  const lines: Line[] = [];
  const raws = text.split('\n');
  for (let row = 0; row < raws.length; row++) {
    const raw = raws[row];
    let indent = 0;
    while (raw.charCodeAt(indent) === 0x20) indent++;
    if (indent === raw.length || raw.charCodeAt(indent) === 0x23 /* # */) continue;
    if (raw.startsWith('---') || raw.startsWith('...') || raw.startsWith('%')) return undefined;
    lines.push({ row, indent, text: trimSpacesEnd(raw.slice(indent)) });
  }
  if (lines.length === 0 || lines[0].indent !== 0) return undefined;
  try {
    const r = new Reader(lines, raws);
    const value = r.block(0);
    if (r.pos !== lines.length || Array.isArray(value)) return undefined;
    return value;
  } catch (err) {
    if (err instanceof GiveUp) return undefined;
    throw err;
  }
}

/** YAML's white space is spaces (tabs are refused earlier); String#trim also takes Unicode spaces. */
function trimSpacesEnd(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x20) end--;
  return end === s.length ? s : s.slice(0, end);
}

function trimSpacesStart(s: string): string {
  let i = 0;
  while (s.charCodeAt(i) === 0x20) i++;
  return i === 0 ? s : s.slice(i);
}

class Reader {
  pos = 0;
  constructor(private readonly lines: Line[], private readonly raws: string[]) {}

  /** The block (mapping or sequence) whose lines start at exactly `indent`. */
  block(indent: number): PlainMap | PlainValue[] {
    const line = this.lines[this.pos];
    if (line.indent !== indent) giveUp();
    return isSeqItem(line.text) ? this.sequence(indent) : this.mapping(indent, line.text);
  }

  /** A mapping at `indent`; `first` is the text of its first line (which may follow a `- `). */
  mapping(indent: number, first: string): PlainMap {
    const out: PlainMap = {};
    let text = first;
    for (;;) {
      const { key, rest } = splitKey(text);
      this.pos++;
      out[key] = rest === '' || rest[0] === '#' ? this.nested(indent, true) : this.inlineValue(rest, indent);
      const next = this.lines[this.pos];
      if (!next || next.indent < indent) return out;
      if (next.indent > indent) giveUp();
      if (isSeqItem(next.text)) giveUp();
      text = next.text;
    }
  }

  sequence(indent: number): PlainValue[] {
    const out: PlainValue[] = [];
    for (;;) {
      const line = this.lines[this.pos];
      const after = line.text.slice(1);
      const rest = trimSpacesStart(after);
      if (rest === '' || rest[0] === '#') {
        this.pos++;
        out.push(this.nested(indent, false));
      } else {
        const column = indent + 1 + (after.length - rest.length);
        if (isSeqItem(rest)) giveUp();
        if (startsMapping(rest)) {
          // `- key: value` opens a mapping whose keys line up with `key`
          this.lines[this.pos] = { row: line.row, indent: column, text: rest };
          out.push(this.mapping(column, rest));
        } else {
          this.pos++;
          out.push(this.inlineValue(rest, indent));
        }
      }
      const next = this.lines[this.pos];
      if (!next || next.indent < indent) return out;
      if (next.indent > indent) giveUp();
      // a mapping key at the same indentation ends a sequence that is a mapping value
      if (!isSeqItem(next.text)) return out;
    }
  }

  /**
   * The value on the lines after `key:` or a bare `-`: a more indented block,
   * a sequence at the key's own indentation (mapping values only), or null.
   */
  nested(indent: number, mappingValue: boolean): PlainValue {
    const next = this.lines[this.pos];
    if (!next || next.indent < indent) return null;
    if (next.indent > indent) return this.block(next.indent);
    if (mappingValue && isSeqItem(next.text)) return this.sequence(indent);
    return null;
  }

  /** The value written after `key: ` or `- ` on the line just read; `indent` is that of its block. */
  inlineValue(text: string, indent: number): PlainValue {
    const c = text[0];
    if (c === '|' || c === '>') return this.blockScalar(text, indent);
    if (c === '"' || c === '\'') {
      const { value, end } = quoted(text, 0);
      trailing(text, end);
      return value;
    }
    if (c === '[') return flowSequence(text);
    if (NOT_PLAIN_START.has(c) || (c === '-' && text.length > 1 && text[1] === ' ')) giveUp();
    return resolvePlain(plainScalar(text));
  }

  /**
   * A literal (`|`, `|-`) or folded (`>`, `>-`) block scalar below the line
   * just read. Keep chomping, indentation indicators, comments on the header,
   * leading empty lines, and folded text with more indented lines are left
   * to the library.
   */
  blockScalar(header: string, indent: number): string {
    if (!/^[|>]-?$/.test(header)) giveUp();
    const folded = header[0] === '>';
    const strip = header.length === 2;
    const first = this.lines[this.pos - 1].row + 1;
    const raws = this.raws;
    let contentIndent = 0;
    while (raws[first]?.charCodeAt(contentIndent) === 0x20) contentIndent++;
    if (first >= raws.length || contentIndent === raws[first].length || contentIndent <= indent) giveUp();
    const parts: string[] = [];
    let row = first;
    for (; row < raws.length; row++) {
      const raw = raws[row];
      let n = 0;
      while (raw.charCodeAt(n) === 0x20) n++;
      if (n === raw.length) {
        // an empty line; one with more spaces than the content's indentation has text (spaces)
        if (n > contentIndent) giveUp();
        parts.push('');
        continue;
      }
      if (n < contentIndent) break;
      if (folded && n > contentIndent) giveUp();
      parts.push(raw.slice(contentIndent));
    }
    // the last line of the document without its line break is chomped differently
    if (row === raws.length && raws[raws.length - 1] !== '') giveUp();
    let last = parts.length;
    while (last > 0 && parts[last - 1] === '') last--;
    const content = parts.slice(0, last);
    let value = '';
    if (folded) {
      for (let i = 0; i < content.length; i++) {
        if (i === 0) { value = content[0]; continue; }
        if (content[i] === '') continue;
        let empties = 0;
        while (content[i - 1 - empties] === '') empties++;
        value += (empties === 0 ? ' ' : '\n'.repeat(empties)) + content[i];
      }
    } else {
      value = content.join('\n');
    }
    if (!strip) value += '\n';
    while (this.pos < this.lines.length && this.lines[this.pos].row < row) this.pos++;
    return value;
  }
}

function isSeqItem(text: string): boolean {
  return text.charCodeAt(0) === 0x2d /* - */ && (text.length === 1 || text.charCodeAt(1) === 0x20);
}

const KEY_RE = /^([A-Za-z0-9_][A-Za-z0-9_.\-/]*):(?: |$)/;

function startsMapping(text: string): boolean {
  return KEY_RE.test(text);
}

/** `key: rest` with a plain key that the core schema reads as a string. */
function splitKey(text: string): { key: string; rest: string } {
  const m = KEY_RE.exec(text);
  if (!m) return giveUp();
  const key = m[1];
  if (key === '__proto__' || key.length > 1000 || typeof resolvePlain(key) !== 'string') giveUp();
  return { key, rest: trimSpacesStart(text.slice(m[0].length)) };
}

/** A one-line plain scalar: up to a ` #` comment; `: ` inside would make it a mapping. */
function plainScalar(text: string): string {
  const hash = text.indexOf(' #');
  const s = trimSpacesEnd(hash < 0 ? text : text.slice(0, hash));
  if (s.includes(': ') || s.endsWith(':')) giveUp();
  return s;
}

/** Only spaces and a comment may follow a quoted scalar on its line. */
function trailing(text: string, from: number): void {
  const rest = text.slice(from);
  if (rest !== '' && !/^ +(#.*)?$/.test(rest)) giveUp();
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', n: '\n', t: '\t', r: '\r', '0': '\0', ' ': ' ' };

/** A quoted scalar that closes on its line; returns its value and the index after the closing quote. */
function quoted(text: string, start: number): { value: string; end: number } {
  const q = text[start];
  let out = '';
  let i = start + 1;
  for (;;) {
    if (i >= text.length) giveUp();
    const c = text[i];
    if (q === '\'') {
      if (c === '\'') {
        if (text[i + 1] === '\'') { out += '\''; i += 2; continue; }
        return { value: out, end: i + 1 };
      }
    } else {
      if (c === '"') return { value: out, end: i + 1 };
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
          continue;
        }
        const mapped = e === undefined ? undefined : ESCAPES[e];
        if (mapped === undefined) giveUp();
        out += mapped;
        i += 2;
        continue;
      }
    }
    out += c;
    i++;
  }
}

/** `[a, "b", 3]` on one line: scalars only. */
function flowSequence(text: string): PlainValue[] {
  const out: PlainValue[] = [];
  let i = 1;
  const skipSpaces = () => { while (text[i] === ' ') i++; };
  skipSpaces();
  if (text[i] === ']') { trailing(text, i + 1); return out; }
  for (;;) {
    skipSpaces();
    const c = text[i];
    if (c === undefined) giveUp();
    if (c === '"' || c === '\'') {
      const q = quoted(text, i);
      out.push(q.value);
      i = q.end;
    } else {
      let j = i;
      while (j < text.length && !',[]{}#'.includes(text[j])) j++;
      const s = trimSpacesEnd(text.slice(i, j));
      if (s === '' || NOT_PLAIN_START.has(s[0]) || s.includes(': ') || s.endsWith(':') || (s[0] === '-' && s[1] === ' ')) giveUp();
      out.push(resolvePlain(s));
      i = j;
    }
    skipSpaces();
    if (text[i] === ',') { i++; skipSpaces(); if (text[i] === ']') giveUp(); continue; }
    if (text[i] === ']') { trailing(text, i + 1); return out; }
    giveUp();
  }
}
