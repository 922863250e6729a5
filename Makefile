# Used by people and by .ci/run alike.
.PHONY: lint test bench run run-dongguan

# Lints: formatting and clippy with warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The test command of the README.
test:
	cargo test --workspace

bench:
	cargo bench --workspace

# The main job: the load-test harness against an embedded cluster on the built-in map.
run:
	cargo run --release -p dispatch-loadtest -- run loadtest/scenarios/builtin-peak.toml --json target/builtin-peak.json

# The real Dongguan map (needs ../shared/data beside the clone).
run-dongguan:
	cargo run --release -p dispatch-loadtest -- run loadtest/scenarios/dongguan-peak.toml --json target/dongguan-peak.json
