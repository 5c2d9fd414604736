-- Users log in with a password; clients are services using client_credentials. Scopes and audiences are
-- space-separated lists.
create table users (
  id text primary key,
  username text not null unique,
  password_hash text not null,
  scopes text not null,
  created_at timestamptz not null default now()
);

create table clients (
  id text primary key,
  secret_hash text not null,
  scopes text not null,
  audiences text not null,
  created_at timestamptz not null default now()
);

-- Signing keys; the newest unretired one signs, every key not retired past the overlap window verifies.
create table signing_keys (
  kid text primary key,
  private_jwk jsonb not null,
  public_jwk jsonb not null,
  created_at timestamptz not null default now(),
  retired_at timestamptz
);
