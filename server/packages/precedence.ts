/**
 * THE first-wins rule, for the server's `package_paths` and the builder's
 * layers alike: when the same name+version appears more than once, a zip
 * package beats a directory package, and otherwise the one found first (the
 * earlier path or layer) wins.
 */
export interface Candidate {
  /** `<name>-<version>` */
  readonly key: string;
  readonly kind: 'zip' | 'directory';
}

export interface Shadowed<T> {
  winner: T;
  hidden: T;
  /** index of the layer each came from */
  winnerLayer: number;
  hiddenLayer: number;
}

export interface Merged<T> {
  /** the winners, in the order they were first seen */
  winners: T[];
  winnerLayer: Map<T, number>;
  shadowed: Array<Shadowed<T>>;
}

export function mergeFirstWins<T extends Candidate>(layers: T[][]): Merged<T> {
  const chosen = new Map<string, { item: T; layer: number }>();
  const shadowed: Array<Shadowed<T>> = [];
  layers.forEach((items, layer) => {
    for (const item of items) {
      const current = chosen.get(item.key);
      if (!current) {
        chosen.set(item.key, { item, layer });
      } else if (item.kind === 'zip' && current.item.kind !== 'zip') {
        shadowed.push({ winner: item, hidden: current.item, winnerLayer: layer, hiddenLayer: current.layer });
        chosen.set(item.key, { item, layer });
      } else {
        shadowed.push({ winner: current.item, hidden: item, winnerLayer: current.layer, hiddenLayer: layer });
      }
    }
  });
  const winners = [...chosen.values()];
  return { winners: winners.map((w) => w.item), winnerLayer: new Map(winners.map((w) => [w.item, w.layer])), shadowed };
}
