import { assertValidKey, type ObjectInfo, type ObjectStore } from "./object_store.ts";

/**
 * An {@linkcode ObjectStore} on local disk under `root`. Content types are kept in a `.meta` sidecar file.
 *
 * @example
 * ```ts
 * import { localStore } from "./local.ts";
 * const store = localStore(await Deno.makeTempDir());
 * await store.put("receipts/o-1.json", new TextEncoder().encode("{}"), { contentType: "application/json" });
 * ```
 */
export function localStore(root: string): ObjectStore {
  const path = (key: string) => `${root}/${key}`;
  return {
    async put(key, body, options = {}) {
      assertValidKey(key);
      const file = path(key);
      await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
      const tmp = `${file}.${crypto.randomUUID()}.tmp`;
      await Deno.writeFile(tmp, body);
      await Deno.writeTextFile(
        `${tmp}.meta`,
        JSON.stringify({ contentType: options.contentType ?? "application/octet-stream" }),
      );
      await Deno.rename(`${tmp}.meta`, `${file}.meta`);
      await Deno.rename(tmp, file);
    },
    async get(key) {
      assertValidKey(key);
      try {
        const body = await Deno.readFile(path(key));
        let contentType = "application/octet-stream";
        try {
          contentType = JSON.parse(await Deno.readTextFile(`${path(key)}.meta`)).contentType ?? contentType;
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
        const info: ObjectInfo = { key, size: body.byteLength, contentType };
        return { body, info };
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return undefined;
        throw err;
      }
    },
    async delete(key) {
      assertValidKey(key);
      for (const f of [path(key), `${path(key)}.meta`]) {
        await Deno.remove(f).catch((err) => {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        });
      }
    },
    async list(prefix = "") {
      const out: string[] = [];
      const walk = async (dir: string, rel: string) => {
        let entries: Deno.DirEntry[];
        try {
          entries = await Array.fromAsync(Deno.readDir(dir));
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) return;
          throw err;
        }
        for (const e of entries) {
          const r = rel ? `${rel}/${e.name}` : e.name;
          if (e.isDirectory) await walk(`${dir}/${e.name}`, r);
          else if (!e.name.endsWith(".meta") && !e.name.endsWith(".tmp") && r.startsWith(prefix)) out.push(r);
        }
      };
      await walk(root, "");
      return out.sort();
    },
  };
}
