//! The hub's SSE endpoints, tested against a real `mesync serve` on NATS
//! JetStream (a `nats-server` of its own per hub); the tests are in
//! `suites/hub_stream.rs`, and `hub_stream.rs` runs them on the file store.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;
#[path = "suites/hub_stream.rs"]
mod suite;
