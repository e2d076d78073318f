//! The hub's promises across crashes and restarts, tested against a real
//! `mesync serve` on the file store; the tests are in
//! `suites/hub_durability.rs`, and `hub_durability_on_nats.rs` runs them with
//! the hub on NATS JetStream.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;
#[path = "suites/hub_durability.rs"]
mod suite;
