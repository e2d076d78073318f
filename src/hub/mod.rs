//! The hub (`mesync serve`): stores messages durably, fans them out to
//! per-host queues and pushes them over SSE until each host acks.

use crate::config::Settings;

/// Binds `settings.bind` and serves until SIGINT/SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let _ = settings;
    anyhow::bail!("the hub is not built yet")
}
