create table payments (
  order_id text primary key,
  status text not null check (status in ('SUCCEEDED', 'FAILED')),
  amount_cents bigint not null,
  provider_ref text not null default '',
  reason text not null default '',
  created_at timestamptz not null default now()
);

-- Transactional outbox and idempotent-consumer inbox (platform/outbox).
create table outbox (
  seq bigserial primary key,
  id uuid not null unique,
  topic text not null,
  key text,
  headers jsonb not null default '{}',
  payload text not null,
  created_at timestamptz not null default now(),
  published_at timestamptz
);
create index outbox_unpublished on outbox (seq) where published_at is null;

create table inbox (
  consumer text not null,
  message_id text not null,
  handled_at timestamptz not null default now(),
  primary key (consumer, message_id)
);
