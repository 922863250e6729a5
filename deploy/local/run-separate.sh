#!/usr/bin/env bash
# Runs the five services as separate processes on loopback, each talking gRPC to the others.
# Usage: deploy/local/run-separate.sh [extra dispatch-server flags, e.g. --map F --population F]
# Ports: intake 50051, geo-router 50052, district 50053, case-squad 50054, notification 50055.
# Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p dispatch-server --bin dispatch-server
bin=target/release/dispatch-server
peers=(--intake 127.0.0.1:50051 --geo-router 127.0.0.1:50052 --district 127.0.0.1:50053
       --case-squad 127.0.0.1:50054 --notification 127.0.0.1:50055)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for svc in geo-router:50052 notification:50055 case-squad:50054 district:50053 intake:50051; do
  name=${svc%%:*}; port=${svc##*:}
  "$bin" run "$name" --listen "127.0.0.1:$port" "${peers[@]}" "$@" &
  pids+=($!)
done
echo "five services started (pids ${pids[*]}); Ctrl-C to stop"
wait
