// `amk-bridge check-config FILE...`: validate like `nginx -t`. Prints `FILE: ok`, or every error
// as `FILE: KEY: reason` on stderr and exits 1. `--print` writes the effective configuration
// (defaults applied, secrets redacted) as YAML to stdout.

import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { formatConfigErrors, loadConfig } from '../config/load.js';
import { redactSecrets } from '../config/secrets.js';

export interface CliIO {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

export const CHECK_CONFIG_USAGE = `Usage: amk-bridge check-config [--print] FILE...

Validates amk-bridge configuration files, like \`nginx -t\`.
Prints "FILE: ok" for a valid file; otherwise every problem as "FILE: KEY: reason"
on stderr. Exit status: 0 all files valid, 1 errors found, 2 usage error.

Options:
  --print      Also write the effective configuration (defaults applied,
               secrets shown as "***") as YAML to stdout; "FILE: ok" then goes to stderr.
  -h, --help   Show this help.
`;

/** Runs `check-config` with `argv` (the arguments after the subcommand); resolves to the exit code. */
export async function checkConfigCommand(argv: readonly string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: { print: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    io.stderr.write(`amk-bridge check-config: ${(err as Error).message}\n\n${CHECK_CONFIG_USAGE}`);
    return 2;
  }
  if (parsed.values.help === true) {
    io.stdout.write(CHECK_CONFIG_USAGE);
    return 0;
  }
  if (parsed.positionals.length === 0) {
    io.stderr.write(`amk-bridge check-config: no FILE given\n\n${CHECK_CONFIG_USAGE}`);
    return 2;
  }
  let failed = false;
  for (const file of parsed.positionals) {
    const result = await loadConfig(file);
    if (!result.ok) {
      failed = true;
      io.stderr.write(`${formatConfigErrors(file, result.errors)}\n`);
      continue;
    }
    if (parsed.values.print === true) {
      io.stdout.write(`# ${file} (effective configuration, secrets redacted)\n${stringify(redactSecrets(result.config))}`);
      io.stderr.write(`${file}: ok\n`);
    } else {
      io.stdout.write(`${file}: ok\n`);
    }
  }
  return failed ? 1 : 0;
}
