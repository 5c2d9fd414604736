import assert from "node:assert/strict";
import { UnavailableError } from "@trellis/platform/grpc";
import { freePorts } from "../../tests/support/ports.ts";
import { loadConfig } from "./config.ts";
import { tokensFor } from "./wiring.ts";

Deno.test("tokensFor() reports an unreachable auth service as UnavailableError, which the edge answers with 503", async () => {
  const [dead] = freePorts(1);
  const config = loadConfig({ AUTH_URL: `http://127.0.0.1:${dead}` });
  await assert.rejects(tokensFor(config, "gateway", "orders")(), UnavailableError);
});
