#!/usr/bin/env node
// The `stockhold` command (package.json "bin"): runs the operator CLI with this process's
// arguments, environment and streams, then exits with its code once stdout has drained. The
// first Ctrl-C asks the command to stop (`events --follow` and `load` finish cleanly); a second
// one ends the process at once (the handler is registered once).
import { runCli } from './program';

const interrupt = new AbortController();
process.once('SIGINT', () => interrupt.abort());

void runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  signal: interrupt.signal,
  stderrIsTTY: process.stderr.isTTY === true,
}).then((code) => {
  process.stdout.write('', () => process.exit(code));
});
