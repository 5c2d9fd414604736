-- Prototype of type-safe SQL (README "Type-safe SQL: the decision"): getOrder() of services/orders/store.ts.
-- migrations: orders

-- name: getOrder :one
-- params: id
select * from orders where id = $1;
