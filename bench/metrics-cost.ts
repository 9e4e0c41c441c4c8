// `npm run bench:metrics`: what the metrics cost one reservation request, in CPU time, measured
// where the noise of a whole HTTP run cannot hide it: the observations the hot path makes per
// request (the HTTP counter and histogram with their labels, the outcome counter), a million
// times, in rounds. Divide by the time a request takes (bench:http) for the share.
import { Metrics } from '../lib/metrics/metrics';

const requests = 1_000_000;
const rounds = 5;

function main(): void {
  const metrics = new Metrics({ defaultMetrics: false });
  const perRequestNs: number[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    const started = process.hrtime.bigint();
    for (let index = 0; index < requests; index += 1) {
      metrics.httpRequests.labels('POST', '/v1/reservations', '201').inc();
      metrics.httpDuration.labels('POST', '/v1/reservations').observe(0.0123);
      metrics.reservations.inc({ outcome: 'created' });
    }
    const ns = Number(process.hrtime.bigint() - started) / requests;
    perRequestNs.push(ns);
    process.stdout.write(`round ${round}: ${ns.toFixed(0)} ns per request\n`);
  }
  const median = [...perRequestNs].sort((a, b) => a - b)[Math.floor(rounds / 2)] as number;
  process.stdout.write(`median: ${median.toFixed(0)} ns of metrics per reservation request\n`);
  for (const rate of [1000, 3600, 10_000]) {
    process.stdout.write(`  at ${rate} req/s per process (${(1e9 / rate / 1000).toFixed(0)} µs a request): ${((median * rate) / 1e7).toFixed(2)} % of one core\n`);
  }
}

main();
