import type { Command } from "../command.ts";
import { table } from "../table.ts";

interface KeyInfo {
  kid: string;
  status: string;
  createdAt: string;
  activatesAt: string;
  retiresAt: string | null;
  retiredAt: string | null;
}

export const keysList: Command = {
  path: ["keys", "list"],
  summary: "Lists the auth service's signing keys: which signs, which only verify, which are pending or retired.",
  async run(cli) {
    const { keys } = await cli.call("auth", "/admin/keys") as { keys: KeyInfo[] };
    if (cli.json) cli.printJson({ keys });
    else {
      cli.print(table(
        ["KID", "STATUS", "CREATED", "ACTIVATES", "RETIRES", "RETIRED"],
        keys.map((k) => [k.kid, k.status, k.createdAt, k.activatesAt, k.retiresAt, k.retiredAt]),
      ));
    }
    return 0;
  },
};

export const keysRotate: Command = {
  path: ["keys", "rotate"],
  summary: "Rotates the signing key: the new key is published now and signs after AUTH_KEY_PUBLISH_LEAD_SEC.",
  async run(cli) {
    const rotation = await cli.call("auth", "/admin/keys/rotate", { method: "POST" }) as {
      kid: string;
      activatesAt: string;
      retiring: { kid: string; retiresAt: string }[];
    };
    if (cli.json) cli.printJson(rotation);
    else {
      cli.print(`new key ${rotation.kid} published; signs from ${rotation.activatesAt}`);
      for (const r of rotation.retiring) cli.print(`key ${r.kid} retires at ${r.retiresAt}`);
    }
    return 0;
  },
};
