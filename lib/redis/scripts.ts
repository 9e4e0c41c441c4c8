// Loads the Lua scripts in lua/ once and runs them as Redis Functions: one library per build of
// Stockhold (`stockhold_<version>`, the version a hash of every script and include), each script
// a function `sh_<version>_<name>` called with FCALL. A library's code runs once, when Redis
// loads it: the includes' helpers and constant tables are made then, not on every call as with
// EVALSHA, which the hot path paid for (one reservation's Redis CPU 81 -> 63 µs, measured in one
// run: docs/benchmarks.md). Loaded at start-up and again on "Function not found" (a Redis
// restarted empty), on every primary of a cluster. Two versions sharing one Redis never run each
// other's code: their libraries and functions have other names.
//
// Each script is written as a file of its own (BullMQ's layout: verbNoun-<numberOfKeys>.lua,
// "n" when the number of keys depends on the call) with `--- @include "..."` lines: in the
// library every include appears once, in an order every script agrees with, and each script's
// own code becomes its function's body (KEYS and ARGV its arguments). State an include keeps for
// one call (a `local` it changes) is reset at the start of every function that includes it, by
// the include's `<name>CallStart()` function (lua/includes/holds.lua has one).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Cluster } from 'ioredis';
import type { RecordLayout } from '../config';
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
  /** The script as one Lua chunk, its includes resolved (what EVAL would run; tests read it). */
  readonly body: string;
  /** Fixed number of keys, or undefined when the call decides ("-n" scripts). */
  readonly numberOfKeys: number | undefined;
  /** The includes it names, in its order (file names under lua/). */
  readonly includes: readonly string[];
  /** Its own code: the file without its include lines. */
  readonly own: string;
}

/** The Redis Functions library of a set of scripts. */
export interface ScriptLibrary {
  readonly name: string;
  readonly code: string;
  functionName(script: ScriptName): string;
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
    const source = readFileSync(path.join(directory, file), 'utf8');
    const includes: string[] = [];
    const own = source
      .split('\n')
      .filter((line) => {
        const match = includeLine.exec(line);
        if (match !== null) includes.push(`${match[1]}.lua`);
        return match === null;
      })
      .join('\n');
    const body = resolveIncludes(directory, file, [], new Set());
    scripts.set(name, { name, body, numberOfKeys: suffix === 'n' ? undefined : Number(suffix), includes, own });
  }
  return scripts;
}

export interface LibraryOptions {
  /** Where new reservation records go (lua/includes/record.lua, RECORD_LAYOUT). */
  readonly recordLayout?: RecordLayout;
}
/** The line of lua/includes/record.lua that `recordLayout: 'previous'` sets to true. */
const recordLayoutLine = 'local recordLayoutPrevious = false';

/**
 * The library of `scripts`: every include once, in an order each script's own order agrees with
 * (refused otherwise: a helper must be defined before the helpers that call it), then each script
 * as a registered function. Includes must not include others, nor define the same top-level name.
 */
export function buildLibrary(scripts: ReadonlyMap<ScriptName, LoadedScript>, directory: string = findLuaDirectory(), options: LibraryOptions = {}): ScriptLibrary {
  // Each script's order is a chain of "before" edges; the library takes them all (Kahn's sort,
  // ties in the order the includes first appear).
  const before = new Map<string, Set<string>>();
  const seen: string[] = [];
  for (const script of scripts.values()) {
    script.includes.forEach((include, index) => {
      if (!seen.includes(include)) seen.push(include);
      if (!before.has(include)) before.set(include, new Set());
      if (index > 0) before.get(include)!.add(script.includes[index - 1]!);
    });
  }
  const order: string[] = [];
  while (order.length < seen.length) {
    const next = seen.find((include) => !order.includes(include) && [...before.get(include)!].every((earlier) => order.includes(earlier)));
    assert(next !== undefined, `the scripts include ${seen.filter((include) => !order.includes(include)).join(', ')} in orders that contradict each other`);
    order.push(next);
  }
  const sources = new Map(order.map((include) => [include, readFileSync(path.join(directory, include), 'utf8')]));
  if (options.recordLayout === 'previous') {
    const record = sources.get('includes/record.lua');
    assert(record !== undefined && record.split('\n').includes(recordLayoutLine), `includes/record.lua has no line "${recordLayoutLine}"`);
    sources.set('includes/record.lua', record.replace(recordLayoutLine, 'local recordLayoutPrevious = true'));
  }
  const defined = new Map<string, string>();
  const callStarts = new Map<string, string>();
  for (const [include, source] of sources) {
    assert(!source.split('\n').some((line) => includeLine.test(line)), `${include} includes another file; the library keeps includes flat`);
    for (const match of source.matchAll(/^local (?:function )?([A-Za-z_][A-Za-z_0-9]*)/gm)) {
      const name = match[1]!;
      assert(!defined.has(name), `${name} is defined by both ${defined.get(name)} and ${include}`);
      defined.set(name, include);
      if (name.endsWith('CallStart')) callStarts.set(include, name);
    }
  }
  const version = createHash('sha1')
    .update([...sources.values(), ...[...scripts.values()].map((script) => `${script.name}\n${script.own}`)].join('\n--\n'))
    .digest('hex')
    .slice(0, 12);
  const functionName = (name: ScriptName) => `sh_${version}_${name}`;
  // KEYS and ARGV are the call's, for the includes too (some read them as scripts do): one pair of
  // library locals set as each function starts (Redis runs one function at a time).
  const parts = [`#!lua name=stockhold_${version}`, 'local KEYS, ARGV = {}, {}'];
  for (const [include, source] of sources) parts.push(`-- ${include}`, source);
  for (const script of scripts.values()) {
    const starts = script.includes.flatMap((include) => (callStarts.has(include) ? [`${callStarts.get(include)!}()`] : []));
    parts.push(`-- ${script.name}`, `redis.register_function('${functionName(script.name)}', function(keys, args)`, 'KEYS, ARGV = keys, args', ...starts, script.own, 'end)');
  }
  return { name: `stockhold_${version}`, code: parts.join('\n'), functionName };
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
  private readonly library: ScriptLibrary;
  private loading: Promise<void> | undefined;
  /** How many times this runner loaded its library (at start, and after "Function not found"). */
  libraryLoads = 0;

  constructor(
    readonly redis: RedisClient,
    private readonly scripts: ReadonlyMap<ScriptName, LoadedScript> = loadScripts(),
    options: LibraryOptions = {},
  ) {
    this.oneSlotPerCall = redis instanceof Cluster;
    this.library = buildLibrary(scripts, undefined, options);
  }

  /** The library's name in Redis (`FUNCTION LIST LIBRARYNAME stockhold_`). */
  get libraryName(): string {
    return this.library.name;
  }

  /** Loads the library into Redis (every primary of a cluster) ahead of the first request. */
  async preload(): Promise<void> {
    await withRedis(() => this.loadLibrary());
  }

  /**
   * One load at a time; callers that find the library missing meanwhile wait for it. On a cluster
   * every primary the client knows gets it; one that refuses (a node mid-failover, no longer a
   * primary: READONLY) is passed over, since the call that follows goes to whichever node owns its
   * slot now and fails there if that one still lacks the library. On one Redis a failed load fails.
   */
  private loadLibrary(): Promise<void> {
    this.loading ??= (async () => {
      this.libraryLoads += 1;
      if (!(this.redis instanceof Cluster)) {
        await this.redis.call('FUNCTION', 'LOAD', 'REPLACE', this.library.code);
        return;
      }
      await Promise.allSettled(this.redis.nodes('master').map((node) => node.call('FUNCTION', 'LOAD', 'REPLACE', this.library.code)));
    })().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  /** Waits for the latch, when one is set, as `run` does (for a caller that sends several calls' work as one). */
  async latched(name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<void> {
    if (this.latch !== undefined) await this.latch(name, keys, args);
  }

  /** `latched`: the caller let each part of this call through the latch already. */
  async run(name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number>, options: { readonly latched?: boolean } = {}): Promise<ScriptReply> {
    const script = this.scripts.get(name);
    assert(script !== undefined, `unknown script ${name}`);
    assert(script.numberOfKeys === undefined || script.numberOfKeys === keys.length, `${name} takes ${script.numberOfKeys} keys, got ${keys.length}`);
    if (this.oneSlotPerCall) assertOneSlot(name, keys);
    if (this.latch !== undefined && options.latched !== true) await this.latch(name, keys, args);
    const functionName = this.library.functionName(name);
    return withRedis(async () => {
      try {
        return (await this.redis.fcall(functionName, keys.length, ...keys, ...args)) as ScriptReply;
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('ERR Function not found')) throw error;
        // A Redis that started empty (or a node that never had it): load it and call once more.
        await this.loadLibrary();
        return (await this.redis.fcall(functionName, keys.length, ...keys, ...args)) as ScriptReply;
      }
    });
  }
}
