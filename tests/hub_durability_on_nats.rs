//! The hub's promises across crashes and restarts, tested against a real
//! `mesync serve` on NATS JetStream (a `nats-server` of its own per hub); the
//! tests are in `suites/hub_durability.rs`, and `hub_durability.rs` runs them
//! on the file store.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;
#[path = "suites/hub_durability.rs"]
mod suite;
