/** Per-process CPU time and memory from /proc (Linux), for the load and footprint benchmarks. */

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on every Linux we run on). */
const TICKS_PER_SEC = 100;

/** CPU time (user + system) the process `pid` has used so far, in ms; NaN when it is gone. */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  // The command name (field 2) may hold spaces: count fields from the closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields.length < 13) return Number.NaN;
  return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SEC;
}

/** Resident set size of `pid` in MB (VmRSS); NaN when it is gone. */
export async function rssMb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  const kb = status.match(/^VmRSS:\s+(\d+) kB/m)?.[1];
  return kb === undefined ? Number.NaN : Number(kb) / 1024;
}

/** `pid` and its descendants (from the parent ids in /proc/<pid>/stat), parents first. */
export async function processTree(pid: number): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (Number.isInteger(ppid)) parentOf.set(Number(entry.name), ppid);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}
