-- Prototype of type-safe SQL (README "Type-safe SQL: the decision"): reserve() of services/inventory/store.ts.
-- migrations: inventory

-- name: lockStock :many
-- params: skus
select sku, stock from products where sku = any($1::text[]) order by sku for update;

-- name: takeStock :exec
-- params: sku, quantity
update products set stock = stock - $2, version = version + 1 where sku = $1;
