import type { Database } from "@trellis/platform/db";
import { hashPassword, verifyPassword } from "@trellis/platform/auth";
import * as queries from "./queries.ts";

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
 * Creates missing users and clients, and brings existing clients up to the configured ones, so a database seeded by
 * an older version gets the rights clients have since gained (or lost). A client's stored secret hash is kept while
 * the configured secret still verifies against it, and replaced (freshly salted) when the secret changed; scopes and
 * audiences are written only when they differ. Existing users are left alone. Hashing is slow by design (PBKDF2):
 * only a new row or a changed secret is hashed, and the existing clients' secrets are verified side by side.
 */
export async function seedAccounts(db: Database, users: DemoUser[], clients: ServiceClientSeed[]): Promise<void> {
  const haveUsers = new Set((await queries.listUsernames(db)).map((r) => r.username));
  for (const u of users.filter((u) => !haveUsers.has(u.username))) {
    await queries.insertUser(db, {
      id: `user-${u.username}`,
      username: u.username,
      passwordHash: await hashPassword(u.password),
      scopes: u.scopes.join(" "),
    });
  }
  const stored = new Map((await queries.listClients(db)).map((r) => [r.id, r]));
  await Promise.all(clients.map(async (c) => {
    const scopes = c.scopes.join(" ");
    const audiences = c.audiences.join(" ");
    const row = stored.get(c.id);
    if (!row) {
      await queries.insertClient(db, { id: c.id, secretHash: await hashPassword(c.secret), scopes, audiences });
      return;
    }
    const secretHash = (await verifyPassword(c.secret, row.secret_hash))
      ? row.secret_hash
      : await hashPassword(c.secret);
    if (secretHash === row.secret_hash && scopes === row.scopes && audiences === row.audiences) return;
    await queries.updateClient(db, { id: c.id, secretHash, scopes, audiences });
  }));
}

/** The user's id and scopes when the password matches, else `undefined`. */
export async function checkUser(
  db: Database,
  username: string,
  password: string,
): Promise<{ id: string; scopes: string[] } | undefined> {
  const u = await queries.getUser(db, { username });
  if (!u || !(await verifyPassword(password, u.password_hash))) return undefined;
  return { id: u.id, scopes: u.scopes.split(" ").filter(Boolean) };
}

/** The client's scopes and audiences when the secret matches, else `undefined`. */
export async function checkClient(
  db: Database,
  id: string,
  secret: string,
): Promise<{ scopes: string[]; audiences: string[] } | undefined> {
  const c = await queries.getClient(db, { id });
  if (!c || !(await verifyPassword(secret, c.secret_hash))) return undefined;
  return { scopes: c.scopes.split(" ").filter(Boolean), audiences: c.audiences.split(" ").filter(Boolean) };
}
