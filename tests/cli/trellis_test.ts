import assert from "node:assert/strict";
import postgres from "postgres";
import type { Database } from "@trellis/platform/db";
import { waitUntil, within } from "@trellis/platform/testing";
import { embeddedSystem } from "../support/system.ts";
import { ApiClient } from "../e2e/scenarios.ts";
import { Topics } from "../../services/shared/events.ts";
import type { Infra } from "../../services/shared/infra.ts";

const root = new URL("../../", import.meta.url).pathname;
const entry = `${root}cli/trellis.ts`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where `TRELLIS_CLI_TRANSCRIPT` names a file, the commands `trellis` ran and what they printed are appended to it. */
const transcript = Deno.env.get("TRELLIS_CLI_TRANSCRIPT");

/** Runs the CLI as a subprocess, as an operator would, with `env` over this process's environment. */
async function trellis(args: string[], env: Record<string, string>): Promise<Run> {
  const out = await within(
    new Deno.Command(Deno.execPath(), {
      // The test run has set node_modules up; "manual" reads it as it is, with no lock for concurrent runs to wait on.
      args: ["run", "-A", "--node-modules-dir=manual", entry, ...args],
      cwd: root,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output(),
    60_000,
    `trellis ${args.join(" ")} to exit`,
  );
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Appends one run to the transcript (when asked for), as an operator's terminal would show it. */
async function record(args: string[], run: Run): Promise<void> {
  if (!transcript) return;
  const shown = args.map((a) => /^[\w@.:=/-]+$/.test(a) ? a : `'${a}'`).join(" ");
  await Deno.writeTextFile(
    transcript,
    `$ trellis ${shown}\n${run.stdout}${run.stderr}[exit ${run.code}]\n\n`,
    { append: true },
  );
}

function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  return run;
}

/** The one line a refused command prints, checked to be one line. */
function oneLineError(run: Run): string {
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], /^trellis: /);
  return lines[0];
}

async function tmux(socket: string, ...args: string[]): Promise<string> {
  const out = await within(
    new Deno.Command("tmux", { args: ["-L", socket, ...args], stdout: "piped", stderr: "piped" }).output(),
    10_000,
    `tmux ${args[0]}`,
  );
  if (!out.success) throw new Error(`tmux ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("the trellis CLI operates a running system: health, migrations, keys, orders, config, dead letters, reconciliation and top", async (t) => {
  const dbs: Partial<Record<string, Database>> = {};
  let events: Infra["events"] | undefined;
  // No deadline sweep after the one at start and no scheduled reconciliation, so an order the test leaves PENDING past
  // its deadline stays stuck and drift stays until the CLI repairs it.
  await using sys = await embeddedSystem({
    env: { ORDER_SWEEP_MS: "3600000", RECONCILE_INTERVAL_S: "0" },
    wrap: (infra) => {
      events = () => infra.events();
      return {
        ...infra,
        async database(service, options) {
          const db = await infra.database(service, options);
          dbs[service] = db;
          return db;
        },
      };
    },
  });
  const ordersDb = dbs.orders;
  const p = sys.config.ports;
  const prefix = `tcli${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  const databaseUrl = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const env: Record<string, string> = {
    GATEWAY_PORT: String(p.gateway),
    AUTH_PORT: String(p.auth),
    ORDERS_PORT: String(p.orders),
    INVENTORY_PORT: String(p.inventory),
    PAYMENTS_PORT: String(p.payments),
    NOTIFICATIONS_PORT: String(p.notifications),
    DATABASE_URL: databaseUrl,
    DATABASE_PREFIX: prefix,
    NO_COLOR: "1",
  };

  await t.step("health lists all six services as ready and exits 0; --json says the same", async () => {
    const [human, jsonRun] = await Promise.all([trellis(["health"], env), trellis(["health", "--json"], env)]);
    ok(human);
    const lines = human.stdout.trim().split("\n");
    assert.match(lines[0], /^SERVICE\s+STATUS\s+MS\s+URL\s+CHECKS$/);
    for (const s of ["gateway", "auth", "orders", "inventory", "payments", "notifications"]) {
      assert.ok(lines.some((l) => new RegExp(`^${s}\\s+ready\\s`).test(l)), human.stdout);
    }
    const json = JSON.parse(ok(jsonRun).stdout);
    assert.equal(json.ready, true);
    assert.equal(json.services.length, 6);
  });

  await t.step(
    "orders show gathers an order placed through the gateway with its reservation, payment, receipt and saga history",
    async () => {
      const api = await ApiClient.login(sys.endpoints);
      const { id } = await api.placeOrder([{ sku: "tea-sencha", quantity: 2 }]);
      assert.equal((await api.settle(id)).status, "CONFIRMED");
      assert.equal((await api.receipt(id)).status, 200);
      const [jsonRun, humanRun] = await Promise.all([
        trellis(["orders", "show", id, "--json"], env),
        trellis(["orders", "show", id], env),
      ]);
      const json = JSON.parse(ok(jsonRun).stdout);
      assert.equal(json.order.id, id);
      assert.equal(json.order.status, "CONFIRMED");
      assert.equal(json.order.paymentToken, undefined);
      assert.equal(json.reservation.status, "RESERVED");
      assert.equal(json.payment.status, "SUCCEEDED");
      assert.equal(json.payment.amountCents, 900);
      assert.equal(json.receipt.orderId, id);
      const types = json.history.map((h: { service: string; type: string }) => `${h.service} ${h.type}`);
      for (
        const step of [
          "orders inventory.reserve.v1",
          "inventory inventory.reserved.v1",
          "orders payments.charge.v1",
          "payments payments.succeeded.v1",
          "orders order.confirmed.v1",
        ]
      ) assert.ok(types.includes(step), `${step} missing from ${types.join(", ")}`);
      const human = ok(humanRun).stdout;
      assert.match(human, new RegExp(`^Order ${id}\\n`));
      assert.match(human, /status:\s+CONFIRMED/);
      assert.match(human, /Saga history\n\s+AT\s+SERVICE\s+TYPE\s+TOPIC\s+PUBLISHED\n/);
    },
  );

  await t.step(
    "orders show refuses an id that is not a UUID (exit 2) and reports an unknown order (exit 1)",
    async () => {
      const [bad, unknown] = await Promise.all([
        trellis(["orders", "show", "../etc"], env),
        trellis(["orders", "show", crypto.randomUUID()], env),
      ]);
      assert.equal(bad.code, 2);
      assert.match(oneLineError(bad), /is not an order id/);
      assert.equal(unknown.code, 1);
      assert.match(oneLineError(unknown), /no order/);
    },
  );

  await t.step(
    "keys list shows the signing key; keys rotate publishes a new pending key that keys list then shows",
    async () => {
      const [beforeRun, humanRun] = await Promise.all([
        trellis(["keys", "list", "--json"], env),
        trellis(["keys", "list"], env),
      ]);
      const before = JSON.parse(ok(beforeRun).stdout).keys;
      assert.ok(before.some((k: { status: string }) => k.status === "signing"));
      assert.match(ok(humanRun).stdout, /^KID\s+STATUS\s+CREATED/);
      const rotated = ok(await trellis(["keys", "rotate"], env)).stdout;
      const kid = /^new key (\S+) published/.exec(rotated)?.[1];
      assert.ok(kid, rotated);
      const after = JSON.parse(ok(await trellis(["keys", "list", "--json"], env)).stdout).keys;
      assert.equal(after.find((k: { kid: string }) => k.kid === kid)?.status, "pending");
      assert.equal(after.length, before.length + 1);
    },
  );

  await t.step(
    "migrate status shows every migration pending on fresh Postgres databases, migrate up applies them, status then shows them applied",
    async () => {
      try {
        const before = JSON.parse(ok(await trellis(["migrate", "status", "--json"], env)).stdout).migrations;
        assert.ok(before.length >= 10);
        assert.deepEqual([...new Set(before.map((m: { state: string }) => m.state))], ["pending"]);
        const one = ok(await trellis(["migrate", "up", "--service", "auth"], env)).stdout;
        assert.match(one, /^SERVICE\s+TABLE\s+VERSION\s+NAME\n/);
        assert.match(one, /\n3 applied\n$/);
        const up = JSON.parse(ok(await trellis(["migrate", "up", "--json"], env)).stdout).applied;
        assert.equal(up.length, before.length - 3);
        assert.ok(up.some((m: { service: string; table: string }) => m.table === "outbox_schema_migrations"));
        const [status, again] = await Promise.all([
          trellis(["migrate", "status"], env),
          trellis(["migrate", "up"], env),
        ]);
        assert.match(ok(status).stdout, new RegExp(`\\n${before.length} applied, 0 pending\\n$`));
        assert.match(ok(again).stdout, /nothing to apply/);
      } finally {
        const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
        try {
          for (const s of ["auth", "inventory", "payments", "orders"]) {
            await sql.unsafe(`drop database if exists "${prefix}_${s}" with (force)`);
          }
        } finally {
          await sql.end();
        }
      }
    },
  );

  await t.step(
    "config check prints one line per bad value and exits 1, from the environment or --env-file",
    async () => {
      const bad = {
        ...env,
        ORDERS_PORT: "99999",
        PAYMENTS_FAILURE_RATE: "2",
        KAFKA_CLIENT: "nope",
        GATEWAY_CORS_ORIGINS: "ftp://shop.example",
      };
      const file = await Deno.makeTempFile({ suffix: ".env" });
      await Deno.writeTextFile(file, "# bad on purpose\nORDER_DEADLINE_MS=0\nAUTH_KEY_ENCRYPTION_KEY='short'\n");
      const [run, fromFile, good] = await Promise.all([
        trellis(["config", "check"], bad),
        trellis(["config", "check", "--env-file", file, "--json"], env),
        trellis(["config", "check"], env),
      ]).finally(() => Deno.remove(file));
      assert.equal(run.code, 1, run.stderr);
      const lines = run.stdout.trim().split("\n");
      assert.equal(lines.length, 4, run.stdout);
      for (const name of ["ORDERS_PORT", "PAYMENTS_FAILURE_RATE", "KAFKA_CLIENT", "GATEWAY_CORS_ORIGINS"]) {
        assert.equal(lines.filter((l) => l.includes(name)).length, 1, `${name} in:\n${run.stdout}`);
      }
      assert.equal(fromFile.code, 1);
      const { ok: valid, problems } = JSON.parse(fromFile.stdout);
      assert.equal(valid, false);
      assert.equal(problems.length, 2, problems.join("\n"));
      assert.ok(!problems.join("").includes("short"), "a secret is never echoed");
      assert.match(ok(good).stdout, /^configuration ok\n$/);
    },
  );

  await t.step(
    "bad input is one line on stderr and exit 2: unknown command, unknown subcommand, unknown flag, missing argument",
    async () => {
      const cases = [
        [["frobnicate"], /unknown command "frobnicate"/],
        [["keys", "delete"], /unknown command "keys delete"/],
        [["health", "--verbose"], /Unknown option '--verbose'/],
        [["dlq", "show"], /missing argument <id>/],
        [["dlq", "redrive", "--rate", "fast", "inventory.commands.dlq@1"], /--rate must be a number/],
        [["dlq", "show", "dl-1"], /is not a dead-letter id/],
        [["dlq", "purge", "--all"], /add --yes/],
        [["reconcile", "--service", "gateway"], /--service must be one of orders, inventory, payments/],
        [["health", "--url", "orders"], /--url must be name=http/],
      ] as const;
      const [helpRun, reconcileHelp, ...runs] = await Promise.all([
        trellis(["dlq", "redrive", "--help"], env),
        trellis(["reconcile", "--help"], env),
        ...cases.map(([args]) => trellis([...args], env)),
      ]);
      runs.forEach((run, i) => {
        assert.equal(run.code, 2, `${cases[i][0].join(" ")}: ${run.stderr}`);
        assert.match(oneLineError(run), cases[i][1]);
        assert.equal(run.stdout, "");
      });
      const help = ok(helpRun).stdout;
      assert.match(help, /^Usage: trellis dlq redrive \[id\.\.\.\] \[flags\]/);
      assert.match(help, /--rate <n>/);
      assert.match(ok(reconcileHelp).stdout, /\n {2}3 {2}dry run: drift was found/);
    },
  );

  await t.step(
    "reconcile finds drift injected with SQL in orders and inventory (exit 3), --repair fixes it (exit 0), the next run is clean",
    async () => {
      const api = await ApiClient.login(sys.endpoints);
      const { id } = await api.placeOrder([{ sku: "mug-blue", quantity: 1 }]);
      assert.equal((await api.settle(id)).status, "CONFIRMED");
      assert.equal((await api.receipt(id)).status, 200);
      await dbs.orders!.query(
        `update orders set status = 'PENDING', step = 'CHARGING', deadline_at = now() - interval '1 hour' where id = $1`,
        [id],
      );
      await dbs.inventory!.query("update products set stock = stock + 5 where sku = 'kettle'");
      const run = async (args: string[]) => {
        const r = await trellis(args, env);
        await record(args, r);
        return r;
      };

      const [dry, dryJson] = await Promise.all([run(["reconcile"]), trellis(["reconcile", "--json"], env)]);
      assert.equal(dry.code, 3, `${dry.stdout}${dry.stderr}`);
      const lines = dry.stdout.split("\n");
      assert.match(lines[0], /^SERVICE\s+CHECK\s+FOUND\s+REPAIRED\s+SKIPPED\s+FAILED$/);
      assert.ok(lines.some((l) => /^orders\s+pending-past-deadline\s+1\s+0\s+0\s+0$/.test(l)), dry.stdout);
      assert.ok(lines.some((l) => /^inventory\s+stock-disagrees-with-reservations\s+1\s+0\s+0\s+0$/.test(l)));
      assert.ok(lines.some((l) => /^payments\s+charge-for-ended-order\s+0\s+0\s+0\s+0$/.test(l)), dry.stdout);
      assert.ok(lines.some((l) => new RegExp(`^orders\\s+pending-past-deadline\\s+${id}\\s+found\\s+\\S`).test(l)));
      assert.ok(
        lines.some((l) => /^inventory\s+stock-disagrees-with-reservations\s+kettle\s+found\s+stock is/.test(l)),
      );
      assert.match(dry.stdout, /\ndry run of 3 services: found 2, repaired 0, skipped 0, failed 0; nothing changed/);
      assert.equal(dryJson.code, 3);
      const json = JSON.parse(dryJson.stdout);
      assert.equal(json.clean, false);
      assert.deepEqual(json.reports.map((r: { service: string; mode: string }) => [r.service, r.mode]), [
        ["orders", "dry-run"],
        ["inventory", "dry-run"],
        ["payments", "dry-run"],
      ]);
      assert.equal(json.reports.reduce((n: number, r: { totals: { found: number } }) => n + r.totals.found, 0), 2);
      const [status] = await dbs.orders!.query<{ status: string }>("select status from orders where id = $1", [id]);
      assert.equal(status.status, "PENDING", "a dry run changes nothing");

      const repaired = await run(["reconcile", "--repair"]);
      assert.equal(repaired.code, 0, `${repaired.stdout}${repaired.stderr}`);
      assert.match(repaired.stdout, new RegExp(`\\norders\\s+pending-past-deadline\\s+${id}\\s+repaired\\s`));
      assert.match(repaired.stdout, /\ninventory\s+stock-disagrees-with-reservations\s+kettle\s+repaired\s/);
      assert.match(repaired.stdout, /\nrepair of 3 services: found 2, repaired 2, skipped 0, failed 0\n$/);
      // The cancelled order's compensations (release, refund) travel as messages; the next run waits for them to land.
      await waitUntil(
        async () => {
          const [r] = await dbs.inventory!.query<{ status: string }>(
            "select status from reservations where order_id = $1",
            [id],
          );
          return r?.status === "RELEASED";
        },
        15_000,
        "the reservation of the cancelled order released",
      );

      const [clean, last] = await Promise.all([
        run(["reconcile"]),
        trellis(["reconcile", "--last", "--service", "inventory", "--json"], env),
      ]);
      assert.equal(clean.code, 0, `${clean.stdout}${clean.stderr}`);
      assert.doesNotMatch(clean.stdout, /\nDrift\n/);
      assert.match(clean.stdout, /\ndry run of 3 services: found 0, repaired 0, skipped 0, failed 0\n$/);
      assert.equal(last.code, 0, last.stderr);
      assert.deepEqual(JSON.parse(last.stdout).reports.map((r: { service: string }) => r.service), ["inventory"]);
    },
  );

  await t.step(
    "a poison command in inventory's dead-letter queue is listed, shown, redriven (back with redrives 1) and purged",
    async () => {
      const poisonId = `poison-${crypto.randomUUID()}`;
      const payload = '{"type":"inventory.reserve.v1"}';
      // Not a valid command: its schema error is not retryable, so the router dead-letters it at once.
      await (await events!()).publish(Topics.inventoryCommands, {
        id: poisonId,
        key: "o-poison",
        payload: new TextEncoder().encode(payload),
      });
      type Letter = { id: string; service: string; messageId: string; redrives: number; sourceTopic: string };
      const mine = async (): Promise<Letter[]> =>
        (JSON.parse(ok(await trellis(["dlq", "list", "--json"], env)).stdout).letters as Letter[])
          .filter((l) => l.messageId === poisonId);
      let letters: Letter[] = [];
      await waitUntil(async () => (letters = await mine()).length === 1, 20_000, "the poison command in the DLQ", 100);
      const [letter] = letters;
      assert.equal(letter.service, "inventory");
      assert.equal(letter.sourceTopic, Topics.inventoryCommands);

      const [listRun, shownRun, notFound] = await Promise.all([
        trellis(["dlq", "list"], env),
        trellis(["dlq", "show", letter.id], env),
        trellis(["dlq", "show", `${Topics.inventoryCommands}.dlq@999999`], env),
      ]);
      const list = ok(listRun).stdout.split("\n");
      assert.match(list[0], /^SERVICE\s+ID\s+SOURCE\s+ERROR\s+ATTEMPTS\s+FAILED AT\s+REDRIVES$/);
      assert.match(list[1], new RegExp(`^inventory\\s+${letter.id}\\s+inventory\\.commands\\s+\\S.*\\s0$`));
      assert.equal(list.filter(Boolean).length, 2, listRun.stdout);
      const shown = ok(shownRun).stdout;
      assert.match(shown, /^service:\s+inventory\n/);
      assert.match(shown, new RegExp(`\\nmessageId:\\s+${poisonId}\\n`));
      assert.match(shown, /\nerror:\s+\S/);
      assert.match(shown, /\npayload \(utf-8\):\n {2}\{\n {4}"type": "inventory\.reserve\.v1"\n {2}\}\n$/);
      assert.equal(notFound.code, 1);
      assert.match(oneLineError(notFound), /no dead letter/);

      // Back to the consumer, which fails on it again: dead-lettered a second time (a new id), one redrive counted.
      assert.match(
        ok(await trellis(["dlq", "redrive", letter.id, "--rate", "50"], env)).stdout,
        /^redriven 1 \(inventory 1\)\n$/,
      );
      await waitUntil(
        async () => (letters = await mine()).some((l) => l.redrives === 1),
        20_000,
        "the redriven command back in the DLQ",
        100,
      );
      assert.deepEqual(letters.map((l) => l.redrives), [1]);
      assert.match(ok(await trellis(["dlq", "purge", letters[0].id], env)).stdout, /^purged 1 \(inventory 1\)\n$/);
      assert.match(ok(await trellis(["dlq", "list"], env)).stdout, /^no dead letters\n$/);
    },
  );

  await t.step("trellis top under tmux shows all six services, drills into one, and q restores the shell", async () => {
    const socket = `trellis-top-${crypto.randomUUID().slice(0, 8)}`;
    const envFile = await Deno.makeTempFile({ suffix: ".env" });
    await Deno.writeTextFile(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}`).join("\n"));
    // -J joins lines the pane wrapped, so a long command line reads as typed.
    const screen = () => tmux(socket, "capture-pane", "-p", "-J", "-t", "top");
    const stuck = crypto.randomUUID();
    await ordersDb!.query(
      `insert into orders (id, customer_id, items, total_cents, payment_token, status, step, deadline_at)
       values ($1, 'user-stuck', '[]'::jsonb, 100, 'tok_visa', 'PENDING', 'CHARGING', now() - interval '5 minutes')`,
      [stuck],
    );
    try {
      await tmux(socket, "new-session", "-d", "-s", "top", "-x", "120", "-y", "40", "bash --norc --noprofile");
      await tmux(
        socket,
        "send-keys",
        "-t",
        "top",
        `cd ${root} && ${Deno.execPath()} run -A --node-modules-dir=manual cli/trellis.ts top --interval 0.5 --env-file ${envFile}; echo "top exited $?"`,
        "Enter",
      );
      const services = ["gateway", "auth", "orders", "inventory", "payments", "notifications"];
      await waitUntil(
        async () => {
          const s = await screen();
          return s.includes("trellis top") && services.every((n) => new RegExp(`\\d\\s+${n}\\s+ready`).test(s));
        },
        30_000,
        "top to show all six services ready",
        200,
      );
      const overview = await screen();
      assert.match(overview, /REQ\/S\s+ERR\/S\s+LAG\s+DEAD\s+OUTBOX\s+STUCK/);
      assert.match(overview, /3\s+orders\s+ready(\s+\S+){5}\s+1\s*$/m, "one stuck saga on the orders row");
      await tmux(socket, "send-keys", "-t", "top", "3");
      await tmux(socket, "send-keys", "-t", "top", "Enter");
      await waitUntil(async () => (await screen()).includes("Stuck sagas"), 10_000, "the orders details", 100);
      const details = await screen();
      assert.match(details, /orders — http:\/\/127\.0\.0\.1:\d+ — ready/);
      assert.match(details, /database\s+ok/);
      assert.match(details, /outbox backlog \d+/);
      assert.match(details, new RegExp(`${stuck}\\s+CHARGING\\s+\\d+`), "the stuck order with its step");
      await tmux(socket, "send-keys", "-t", "top", "Escape");
      await waitUntil(async () => !(await screen()).includes("Stuck sagas"), 10_000, "the overview again", 100);
      await tmux(socket, "send-keys", "-t", "top", "j");
      await tmux(socket, "send-keys", "-t", "top", "q");
      await waitUntil(async () => (await screen()).includes("top exited 0"), 10_000, "top to exit", 100);
      const after = await screen();
      assert.ok(!after.includes("REQ/S"), `the alternate screen is left:\n${after}`);
      assert.match(after, /trellis\.ts top --interval/);
    } finally {
      await tmux(socket, "kill-server").catch(() => {});
      await Deno.remove(envFile);
    }
  });

  await t.step("health exits 1 and names the service once one is stopped", async () => {
    await sys.system.services.notifications.stop();
    const [run, jsonRun] = await Promise.all([trellis(["health"], env), trellis(["health", "--json"], env)]);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout, /\nnotifications\s+NOT READY\s/);
    assert.match(run.stdout, /\norders\s+ready\s/);
    assert.equal(jsonRun.code, 1);
    assert.equal(JSON.parse(jsonRun.stdout).ready, false);
  });
});
