// Prints one plain closing line, "vitest: N passed, N failed, N skipped[, N unhandled errors]",
// that CI can read whatever the runner's own formatting. An unhandled error fails the run too.
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown> = []): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failed += 1;
        else skipped += 1;
      }
      if (module.state() === 'failed' && [...module.children.allTests()].length === 0) failed += 1;
    }
    const errors = unhandledErrors.length === 0 ? '' : `, ${unhandledErrors.length} unhandled errors`;
    process.stdout.write(`\nvitest: ${passed} passed, ${failed} failed, ${skipped} skipped${errors}\n`);
  }
}
