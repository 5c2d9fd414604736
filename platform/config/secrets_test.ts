import assert from "node:assert/strict";
import { secret } from "./secrets.ts";

Deno.test("secret() reads NAME from the environment, trimmed", () => {
  assert.equal(secret("API_SECRET", { env: { API_SECRET: "  s3cret\n" } }), "s3cret");
});

Deno.test("secret() reads the file named by NAME_FILE, trimmed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/api_secret`, "from-a-file\n");
    assert.equal(secret("API_SECRET", { env: { API_SECRET_FILE: `${dir}/api_secret` } }), "from-a-file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("secret() reads the process environment when no env is given", () => {
  const name = `TRELLIS_SECRET_TEST_${crypto.randomUUID().replaceAll("-", "").slice(0, 8).toUpperCase()}`;
  Deno.env.set(name, "from-deno-env");
  try {
    assert.equal(secret(name), "from-deno-env");
  } finally {
    Deno.env.delete(name);
  }
});

Deno.test("secret() returns the fallback only when neither NAME nor NAME_FILE is set", () => {
  assert.equal(secret("API_SECRET", { env: {}, fallback: "dev-only" }), "dev-only");
  assert.equal(secret("API_SECRET", { env: { API_SECRET: "real" }, fallback: "dev-only" }), "real");
});

Deno.test("secret() throws a TypeError naming both variables when the secret is missing", () => {
  assert.throws(() => secret("API_SECRET", { env: {} }), {
    name: "TypeError",
    message: "Cannot read secret API_SECRET: set API_SECRET or API_SECRET_FILE",
  });
});

Deno.test("secret() refuses an empty value and names the variable, not the value", () => {
  assert.throws(() => secret("API_SECRET", { env: { API_SECRET: " \n" } }), {
    name: "TypeError",
    message: "Cannot read secret API_SECRET: API_SECRET is empty",
  });
  assert.throws(() => secret("API_SECRET", { env: { API_SECRET_FILE: "/s" }, readFile: () => "\n" }), {
    name: "TypeError",
    message: /API_SECRET_FILE names is empty/,
  });
});

Deno.test("secret() refuses NAME and NAME_FILE set together", () => {
  assert.throws(() => secret("API_SECRET", { env: { API_SECRET: "a", API_SECRET_FILE: "/run/secrets/a" } }), {
    name: "TypeError",
    message: /both API_SECRET and API_SECRET_FILE are set/,
  });
});

Deno.test("secret() names the variable and the path when the file cannot be read", () => {
  assert.throws(() => secret("API_SECRET", { env: { API_SECRET_FILE: "/nonexistent/trellis/secret" } }), (err) => {
    assert.ok(err instanceof TypeError);
    assert.match(err.message, /^Cannot read secret API_SECRET from API_SECRET_FILE="\/nonexistent\/trellis\/secret": /);
    assert.ok(err.cause instanceof Deno.errors.NotFound);
    return true;
  });
});

Deno.test("secret() refuses a name that is not an environment variable name", () => {
  assert.throws(() => secret("api-secret", { env: {} }), TypeError);
});
