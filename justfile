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

# a local cluster on loopback (a hub and three daemons): sends a broadcast and a
# targeted message, prints which inbox each reached and which hooks ran, stops all
e2e:
    cargo test --test e2e -- --nocapture

# several hubs on NATS JetStream on loopback: 3 NATS nodes, 2 hubs, 3 daemons;
# shows where messages landed and through which hub, then kills a hub and a
# NATS node while messages flow (docs/nats.md)
cluster:
    cargo test --test cluster -- --nocapture

# the benchmark, with redis-server and the disk's floor measured beside it
# in the same run (not part of cargo test; about 5 minutes; BENCHMARKS.md)
bench *ROWS:
    cargo bench --bench mesync -- {{ROWS}}

# a fast look: smaller sizes, 3 runs a row, targets not judged
bench-quick *ROWS:
    cargo bench --bench mesync -- --quick {{ROWS}}

# the chaos run: a hub and three daemons under load while one is killed (kill -9),
# frozen or cut off every few seconds; checks every message and hook at the end
# and fails on any loss or double (30 s of it is part of `cargo test`)
chaos MINUTES="20":
    MESYNC_CHAOS_SECONDS=$(( {{MINUTES}} * 60 )) cargo test --test chaos -- --nocapture
