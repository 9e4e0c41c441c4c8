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

export const shutdownGraceMs = 10_000;

/** Runs `stop` once on SIGTERM or SIGINT, and exits even if it hangs past the grace period. */
export function onShutdown(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(1), shutdownGraceMs).unref();
    stop().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}
