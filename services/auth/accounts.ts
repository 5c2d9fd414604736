import type { Database } from "@trellis/platform/db";
import { hashPassword, verifyPassword } from "@trellis/platform/auth";

/** A demo user: username, password and scopes. */
export interface DemoUser {
  username: string;
  password: string;
  scopes: string[];
}

/** A service client allowed to ask for tokens for `audiences`. */
export interface ServiceClientSeed {
  id: string;
  secret: string;
  scopes: string[];
  audiences: string[];
}

/** The demo users the README walkthrough logs in with. */
export const DEMO_USERS: DemoUser[] = [
  { username: "alice", password: "wonderland", scopes: ["orders:read", "orders:write", "products:read"] },
  { username: "bob", password: "builder", scopes: ["products:read"] },
  { username: "carol", password: "chocolate", scopes: ["orders:read", "orders:write", "products:read"] },
];

/**
 * Creates missing users and clients; existing rows are left alone, so seeding is idempotent and cheap after the first
 * start (hashing only happens for rows that do not exist yet).
 */
export async function seedAccounts(db: Database, users: DemoUser[], clients: ServiceClientSeed[]): Promise<void> {
  const haveUsers = new Set(
    (await db.query<{ username: string }>("select username from users")).map((r) => r.username),
  );
  for (const u of users.filter((u) => !haveUsers.has(u.username))) {
    await db.query(
      "insert into users (id, username, password_hash, scopes) values ($1, $2, $3, $4) on conflict do nothing",
      [`user-${u.username}`, u.username, await hashPassword(u.password), u.scopes.join(" ")],
    );
  }
  const haveClients = new Set((await db.query<{ id: string }>("select id from clients")).map((r) => r.id));
  for (const c of clients.filter((c) => !haveClients.has(c.id))) {
    await db.query(
      "insert into clients (id, secret_hash, scopes, audiences) values ($1, $2, $3, $4) on conflict do nothing",
      [c.id, await hashPassword(c.secret), c.scopes.join(" "), c.audiences.join(" ")],
    );
  }
}

/** The user's id and scopes when the password matches, else `undefined`. */
export async function checkUser(
  db: Database,
  username: string,
  password: string,
): Promise<{ id: string; scopes: string[] } | undefined> {
  const [u] = await db.query<{ id: string; password_hash: string; scopes: string }>(
    "select id, password_hash, scopes from users where username = $1",
    [username],
  );
  if (!u || !(await verifyPassword(password, u.password_hash))) return undefined;
  return { id: u.id, scopes: u.scopes.split(" ").filter(Boolean) };
}

/** The client's scopes and audiences when the secret matches, else `undefined`. */
export async function checkClient(
  db: Database,
  id: string,
  secret: string,
): Promise<{ scopes: string[]; audiences: string[] } | undefined> {
  const [c] = await db.query<{ secret_hash: string; scopes: string; audiences: string }>(
    "select secret_hash, scopes, audiences from clients where id = $1",
    [id],
  );
  if (!c || !(await verifyPassword(secret, c.secret_hash))) return undefined;
  return { scopes: c.scopes.split(" ").filter(Boolean), audiences: c.audiences.split(" ").filter(Boolean) };
}
