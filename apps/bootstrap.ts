// Start-up shared by every entry point: parse the configuration (refusing to start on a bad
// one, with every problem listed), create the database if missing, run the migrations.
import { ConfigError, loadConfig, type Config } from '../lib/config';
import { prepareDatabaseAt } from '../lib/postgres/migrations';
import type { Logger } from 'pino';

export function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`stockhold: refusing to start.\n${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
}

export async function prepareDatabase(config: Config, logger: Logger): Promise<void> {
  const { created, applied } = await prepareDatabaseAt(config.databaseUrl, config.postgresConnectTimeoutMs);
  if (created) logger.info('created the database');
  logger.info({ applied }, applied.length === 0 ? 'schema is up to date' : 'applied migrations');
}

export function warnAboutDevelopmentKeys(config: Config, logger: Logger): void {
  if (config.apiKeysAreDevelopmentDefaults) {
    logger.warn('API_KEYS is not set: using the documented development keys (see README). Never do this in production.');
  }
}

/**
 * Runs `stop` once on SIGTERM or SIGINT and exits 0 when it is done; past SHUTDOWN_TIMEOUT_MS it
 * exits 1 anyway (a worker's unfinished job is then re-run by another worker once its lock
 * expires; nothing acknowledged depends on this process finishing).
 */
export function onShutdown(config: Pick<Config, 'shutdownTimeoutMs'>, logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const startedAt = Date.now();
    logger.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown did not finish in time; exiting');
      logger.flush();
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    stop().then(
      () => {
        logger.info({ durationMs: Date.now() - startedAt }, 'stopped');
        logger.flush();
        process.exit(0);
      },
      (error) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}
