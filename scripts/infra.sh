#!/usr/bin/env bash
# Idempotent local infrastructure for Trellis: PostgreSQL, NATS (JetStream) and Kafka (KRaft), all on 127.0.0.1.
#
#   scripts/infra.sh up|down|status [postgres|nats|kafka|prometheus ...]
#
# No component means postgres, nats and kafka; `up` then also installs Prometheus (`prometheus` and `promtool`, which
# the test suite needs) without starting it, and `down` also stops a Prometheus this script started. `up prometheus`
# starts one scraping deploy/prometheus.yml's targets (the services of `deno task up`) with its alert rules.
#
# Environment (defaults in brackets):
#   TRELLIS_PG_PORT [5432]  TRELLIS_NATS_PORT [4222]  TRELLIS_KAFKA_PORT [9092]
#   TRELLIS_KAFKA_CONTROLLER_PORT [kafka port + 1]
#   TRELLIS_PROMETHEUS_PORT [9090]
#   TRELLIS_INFRA_DIR [<repo>/.trellis/infra]      data, logs and pid files, one directory per component and port
#   TRELLIS_JAVA [Java 17 from /usr/lib/jvm, else java on PATH]
#   XDG_CACHE_HOME [~/.cache]                       Kafka jars are cached in $XDG_CACHE_HOME/trellis/kafka-3.9.1
#   TRELLIS_PG_UNSAFE [unset]                       1: start PostgreSQL with fsync, synchronous_commit and
#                                                   full_page_writes off. Throwaway data only; never for the chaos
#                                                   suite (a killed server then loses commits it acknowledged).
#
# PostgreSQL is durable by default: every start passes fsync=on, synchronous_commit=on and full_page_writes=on on the
# command line, which overrides postgresql.conf, so a data directory initialised by an older infra.sh (which wrote
# those settings off into postgresql.conf) also comes up durable. The start line and `status` say which mode a
# server runs in, read from the server itself (`show fsync` ...).
# `up` reuses anything already answering on a port; `down` stops only what this script started (it recognises its
# own processes by their pid file and by the component directory on their command line), never a pre-existing server.
# Missing PostgreSQL, nats-server, Prometheus, Java, Maven or tmux are installed with apt-get.
set -euo pipefail

HOST=127.0.0.1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_VERSION=3.9.1
KAFKA_RECIPE=$REPO/scripts/kafka
PG_PORT=${TRELLIS_PG_PORT:-5432}
NATS_PORT=${TRELLIS_NATS_PORT:-4222}
KAFKA_PORT=${TRELLIS_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${TRELLIS_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
PROM_PORT=${TRELLIS_PROMETHEUS_PORT:-9090}
INFRA_DIR=${TRELLIS_INFRA_DIR:-$REPO/.trellis/infra}
KAFKA_LIBS=${XDG_CACHE_HOME:-$HOME/.cache}/trellis/kafka-$KAFKA_VERSION
START_TIMEOUT_S=${TRELLIS_START_TIMEOUT_S:-90}
case ${TRELLIS_PG_UNSAFE:-0} in
  1) PG_DURABILITY=off ;;
  0 | "") PG_DURABILITY=on ;;
  *) echo "infra.sh: TRELLIS_PG_UNSAFE must be 1 or unset, not '$TRELLIS_PG_UNSAFE'" >&2; exit 2 ;;
esac

usage() {
  echo "usage: $0 up|down|status [postgres|nats|kafka|prometheus ...]" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------------------- helpers

say() { printf '%s' "$*"; }          # start of a progress line; the outcome finishes it
fail() {
  echo "FAILED" >&2
  echo "infra.sh: $*" >&2
  exit 1
}

now() { echo "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

tcp_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# `pid` is alive and its command line mentions `dir` (guards against a recycled pid).
is_ours() {
  local pid=$1 dir=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir"
}

APT_UPDATED=
apt_install() {
  local sudo=
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || fail "need root (or sudo) to apt-get install $*"
    sudo=sudo
  fi
  mkdir -p "$INFRA_DIR"
  if [ -z "$APT_UPDATED" ]; then
    $sudo apt-get update >>"$INFRA_DIR/apt.log" 2>&1 || { tail -n 20 "$INFRA_DIR/apt.log" >&2; fail "apt-get update failed"; }
    APT_UPDATED=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$INFRA_DIR/apt.log" 2>&1 \
    || { tail -n 20 "$INFRA_DIR/apt.log" >&2; fail "apt-get install $* failed"; }
}

# Polls `check` (a command) until it succeeds; gives up when `pid` dies or after START_TIMEOUT_S.
wait_until() {
  local pid=$1 log=$2; shift 2
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while ! "$@"; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "FAILED (process exited); last lines of $log:" >&2
      tail -n 40 "$log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "FAILED (not ready after ${START_TIMEOUT_S} s); last lines of $log:" >&2
      tail -n 40 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

# SIGTERM, wait up to `grace` seconds, then SIGKILL.
stop_pid() {
  local pid=$1 grace=${2:-30} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  echo "(SIGKILL after ${grace} s) " >&2
}

# Starts a detached daemon (own session, no inherited terminal or lock fds) and prints its pid.
spawn() {
  local pidfile=$1 log=$2; shift 2
  # shellcheck disable=SC2016 # $$ is expanded by the inner shell, which then execs the daemon with the same pid
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$log" 2>&1 8>&- 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    [ -s "$pidfile" ] && break
    sleep 0.05
  done
  cat "$pidfile"
}

# -------------------------------------------------------------------------------------------------------- postgres

PG_DIR=$INFRA_DIR/postgres-$PG_PORT
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/sock

pg_up_probe() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$HOST" -p "$PG_PORT" -t 1
  else
    tcp_open "$PG_PORT"
  fi
}

pg_pid() { head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

pg_bin() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# As root the cluster runs as the `postgres` user (initdb refuses root); otherwise as the current user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@" 8>&- 9>&-)
  else
    (cd / && "$@" 8>&- 9>&-)
  fi
}

# The durability mode the server on PG_PORT reports: "durable", or "UNSAFE (fsync=off, ...)" naming every setting
# that is off, or "mode unknown" when it cannot be asked.
pg_mode() {
  local psql settings
  psql=$(command -v psql || echo "$(pg_bin)/psql")
  settings=$(PGCONNECT_TIMEOUT=3 timeout 5 "$psql" -X -A -t -F ' ' -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -c \
    "select current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')" \
    2>/dev/null </dev/null) || { echo "mode unknown"; return; }
  local fsync sync fpw off=() joined
  read -r fsync sync fpw <<<"$settings"
  [ "$fsync" = on ] || off+=("fsync=$fsync")
  [ "$sync" = off ] && off+=("synchronous_commit=off")
  [ "$fpw" = on ] || off+=("full_page_writes=$fpw")
  if [ ${#off[@]} -eq 0 ]; then
    echo "durable"
  else
    joined=$(printf '%s, ' "${off[@]}")
    echo "UNSAFE (${joined%, })"
  fi
}

# Warns when a server that `up` reuses runs in the other mode than the one asked for; it is left as it is, since
# restarting it would cut off whoever else is using it.
pg_mode_check() {
  local mode=$1
  if [ "$PG_DURABILITY" = on ] && [ "${mode%% *}" = UNSAFE ]; then
    echo "infra.sh: warning: postgres on $HOST:$PG_PORT runs $mode; restart it (down postgres, then up postgres) to make it durable" >&2
  elif [ "$PG_DURABILITY" = off ] && [ "$mode" = durable ]; then
    echo "infra.sh: note: TRELLIS_PG_UNSAFE=1 asked for, but the running postgres on $HOST:$PG_PORT is durable" >&2
  fi
}

pg_start() {
  say "postgres on $HOST:$PG_PORT… "
  if pg_up_probe; then
    local mode; mode=$(pg_mode)
    if is_ours "$(pg_pid)" "$PG_DATA"; then echo "already running (pid $(pg_pid), $mode)"; else echo "already running (not started by infra.sh, $mode)"; fi
    pg_mode_check "$mode"
    return
  fi
  local bin
  if ! bin=$(pg_bin); then
    echo
    say "  installing postgresql with apt-get… "
    apt_install postgresql
    bin=$(pg_bin) || fail "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
    echo "done"
    # The package creates and starts a cluster "main" on 5432 (or the next free port). It is what we want when 5432
    # was asked for; otherwise it is an unwanted side effect of our install, so drop it again.
    say "postgres on $HOST:$PG_PORT… "
    if pg_up_probe; then
      echo "already running (Debian's cluster from the package install)"
      return
    fi
    local ver; ver=$(basename "$(dirname "$bin")")
    if [ -d "/etc/postgresql/$ver/main" ] && command -v pg_dropcluster >/dev/null; then
      pg_dropcluster --stop "$ver" main >>"$INFRA_DIR/apt.log" 2>&1 || true
    fi
  fi
  local t0; t0=$(now)
  mkdir -p "$PG_DIR"
  chmod 755 "$INFRA_DIR" "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  as_pg test -x "$PG_DIR" || fail "the postgres user cannot reach $PG_DIR; use a TRELLIS_INFRA_DIR whose parents are world-searchable"
  local sock_path=$PG_SOCK/.s.PGSQL.$PG_PORT
  [ ${#sock_path} -le 100 ] || fail "unix socket path too long (${#sock_path} > 100 bytes): $sock_path; use a shorter TRELLIS_INFRA_DIR"
  as_pg mkdir -p "$PG_SOCK"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    rm -rf "$PG_DATA"
    as_pg "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log" >&2; fail "initdb failed"; }
    # Durability settings are not written here but passed at every start (pg_start_opts), so the mode follows
    # TRELLIS_PG_UNSAFE of each `up` rather than of the `up` that happened to initialise the directory.
    as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<CONF

# --- written by scripts/infra.sh
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
CONF
  fi
  as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t "$START_TIMEOUT_S" \
    -o "-c fsync=$PG_DURABILITY -c synchronous_commit=$PG_DURABILITY -c full_page_writes=$PG_DURABILITY" \
    start >/dev/null 2>&1 \
    || { tail -n 40 "$PG_DIR/postgres.log" >&2; fail "pg_ctl start failed"; }
  wait_until "$(pg_pid)" "$PG_DIR/postgres.log" pg_up_probe
  echo "started (pid $(pg_pid), $(pg_mode)) in $(since "$t0")"
}

pg_stop() {
  say "postgres on $HOST:$PG_PORT… "
  local pid; pid=$(pg_pid)
  if is_ours "$pid" "$PG_DATA"; then
    local t0 bin; t0=$(now)
    bin=$(pg_bin) || fail "no PostgreSQL binaries to stop pid $pid with"
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || stop_pid "$pid" 30
    echo "stopped (pid $pid) in $(since "$t0")"
  elif pg_up_probe; then
    echo "running but not started by infra.sh; leaving it"
  else
    echo "not running"
  fi
}

pg_status() {
  local pid; pid=$(pg_pid)
  if pg_up_probe; then
    local mode; mode=$(pg_mode)
    if is_ours "$pid" "$PG_DATA"; then echo "postgres  running  $HOST:$PG_PORT  pid $pid  $mode"; else echo "postgres  running  $HOST:$PG_PORT  (not started by infra.sh)  $mode"; fi
  else
    echo "postgres  stopped  $HOST:$PG_PORT"
    return 1
  fi
}

# ------------------------------------------------------------------------------------------------------------ nats

NATS_DIR=$INFRA_DIR/nats-$NATS_PORT

# A NATS server greets every connection with an INFO line.
nats_up_probe() {
  local greeting
  # shellcheck disable=SC2016 # $0/$1 are the inner shell's arguments
  greeting=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && head -c 4 <&3' "$HOST" "$NATS_PORT" 2>/dev/null) || return 1
  [ "$greeting" = INFO ]
}

nats_pid() { cat "$NATS_DIR/nats.pid" 2>/dev/null || true; }

nats_start() {
  say "nats on $HOST:$NATS_PORT… "
  if nats_up_probe; then
    if is_ours "$(nats_pid)" "$NATS_DIR/store"; then echo "already running (pid $(nats_pid))"; else echo "already running (not started by infra.sh)"; fi
    return
  fi
  tcp_open "$NATS_PORT" && fail "port $NATS_PORT is taken by something that is not a NATS server"
  local bin
  bin=$(command -v nats-server || true)
  [ -z "$bin" ] && [ -x /usr/sbin/nats-server ] && bin=/usr/sbin/nats-server
  if [ -z "$bin" ]; then
    echo
    say "  installing nats-server with apt-get… "
    apt_install nats-server
    bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    [ -x "$bin" ] || fail "nats-server installed but not found"
    echo "done"
    say "nats on $HOST:$NATS_PORT… "
  fi
  local t0 pid; t0=$(now)
  mkdir -p "$NATS_DIR/store"
  rm -f "$NATS_DIR/nats.pid"
  pid=$(spawn "$NATS_DIR/nats.pid" "$NATS_DIR/nats.log" "$bin" -a "$HOST" -p "$NATS_PORT" -js -sd "$NATS_DIR/store")
  wait_until "$pid" "$NATS_DIR/nats.log" nats_up_probe
  echo "started (pid $pid) in $(since "$t0")"
}

nats_stop() {
  say "nats on $HOST:$NATS_PORT… "
  local pid; pid=$(nats_pid)
  if is_ours "$pid" "$NATS_DIR/store"; then
    local t0; t0=$(now)
    stop_pid "$pid" 15
    rm -f "$NATS_DIR/nats.pid"
    echo "stopped (pid $pid) in $(since "$t0")"
  elif nats_up_probe; then
    echo "running but not started by infra.sh; leaving it"
  else
    echo "not running"
  fi
}

nats_status() {
  local pid; pid=$(nats_pid)
  if nats_up_probe; then
    if is_ours "$pid" "$NATS_DIR/store"; then echo "nats      running  $HOST:$NATS_PORT  pid $pid"; else echo "nats      running  $HOST:$NATS_PORT  (not started by infra.sh)"; fi
  else
    echo "nats      stopped  $HOST:$NATS_PORT"
    return 1
  fi
}

# ----------------------------------------------------------------------------------------------------------- kafka

KAFKA_DIR=$INFRA_DIR/kafka-$KAFKA_PORT
KAFKA_LOG=$KAFKA_DIR/kafka.log

# A broker that is really serving: an ApiVersions v0 request (api key 18, correlation id 42, client id "probe")
# gets a response with correlation id 42 and error code 0. The client port opens only once the broker is unfenced.
kafka_up_probe() {
  local reply
  # shellcheck disable=SC2016 # $0/$1 are the inner shell's arguments
  reply=$(timeout 2 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x05probe" >&3
    head -c 10 <&3 | od -An -tx1' "$HOST" "$KAFKA_PORT" 2>/dev/null) || return 1
  # bytes 0-3 size, 4-7 correlation id, 8-9 error code
  [ "$(echo "$reply" | awk '{ print $5 $6 $7 $8 $9 $10 }')" = 0000002a0000 ]
}

kafka_pid() { cat "$KAFKA_DIR/kafka.pid" 2>/dev/null || true; }

java_major() { "$1" -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]); exit }'; }

# Kafka 3.9 supports Java 11-21 (23+ removed Subject.getSubject, which it still calls); prefer 17.
find_java() {
  if [ -n "${TRELLIS_JAVA:-}" ]; then echo "$TRELLIS_JAVA"; return; fi
  local j
  for j in /usr/lib/jvm/java-17-openjdk-*/bin/java; do [ -x "$j" ] && { echo "$j"; return; }; done
  j=$(command -v java || true)
  if [ -n "$j" ]; then
    local m; m=$(java_major "$j")
    if [ -n "$m" ] && [ "$m" -ge 11 ] && [ "$m" -le 21 ]; then echo "$j"; return; fi
  fi
  return 1
}

kafka_fetch() {
  [ -f "$KAFKA_LIBS/.complete" ] && return 0
  mkdir -p "$(dirname "$KAFKA_LIBS")"
  exec 8>"$KAFKA_LIBS.lock"
  flock 8 # a concurrent `up` elsewhere may be fetching the same jars
  if [ -f "$KAFKA_LIBS/.complete" ]; then exec 8>&-; return 0; fi
  if ! command -v mvn >/dev/null; then
    say "installing maven with apt-get… "
    apt_install maven
    echo "done"
  fi
  say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS… "
  local t0 tmp; t0=$(now)
  tmp=$(mktemp -d "$KAFKA_LIBS.tmp.XXXXXX")
  mvn -B -q -f "$KAFKA_RECIPE/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1 \
    || { tail -n 40 "$tmp.log" >&2; rm -rf "$tmp"; fail "mvn could not fetch the Kafka jars (log: $tmp.log)"; }
  # exactly one SLF4J binding, the broker jar present, no test-classifier jars
  compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null || fail "kafka_2.13-$KAFKA_VERSION.jar missing from $tmp"
  if compgen -G "$tmp/*-test.jar" >/dev/null || compgen -G "$tmp/logback-*" >/dev/null || compgen -G "$tmp/slf4j-log4j12-*" >/dev/null; then
    fail "unexpected jars in $tmp"
  fi
  touch "$tmp/.complete"
  rm -rf "$KAFKA_LIBS" "$tmp.log"
  mv "$tmp" "$KAFKA_LIBS"
  exec 8>&-
  echo "done ($(du -sm "$KAFKA_LIBS" | cut -f1) MB in $(since "$t0"))"
}

# 16 random bytes, base64url without padding; a leading '-' would be read as an option.
random_cluster_id() {
  local id
  while :; do
    id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [ "${id:0:1}" != "-" ] && { echo "$id"; return; }
  done
}

kafka_start() {
  say "kafka on $HOST:$KAFKA_PORT… "
  if kafka_up_probe; then
    if is_ours "$(kafka_pid)" "$KAFKA_DIR/server.properties"; then echo "already running (pid $(kafka_pid))"; else echo "already running (not started by infra.sh)"; fi
    return
  fi
  local t0
  if is_ours "$(kafka_pid)" "$KAFKA_DIR/server.properties"; then
    # ours but not answering: still starting (a concurrent `up`) or wedged; wait rather than start a second one
    echo "starting (pid $(kafka_pid))"
    t0=$(now)
  else
    tcp_open "$KAFKA_PORT" && fail "port $KAFKA_PORT is taken by something that is not a ready Kafka broker"
    tcp_open "$KAFKA_CONTROLLER_PORT" && fail "controller port $KAFKA_CONTROLLER_PORT is taken (set TRELLIS_KAFKA_CONTROLLER_PORT)"
    echo "not running"
    local java
    if ! java=$(find_java); then
      say "installing openjdk-17-jre-headless with apt-get… "
      apt_install openjdk-17-jre-headless
      java=$(find_java) || fail "Java 17 installed but not found"
      echo "done"
    fi
    kafka_fetch
    t0=$(now) # cold start: storage format (first time only) + JVM + KRaft election + broker unfencing
    kafka_launch "$java"
  fi
  say "waiting for Kafka on $HOST:$KAFKA_PORT… "
  wait_until "$(kafka_pid)" "$KAFKA_LOG" kafka_up_probe
  echo "ready in $(since "$t0") (pid $(kafka_pid))"
}

kafka_launch() {
  local java=$1 log_opts="-Dlog4j.configuration=file:$KAFKA_RECIPE/log4j.properties"
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/server.properties" <<PROPS
# written by scripts/infra.sh on every start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.network.threads=2
num.io.threads=4
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
PROPS
  local cp="$KAFKA_LIBS/*" # quoted: the JVM itself expands dir/* to every jar in dir
  # Data survives down/up of the same port; format only a fresh directory.
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    "$java" -Xmx256m "$log_opts" -cp "$cp" kafka.tools.StorageTool format \
      -t "$(random_cluster_id)" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 8>&- 9>&- \
      || { tail -n 40 "$KAFKA_DIR/format.log" >&2; fail "kafka storage format failed"; }
  fi
  rm -f "$KAFKA_DIR/kafka.pid"
  # same JVM flags as bin/kafka-run-class.sh (KAFKA_JVM_PERFORMANCE_OPTS), with a test-sized heap
  spawn "$KAFKA_DIR/kafka.pid" "$KAFKA_LOG" "$java" -Xms256m -Xmx512m \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true \
    "$log_opts" -Dkafka.logs.dir="$KAFKA_DIR" -cp "$cp" kafka.Kafka "$KAFKA_DIR/server.properties" >/dev/null
}

kafka_stop() {
  say "kafka on $HOST:$KAFKA_PORT… "
  local pid; pid=$(kafka_pid)
  if is_ours "$pid" "$KAFKA_DIR/server.properties"; then
    local t0; t0=$(now)
    stop_pid "$pid" 30
    rm -f "$KAFKA_DIR/kafka.pid"
    echo "stopped (pid $pid) in $(since "$t0")"
  elif kafka_up_probe; then
    echo "running but not started by infra.sh; leaving it"
  else
    echo "not running"
  fi
}

kafka_status() {
  local pid; pid=$(kafka_pid)
  if kafka_up_probe; then
    if is_ours "$pid" "$KAFKA_DIR/server.properties"; then echo "kafka     running  $HOST:$KAFKA_PORT  pid $pid"; else echo "kafka     running  $HOST:$KAFKA_PORT  (not started by infra.sh)"; fi
  elif is_ours "$pid" "$KAFKA_DIR/server.properties"; then
    echo "kafka     starting $HOST:$KAFKA_PORT  pid $pid (not answering yet)"
    return 1
  else
    echo "kafka     stopped  $HOST:$KAFKA_PORT"
    return 1
  fi
}

# ------------------------------------------------------------------------------------------------------ prometheus

PROM_DIR=$INFRA_DIR/prometheus-$PROM_PORT

prometheus_up_probe() { curl -fsS -o /dev/null "http://$HOST:$PROM_PORT/-/ready" 2>/dev/null; }

prometheus_pid() { cat "$PROM_DIR/prometheus.pid" 2>/dev/null || true; }

# Debian's package, when `prometheus` or `promtool` is missing. Its maintainer scripts enable and start a system
# Prometheus on :9090 where services may start (not in containers, whose policy-rc.d forbids it): this project runs its
# own, on its own port and data directory, so that one is stopped and disabled again.
prometheus_install() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return
  say "installing prometheus with apt-get… "
  apt_install --no-install-recommends prometheus
  command -v prometheus >/dev/null && command -v promtool >/dev/null || fail "prometheus installed but not found"
  local sudo=
  [ "$(id -u)" != 0 ] && sudo=sudo
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    $sudo /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null && { $sudo update-rc.d prometheus disable >/dev/null 2>&1 || true; }
  fi
  echo "done ($(prometheus --version 2>&1 | head -n 1))"
}

prometheus_start() {
  prometheus_install
  say "prometheus on $HOST:$PROM_PORT… "
  if prometheus_up_probe; then
    if is_ours "$(prometheus_pid)" "$PROM_DIR/data"; then echo "already running (pid $(prometheus_pid))"; else echo "already running (not started by infra.sh)"; fi
    return
  fi
  tcp_open "$PROM_PORT" && fail "port $PROM_PORT is taken by something that is not Prometheus"
  promtool check config "$REPO/deploy/prometheus.yml" >"$INFRA_DIR/promtool.log" 2>&1 \
    || { cat "$INFRA_DIR/promtool.log" >&2; fail "deploy/prometheus.yml does not pass promtool check config"; }
  local t0 pid; t0=$(now)
  mkdir -p "$PROM_DIR/data"
  rm -f "$PROM_DIR/prometheus.pid"
  pid=$(spawn "$PROM_DIR/prometheus.pid" "$PROM_DIR/prometheus.log" prometheus \
    --config.file="$REPO/deploy/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
    --web.listen-address="$HOST:$PROM_PORT")
  wait_until "$pid" "$PROM_DIR/prometheus.log" prometheus_up_probe
  echo "started (pid $pid) in $(since "$t0"): http://$HOST:$PROM_PORT"
}

prometheus_stop() {
  say "prometheus on $HOST:$PROM_PORT… "
  local pid; pid=$(prometheus_pid)
  if is_ours "$pid" "$PROM_DIR/data"; then
    local t0; t0=$(now)
    stop_pid "$pid" 15
    rm -f "$PROM_DIR/prometheus.pid"
    echo "stopped (pid $pid) in $(since "$t0")"
  elif prometheus_up_probe; then
    echo "running but not started by infra.sh; leaving it"
  else
    echo "not running"
  fi
}

prometheus_status() {
  local pid; pid=$(prometheus_pid)
  if prometheus_up_probe; then
    if is_ours "$pid" "$PROM_DIR/data"; then echo "prometheus running  $HOST:$PROM_PORT  pid $pid"; else echo "prometheus running  $HOST:$PROM_PORT  (not started by infra.sh)"; fi
  else
    echo "prometheus stopped  $HOST:$PROM_PORT"
    return 1
  fi
}

# ------------------------------------------------------------------------------------------------------------ main

[ $# -ge 1 ] || usage
action=$1
shift
components=("$@")
defaults=
[ ${#components[@]} -gt 0 ] || { components=(postgres nats kafka); defaults=1; }
for c in "${components[@]}"; do
  case $c in postgres | nats | kafka | prometheus) ;; *) echo "unknown component: $c" >&2; usage ;; esac
done

mkdir -p "$INFRA_DIR"
# One `up`/`down` at a time per infra dir; status needs no lock.
if [ "$action" != status ]; then
  exec 9>"$INFRA_DIR/.lock"
  flock 9
fi

# The CLI's terminal UI is tested under tmux (tests/cli/): install it with the infrastructure when it is missing.
if [ "$action" = up ] && ! command -v tmux >/dev/null; then
  say "tmux… installing with apt-get… "
  apt_install tmux
  echo "done"
fi

rc=0
for c in "${components[@]}"; do
  case $action:$c in
    up:postgres) pg_start ;;
    up:nats) nats_start ;;
    up:kafka) kafka_start ;;
    down:postgres) pg_stop ;;
    down:nats) nats_stop ;;
    down:kafka) kafka_stop ;;
    status:postgres) pg_status || rc=1 ;;
    status:nats) nats_status || rc=1 ;;
    status:kafka) kafka_status || rc=1 ;;
    up:prometheus) prometheus_start ;;
    down:prometheus) prometheus_stop ;;
    status:prometheus) prometheus_status || rc=1 ;;
    *) usage ;;
  esac
done
if [ -n "$defaults" ]; then
  case $action in
    up) prometheus_install ;;
    down) [ -n "$(prometheus_pid)" ] && prometheus_stop ;;
  esac
fi
exit $rc
