/**
 * Reading command-line options the same way in every builder command:
 * `--flag value` or `--flag=value`; a missing value is a usage error.
 */
export interface OptionValue { value: string; /** index of the last argument used */ last: number }

export function optionValue(argv: string[], i: number, flag: string, UsageErr: new (message: string) => Error): OptionValue {
  const arg = argv[i];
  const eq = arg.indexOf('=');
  if (eq > 0) return { value: arg.slice(eq + 1), last: i };
  if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new UsageErr(`${flag} needs a value`);
  return { value: argv[i + 1], last: i + 1 };
}

/**
 * Walks the arguments of a command: `visit(arg, value)` for each, where
 * `value(flag)` takes that flag's value (`--flag value` or `--flag=value`)
 * and moves past it.
 */
export function eachArg(argv: string[], UsageErr: new (message: string) => Error, visit: (arg: string, value: (flag: string) => string) => void): void {
  for (let i = 0; i < argv.length; i++) {
    visit(argv[i], (flag) => {
      const o = optionValue(argv, i, flag, UsageErr);
      i = o.last;
      return o.value;
    });
  }
}
