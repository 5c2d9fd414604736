// Cross-process restart: a client must survive its server's process stopping (close() then Deno.exit) and reach the
// server again once it is back on the same port. Before close() stopped sending HTTP/2 GOAWAY, the Deno client process
// aborted in nghttp2 (`find_stream_on_goaway_func` assertion, exit 134, or SIGSEGV, exit 139) in about one stop in
// five (https://github.com/denoland/deno/issues/36788). The test process is the client, so a regression crashes the
// test run itself. Run as a script with TRELLIS_GRPC_RESTART_SERVER=<port>, this file is the server process.
import assert from "node:assert/strict";
import { PaymentsServiceService } from "../../proto/gen/trellis/payments/v1/payments.ts";
import { within } from "../testing/mod.ts";
import { createGrpcClient } from "./client.ts";
import { UnavailableError } from "./errors.ts";
import { implement, serveGrpc } from "./server.ts";

const SERVER_ENV = "TRELLIS_GRPC_RESTART_SERVER";

if (import.meta.main && Deno.env.get(SERVER_ENV) !== undefined) {
  const server = await serveGrpc({
    port: Number(Deno.env.get(SERVER_ENV)),
    authorize: (metadata) => metadata.get("authorization").length > 0,
    services: [
      implement(PaymentsServiceService, {
        getPayment: (req) =>
          Promise.resolve({ orderId: req.orderId, status: "SUCCEEDED", amountCents: 100, providerRef: "", reason: "" }),
      }),
    ],
  });
  console.log(server.port);
  await Deno.stdin.read(new Uint8Array(16)); // any input, or EOF, means stop
  await server.close();
  Deno.exit(0);
}

/** Starts the server process on `port` (0: any) and resolves once it listens. */
async function startServer(port: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!],
    env: { [SERVER_ENV]: String(port) },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  try {
    while (!out.includes("\n")) {
      const { value, done } = await within(lines.read(), 15_000, "the server process to print its port");
      if (done) throw new Error(`server process exited before listening: ${JSON.stringify(out)}`);
      out += value;
    }
  } catch (err) {
    child.kill();
    throw err;
  }
  await lines.cancel();
  return {
    port: Number(out.trim()),
    /** Asks the server to close() and exit; resolves with its exit code. */
    async stop(): Promise<number> {
      await child.stdin.close();
      // close() drains for at most 5 s and ends each connection within 1 s more, so 10 s means it hangs.
      return (await within(child.status, 10_000, "the server process to close and exit")).code;
    },
  };
}

Deno.test("a client survives its server process stopping and reaches it again after a restart on the same port", async () => {
  let server = await startServer(0);
  const { port } = server;
  using client = createGrpcClient(PaymentsServiceService, `127.0.0.1:${port}`, {
    token: () => Promise.resolve("service-token"),
    idempotent: ["getPayment"],
    // Outlasts grpc-js's reconnect backoff (about 1 s) should a call land while the server is still down.
    retry: { maxAttempts: 20, baseDelayMs: 100, maxDelayMs: 500 },
    timeoutMs: 10_000,
  });
  for (let cycle = 0; cycle < 4; cycle++) {
    for (let i = 0; i < 5; i++) {
      assert.equal((await client.getPayment({ orderId: `o-${cycle}-${i}` })).status, "SUCCEEDED");
    }
    // Idle, as the orders service usually is when inventory restarts.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await server.stop(), 0);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the crash came here, once the connection closed
    await assert.rejects(
      client.getPayment({ orderId: "while-down" }, { idempotent: false, timeoutMs: 1_000 }),
      UnavailableError,
    );
    server = await startServer(port);
  }
  assert.equal((await client.getPayment({ orderId: "after-restarts" })).status, "SUCCEEDED");
  assert.equal(await server.stop(), 0);
});
