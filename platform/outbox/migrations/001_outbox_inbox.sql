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
