import { type Command, numberFlag } from "../command.ts";
import { type Cli, reason } from "../context.ts";
import { collect, type Snapshot } from "./snapshot.ts";
import { plain, render, type View } from "./screen.ts";

const ENTER_ALT = "\x1b[?1049h";
const LEAVE_ALT = "\x1b[?1049l";
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";
const HOME_CLEAR = "\x1b[H\x1b[2J";

/** A key `trellis top` acts on, decoded from raw terminal input. */
export type Key = "up" | "down" | "enter" | "back" | "quit" | { select: number };

/** Decodes one read of raw stdin into keys (arrows arrive as `ESC [ A`; a lone ESC is "back"). */
export function keysOf(bytes: Uint8Array): Key[] {
  const s = new TextDecoder().decode(bytes);
  const keys: Key[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\x1b" && s[i + 1] === "[" && (s[i + 2] === "A" || s[i + 2] === "B")) {
      keys.push(s[i + 2] === "A" ? "up" : "down");
      i += 2;
    } else if (c === "\x1b" || c === "\x7f" || c === "\b" || c === "h") keys.push("back");
    else if (c === "k") keys.push("up");
    else if (c === "j") keys.push("down");
    else if (c === "\r" || c === "\n" || c === "l") keys.push("enter");
    else if (c === "q" || c === "\x03" || c === "\x04") keys.push("quit");
    else if (c >= "1" && c <= "9") keys.push({ select: Number(c) - 1 });
  }
  return keys;
}

/** The view after `key` (`undefined` for quit). */
export function apply(view: View, key: Key, count: number): View | undefined {
  if (key === "quit") return undefined;
  if (key === "up") return { ...view, selected: (view.selected - 1 + count) % count };
  if (key === "down") return { ...view, selected: (view.selected + 1) % count };
  if (key === "enter") return { ...view, detail: true };
  if (key === "back") return { ...view, detail: false };
  return key.select < count ? { ...view, selected: key.select } : view;
}

export const top: Command = {
  path: ["top"],
  summary: "A live terminal view of every service: health, request and error rates, lag, dead letters, stuck sagas.",
  flags: {
    interval: { type: "string", value: "s", description: "seconds between refreshes (default 2)" },
    once: { type: "boolean", description: "print one frame to stdout and exit (no terminal needed)" },
  },
  details: ["Keys: ↑/↓ or j/k or 1-6 select a service, Enter details, Esc/Backspace back, q or Ctrl-C quit."],
  async run(cli, input) {
    const intervalSec = numberFlag(input, "interval", 0.2, 3600, 2);
    cli.urls(); // a bad --url or configuration is refused here, before the screen is taken over
    if (input.values.once === true) {
      const first = await collect(cli);
      const second = await new Promise<Snapshot>((r) => setTimeout(() => r(collect(cli, first)), 1000));
      if (cli.json) cli.printJson(second.services.map(({ samples: _s, ...rest }) => rest));
      else {
        const frame = render({ snapshot: second, selected: -1, detail: false, intervalSec }, 200, 200);
        cli.print((Deno.stdout.isTerminal() ? frame : frame.map(plain)).join("\n"));
      }
      return 0;
    }
    if (!Deno.stdin.isTerminal() || !Deno.stdout.isTerminal()) {
      throw new Error("top needs a terminal on stdin and stdout (use --once for a single frame)");
    }
    return await runTui(cli, intervalSec);
  },
};

async function runTui(cli: Cli, intervalSec: number): Promise<number> {
  const encoder = new TextEncoder();
  const write = (s: string) => Deno.stdout.writeSync(encoder.encode(s));
  let view: View | undefined = { selected: 0, detail: false, intervalSec };
  const draw = () => {
    if (!view) return;
    const { columns, rows } = Deno.consoleSize();
    write(HOME_CLEAR + render(view, columns, rows).join("\r\n"));
  };
  const restore = () => {
    try {
      Deno.stdin.setRaw(false);
    } catch { /* stdin already gone */ }
    write(SHOW_CURSOR + LEAVE_ALT);
  };
  let quit!: () => void;
  const quitting = new Promise<void>((r) => quit = r);
  const onSignal = () => quit();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGWINCH", draw);
  Deno.stdin.setRaw(true);
  write(ENTER_ALT + HIDE_CURSOR);
  try {
    draw();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let refreshing = false;
    const refresh = async () => {
      if (refreshing || !view) return;
      refreshing = true;
      try {
        const snapshot = await collect(cli, view.snapshot);
        if (view) view = { ...view, snapshot, error: undefined };
      } catch (err) {
        if (view) view = { ...view, error: reason(err) };
      } finally {
        refreshing = false;
      }
      draw();
      if (view) timer = setTimeout(refresh, intervalSec * 1000);
    };
    refresh();
    (async () => {
      const buf = new Uint8Array(64);
      while (view) {
        const n = await Deno.stdin.read(buf);
        if (n === null) return quit();
        for (const key of keysOf(buf.subarray(0, n))) {
          view = view && apply(view, key, view.snapshot?.services.length ?? 6);
          if (!view) return quit();
        }
        draw();
      }
    })().catch(() => quit());
    await quitting;
    view = undefined;
    clearTimeout(timer);
  } finally {
    restore();
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGWINCH", draw);
  }
  return 0;
}
