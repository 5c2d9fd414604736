-- How many units of each product the shop holds, reserved or not. `stock` (what is still free to reserve) must equal
-- units_held less the quantities of RESERVED reservations; the inventory reconciliation checks it and repairs `stock`.
-- A restock adds to both columns. Null for a product nobody counted (it is then not checked). Products without a
-- count get one here from their stock and reservations (the catalogue is small, and the lock keeps any reservation
-- from committing between the two reads).
alter table products add column units_held integer;
lock table reservations in share mode;
update products p set units_held = p.stock + coalesce((
  select sum((i ->> 'quantity')::integer)
  from reservations r cross join lateral jsonb_array_elements(r.items) i
  where r.status = 'RESERVED' and i ->> 'sku' = p.sku
), 0)
where p.units_held is null;
