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
