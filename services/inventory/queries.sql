-- The inventory service's SQL (services/inventory/store.ts), checked against migrations/inventory by
-- `deno task sqlgen`, which generates queries.ts beside this file.
-- migrations: inventory

-- name: listAllProducts :many
select sku, name, price_cents, stock from products order by sku;

-- name: listProducts :many
-- params: skus
select sku, name, price_cents, stock from products where sku = any($1::text[]) order by sku;

-- name: getReservation :one
-- params: orderId
select order_id, status, items, reason from reservations where order_id = $1;

-- name: lockReservation :one
-- params: orderId
select order_id, status, items from reservations where order_id = $1 for update;

-- Read without locks: the writes below compare-and-set on version (optimistic locking).
-- name: readStock :many
-- params: skus
select sku, stock, version from products where sku = any($1::text[]) order by sku;

-- No row back means another writer changed the product since `version` was read.
-- name: setStockIfVersion :one
-- params: sku, stock, version
update products set stock = $2, version = version + 1 where sku = $1 and version = $3 returning version;

-- name: restock :exec
-- params: sku, quantity
update products set stock = stock + $2, version = version + 1 where sku = $1;

-- name: insertReservation :exec
-- params: orderId, status, items, reason
insert into reservations (order_id, status, items, reason) values ($1, $2, $3::jsonb, $4);

-- name: markReleased :exec
-- params: orderId
update reservations set status = 'RELEASED', updated_at = now() where order_id = $1;

-- The reconciliation checks (services/inventory/reconcile.ts) and the management route (services/inventory/admin.ts).

-- Units RESERVED per SKU, of the SKUs in skus (all when null). Every item a reservation holds has a sku and a quantity.
-- name: reservedBySku :many
-- params: skus?
-- nonnull: sku, reserved
select i ->> 'sku' as sku, sum((i ->> 'quantity')::integer) as reserved
from reservations r cross join lateral jsonb_array_elements(r.items) i
where r.status = 'RESERVED' and ($1::text[] is null or i ->> 'sku' = any($1::text[]))
group by 1;

-- A page of the RESERVED reservations last changed between lookbackMs and graceMs ago, after (afterAt, afterId)
-- when set (afterAt: updated_at as the database's text, read back as updated_at_text).
-- name: settledReservations :many
-- params: graceMs, lookbackMs, limit, afterAt?, afterId?
-- nonnull: updated_at_text
select order_id, updated_at::text as updated_at_text from reservations where status = 'RESERVED'
  and updated_at <= now() - $1::double precision * interval '1 millisecond'
  and updated_at >= now() - $2::double precision * interval '1 millisecond'
  and ($4::text is null or (updated_at, order_id) > ($4::text::timestamptz, $5::text))
order by updated_at, order_id limit $3;

-- The products whose units are counted (units_held set).
-- name: listCountedProducts :many
-- nonnull: units_held
select sku, stock, units_held from products where units_held is not null order by sku;

-- name: lockProductCount :one
-- params: sku
select stock, units_held from products where sku = $1 for update;

-- name: setStock :exec
-- params: sku, stock
update products set stock = $2, version = version + 1 where sku = $1;

-- The messages the outbox (the SDK's table, in this database) holds for a key, oldest first.
-- name: outboxHistory :many
-- params: key
-- nonnull: id
select id::text as id, topic, payload, created_at, published_at from outbox where key = $1 order by seq;
