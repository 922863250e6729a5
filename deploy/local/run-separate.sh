#!/usr/bin/env bash
# Runs the five services as separate processes on loopback, each talking gRPC to the others.
# Usage: deploy/local/run-separate.sh [extra dispatch-server flags, e.g. --clock-scale 60,
#        --map F --population F]
# Ports: intake 50051, geo-router 50052, district 50053, case-squad 50054, notification 50055.
# Every process gets one shared --clock-epoch-ms (now, computed once) unless the flags or
# DISPATCH_CLOCK_EPOCH_MS give one: on a scaled clock each process would otherwise count cluster
# time from its own start (and refuses to start); at scale 1 the epoch changes nothing.
# Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p dispatch-server --bin dispatch-server
bin=${CARGO_TARGET_DIR:-target}/release/dispatch-server
peers=(--intake 127.0.0.1:50051 --geo-router 127.0.0.1:50052 --district 127.0.0.1:50053
       --case-squad 127.0.0.1:50054 --notification 127.0.0.1:50055)
clock=()
if [[ -z "${DISPATCH_CLOCK_EPOCH_MS:-}" && " $* " != *" --clock-epoch-ms"* ]]; then
  clock=(--clock-epoch-ms "$(date +%s%3N)")  # GNU date: ms since the Unix epoch
  echo "cluster clock epoch ${clock[1]} ms"
fi
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for svc in geo-router:50052 notification:50055 case-squad:50054 district:50053 intake:50051; do
  name=${svc%%:*}; port=${svc##*:}
  "$bin" run "$name" --listen "127.0.0.1:$port" "${peers[@]}" "${clock[@]}" "$@" &
  pids+=($!)
done
echo "five services started (pids ${pids[*]}); Ctrl-C to stop"
wait
