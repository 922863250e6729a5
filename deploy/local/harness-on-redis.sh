#!/usr/bin/env bash
# Runs a load-test scenario against a cluster whose state is in a private Redis (started here
# from deploy/redis/redis.conf in a temporary directory, on a free-ish port), then stops
# everything it started.
#
# Usage: deploy/local/harness-on-redis.sh SCENARIO.toml [--separate] [--kill-at SECONDS]
#                                         [-- extra dispatch-server flags, e.g. --map F --population F]
#   (default)        one process, `dispatch-server all --redis ...`
#   --separate       the five services as separate processes (deploy/local/run-separate.sh)
#   --kill-at N      one process only: SIGKILL the server N real seconds into the run and start
#                    it again at once on the same Redis and clock epoch (nothing may be lost)
# The harness report goes to stdout; its JSON to target/<scenario>-redis.json. Exit code: the
# harness's. Needs redis-server and the release binaries (built here, in $CARGO_TARGET_DIR when
# set). If the cluster does not come up, the end of its log is printed.
# Ports: Redis on $REDIS_PORT (default 6391), the one-process cluster on 127.0.0.1:50071, the
# separate processes on 50051-50055; each must be free (checked: never someone else's Redis).
set -euo pipefail
cd "$(dirname "$0")/../.."

scenario=${1:?usage: $0 SCENARIO.toml [--separate] [--kill-at SECONDS] [-- server flags]}
shift
separate=0; kill_at=""; extra=()
while (($#)); do
  case $1 in
    --separate) separate=1 ;;
    --kill-at) kill_at=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command -v redis-server >/dev/null || { echo "redis-server not found: install it with \`apt-get install redis-server\` (Debian/Ubuntu)" >&2; exit 2; }

port=${REDIS_PORT:-6391}
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is taken (another Redis?): set REDIS_PORT to a free port" >&2; exit 2
fi
cargo build --release -p dispatch-server -p dispatch-loadtest
bin=${CARGO_TARGET_DIR:-target}/release
dir=$(mktemp -d)
redis-server deploy/redis/redis.conf --port "$port" --dir "$dir" > "$dir/redis.log" 2>&1 &
rpid=$!
for _ in $(seq 1 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  kill -0 "$rpid" 2>/dev/null || { echo "redis-server did not start:" >&2; cat "$dir/redis.log" >&2; exit 2; }
  sleep 0.1
done
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; sleep 1; kill "$rpid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
url="redis://127.0.0.1:$port/0"
epoch=$(date +%s%3N)  # GNU date: ms since the Unix epoch, one for every process and restart
json="target/$(basename "$scenario" .toml)-redis.json"
mkdir -p target

# Waits for the cluster's ports; gives up when its process $1 exits or after 300 s, printing
# the end of its log $2.
wait_ports() {
  local pid=$1 log=$2; shift 2
  for _ in $(seq 1 300); do
    local ok=1
    for p in "$@"; do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || ok=0; done
    ((ok)) && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  echo "cluster did not open its ports $*; the end of its log:" >&2
  tail -n 20 "$log" >&2
  return 1
}

if ((separate)); then
  deploy/local/run-separate.sh --redis "$url" --clock-scale 60 --clock-epoch-ms "$epoch" "${extra[@]}" > "$dir/cluster.log" 2>&1 &
  pids+=($!)
  wait_ports "$!" "$dir/cluster.log" 50051 50052 50053 50054 50055
  "$bin/loadtest" run "$scenario" --intake 127.0.0.1:50051 --geo-router 127.0.0.1:50052 \
    --district 127.0.0.1:50053 --case-squad 127.0.0.1:50054 --notification 127.0.0.1:50055 --json "$json"
  exit $?
fi

server() {
  "$bin/dispatch-server" all --redis "$url" --listen 127.0.0.1:50071 --clock-scale 60 \
    --clock-epoch-ms "$epoch" "${extra[@]}" >> "$dir/server.log" 2>&1 &
  spid=$!
  pids+=("$spid")
}
server
wait_ports "$spid" "$dir/server.log" 50071
"$bin/loadtest" run "$scenario" --cluster 127.0.0.1:50071 --json "$json" &
hpid=$!
if [[ -n $kill_at ]]; then
  sleep "$kill_at"
  kill -9 "$spid"
  echo "harness-on-redis: server killed with SIGKILL at $(date +%T), starting it again" >&2
  server
fi
wait "$hpid"
