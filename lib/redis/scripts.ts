// Loads the Lua scripts in lua/ once, resolves their `--- @include "..."` lines (each include at
// most once per script, cycles refused), and runs them with EVALSHA, re-sending the body on
// NOSCRIPT (after a Redis restart or failover the script cache is empty). A script is addressed
// by the SHA-1 of its resolved body, so two versions of Stockhold sharing one Redis never run
// each other's code. File names follow BullMQ: verbNoun-<numberOfKeys>.lua, "n" when the number
// of keys depends on the call (one pair per cart line).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Cluster } from 'ioredis';
import type { RedisClient } from './connection';
import { assertOneSlot } from './slots';
import { assert } from '../errors';
import { withRedis } from './connection';

export const scriptNames = [
  'createReservation',
  'releaseReservation',
  'confirmReservation',
  'finishCommit',
  'rejectReservation',
  'requestCancel',
  'finishCancel',
  'inspectSku',
  'auditHolds',
  'correctOnHand',
  'readReservation',
  'readSku',
  'initSku',
  'applyEntries',
  'prepareStockChange',
  'releaseDebit',
  'beginIdempotent',
  'settleIdempotent',
  'leaseRun',
  'takeToken',
  'holdLines',
  'returnLines',
  'beginCart',
  'finishCart',
  'openRecord',
  'pinLines',
  'settleRecord',
  'importRecord',
  'forgetRecord',
  'admitCustomer',
  'pinCustomer',
  'forgetCustomer',
] as const;
export type ScriptName = (typeof scriptNames)[number];

export interface LoadedScript {
  readonly name: ScriptName;
  readonly body: string;
  readonly sha: string;
  /** Fixed number of keys, or undefined when the call decides ("-n" scripts). */
  readonly numberOfKeys: number | undefined;
}

export type ScriptReply = Array<string | number | null>;

const includeLine = /^--- @include "([^"]+)"\s*$/;
const includeDepthMax = 8;

function findLuaDirectory(): string {
  let directory = __dirname;
  for (let depth = 0; depth < 6; depth += 1) {
    const candidate = path.join(directory, 'lua');
    if (existsSync(path.join(candidate, 'includes'))) return candidate;
    directory = path.dirname(directory);
  }
  throw new Error(`lua/ directory not found above ${__dirname}`);
}

function resolveIncludes(directory: string, file: string, stack: string[], included: Set<string>): string {
  assert(stack.length <= includeDepthMax, `include depth over ${includeDepthMax} at ${file}`);
  if (stack.includes(file)) throw new Error(`Lua include cycle: ${[...stack, file].join(' -> ')}`);
  return resolveSourceIncludes(directory, readFileSync(path.join(directory, file), 'utf8'), [...stack, file], included);
}

function resolveSourceIncludes(directory: string, source: string, stack: string[], included: Set<string>): string {
  return source
    .split('\n')
    .map((line) => {
      const match = includeLine.exec(line);
      if (match === null) return line;
      const target = `${match[1]}.lua`;
      if (included.has(target)) return `-- (already included: ${target})`;
      included.add(target);
      return resolveIncludes(directory, target, stack, included);
    })
    .join('\n');
}

/** A Lua body with its `--- @include` lines resolved as the scripts' are (tests read and poke records with it). */
export function luaWithIncludes(body: string, directory: string = findLuaDirectory()): string {
  return resolveSourceIncludes(directory, body, [], new Set());
}

export function loadScripts(directory: string = findLuaDirectory()): ReadonlyMap<ScriptName, LoadedScript> {
  const files = readdirSync(directory).filter((file) => file.endsWith('.lua'));
  const scripts = new Map<ScriptName, LoadedScript>();
  for (const name of scriptNames) {
    const file = files.find((candidate) => candidate.replace(/-(\d+|n)\.lua$/, '') === name);
    if (file === undefined) throw new Error(`Lua script ${name} is missing from ${directory}`);
    const suffix = /-(\d+|n)\.lua$/.exec(file)?.[1];
    assert(suffix !== undefined, `script file ${file} has no -<numberOfKeys> suffix`);
    const body = resolveIncludes(directory, file, [], new Set());
    const sha = createHash('sha1').update(body).digest('hex');
    scripts.set(name, { name, body, sha, numberOfKeys: suffix === 'n' ? undefined : Number(suffix) });
  }
  return scripts;
}

/**
 * Runs before a script, when set: the tests' latch for forcing an interleaving between two
 * round trips (hold a script back, run something else, then let it go). Never set in production.
 */
export type ScriptLatch = (name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number>) => Promise<void>;

export class ScriptRunner {
  latch: ScriptLatch | undefined;

  /** On a Redis Cluster every call must keep to one slot: checked before it is sent. */
  private readonly oneSlotPerCall: boolean;

  constructor(
    readonly redis: RedisClient,
    private readonly scripts: ReadonlyMap<ScriptName, LoadedScript> = loadScripts(),
  ) {
    this.oneSlotPerCall = redis instanceof Cluster;
  }

  /** Sends every script to Redis's cache ahead of the first request (an optimisation only). */
  async preload(): Promise<void> {
    // On a cluster SCRIPT LOAD reaches one node; the others get a body on their first NOSCRIPT.

    await Promise.all([...this.scripts.values()].map((script) => this.redis.script('LOAD', script.body)));
  }

  async run(name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<ScriptReply> {
    const script = this.scripts.get(name);
    assert(script !== undefined, `unknown script ${name}`);
    assert(script.numberOfKeys === undefined || script.numberOfKeys === keys.length, `${name} takes ${script.numberOfKeys} keys, got ${keys.length}`);
    if (this.oneSlotPerCall) assertOneSlot(name, keys);
    if (this.latch !== undefined) await this.latch(name, keys, args);
    return withRedis(async () => {
      try {
        return (await this.redis.evalsha(script.sha, keys.length, ...keys, ...args)) as ScriptReply;
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return (await this.redis.eval(script.body, keys.length, ...keys, ...args)) as ScriptReply;
      }
    });
  }
}
