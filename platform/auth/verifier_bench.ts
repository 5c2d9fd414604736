import { createIssuer } from "./issuer.ts";
import { staticKeySet } from "./jwks.ts";
import { generateSigningKey } from "./keys.ts";
import { hashPassword } from "./password.ts";
import { createVerifier } from "./verifier.ts";

const key = await generateSigningKey();
const issuer = createIssuer({ issuer: "https://auth.bench", key });
const token = await issuer.issue({ sub: "u-1", aud: "orders", scopes: ["orders:read"], ttlSeconds: 3600 });
const options = { issuer: "https://auth.bench", audience: "orders", keys: staticKeySet([key]) };
const uncached = createVerifier({ ...options, cacheMaxEntries: 0 });
const cached = createVerifier(options);
await cached.verify(token);

Deno.bench("verify, cold (signature checked)", { group: "verify", baseline: true }, async () => {
  await uncached.verify(token);
});

Deno.bench("verify, cached", { group: "verify" }, async () => {
  await cached.verify(token);
});

Deno.bench("issue", async () => {
  await issuer.issue({ sub: "u-1", aud: "orders", scopes: ["orders:read"], ttlSeconds: 3600 });
});

Deno.bench("hashPassword, 600000 iterations", { n: 20 }, async () => {
  await hashPassword("correct horse battery staple");
});
