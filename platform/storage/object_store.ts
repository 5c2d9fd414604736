/**
 * Metadata of a stored object.
 *
 * @example Serve an object with its metadata
 * ```ts
 * import type { ObjectInfo } from "./object_store.ts";
 * const info: ObjectInfo = { key: "receipts/o-1.json", size: 2, contentType: "application/json" };
 * const headers = { "content-type": info.contentType, "content-length": String(info.size) };
 * ```
 */
export interface ObjectInfo {
  key: string;
  size: number;
  contentType: string;
}

/**
 * An object store (local disk now; S3 later). Keys are `/`-separated relative paths of safe characters.
 * `put` is atomic: readers see the old object or the new one, never a partial write.
 *
 * @example Code that works on any store
 * ```ts
 * import type { ObjectStore } from "./object_store.ts";
 * async function saveReceipt(store: ObjectStore, orderId: string, receipt: unknown): Promise<void> {
 *   const body = new TextEncoder().encode(JSON.stringify(receipt));
 *   await store.put(`receipts/${orderId}.json`, body, { contentType: "application/json" });
 * }
 * ```
 */
export interface ObjectStore {
  put(key: string, body: Uint8Array, options?: { contentType?: string }): Promise<void>;
  /** The object, or `undefined` when there is none. */
  get(key: string): Promise<{ body: Uint8Array<ArrayBuffer>; info: ObjectInfo } | undefined>;
  delete(key: string): Promise<void>;
  /** Keys under `prefix`, sorted. */
  list(prefix?: string): Promise<string[]>;
}

const KEY = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/**
 * Throws a `TypeError` unless `key` is a safe relative object key (no `..`, no leading `/`, bounded length).
 *
 * @example
 * ```ts
 * import { assertValidKey } from "./object_store.ts";
 * assertValidKey("receipts/o-1.json");
 * ```
 */
export function assertValidKey(key: string): void {
  if (key.length > 512 || !KEY.test(key) || key.split("/").some((p) => p === "." || p === "..")) {
    throw new TypeError(`Cannot use ${JSON.stringify(key.slice(0, 80))} as an object key: it must be a relative path`);
  }
}
