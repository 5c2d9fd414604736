/**
 * Finds the unbounded waits in test code: an `await` on something settled by another party (a deferred, a promise
 * started earlier, a child process, a stream, an event) that is not wrapped in `within(` or `waitUntil(` from
 * `@trellis/platform/testing`. Such a wait hangs the run on a regression instead of failing it with a message naming
 * what did not happen. The scan is lexical: comments and string contents are blanked first, so messages and doc
 * examples never match.
 *
 * @module
 */

/** One unbounded wait: where it is and why it counts as one. */
export interface UnboundedWait {
  line: number;
  rule: string;
  why: string;
  /** The source text of the wait, trimmed, for allow-list matching and the failure message. */
  text: string;
}

/**
 * `text` with comments, string and template contents, and regex literals replaced by spaces (newlines kept), so
 * offsets and line numbers still match the original.
 */
export function codeOnly(text: string): string {
  const out = text.split("");
  const n = text.length;
  const blank = (from: number, to: number) => {
    for (let k = from; k < to && k < n; k++) if (out[k] !== "\n") out[k] = " ";
  };
  /** Brace depth inside each open `${ … }` of a template literal. */
  const templates: number[] = [];
  let prev = "";
  /** Scans template text from `i` to its closing backtick or the next `${`, blanking it; returns where code resumes. */
  const template = (i: number): number => {
    let j = i;
    while (j < n && text[j] !== "`" && !(text[j] === "$" && text[j + 1] === "{")) j += text[j] === "\\" ? 2 : 1;
    blank(i, j);
    if (text[j] === "$") {
      templates.push(0);
      return j + 2;
    }
    return j + 1;
  };
  let i = 0;
  while (i < n) {
    const c = text[i];
    if (c === "/" && text[i + 1] === "/") {
      const end = text.indexOf("\n", i);
      blank(i, end < 0 ? n : end);
      i = end < 0 ? n : end;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      blank(i, end < 0 ? n : end + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && text[j] !== c && text[j] !== "\n") j += text[j] === "\\" ? 2 : 1;
      blank(i + 1, j);
      i = j + 1;
      prev = c;
    } else if (c === "`") {
      i = template(i + 1);
      prev = "`";
    } else if (
      c === "/" && (prev === "" || "(,=:[!&|?{};+-*%<>~^".includes(prev) || /\breturn\s*$/.test(text.slice(0, i)))
    ) {
      let j = i + 1;
      let inClass = false;
      while (j < n && text[j] !== "\n" && (inClass || text[j] !== "/")) {
        if (text[j] === "\\") j++;
        else if (text[j] === "[") inClass = true;
        else if (text[j] === "]") inClass = false;
        j++;
      }
      blank(i + 1, j);
      i = j + 1;
      prev = "/";
    } else {
      if (templates.length > 0) {
        if (c === "{") templates[templates.length - 1]++;
        else if (c === "}") {
          if (templates[templates.length - 1] === 0) {
            templates.pop();
            i = template(i + 1);
            prev = "`";
            continue;
          }
          templates[templates.length - 1]--;
        }
      }
      if (!/\s/.test(c)) prev = c;
      i++;
    }
  }
  return out.join("");
}

/** The index just past the parenthesis closing the one opened at `open` in `code`. */
function closing(code: string, open: number): number {
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    if (code[i] === "(" || code[i] === "[" || code[i] === "{") depth++;
    else if (code[i] === ")" || code[i] === "]" || code[i] === "}") {
      if (--depth === 0) return i + 1;
    }
  }
  return code.length;
}

const TIMER = /\bsetTimeout\s*\(|AbortSignal\.timeout\s*\(/;
const BOUNDED = /^\s*(?:within|waitUntil)\s*\(/;

/** Names bound to a promise the code goes on to await later: `{ promise: x }`, `const x = somethingPending()`. */
function pendingNames(code: string): Set<string> {
  const names = new Set<string>();
  for (const m of code.matchAll(/\{\s*promise\s*(?::\s*([A-Za-z_$][\w$]*))?/g)) names.add(m[1] ?? "promise");
  for (const m of code.matchAll(/\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=;]+)?=(?!=)\s*/g)) {
    const rest = code.slice(m.index! + m[0].length);
    if (/^(?:await\b|within\s*\(|waitUntil\s*\()/.test(rest)) continue;
    if (/^new\s+Promise\b/.test(rest) && TIMER.test(code.slice(m.index!, closing(code, m.index! + m[0].length + 11)))) {
      continue;
    }
    names.add(m[1]);
  }
  return names;
}

/**
 * Whether `index` lies inside an async IIFE whose promise is kept in a binding (`const x = (async () => { … })()`)
 * or a list (`.push((async () => …)())`): a background task whose end the code awaits through that binding, where the
 * other rules check the bound.
 */
function inBackgroundTask(code: string, index: number): boolean {
  for (const m of code.slice(0, index).matchAll(/(?:=|\.push\()\s*\(\s*async\s*\(\s*\)\s*=>\s*\{/g)) {
    const open = m.index! + m[0].lastIndexOf("(async") + 1;
    if (closing(code, code.indexOf("{", open)) > index) return true;
  }
  return false;
}

/** Every unbounded wait in one file's source `text`. */
export function unboundedWaits(text: string): UnboundedWait[] {
  const code = codeOnly(text);
  const lineOf = (index: number) => code.slice(0, index).split("\n").length;
  const found: UnboundedWait[] = [];
  const flag = (index: number, rule: string, why: string) => {
    const line = lineOf(index);
    found.push({ line, rule, why, text: text.split("\n")[line - 1].trim() });
  };
  const pending = pendingNames(code);

  for (const m of code.matchAll(/\bawait\s+/g)) {
    const at = m.index! + m[0].length;
    const rest = code.slice(at);
    if (BOUNDED.test(rest)) continue;
    let hit: RegExpMatchArray | null;
    if ((hit = rest.match(/^\(?\s*[\w$#.!?[\]]*\.promise\b(?!\s*\()/))) {
      flag(at, "deferred", "awaits a deferred's .promise with no bound");
    } else if ((hit = rest.match(/^\(?\s*[\w$#.!?[\]]+\.status\b(?!\s*\()/))) {
      flag(at, "process", "awaits a child process's .status with no bound");
    } else if (/^new\s+Promise\s*(?:<[^(]*>)?\s*\(/.test(rest)) {
      const open = at + rest.indexOf("(");
      if (!TIMER.test(code.slice(open, closing(code, open)))) {
        flag(at, "new-promise", "awaits a new Promise settled by no timer");
      }
    } else if (/^new\s+Deno\.Command\s*\(/.test(rest)) {
      const open = at + rest.indexOf("(");
      const end = closing(code, open);
      if (/^\s*\.output\s*\(/.test(code.slice(end)) && !/\bsignal\s*[:,}]/.test(code.slice(open, end))) {
        flag(at, "process", "awaits a process's .output() with no bound");
      }
    } else if (/^[\w$#.!]+\.output\s*\(\s*\)/.test(rest)) {
      flag(at, "process", "awaits a process's .output() with no bound");
    } else if (/^(?:\w+\.)?once\s*\(/.test(rest)) {
      flag(at, "event", "awaits an event with once() and no bound");
    } else if (/^\(?\s*[\w$#.!]+\.(?:read|next)\s*\(\s*\)/.test(rest)) {
      flag(at, "stream", "reads a stream with no bound");
    } else if ((hit = rest.match(/^(?:assert\.)?(?:rejects|doesNotReject|assertRejects)\s*\(\s*([\w$.]+)\s*[,)]/))) {
      if (pending.has(hit[1]) || hit[1].endsWith(".promise")) {
        flag(at, "pending", `asserts on ${hit[1]}, a promise started earlier, with no bound`);
      }
    } else if ((hit = rest.match(/^Promise\.(?:all|allSettled|race|any)\s*\(/))) {
      const open = at + hit[0].length - 1;
      const args = code.slice(open + 1, closing(code, open) - 1).trim();
      const items = args.startsWith("[") ? args.slice(1, -1).split(",") : [args];
      if (items.some((item) => pending.has(item.trim().replace(/^\.\.\./, "")))) {
        flag(at, "pending", "awaits promises started earlier with no bound");
      }
    } else if ((hit = rest.match(/^([A-Za-z_$][\w$]*)\b(?!\s*[!?]?\s*[(.[<`])/)) && pending.has(hit[1])) {
      flag(at, "pending", `awaits ${hit[1]}, a promise started earlier, with no bound`);
    } else if (/^(?:this\.)?#?[A-Za-z_$][\w$]*(?:!?\.#?[A-Za-z_$][\w$]*)+!?\s*(?:[;,)\]]|$)/m.test(rest)) {
      flag(at, "stored", "awaits a stored promise with no bound");
    }
  }
  for (const m of code.matchAll(/\bfor\s+await\s*\(/g)) {
    const open = m.index! + m[0].length - 1;
    const head = code.slice(open, closing(code, open));
    if (/\.list\s*\(\s*\)\s*\)$/.test(head)) continue;
    if (inBackgroundTask(code, m.index!)) continue;
    flag(m.index!, "stream", "reads a stream with for await and no bound");
  }
  return found.sort((a, b) => a.line - b.line);
}

/** Whether `path` (repo-relative) is test code: a `_test.ts`, anything under `tests/`, or a testing package. */
export function isTestCode(path: string): boolean {
  return /\.tsx?$/.test(path) &&
    (/_test\.tsx?$/.test(path) || path.startsWith("tests/") || /^platform\/(?:[^/]+\/)*testing\//.test(path));
}
