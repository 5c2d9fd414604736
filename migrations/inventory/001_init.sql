create table products (
  sku text primary key,
  name text not null,
  price_cents bigint not null check (price_cents >= 0),
  stock integer not null check (stock >= 0),
  version integer not null default 1
);

create table reservations (
  order_id text primary key,
  status text not null check (status in ('RESERVED', 'RELEASED', 'REJECTED')),
  items jsonb not null,
  reason text not null default '',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);


-- Demo catalogue.
insert into products (sku, name, price_cents, stock) values
  ('tea-sencha', 'Sencha green tea, 100 g', 450, 10000),
  ('mug-blue', 'Blue stoneware mug', 1200, 5000),
  ('kettle', 'Gooseneck kettle', 3900, 2000),
  ('teapot-antique', 'Antique cast-iron teapot', 25000, 1);
