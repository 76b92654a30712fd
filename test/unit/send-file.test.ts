import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { openFile, sendFileBody } from '../../server/http/send-file.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';
import { get } from '../helpers/server.js';

describe('send-file: a file body from pooled buffers', () => {
  const bytes = crypto.randomBytes(700 * 1024 + 17);
  let file: string;
  let server: http.Server;
  let base: string;

  before(async () => {
    file = path.join(tmpDir(), 'body.bin');
    fs.writeFileSync(file, bytes);
    server = http.createServer((req, res) => {
      const [start, end] = (req.url ?? '').slice(1).split('-').map(Number);
      openFile(file).then((fd) => {
        res.writeHead(200, { 'Content-Length': end - start + 1 });
        return sendFileBody(res, fd, start, end);
      }).catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    cleanupTmp();
  });

  const cases: Array<[number, number]> = [[0, bytes.length - 1], [1000, 600_000], [262_144, 262_144 * 2], [5, 5], [bytes.length - 3, bytes.length - 1]];
  for (const [start, end] of cases) {
    it(`bytes ${start}-${end} of a file bigger than one buffer`, async () => {
      const r = await get(base, `/${start}-${end}`);
      expect(r.status).to.equal(200);
      expect(r.body.equals(bytes.subarray(start, end + 1))).to.equal(true);
    });
  }

  it('many downloads at once each get their own bytes (buffers go back to the pool only when sent)', async () => {
    const ranges = Array.from({ length: 24 }, (_, i): [number, number] => [i * 1000, bytes.length - 1 - i * 777]);
    const got = await Promise.all(ranges.map(([s, e]) => get(base, `/${s}-${e}`)));
    for (const [i, r] of got.entries()) expect(r.body.equals(bytes.subarray(ranges[i][0], ranges[i][1] + 1)), `download ${i}`).to.equal(true);
  });
});
