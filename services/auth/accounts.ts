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
 * Creates missing users and clients; existing rows are left alone, so seeding is idempotent and cheap after the first
 * start (hashing only happens for rows that do not exist yet).
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
  const haveClients = new Set((await queries.listClientIds(db)).map((r) => r.id));
  for (const c of clients.filter((c) => !haveClients.has(c.id))) {
    await queries.insertClient(db, {
      id: c.id,
      secretHash: await hashPassword(c.secret),
      scopes: c.scopes.join(" "),
      audiences: c.audiences.join(" "),
    });
  }
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
