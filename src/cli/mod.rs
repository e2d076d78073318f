//! The command line: argument definitions and dispatch to one module per command.
//!
//! Parsing is separate from running; each command returns `anyhow::Result`,
//! and [`UsageError`] marks the failures that are the user's input (exit 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{ConfigError, Overrides, Settings};

mod check;
mod list;
mod queue;
mod remote;
mod send;
mod status;

/// Bad usage or bad input: exit code 2, one clear line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error: 2 for bad input or settings, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() || err.downcast_ref::<ConfigError>().is_some() {
        2
    } else {
        1
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "mesync",
    version,
    about = "Move small JSON messages between machines through plain files and HTTP",
    after_help = "Examples:\n  mesync start --with-hub\n  mesync send task.event --payload '{\"job\":\"build\"}'\n  mesync list inbox"
)]
pub struct Cli {
    /// Base dir with config.toml and the queues [env: MESYNC_BASE_DIR] [default: ~/.daemon]
    #[arg(long, global = true, value_name = "DIR")]
    pub base_dir: Option<PathBuf>,
    /// Hub URL [env: MESYNC_SERVER_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub server_url: Option<String>,
    /// This machine's host id [env: MESYNC_HOST_ID]
    #[arg(long, global = true, value_name = "HOST")]
    pub host_id: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub
    #[command(
        after_help = "Example:\n  mesync serve --bind 127.0.0.1:8080 --data-dir /var/lib/mesync"
    )]
    Serve(ServeArgs),
    /// Run the daemon for this machine
    #[command(
        after_help = "Examples:\n  mesync start\n  mesync start --with-hub\n  mesync start --once"
    )]
    Start(StartArgs),
    /// Queue a message in outbox/ (works without daemon or hub)
    #[command(
        after_help = "Examples:\n  mesync send task.event --payload '{\"job\":\"build\"}'\n  mesync send notify.alert --priority high --target machine-2 --payload '{\"msg\":\"disk full\"}'\n  echo '{\"n\":1}' | mesync send metrics.sample --payload -"
    )]
    Send(SendArgs),
    /// List the messages in a queue
    #[command(after_help = "Examples:\n  mesync list inbox\n  mesync list failed --json | jq .id")]
    List(ListArgs),
    /// Move messages from failed/ back to outbox/ (all of them when no id is given)
    #[command(
        after_help = "Examples:\n  mesync retry\n  mesync retry 0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59"
    )]
    Retry(RetryArgs),
    /// Delete every message in sent/, failed/ or inbox/
    #[command(after_help = "Example:\n  mesync flush sent")]
    Flush(FlushArgs),
    /// Show settings and their sources, the daemon lock, the hub and queue depths
    #[command(after_help = "Example:\n  MESYNC_SERVER_URL=http://hub:8080 mesync status")]
    Status,
    /// Check message files as the daemon would read them from outbox/
    #[command(after_help = "Example:\n  mesync check my-message.json fixtures/valid/*.json")]
    Check(CheckArgs),
    /// List the hosts registered at the hub
    #[command(after_help = "Example:\n  mesync hosts")]
    Hosts,
    /// Follow this host's messages live (nothing is acked)
    #[command(after_help = "Example:\n  mesync watch --host-id machine-2")]
    Watch,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [env: MESYNC_BIND] [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Where the hub keeps its files [env: MESYNC_DATA_DIR] [default: <base dir>/hub]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Also run the hub in this process, and point the daemon at it
    #[arg(long)]
    pub with_hub: bool,
    /// One outbox pass and one inbox pull, then exit
    #[arg(long)]
    pub once: bool,
    /// Hub address with --with-hub [env: MESYNC_BIND]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Hub data dir with --with-hub [env: MESYNC_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Message type: names the hook run on arrival (e.g. task.event)
    #[arg(value_name = "TYPE")]
    pub kind: String,
    /// Payload as inline JSON, or `-` to read it from stdin
    #[arg(long, value_name = "JSON", conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// Read the JSON payload from a file
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// high, normal or low
    #[arg(long, default_value = "normal", value_name = "P")]
    pub priority: String,
    /// Send only to this host (default: every other host)
    #[arg(long, value_name = "HOST")]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListQueue {
    Outbox,
    Inbox,
    Sent,
    Failed,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(value_enum)]
    pub queue: ListQueue,
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Message ids (or file names) in failed/
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Message files to check
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FlushQueue {
    Sent,
    Failed,
    Inbox,
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    #[arg(value_enum)]
    pub queue: FlushQueue,
}

impl Cli {
    /// The settings, with this command line's flags on top.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut o = Overrides {
            base_dir: self.base_dir.clone(),
            ..Default::default()
        };
        o.set("server_url", self.server_url.clone());
        o.set("host_id", self.host_id.clone());
        let (bind, data_dir) = match &self.command {
            Command::Serve(a) => (a.bind.clone(), a.data_dir.clone()),
            Command::Start(a) => (a.bind.clone(), a.data_dir.clone()),
            _ => (None, None),
        };
        o.set("bind", bind);
        o.set("data_dir", data_dir);
        Settings::load(&o)
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings()?;
    match cli.command {
        Command::Serve(_) => crate::hub::run(settings).await,
        Command::Start(a) => {
            let opts = crate::daemon::Options {
                once: a.once,
                with_hub: a.with_hub,
            };
            crate::daemon::run(settings, opts).await
        }
        Command::Send(a) => send::run(&settings, a),
        Command::List(a) => list::run(&settings, a),
        Command::Retry(a) => queue::retry(&settings, a),
        Command::Flush(a) => queue::flush(&settings, a),
        Command::Check(a) => check::run(&settings, a),
        Command::Status => status::run(&settings).await,
        Command::Hosts => remote::hosts(&settings).await,
        Command::Watch => remote::watch(&settings).await,
    }
}
