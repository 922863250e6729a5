#!/usr/bin/env bash
# Starts a cluster on loopback, every process on its own: a private Redis (AOF on, in a temporary
# directory) holding all state, N district nodes over it (leases, takeover), and replicas of
# intake, notification, case-squad and geo-router, all pointed at each other with comma lists.
#
# Usage: deploy/local/cluster.sh [--districts N] [--intake N] [--notification N]
#                                [--case-squad N] [--geo-router N] [--redis-port P]
#                                [--base-port P] [--table FILE] [-- dispatch-server flags]
#   counts default to 3 district nodes, 2 intake, 2 notification, 1 case-squad, 1 geo-router
#   (1..=9 each); extra flags go to every process, e.g. -- --map F --population F
#   The clock runs at 60x (`--clock-scale 60`, the shipped scenarios' `clock.scale`) unless the
#   extra flags or DISPATCH_CLOCK_SCALE say otherwise (`-- --clock-scale 1` for real time).
#   --redis-port P   Redis port (default 6390; 6379 is refused: never someone else's Redis)
#   --base-port P    intake on P+1.., notification P+11.., case-squad P+21.., geo-router P+31..,
#                    district nodes P+41.. (default 50100)
#   --table FILE     where the `name pid addr` table goes (default $TMPDIR/dispatch-cluster.tsv),
#                    to pick a process to `kill -9`
# Every process gets one shared --clock-epoch-ms (now, computed once; see run-separate.sh) unless
# the flags give one. The script builds dispatch-server and loadtest in release (in $CARGO_TARGET_DIR when
# set), waits until every process serves (its log says "serving gRPC", which is when its health
# turns SERVING), prints the table and the loadtest command for this cluster, and stops
# everything, Redis last, on Ctrl-C or SIGTERM to the script (`kill <script pid>` when it runs
# in the background). The processes' logs and Redis's files stay in the directory it prints; the
# process table is removed (its pids are dead).
set -euo pipefail
cd "$(dirname "$0")/../.."

districts=3; intakes=2; notifications=2; squads=1; routers=1
redis_port=6390; base=50100; table=${TMPDIR:-/tmp}/dispatch-cluster.tsv; extra=()
count() {
  [[ $2 =~ ^[1-9]$ ]] || { echo "$1 takes a count 1..9, got '$2'" >&2; exit 2; }
}
while (($#)); do
  case $1 in
    --districts) count "$1" "${2:-}"; districts=$2; shift ;;
    --intake) count "$1" "${2:-}"; intakes=$2; shift ;;
    --notification) count "$1" "${2:-}"; notifications=$2; shift ;;
    --case-squad) count "$1" "${2:-}"; squads=$2; shift ;;
    --geo-router) count "$1" "${2:-}"; routers=$2; shift ;;
    --redis-port) redis_port=${2:?--redis-port needs a port}; shift ;;
    --base-port) base=${2:?--base-port needs a port}; shift ;;
    --table) table=${2:?--table needs a file}; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1 (server flags go after --)" >&2; exit 2 ;;
  esac
  shift
done
[[ $redis_port =~ ^[0-9]+$ && $base =~ ^[0-9]+$ ]] || { echo "ports must be numbers" >&2; exit 2; }
if ((redis_port == 6379)); then
  echo "--redis-port 6379 is refused: that is the default Redis, maybe someone else's" >&2; exit 2
fi
command -v redis-server >/dev/null || { echo "redis-server not found: install it with \`apt-get install redis-server\` (Debian/Ubuntu)" >&2; exit 2; }
taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# name:port of every process, in start order (geo-router first: the others fetch its directory).
procs=()
for ((i = 1; i <= routers; i++)); do procs+=("geo-router-$i:$((base + 30 + i))"); done
for ((i = 1; i <= notifications; i++)); do procs+=("notification-$i:$((base + 10 + i))"); done
for ((i = 1; i <= squads; i++)); do procs+=("case-squad-$i:$((base + 20 + i))"); done
for ((i = 1; i <= districts; i++)); do procs+=("district-$i:$((base + 40 + i))"); done
for ((i = 1; i <= intakes; i++)); do procs+=("intake-$i:$((base + i))"); done
for port in "$redis_port" "${procs[@]##*:}"; do
  if taken "$port"; then echo "port $port is taken: choose other ports (--redis-port, --base-port)" >&2; exit 2; fi
done
list() {  # the comma list of service $1's addresses
  local out=() p
  for p in "${procs[@]}"; do [[ ${p%-*:*} == "$1" ]] && out+=("127.0.0.1:${p##*:}"); done
  (IFS=,; echo "${out[*]}")
}
peers=(--intake "$(list intake)" --notification "$(list notification)"
       --case-squad "$(list case-squad)" --geo-router "$(list geo-router)"
       --district "$(list district)")

# Both binaries in one build: built apart, their shared crates get other features and are
# rebuilt each time.
cargo build --release -p dispatch-server -p dispatch-loadtest
bin=${CARGO_TARGET_DIR:-target}/release/dispatch-server
dir=$(mktemp -d -t dispatch-cluster.XXXXXX)
pids=(); rpid=""
cleanup() {
  trap - EXIT INT TERM
  ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  [[ -n $rpid ]] && { kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; }
  rm -f "$table"
  echo "cluster stopped; logs kept in $dir" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

redis-server deploy/redis/redis.conf --port "$redis_port" --dir "$dir" --appendonly yes \
  > "$dir/redis.log" 2>&1 &
rpid=$!
for _ in $(seq 1 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  kill -0 "$rpid" 2>/dev/null || { echo "redis-server did not start:" >&2; cat "$dir/redis.log" >&2; exit 1; }
  sleep 0.1
done
url="redis://127.0.0.1:$redis_port/0"
clock=()
if [[ -z "${DISPATCH_CLOCK_EPOCH_MS:-}" && " ${extra[*]} " != *" --clock-epoch-ms"* ]]; then
  clock=(--clock-epoch-ms "$(date +%s%3N)")  # GNU date: ms since the Unix epoch
fi
if [[ -z "${DISPATCH_CLOCK_SCALE:-}" && " ${extra[*]} " != *" --clock-scale"* ]]; then
  clock+=(--clock-scale 60)
fi

printf 'name\tpid\taddr\n' > "$table"
printf 'redis\t%s\t127.0.0.1:%s\n' "$rpid" "$redis_port" >> "$table"
for p in "${procs[@]}"; do
  name=${p%%:*}; port=${p##*:}; service=${name%-*}; addr=127.0.0.1:$port
  node=()
  [[ $service == district ]] && node=(--node-id "$name" --advertise "$addr")
  "$bin" run "$service" --listen "$addr" --redis "$url" "${node[@]}" "${peers[@]}" \
    "${clock[@]}" "${extra[@]}" > "$dir/$name.log" 2>&1 &
  pids+=($!)
  printf '%s\t%s\t%s\n' "$name" "$!" "$addr" >> "$table"
done

# Every process must log "serving gRPC" (health SERVING) within 300 s, or the start failed.
for ((k = 0; k < ${#procs[@]}; k++)); do
  name=${procs[k]%%:*}
  for ((t = 0; ; t++)); do
    grep -q "serving gRPC" "$dir/$name.log" 2>/dev/null && break
    if ! kill -0 "${pids[k]}" 2>/dev/null || ((t >= 3000)); then
      echo "$name did not come up; the end of its log:" >&2
      tail -n 20 "$dir/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done

column -t "$table" 2>/dev/null || cat "$table"
echo
echo "cluster serving: ${#procs[@]} processes over Redis $url; clock flags: ${clock[*]:-none} ${extra[*]}"
echo "process table: $table (kill -9 a pid from it to test a takeover); logs: $dir"
scenario=loadtest/scenarios/builtin-peak.toml
[[ " ${extra[*]} " == *" --map"* ]] && scenario=loadtest/scenarios/dongguan-peak.toml
echo "drive it with (the scenario must match the cluster's map and clock scale):"
echo "  ${CARGO_TARGET_DIR:-target}/release/loadtest run $scenario --intake $(list intake) --notification $(list notification) --district $(list district) --geo-router $(list geo-router) --case-squad $(list case-squad) --redis $url"
echo "Ctrl-C (or kill $$) stops everything"
wait "${pids[@]}" || true
