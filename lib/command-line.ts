/**
 * The command-line behaviour KEA's two programs share (controller/config.ts for
 * `dist/controller/main.js`, policy-server/main.ts for `dist/policy-server/main.js`): both parse
 * with commander, every flag has an environment variable (flags win), parsing returns a plain
 * options object that the entrypoint passes on explicitly (nothing is written to `process.env`
 * for other modules to read back), and a bad command line ends the process the same way:
 * one line `<program>: <message>` on stderr and exit code {@link USAGE_EXIT_CODE}.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';

/** Exit code of a command-line usage error (unknown flag, bad value, missing required option), as POSIX utilities use it. */
export const USAGE_EXIT_CODE = 2;

/**
 * A commander program set up the way both of KEA's programs parse: parsing throws a
 * `CommanderError` instead of exiting (`exitOverride`), and commander prints no error of its
 * own (the entrypoint prints it once, {@link exitOnCommandLineError}); `--help` still prints the
 * help text to stdout before throwing (exit code 0).
 * @param name - the program's name, shown in the help text's usage line.
 */
export function programCommand(name: string): Command {
  return new Command(name).exitOverride().configureOutput({ outputError: () => undefined });
}

/**
 * An option parser for a non-negative integer (ports, milliseconds, bytes, counts).
 * @param flag - the flag's name for the message, e.g. `--port`.
 * @returns a commander `argParser` function.
 * @throws InvalidArgumentError naming the flag and the value, when the value is not a non-negative integer.
 */
export function nonNegativeInt(flag: string): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a non-negative integer, got "${value}"`);
    return n;
  };
}

/**
 * For a program's entrypoint: when `err` came from parsing the command line (a commander
 * `CommanderError`, `InvalidArgumentError` included), ends the process: exit code 0 after
 * `--help` or `--version` (the text is already printed), else one line
 * `<program>: <message> (see --help)` on stderr and exit code {@link USAGE_EXIT_CODE}.
 * Returns, doing nothing, for any other error.
 * @param program - the name the stderr line starts with.
 * @param err - what parsing threw.
 * @param exit - ends the process (default `process.exit`; tests pass their own).
 */
export function exitOnCommandLineError(program: string, err: unknown, exit: (code: number) => void = (code) => process.exit(code)): void {
  if (!(err instanceof CommanderError)) return;
  if (err.exitCode === 0) {
    exit(0);
    return;
  }
  const message = err.message.replace(/^error: /, '').replace(/\n+/g, ' ');
  process.stderr.write(`${program}: ${message} (see --help)\n`);
  exit(USAGE_EXIT_CODE);
}
