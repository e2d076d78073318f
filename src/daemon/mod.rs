//! The daemon (`mesync start`): sends outbox/, receives into inbox/, runs hooks.

use crate::config::Settings;

/// How `mesync start` was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub once: bool,
    pub with_hub: bool,
}

pub async fn run(settings: Settings, opts: Options) -> anyhow::Result<()> {
    let _ = (settings, opts);
    anyhow::bail!("the daemon is not built yet")
}
