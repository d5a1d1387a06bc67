/* backendd's tables, in the schema "backendd", as embedded migrations: applied at
 * start, each once however many instances start together (bk_db_migrate_list).
 * A migration never changes once released; a change is a new one.
 * SPDX-License-Identifier: MIT */
#include "app.h"

static const bk_db_migration_t MIGRATIONS[] = {
    {1, "users",
     "CREATE TABLE backendd.users ("
     " id bigserial PRIMARY KEY,"
     " email text NOT NULL,"
     " name text NOT NULL,"
     " password_hash text NOT NULL,"
     " role text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'editor', 'admin')),"
     " created_at timestamptz NOT NULL DEFAULT now(),"
     " updated_at timestamptz NOT NULL DEFAULT now());"
     /* One account per address, whatever its case. */
     "CREATE UNIQUE INDEX users_email_key ON backendd.users (lower(email));"},
    {2, "refresh tokens",
     /* Opaque tokens, kept as their SHA-256; a family is one login's chain of
      * refreshes, revoked whole when a used token comes back. */
     "CREATE TABLE backendd.refresh_tokens ("
     " hash bytea PRIMARY KEY,"
     " family bigint NOT NULL,"
     " user_id bigint NOT NULL REFERENCES backendd.users (id) ON DELETE CASCADE,"
     " expires_at timestamptz NOT NULL,"
     " used_at timestamptz,"
     " revoked_at timestamptz,"
     " created_at timestamptz NOT NULL DEFAULT now());"
     "CREATE SEQUENCE backendd.refresh_families;"
     "CREATE INDEX refresh_tokens_family ON backendd.refresh_tokens (family);"
     "CREATE INDEX refresh_tokens_expires ON backendd.refresh_tokens (expires_at);"},
    {3, "products",
     "CREATE TABLE backendd.products ("
     " id bigserial PRIMARY KEY,"
     " sku text NOT NULL UNIQUE,"
     " name text NOT NULL,"
     " description text NOT NULL DEFAULT '',"
     " price bigint NOT NULL CHECK (price >= 0),"
     " currency text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),"
     " stock integer NOT NULL DEFAULT 0 CHECK (stock >= 0),"
     " version integer NOT NULL DEFAULT 1,"
     " search tsvector GENERATED ALWAYS AS"
     "  (to_tsvector('simple', name || ' ' || description)) STORED,"
     " created_at timestamptz NOT NULL DEFAULT now(),"
     " updated_at timestamptz NOT NULL DEFAULT now());"
     "CREATE INDEX products_search ON backendd.products USING gin (search);"},
    {4, "orders",
     /* Stock moves to reserved while an order holds it: stock + reserved stays
      * what was received, whatever the orders do. */
     "ALTER TABLE backendd.products ADD COLUMN reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0);"
     /* An order is made with its request (its Idempotency-Key, per user, and the
      * request's hash), before its saga, so that a failure has an order to name. */
     "CREATE TABLE backendd.orders ("
     " id bigserial PRIMARY KEY,"
     " user_id bigint NOT NULL REFERENCES backendd.users (id),"
     " idempotency_key text," /* NULL once its retention has passed */
     " request_hash text,"
     " status text NOT NULL DEFAULT 'pending'"
     "  CHECK (status IN ('pending', 'placed', 'completed', 'compensated', 'stuck')),"
     " items jsonb NOT NULL,"
     " total bigint NOT NULL,"
     " currency text NOT NULL,"
     " saga_id bigint,"
     " payment_id text,"
     " shipment_id text,"
     " created_at timestamptz NOT NULL DEFAULT now(),"
     " updated_at timestamptz NOT NULL DEFAULT now(),"
     " UNIQUE (user_id, idempotency_key));"
     "CREATE INDEX orders_user ON backendd.orders (user_id, id);"
     "CREATE INDEX orders_created ON backendd.orders (created_at);"
     /* What an order's reserve_stock step took, once per product: run again,
      * it takes nothing more; released once by its compensation. */
     "CREATE TABLE backendd.reservations ("
     " order_id bigint NOT NULL REFERENCES backendd.orders (id) ON DELETE CASCADE,"
     " product_id bigint NOT NULL,"
     " quantity integer NOT NULL CHECK (quantity > 0),"
     " released boolean NOT NULL DEFAULT false,"
     " PRIMARY KEY (order_id, product_id));"},
};

int app_migrate(struct app *app, bk_error_t *err)
{
    unsigned applied = 0;
    int rc = bk_db_migrate_list(app->db, "backendd", MIGRATIONS, sizeof MIGRATIONS / sizeof *MIGRATIONS,
                                &applied, err);
    if (rc == BK_OK && applied > 0)
        bk_log(app->log, BK_LOG_INFO, json_pack("{s:i}", "applied", (int)applied), "migrated");
    return rc;
}
