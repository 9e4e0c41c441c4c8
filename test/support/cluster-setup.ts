// The cluster run's global setup (vitest.cluster.config.mts): one real Redis Cluster (three
// primaries, three replicas on loopback) for the whole run, its seeds provided to the tests,
// where the harness runs every Stockhold on it; removed at the end.
import type { TestProject } from 'vitest/node';
import { PrivateRedisCluster } from '../../chaos/servers';

declare module 'vitest' {
  export interface ProvidedContext {
    clusterSeeds: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await PrivateRedisCluster.start({ primaries: 3, replicasPerPrimary: 1 });
  project.provide('clusterSeeds', cluster.seeds);
  return () => cluster.remove();
}
