/**
 * A small set of packages covering what the routes and filters look at,
 * written into a fresh temporary folder: two package paths (directories and
 * zips).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PNG_1x1, tmpDir, writeDirPackage, writeZipPackage } from './fixtures.js';

export interface Corpus {
  root: string;
  dirs: string;
  zips: string;
  /** zipped-1.0.0.zip */
  zipFile: string;
  /** web_pkg 1.0.0 directory */
  webDir: string;
}

export const WEB_README = '# Web package\n\nServes <b>web</b> & "logs".\n';

export async function writeCorpus(): Promise<Corpus> {
  const root = tmpDir('epr-corpus-');
  const dirs = path.join(root, 'dirs');
  const zips = path.join(root, 'zips');
  const webDir = writeDirPackage(dirs, {
    name: 'web_pkg',
    version: '1.0.0',
    title: 'Web package',
    description: 'Web <b>logs</b> & metrics',
    readme: WEB_README,
    manifest: {
      categories: ['web', 'not_a_category'],
      conditions: { kibana: { version: '^7.14.0 || ^8.0.0' } },
      icons: [{ src: '/img/icon.png', title: 'icon', size: '1x1', type: 'image/png' }],
      discovery: { fields: [{ name: 'process.pid' }], datasets: [{ name: 'web_pkg.access' }] },
      policy_templates: [{ name: 'web', title: 'Web', description: 'Collect web logs', data_streams: ['access'], inputs: [{ type: 'logfile', title: 'Logs', description: 'Logs' }] }],
    },
    dataStreams: { access: { title: 'Access logs', type: 'logs' } },
    files: {
      'img/icon.png': PNG_1x1,
      'changelog.yml': '- version: 1.0.0\n  changes: []\n',
      'LICENSE.txt': 'Apache License\n'.repeat(100),
      'data_stream/access/fields/fields.yml': '- name: message\n  type: text\n',
      'docs/extra file.md': 'spaces in the name\n',
    },
  });
  writeDirPackage(dirs, { name: 'web_pkg', version: '0.9.0', manifest: { categories: ['web'] } });
  writeDirPackage(dirs, { name: 'web_pkg', version: '2.0.0-beta.1', manifest: { categories: ['web'] } });
  writeDirPackage(dirs, { name: 'exp_pkg', version: '1.0.0', manifest: { release: 'experimental', categories: ['security'] } });
  writeDirPackage(dirs, {
    name: 'input_pkg',
    version: '1.0.0',
    manifest: {
      type: 'input',
      format_version: '2.3.0',
      categories: ['custom'],
      conditions: { agent: { version: '^8.5.0' }, elastic: { capabilities: ['security'] } },
    },
  });
  writeDirPackage(dirs, {
    name: 'multi_tpl',
    version: '1.0.0',
    manifest: {
      format_version: '3.1.0',
      categories: ['cloud'],
      policy_templates: [
        { name: 'aws_tpl', title: 'AWS', description: 'AWS things', categories: ['aws'] },
        { name: 'sec_tpl', title: 'Security', description: 'Security things', categories: ['security'] },
      ],
    },
  });
  const zipFile = await writeZipPackage(zips, {
    name: 'zipped',
    version: '1.0.0',
    manifest: { categories: ['network'] },
    files: { 'img/logo.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>\n', 'kibana/dashboard/d.json': '{"a":1}\n' },
  });
  fs.mkdirSync(path.join(zips, 'nested', 'deeper'), { recursive: true });
  await writeZipPackage(path.join(zips, 'nested', 'deeper'), { name: 'zipped', version: '0.5.0', manifest: { categories: ['network'] } });
  return { root, dirs, zips, zipFile, webDir };
}
