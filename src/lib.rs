//! mesync moves small JSON messages between machines through plain files and HTTP.
//!
//! One binary plays three roles: the hub (`hub`, `mesync serve`), the
//! per-machine daemon (`daemon`, `mesync start`) and the command line (`cli`).
//! All three stand on the same foundation: settings (`config`), the message
//! and its rules (`message`), the queue directories (`spool`), the wire types
//! (`api`) and the one hub client (`client`); `sd_notify` tells a service
//! manager when the hub or the daemon is ready and when it stops. `cli`, `hub` and `daemon` never
//! use each other, except `start --with-hub`, which runs `hub::serve`.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod hub;
pub mod message;
pub mod sd_notify;
pub mod spool;
pub mod tokens;

/// The version reported by `--version` and `/healthz`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
