import http from 'node:http';
import type net from 'node:net';
import { fileReplyFor, replyFor, type CachedAnswer, type ResponseCache } from './response-cache.js';
import type { AccessRecord } from '../logger.js';

/**
 * Ready answers written straight on the connection, before Node's HTTP
 * machinery. Most of Fleet's traffic is the same few URLs whose answers are
 * made already; for those, Node's request and response objects, header
 * validation and events cost more than the answer (profiled: about 40% of a
 * small answer's time). A connection starts here: each request whose head is
 * plain (GET or HEAD, HTTP/1.1, no body, no unusual header) and whose answer
 * is ready is answered from memory with the very bytes Node would send
 * (headers in the same order, then Date, Connection and Keep-Alive as Node
 * adds them). The first request that is anything else hands the connection,
 * with every byte not yet answered, to the Node server for the rest of its
 * life: the router, errors, streaming, draining all stay where they are.
 */
export interface FastPathOptions {
  answers: ResponseCache;
  /** the Node server a connection is handed to */
  server: http.Server;
  /** the server's own 'connection' listener, taken off it */
  nodeConnection: (socket: net.Socket) => void;
  /** false while the server drains: then every request goes to Node, which says Connection: close */
  open: () => boolean;
  /** a request answered here (for the drain's idle-connection sweep) */
  touched: (socket: net.Socket) => void;
  access?: (r: AccessRecord) => void;
}

/** Node's own limit (maxHeaderSize given to the server); a longer head is Node's to refuse. */
const MAX_HEAD = 16 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** control characters Node's parser refuses, and a CR or LF that is not part of a CRLF */
const REFUSED = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;

let dateSecond = -1;
let dateText = '';
/** The Date header as Node writes it (the same UTC string, made once a second). */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) { dateSecond = second; dateText = new Date(second * 1000).toUTCString(); }
  return dateText;
}

interface ParsedHead {
  method: string;
  url: string;
  ifNoneMatch: string | undefined;
  ifModifiedSince: string | undefined;
  range: string | undefined;
  acceptEncoding: string | undefined;
  userAgent: string | undefined;
}

/**
 * A request head this path answers, or undefined for anything it leaves to
 * Node: another method or version, a body, an upgrade, Expect, a header it
 * reads given twice, a malformed line.
 */
export function parseHead(text: string): ParsedHead | undefined {
  if (REFUSED.test(text)) return undefined;
  const lineEnd = text.indexOf('\r\n');
  const requestLine = lineEnd < 0 ? text : text.slice(0, lineEnd);
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.indexOf(' ', sp1 + 1);
  if (sp1 < 0 || sp2 < 0) return undefined;
  const method = requestLine.slice(0, sp1);
  if ((method !== 'GET' && method !== 'HEAD') || requestLine.slice(sp2 + 1) !== 'HTTP/1.1') return undefined;
  const url = requestLine.slice(sp1 + 1, sp2);
  if (url.charCodeAt(0) !== 47 /* / */) return undefined;
  const head: ParsedHead = { method, url, ifNoneMatch: undefined, ifModifiedSince: undefined, range: undefined, acceptEncoding: undefined, userAgent: undefined };
  let host = false;
  let pos = lineEnd < 0 ? text.length : lineEnd + 2;
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', pos);
    if (colon < 0 || colon > end) return undefined;
    const name = text.slice(pos, colon);
    if (!TOKEN.test(name)) return undefined; // also a folded line (leading space), which Node refuses
    const value = text.slice(colon + 1, end).trim();
    pos = end + 2;
    switch (name.toLowerCase()) {
      case 'host': if (host) return undefined; host = true; break;
      case 'if-none-match': if (head.ifNoneMatch !== undefined) return undefined; head.ifNoneMatch = value; break;
      case 'if-modified-since': if (head.ifModifiedSince !== undefined) return undefined; head.ifModifiedSince = value; break;
      case 'range': if (head.range !== undefined) return undefined; head.range = value; break;
      case 'accept-encoding': if (head.acceptEncoding !== undefined) return undefined; head.acceptEncoding = value; break;
      case 'user-agent': if (head.userAgent !== undefined) return undefined; head.userAgent = value; break;
      case 'connection': if (value.toLowerCase() !== 'keep-alive') return undefined; break;
      case 'content-length': case 'transfer-encoding': case 'expect': case 'upgrade': return undefined;
      default: break;
    }
  }
  // Node answers an HTTP/1.1 request without Host with a 400
  return host ? head : undefined;
}

/** What a response head is made from: the reply's status and headers (a value given as a list is one line each). */
interface HeadOf {
  status: number;
  /** the same head for every request with this key; none: made for this request alone */
  key: string | undefined;
  headers(): Iterable<[string, string | number | string[]]>;
}

function headStart(reply: HeadOf): string {
  let s = `HTTP/1.1 ${reply.status} ${http.STATUS_CODES[reply.status]}\r\n`;
  for (const [name, value] of reply.headers()) {
    if (Array.isArray(value)) for (const v of value) s += `${name}: ${v}\r\n`;
    else s += `${name}: ${value}\r\n`;
  }
  return s;
}

/**
 * The response head Node writes for this reply of this answer (a ready JSON
 * answer or a file answer) on a kept-alive connection; the part before Date
 * is made once per reply key and kept with the answer.
 */
export function replyHead(a: { heads?: Map<string, string> }, reply: HeadOf, keepAliveSeconds: number): string {
  let start: string;
  if (reply.key === undefined) start = headStart(reply);
  else {
    a.heads ??= new Map();
    start = a.heads.get(reply.key) ?? '';
    if (!start) a.heads.set(reply.key, start = headStart(reply));
  }
  return `${start}Date: ${httpDate()}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=${keepAliveSeconds}\r\n\r\n`;
}

export function fastConnection(socket: net.Socket, o: FastPathOptions): void {
  const keepAliveSeconds = Math.floor(o.server.keepAliveTimeout / 1000);
  let pending: Buffer | undefined;
  /** when the head now waiting for its end began to arrive */
  let partialSince = 0;
  socket.setNoDelay(true);
  // idle like a kept-alive connection of Node's: closed after keepAliveTimeout
  const idle = () => socket.destroy();
  socket.setTimeout(o.server.keepAliveTimeout, idle);
  const ignore = () => undefined;
  socket.on('error', ignore);

  /** the client has sent its FIN (the server is allowHalfOpen): the connection ends once what it asked for is answered */
  let ended = false;
  const handOff = (rest: Buffer | undefined) => {
    if (ended) {
      // Node cannot take a connection whose reading side has ended (no unshift after 'end'): answer what
      // was answered and close, as for a request cut short
      socket.end();
      return;
    }
    socket.off('data', onData);
    socket.off('drain', onDrain);
    socket.off('end', onEnd);
    socket.off('error', ignore);
    socket.off('timeout', idle);
    socket.setTimeout(0);
    socket.pause();
    if (rest && rest.length > 0) socket.unshift(rest);
    o.nodeConnection.call(o.server, socket);
    socket.resume();
  };

  const answerAll = () => {
    let buf = pending;
    pending = undefined;
    if (!buf) return;
    let off = 0;
    while (off < buf.length) {
      if (socket.writableNeedDrain) { pending = buf.subarray(off); socket.pause(); return; }
      const end = buf.indexOf(CRLF2, off);
      if (end < 0) {
        // too long, or dripping in for longer than Node allows a head to take: Node's to refuse
        if (buf.length - off > MAX_HEAD || (off === 0 && partialSince > 0 && Date.now() - partialSince > o.server.headersTimeout)) { handOff(buf.subarray(off)); return; }
        if (off > 0 || partialSince === 0) partialSince = Date.now();
        break;
      }
      partialSince = 0;
      const start = process.hrtime.bigint();
      const head = o.open() ? parseHead(buf.toString('latin1', off, end)) : undefined;
      const answer: CachedAnswer | undefined = head ? o.answers.get(head.url) : undefined;
      const reply = answer && head ? replyFor(answer, head) : undefined;
      // a file answer: a directory package's zip (GET only, whatever else the request says, as in the route)
      // or a zip package as stored (HEAD, ranges and 304s as the route); its body only from memory here
      const file = !answer && head ? o.answers.getFile(head.url) : undefined;
      const fr = file && head ? fileReplyFor(file, head) : undefined;
      const fileReply = fr && fr !== 'unsatisfiable' && (!fr.range || file!.bytes.body) ? fr : undefined;
      if ((!reply || reply === 'unsatisfiable') && !fileReply) { handOff(buf.subarray(off)); return; }
      off = end + 4;
      socket.cork();
      let status: number;
      if (reply && reply !== 'unsatisfiable') {
        status = reply.status;
        socket.write(replyHead(answer!, reply, keepAliveSeconds), 'latin1');
        if (reply.body && reply.body.length > 0) socket.write(reply.body);
      } else {
        status = fileReply!.status;
        socket.write(replyHead(file!, fileReply!, keepAliveSeconds), 'latin1');
        const range = fileReply!.range;
        if (range) {
          const body = file!.bytes.body!;
          socket.write(range.start === 0 && range.end === body.length - 1 ? body : body.subarray(range.start, range.end + 1));
        }
      }
      socket.uncork();
      o.touched(socket);
      o.access?.({
        method: head!.method,
        url: head!.url,
        status,
        durationNs: Number(process.hrtime.bigint() - start),
        userAgent: head!.userAgent,
        sourceAddress: socket.remoteAddress,
      });
    }
    if (off < buf.length) pending = buf.subarray(off);
    // everything answered, or the rest of a head that will never come
    if (ended) socket.end();
  };

  function onData(chunk: Buffer): void {
    pending = pending ? Buffer.concat([pending, chunk]) : chunk;
    answerAll();
  }
  function onDrain(): void {
    if (!pending) return;
    socket.resume();
    answerAll();
  }
  function onEnd(): void {
    ended = true;
    // as Node's own connection handling: once every request is answered, our side ends too
    // (without this, a client's FIN left the socket half open until the idle timeout)
    if (!pending) socket.end();
    else if (!socket.writableNeedDrain) answerAll();
  }
  socket.on('data', onData);
  socket.on('drain', onDrain);
  socket.on('end', onEnd);
}
