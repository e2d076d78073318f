//! The hub's HTTP API, tested against a real `mesync serve` on the file store;
//! the tests are in `suites/hub_api.rs`, and `hub_api_on_nats.rs` runs them
//! with the hub on NATS JetStream.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;
#[path = "suites/hub_api.rs"]
mod suite;
