import { directionProblem, packageKey, parsePackageId, type PackageId, type Stage } from './stages.js';
import { loadCopy, PromotionError, shortHash, type CopyKind, type LoadedCopy, type LocalCopy, type PackageCopy, type StageLayer } from './layer.js';
import { stageLayer, type LocateOptions } from './locate.js';

/**
 * Promotion of one package version to the next stage: add it to the target
 * layer, read it back from there and verify it (the registry's validation and
 * the same content hash), and only then remove it from the source layer. At
 * every moment the package is in the source, or in both; never in neither. A
 * re-run after an interruption finds the same copy in the target and only
 * finishes the removal.
 */

export type StepKind = 'check' | 'plan' | 'copy' | 'verify' | 'remove' | 'skip' | 'undo';

export interface Step {
  step: StepKind;
  message: string;
}

export interface PromoteRequest extends LocateOptions {
  /** `<name>-<version>` or an id */
  package: string | PackageId;
  from: Stage;
  to: Stage;
  dryRun?: boolean;
  /** the two layers, when already known (otherwise read from the definitions) */
  layers?: { source: StageLayer; target: StageLayer };
  onStep?: (s: Step) => void;
  /** test seams: run between the add and its verification, and before the removal */
  hooks?: { afterAdd?: (target: StageLayer) => void | Promise<void>; beforeRemove?: () => void | Promise<void> };
}

export type PromotionAction = 'promoted' | 'finished' | 'already-promoted';

export interface PromotionResult {
  package: string;
  name: string;
  version: string;
  from: Stage;
  to: Stage;
  /** promoted: added and removed; finished: it was already in the target, removed from the source; already-promoted: nothing left to do */
  action: PromotionAction;
  dryRun: boolean;
  kind: CopyKind;
  hash: string;
  source: { origin: string; path: string; commit?: string };
  target: { origin: string; path: string; commit?: string };
  /** what was (or, with dryRun, would be) done, in order */
  plan: string[];
  steps: Step[];
  durationMs: number;
}

export async function promote(req: PromoteRequest): Promise<PromotionResult> {
  const started = Date.now();
  const id = typeof req.package === 'string' ? parsePackageId(req.package) : req.package;
  if (!id) throw new PromotionError('unknown-package', `"${String(req.package)}" is not <name>-<version> (e.g. nginx-1.2.3)`);
  const key = packageKey(id);
  const wrong = directionProblem(req.from, req.to);
  if (wrong) throw new PromotionError('direction', wrong);

  const steps: Step[] = [];
  const say = (step: StepKind, message: string) => {
    const s = { step, message };
    steps.push(s);
    req.onStep?.(s);
  };

  const source = req.layers?.source ?? stageLayer(req.from, req);
  const target = req.layers?.target ?? stageLayer(req.to, req);
  source.preflight();
  target.preflight();
  say('check', `${req.from}: ${source.origin}; ${req.to}: ${target.origin}`);

  const inSource = source.find(id);
  const inTarget = target.find(id);
  const base = (copy: PackageCopy, hash: string) => ({
    package: key, name: id.name, version: id.version, from: req.from, to: req.to, dryRun: req.dryRun === true, kind: copy.kind, hash,
    source: { origin: source.origin, path: copy.rel }, target: { origin: target.origin, path: inTarget[0]?.rel ?? copy.rel },
  });

  if (inSource.length === 0) {
    if (inTarget.length > 0) {
      const local = await target.readCopy(inTarget[0]);
      try {
        const there = await loadCopy(local, target.origin);
        say('skip', `${key} is already in ${req.to} (${inTarget[0].rel}) and no longer in ${req.from}: nothing to do`);
        return { ...base(inTarget[0], there.hash), action: 'already-promoted', plan: [], steps, durationMs: Date.now() - started };
      } finally {
        local.release();
      }
    }
    const others = source.versions(id.name);
    throw new PromotionError('unknown-package', `${key} is not in ${req.from} (${source.origin}) nor in ${req.to}` +
      (others.length ? `; ${req.from} has ${id.name} ${others.join(', ')}` : `; ${req.from} has no version of ${id.name}`));
  }
  if (inSource.length > 1) {
    throw new PromotionError('ambiguous', `${key} is in ${req.from} more than once (${inSource.map((c) => c.rel).join(', ')}); keep one copy, then promote`);
  }
  const copy = inSource[0];

  const locals: LocalCopy[] = [];
  const read = async (layer: StageLayer, c: PackageCopy) => {
    const l = await layer.readCopy(c);
    locals.push(l);
    return l;
  };
  try {
    const srcLocal = await read(source, copy);
    const src = await loadCopy(srcLocal, source.origin);
    checkIdentity(src, id, `${source.origin}/${copy.rel}`);
    if (copy.kind === 'zip' && !copy.signature) {
      throw new PromotionError('invalid-package', `${source.origin}/${copy.rel}.sig is missing: the registry refuses unsigned zip packages; sign it before promoting`);
    }
    say('check', `${key} in ${req.from}: ${copy.rel} (${copy.kind}), valid, content ${shortHash(src.hash)}`);

    let alreadyThere = false;
    for (const t of inTarget) {
      let there: LoadedCopy;
      try {
        there = await loadCopy(await read(target, t), target.origin);
      } catch (err) {
        if (err instanceof PromotionError) throw new PromotionError('conflict', `${key} is already in ${req.to} but that copy is broken: ${err.message}`);
        throw err;
      }
      if (t.kind === 'zip' && !t.signature) {
        throw new PromotionError('conflict', `${key} is already in ${req.to} (${t.rel}) but without its .sig, which the registry refuses; put the signature next to it or remove that copy`);
      }
      if (there.hash !== src.hash) {
        throw new PromotionError('conflict', `${key} is already in ${req.to} (${t.rel}) with different content (${shortHash(there.hash)} there, ${shortHash(src.hash)} in ${req.from}); ` +
          'a published version is never overwritten: release the change as a new version');
      }
      alreadyThere = true;
    }

    const addSubject = `promote ${key}`;
    const removeSubject = `promote ${key} to ${req.to}`;
    const plan: string[] = [];
    if (alreadyThere) plan.push(`${req.to} already has ${key} with the same content: nothing to add`);
    else {
      plan.push(`${req.to}: ${target.describeAdd(copy, addSubject)}`);
      plan.push(`${req.to}: read it back, validate it and check its content hash is ${shortHash(src.hash)}`);
    }
    plan.push(`${req.from}: ${source.describeRemove(copy, removeSubject)}`);

    if (req.dryRun) {
      for (const p of plan) say('plan', p);
      return { ...base(copy, src.hash), action: alreadyThere ? 'finished' : 'promoted', plan, steps, durationMs: Date.now() - started };
    }

    let targetCommit: string | undefined;
    if (alreadyThere) {
      say('skip', `${req.to} already has ${key} with the same content (an earlier promotion stopped before the removal): only removing it from ${req.from}`);
    } else {
      const receipt = await target.add(srcLocal, addSubject, `From ${req.from} (${source.origin}/${copy.rel}).\nContent ${src.hash}.`);
      targetCommit = receipt.commit;
      say('copy', `${req.to}: ${receipt.detail}`);
      try {
        await req.hooks?.afterAdd?.(target);
        const back = await loadCopy(await read(target, copy), target.origin);
        checkIdentity(back, id, `${target.origin}/${copy.rel}`);
        if (back.hash !== src.hash) throw new PromotionError('verify-failed', `content hash ${shortHash(back.hash)} in ${req.to} is not ${shortHash(src.hash)} as in ${req.from}`);
        if (src.signature && !(back.signature && back.signature.equals(src.signature))) throw new PromotionError('verify-failed', 'the signature in the target differs from the source\'s');
        say('verify', `${req.to}: ${key} reads back valid, content ${shortHash(back.hash)} (same as ${req.from})`);
      } catch (err) {
        const undone = await receipt.undo().catch((e: Error) => `could not undo (${e.message}); remove it by hand`);
        say('undo', `${req.to}: ${undone}`);
        const why = err instanceof PromotionError ? err.message : (err as Error).message;
        throw new PromotionError('verify-failed', `${key} did not verify in ${req.to}: ${why}. It is still in ${req.from}, untouched`);
      }
    }

    let removed: { detail: string; commit?: string };
    try {
      await req.hooks?.beforeRemove?.();
      removed = await source.remove(copy, removeSubject, targetCommit
        ? `Now in ${req.to}: ${targetCommit}.\nContent ${src.hash}.`
        : `Already in ${req.to} with the same content ${src.hash}.`);
    } catch (err) {
      // verified in the target, still (partly) in the source: a re-run only finishes the removal
      const why = (err as Error).message;
      throw new PromotionError(err instanceof PromotionError && err.code !== 'io' ? err.code : 'io',
        `${key} is in ${req.to} and verified, but removing it from ${req.from} failed: ${why}. Run the same command again to finish`);
    }
    say('remove', `${req.from}: ${removed.detail}`);
    const result = base(copy, src.hash);
    return {
      ...result,
      source: { ...result.source, commit: removed.commit },
      target: { ...result.target, commit: targetCommit },
      action: alreadyThere ? 'finished' : 'promoted',
      plan,
      steps,
      durationMs: Date.now() - started,
    };
  } finally {
    for (const l of locals) l.release();
  }
}

function checkIdentity(loaded: LoadedCopy, id: PackageId, where: string): void {
  if (loaded.pkg.name !== id.name || loaded.pkg.version !== id.version) {
    throw new PromotionError('invalid-package', `${where}: its manifest says ${loaded.pkg.name} ${loaded.pkg.version}, not ${id.name} ${id.version}`);
  }
}

/** The one-line summary of a promotion. */
export function summary(r: PromotionResult): string {
  const what = `${r.name} ${r.version} (${r.kind}, ${shortHash(r.hash)})`;
  const secs = `${(r.durationMs / 1000).toFixed(1)}s`;
  if (r.action === 'already-promoted') return `${what} is already in ${r.to} and not in ${r.from}: nothing to do`;
  if (r.dryRun) return `dry run: would ${r.action === 'finished' ? `remove ${what} from ${r.from} (already in ${r.to})` : `promote ${what} from ${r.from} to ${r.to}`}; nothing changed`;
  if (r.action === 'finished') return `finished promoting ${what}: it was already in ${r.to}, removed from ${r.from} in ${secs}`;
  return `promoted ${what} from ${r.from} to ${r.to} in ${secs}`;
}
