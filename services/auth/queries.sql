-- The auth service's SQL (services/auth/accounts.ts, keystore.ts), checked against migrations/auth by
-- `deno task sqlgen`, which generates queries.ts beside this file. Times the keystore compares with `Date.now()` are
-- read as whole epoch milliseconds, so a time read back is exactly the stored one.
-- migrations: auth

-- name: listUsernames :many
select username from users;

-- name: insertUser :exec
-- params: id, username, passwordHash, scopes
insert into users (id, username, password_hash, scopes) values ($1, $2, $3, $4) on conflict do nothing;

-- name: listClients :many
select id, secret_hash, scopes, audiences from clients;

-- name: insertClient :exec
-- params: id, secretHash, scopes, audiences
insert into clients (id, secret_hash, scopes, audiences) values ($1, $2, $3, $4) on conflict do nothing;

-- name: updateClient :exec
-- params: id, secretHash, scopes, audiences
update clients set secret_hash = $2, scopes = $3, audiences = $4 where id = $1;

-- name: getUser :one
-- params: username
select id, password_hash, scopes from users where username = $1;

-- name: getClient :one
-- params: id
select secret_hash, scopes, audiences from clients where id = $1;

-- Serializes key-ring writers across instances (loads that create or retire keys, and rotations).
-- name: lockKeyRing :exec
select pg_advisory_xact_lock(7347001);

-- name: retireExpiredKeys :exec
update signing_keys set retired_at = now(), private_jwk = null, private_enc = null, private_iv = null
where retired_at is null and retires_at <= now();

-- name: liveKeys :many
-- nonnull: activates_ms
select kid, public_jwk, private_enc, private_iv, floor(extract(epoch from activates_at) * 1000)::float8 as activates_ms,
       floor(extract(epoch from retires_at) * 1000)::float8 as retires_ms
from signing_keys where retired_at is null;

-- name: insertKey :one
-- params: kid, publicJwk, privateEnc, privateIv, leadSec
-- nonnull: activates_ms
insert into signing_keys (kid, public_jwk, private_enc, private_iv, activates_at)
values ($1, $2::jsonb, $3, $4, now() + $5::float8 * interval '1 second')
returning floor(extract(epoch from activates_at) * 1000)::float8 as activates_ms;

-- Every published key without a successor yet retires `overlapSec` after the new key `kid` activates.
-- name: scheduleRetirement :many
-- params: kid, overlapSec
-- nonnull: retires_ms
update signing_keys
set retires_at = (select activates_at from signing_keys where kid = $1) + $2::float8 * interval '1 second'
where retired_at is null and retires_at is null and kid <> $1
returning kid, floor(extract(epoch from retires_at) * 1000)::float8 as retires_ms;

-- name: listAllKeys :many
-- nonnull: created_ms, activates_ms
select kid, floor(extract(epoch from created_at) * 1000)::float8 as created_ms,
       floor(extract(epoch from activates_at) * 1000)::float8 as activates_ms,
       floor(extract(epoch from retires_at) * 1000)::float8 as retires_ms,
       floor(extract(epoch from retired_at) * 1000)::float8 as retired_ms
from signing_keys order by activates_at desc, created_at desc;

-- Rows from before encryption at rest.
-- name: plaintextKeys :many
-- nonnull: private_jwk
select kid, private_jwk from signing_keys where retired_at is null and private_jwk is not null;

-- name: sealKey :exec
-- params: kid, privateEnc, privateIv
update signing_keys set private_enc = $2, private_iv = $3, private_jwk = null where kid = $1;
