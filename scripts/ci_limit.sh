#!/usr/bin/env bash
# Runs a `deno test` command (its output streamed as it comes) for at most LIMIT_S seconds, then prints one summary
# line "N passed, N failed" and exits non-zero unless every test passed.
#   usage: scripts/ci_limit.sh LIMIT_S COMMAND [ARGS...]
# When the limit passes, the command's whole process tree is killed (TERM, KILL 10 s later) and the summary names the
# test file and test that were running, read from Deno's streaming output: the last "running N tests from <file>"
# and the last test line that started ("<name> ...") without an ok/FAILED/ignored result.
set -uo pipefail
if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 LIMIT_S COMMAND [ARGS...] (LIMIT_S a positive whole number of seconds; got '${1:-}')" >&2
  exit 2
fi
limit_s=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# timeout(1) puts the command in a process group of its own and signals that whole group when the limit passes;
# --verbose has it say so ("timeout: sending signal TERM to command ...") in the log.
NO_COLOR=1 timeout --verbose --signal=TERM --kill-after=10 "$limit_s" "$@" </dev/null 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

if { [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; } && grep -q 'timeout: sending signal TERM' "$log"; then
  echo
  echo "CI limit of ${limit_s} s reached: the test run was killed."
  if grep -qE '^\./[^ ]+ => ' "$log"; then
    # A --parallel run: Deno prints a test only once it ended ("./<file> => <name> ... ok"; a step as
    # "<test> ... <step> ... ok"), so a test still running shows only through Deno's notice
    # "'<name>' has been running for over (1m0s)", given once it has run for a minute.
    mapfile -t running < <(awk -v q="'" '
      { sub(/timeout: sending signal.*$/, "") }
      substr($0, 1, 1) == q && (at = index($0, q " has been running for over ")) > 1 {
        name = substr($0, 2, at - 2)
        if (!(name in slow)) order[++n] = name
        slow[name] = 1; next
      }
      /^\.\/[^ ]+ => .* \.\.\. (ok|FAILED|ignored)/ {
        name = $0; sub(/^\.\/[^ ]+ => /, "", name); sub(/ \.\.\. (ok|FAILED|ignored).*$/, "", name)
        delete slow[name]; file = $0; sub(/ => .*$/, "", file); last = file; next
      }
      END { print last; for (i = 1; i <= n; i++) if (order[i] in slow) print order[i] }
    ' "$log")
    echo "Tests ran in parallel (Deno names a running test only once it has run for a minute)."
    if [ ${#running[@]} -gt 1 ]; then
      for name in "${running[@]:1}"; do echo "Still running: ${name}"; done
    else
      echo "No test had run for a minute."
    fi
    [ -z "${running[0]}" ] || echo "Last result from: ${running[0]}"
    # Top-level results only: a step's line holds its test's name and " ... " once more.
    result='^\./[^ ]+ => ([^.]|\.[^.]|\.\.[^.])* \.\.\. '
  else
    # Tests run one after another: a test that started shows as "<name> ..." (steps indented) until a line
    # "<name> ... ok|FAILED|ignored" ends it.
    mapfile -t running < <(awk '
      { sub(/timeout: sending signal.*$/, "") }
      function name_of(line) { sub(/^ +/, "", line); sub(/ \.\.\.( .*)?$/, "", line); return line }
      /^running [0-9]+ tests? from / { file = $0; sub(/^running [0-9]+ tests? from /, "", file); test = ""; step = ""; next }
      /^[^ ].* \.\.\. *$/ { test = name_of($0); step = ""; next }
      /^ +.* \.\.\. *$/ { step = name_of($0); next }
      /^[^ ].* \.\.\. (ok|FAILED|ignored)/ { if (name_of($0) == test) { test = ""; step = "" }; next }
      /^ +.* \.\.\. (ok|FAILED|ignored)/ { if (name_of($0) == step) step = ""; next }
      END { print file; print test; print step }
    ' "$log")
    if [ -z "${running[0]}" ]; then
      echo "No test file had started."
    else
      echo "Still running: ${running[0]}"
      echo "  test: ${running[1]:-(none: the file was between tests)}"
      [ -z "${running[2]}" ] || echo "  step: ${running[2]}"
    fi
    # Top-level results only: steps are indented.
    result='^[^ ].* \.\.\. '
  fi
  passed=$(grep -cE "${result}ok" "$log")
  failed=$(grep -cE "${result}FAILED" "$log")
  echo "${passed} passed, $((failed + 1)) failed"
  exit 1
fi

summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)
if [ -z "$summary" ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
echo "${passed} passed, ${failed} failed"
if [ "$status" -eq 0 ] && [ "$failed" != "0" ]; then status=1; fi
exit "$status"
