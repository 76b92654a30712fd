import fs from 'node:fs';
import { DISTRIBUTIONS_DIR, distributionFile, loadDistribution, type LayerDef } from '../distribution.js';
import { DirectoryLayer } from './directory.js';
import { GitLayer } from './git.js';
import { PromotionError, type StageLayer } from './layer.js';
import type { Stage } from './stages.js';

/**
 * Where each stage's layer is: the layer named after the stage in the
 * distribution definitions. The snapshot distribution lists all three; a
 * stage it lacks is looked up in that stage's own definition.
 */

export interface LocateOptions {
  /** folder of the definitions (default distributions/) */
  definitions?: string;
  /** read every stage from this one definition instead */
  distribution?: string;
}

export function stageLayerDef(stage: Stage, opts: LocateOptions = {}): LayerDef & { file: string } {
  const dir = opts.definitions ?? DISTRIBUTIONS_DIR;
  if (opts.distribution) {
    const d = loadDistribution(opts.distribution, dir);
    const layer = d.layers.find((l) => l.name === stage);
    if (!layer) throw new PromotionError('layer-missing', `${d.file} has no layer named "${stage}" (it has ${d.layers.map((l) => l.name).join(', ')})`);
    return { ...layer, file: d.file };
  }
  const tried: string[] = [];
  for (const name of ['snapshot', stage]) {
    const file = distributionFile(name, dir);
    if (tried.some((t) => t.startsWith(file))) continue;
    if (!fs.existsSync(file)) { tried.push(`${file} (no such file)`); continue; }
    tried.push(file);
    const d = loadDistribution(name, dir);
    const layer = d.layers.find((l) => l.name === stage);
    if (layer) return { ...layer, file: d.file };
  }
  throw new PromotionError('layer-missing', `no layer named "${stage}" in ${tried.join(' or ')}`);
}

export function stageLayer(stage: Stage, opts: LocateOptions = {}): StageLayer {
  const def = stageLayerDef(stage, opts);
  return def.source.kind === 'directory'
    ? new DirectoryLayer(stage, def.source.directory)
    : new GitLayer(stage, def.source.repo, def.source.ref, def.source.path);
}
