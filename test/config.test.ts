// Proves the configuration is parsed once, strictly: defaults, every problem reported at once,
// production refusing development keys, and API keys checked in constant time over all keys.
import { describe, expect, it } from 'vitest';
import { authenticate, parseApiKeys } from '../lib/api-keys';
import { ConfigError, loadConfig } from '../lib/config';

describe('loadConfig', () => {
  it('has documented defaults and is frozen', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      redisUrl: 'redis://127.0.0.1:6379',
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/stockhold',
      quantityMax: 1000,
      holdTtlDefaultSeconds: 900,
      idempotencyTtlSeconds: 86_400,
      apiKeysAreDevelopmentDefaults: true,
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(config.apiKeys.map((key) => key.clientId)).toEqual(['checkout-dev', 'fulfillment-dev', 'admin-dev']);
  });

  it('takes REDIS_CLUSTER_NODES as the seeds of a cluster (confirms then wait for one replica by default) and refuses malformed seeds', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7001, redis-2:7002,[::1]:7003' });
    expect(config.redisClusterNodes).toEqual([{ host: '127.0.0.1', port: 7001 }, { host: 'redis-2', port: 7002 }, { host: '::1', port: 7003 }]);
    expect(config.redisConfirmReplicas).toBe(1);
    expect(loadConfig({}).redisClusterNodes).toBeNull();
    expect(loadConfig({}).redisConfirmReplicas).toBe(0);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7001,nope' })).toThrow(/"nope" is not host:port/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:70000' })).toThrow(/is not host:port/);
  });

  it('refuses to start in production without API_KEYS', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/API_KEYS is required/);
  });

  it('lists every problem at once', () => {
    try {
      loadConfig({ PORT: 'eighty', QUANTITY_MAX: '0', REDIS_URL: 'http://x', API_KEYS: 'a:superuser:short', DATABASE_URL: 'nope' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems.join('\n');
      expect(problems).toMatch(/PORT must be a whole number/);
      expect(problems).toMatch(/QUANTITY_MAX must be between 1 and/);
      expect(problems).toMatch(/REDIS_URL must use redis: or rediss:/);
      expect(problems).toMatch(/DATABASE_URL is not a valid URL/);
      expect(problems).toMatch(/unknown scope superuser/);
      expect(problems).toMatch(/secret must be 8-256 characters/);
      expect(problems).not.toMatch(/short/);
    }
  });

  it('writes new records in the compact layout by default; RECORD_LAYOUT=previous for a rolling upgrade; anything else refused', () => {
    expect(loadConfig({}).recordLayout).toBe('compact');
    expect(loadConfig({ RECORD_LAYOUT: 'previous' }).recordLayout).toBe('previous');
    expect(() => loadConfig({ RECORD_LAYOUT: 'whole' })).toThrow(/RECORD_LAYOUT must be one of compact, previous/);
  });

  it('refuses a retention shorter than the idempotency window', () => {
    expect(() => loadConfig({ IDEMPOTENCY_TTL_SECONDS: '7200', RESERVATION_RETENTION_SECONDS: '3600' })).toThrow(/RESERVATION_RETENTION_SECONDS/);
  });
});

describe('API keys', () => {
  it('parses clientId:scope[+scope]:secret and authenticates by secret', () => {
    const { keys, problems } = parseApiKeys('shop:checkout:secret-one-1, ops:admin+fulfillment:secret:with:colons');
    expect(problems).toEqual([]);
    expect(authenticate(keys, 'secret-one-1')?.clientId).toBe('shop');
    const ops = authenticate(keys, 'secret:with:colons');
    expect([...(ops?.scopes ?? [])]).toEqual(['admin', 'fulfillment']);
    expect(authenticate(keys, 'secret-one-')).toBeUndefined();
    expect(authenticate(keys, '')).toBeUndefined();
  });

  it('refuses duplicate client ids', () => {
    expect(parseApiKeys('a:checkout:12345678,a:admin:87654321').problems.join()).toMatch(/appears twice/);
  });
});
