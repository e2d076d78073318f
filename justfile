# Optional shortcuts; each recipe is a plain cargo command you can run without just.

# the whole test suite (same as .ci/run)
test:
    cargo test

# formatting and lints, as required before every commit
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# run mesync on this machine: hub and daemon in one process
run:
    cargo run --release -- start --with-hub

# a local cluster (a hub and three daemons) showing broadcast and targeted delivery
e2e:
    cargo test --test e2e -- --nocapture

# the benchmark of SPEC §9 (not part of cargo test)
bench:
    cargo bench --bench mesync
