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
