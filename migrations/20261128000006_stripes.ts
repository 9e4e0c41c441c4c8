// Hot-SKU striping: a SKU's stock can be split over stripes, each an internal SKU of the ledger
// (stripe 0 is the SKU itself, stripe j is `<sku>~j`) with its own on-hand and position, so that
// each stripe's Redis state lives in its own hash slot (lib/stock/stripes.ts).
// - skus.sku: the CHECK admits the `~j` suffix of a stripe (no public SKU can have it). Written
//   without `?`, which knex.raw would take for a binding.
// - skus.stripes: on a SKU's own row, how many stripes it has (1: not striped).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE skus DROP CONSTRAINT skus_sku_check,
                     ADD CONSTRAINT skus_sku_check CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}(~[1-9][0-9]{0,1}){0,1}$'),
                     ADD COLUMN stripes smallint NOT NULL DEFAULT 1 CHECK (stripes BETWEEN 1 AND 64);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE skus DROP COLUMN stripes,
                     DROP CONSTRAINT skus_sku_check,
                     ADD CONSTRAINT skus_sku_check CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}$');
  `);
}
