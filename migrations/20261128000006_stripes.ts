// Hot-SKU striping: a SKU's stock can be split over stripes, each an internal SKU of the ledger
// (stripe 0 is the SKU itself, stripe j is `<sku>~j`) with its own on-hand and position, so that
// each stripe's Redis state lives in its own hash slot (lib/stock/stripes.ts).
// - skus.sku: the CHECK admits the `~j` suffix of a stripe (no public SKU can have it). Written
//   without `?`, which knex.raw would take for a binding.
// - skus.stripes: on a SKU's own row, how many stripes it has (1: not striped); stripe_tags: the
//   tags t of its stripes 1..k-1 (named `<sku>~t`), chosen to spread them over the primaries.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE skus DROP CONSTRAINT skus_sku_check,
                     ADD CONSTRAINT skus_sku_check CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}(~[1-9][0-9]{0,3}){0,1}$'),
                     ADD COLUMN stripes smallint NOT NULL DEFAULT 1 CHECK (stripes BETWEEN 1 AND 64),
                     ADD COLUMN stripe_tags smallint[] NOT NULL DEFAULT '{}',
                     ADD CONSTRAINT skus_stripe_tags_count CHECK (cardinality(stripe_tags) = stripes - 1);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE skus DROP CONSTRAINT skus_stripe_tags_count,
                     DROP COLUMN stripe_tags,
                     DROP COLUMN stripes,
                     DROP CONSTRAINT skus_sku_check,
                     ADD CONSTRAINT skus_sku_check CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}$');
  `);
}
