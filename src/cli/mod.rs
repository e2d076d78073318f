//! The command line: argument definitions and dispatch to one module per command.
//!
//! Parsing is separate from running; each command returns `anyhow::Result`,
//! and [`UsageError`] marks the failures that are the user's input (exit 2).
//! The flags of the settings are not written here: [`flags`] generates them
//! from the settings table. Output into a closed pipe is not an error
//! ([`is_broken_pipe`]): `mesync list inbox | head -1` ends quietly.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{ConfigError, Overrides, Settings};

mod check;
mod flags;
mod list;
mod logging;
mod manual;
mod queue;
mod remote;
mod send;
mod serve;
mod signals;
mod status;
mod table;
mod token;

/// Bad usage or bad input: exit code 2, one clear line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Whether `err` is a write into a closed pipe (the reader of our output
/// has gone, as `head` does): the command then ends quietly, with success.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

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
    #[command(subcommand)]
    pub command: Command,
    /// The settings given as flags (generated from the settings table).
    #[arg(skip)]
    pub overrides: Overrides,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub
    #[command(
        after_help = "Examples:\n  mesync serve --bind 127.0.0.1:8080 --data-dir /var/lib/mesync\n  mesync serve --bind 127.0.0.1:0    # any free port; the first line of output names it"
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
    /// Manage the hub's credentials in tokens_file (host, read, admin)
    #[command(
        after_help = "Examples:\n  MESYNC_TOKENS_FILE=/etc/mesync/tokens.toml mesync token add --host web-1 --label 'web 1'\n  mesync token add --role read\n  mesync token list\n  mesync token remove 3f9a2c1d"
    )]
    Token(TokenArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  mesync completions bash > /usr/share/bash-completion/completions/mesync\n  mesync completions zsh > /usr/local/share/zsh/site-functions/_mesync\n  mesync completions fish > ~/.config/fish/completions/mesync.fish"
    )]
    Completions(CompletionsArgs),
    /// Print the manual page (roff)
    #[command(
        after_help = "Examples:\n  mesync man | man -l -\n  mesync man > /usr/local/share/man/man1/mesync.1"
    )]
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Start even if a segment of the data dir is missing or damaged, and
    /// log exactly what is lost (without it the hub refuses to start)
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a credential: print it once, store only its digest
    Add {
        /// A host credential for this host id: it posts as that host and reads only its queue
        #[arg(long, value_name = "HOST", conflicts_with = "role")]
        host: Option<String>,
        /// A read credential (every GET, as a watcher) or an admin one (everything)
        #[arg(long, value_enum)]
        role: Option<TokenRole>,
        /// A note for `token list`
        #[arg(long, default_value = "", value_name = "TEXT")]
        label: String,
    },
    /// List the credentials (never their secrets)
    List,
    /// Revoke a credential by the id `token list` shows
    Remove {
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenRole {
    Read,
    Admin,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Also run the hub in this process, and point the daemon at it
    #[arg(long)]
    pub with_hub: bool,
    /// With --with-hub: start the hub even if a segment of its data dir is
    /// missing or damaged, and log exactly what is lost (as `serve --repair`)
    #[arg(long, requires = "with_hub")]
    pub repair: bool,
    /// One outbox pass and one inbox pull, then exit
    #[arg(long)]
    pub once: bool,
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

#[derive(Debug, Clone, Copy)]
pub enum FlushQueue {
    Sent,
    Failed,
    Inbox,
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    /// The queue to empty
    #[arg(value_parser = flush_queue, value_name = "sent|failed|inbox")]
    pub queue: FlushQueue,
}

/// The queue `flush` empties. Parsed by hand: for a queue it refuses, clap
/// would suggest the nearest one it takes ("outbox" -> "inbox"), and
/// `flush inbox` deletes what was received.
fn flush_queue(text: &str) -> Result<FlushQueue, String> {
    match text {
        "sent" => Ok(FlushQueue::Sent),
        "failed" => Ok(FlushQueue::Failed),
        "inbox" => Ok(FlushQueue::Inbox),
        "outbox" => Err("outbox/ is not flushed: its files are waiting to be sent \
             (`mesync list outbox` shows them; remove one by hand if it must not go)"
            .into()),
        _ => Err("flush empties sent, failed or inbox".into()),
    }
}

/// The command line as clap sees it: the commands above plus the flags of the settings.
pub fn command() -> clap::Command {
    flags::add(Cli::command())
}

/// Parses the process's arguments; exits with clap's message on bad usage.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.overrides = flags::overrides(&matches);
    cli
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // These describe the command line; they need no settings.
    match &cli.command {
        Command::Completions(a) => return manual::completions(a.shell),
        Command::Man => return manual::man(),
        _ => {}
    }
    let mut settings = Settings::load(&cli.overrides)?;
    if matches!(
        cli.command,
        Command::Status | Command::Hosts | Command::Watch | Command::Send(_)
    ) {
        remote::find_daemon_hub(&mut settings);
    }
    let log = logging::init(settings.log_format, &settings.log_filter);
    let reload = || signals::Reload::new(cli.overrides.clone(), log.clone());
    match cli.command {
        Command::Serve(a) => serve::serve(&settings, a, reload()).await,
        Command::Start(a) => serve::start(&settings, a, reload()).await,
        Command::Send(a) => send::run(&settings, a).await,
        Command::List(a) => list::run(&settings, a),
        Command::Retry(a) => queue::retry(&settings, a),
        Command::Flush(a) => queue::flush(&settings, a),
        Command::Check(a) => check::run(&settings, a),
        Command::Status => status::run(&settings).await,
        Command::Hosts => remote::hosts(&settings).await,
        Command::Watch => remote::watch(&settings).await,
        Command::Token(a) => token::run(&settings, a),
        Command::Completions(_) | Command::Man => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Overrides {
        let matches = command().try_get_matches_from(args).unwrap();
        flags::overrides(&matches)
    }

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn typed_flags_override_and_others_do_not() {
        let o = parse(&["mesync", "--host-id", "a", "serve", "--bind", "127.0.0.1:0"]);
        assert_eq!(o.values.get("host_id").map(String::as_str), Some("a"));
        assert_eq!(
            o.values.get("bind").map(String::as_str),
            Some("127.0.0.1:0")
        );
        assert_eq!(o.values.len(), 2, "{o:?}");
        let o = parse(&[
            "mesync",
            "status",
            "--server-url",
            "http://h:1",
            "--base-dir",
            "/b",
        ]);
        assert_eq!(
            o.values.get("server_url").map(String::as_str),
            Some("http://h:1")
        );
        assert_eq!(o.base_dir, Some(PathBuf::from("/b")));
        let o = parse(&["mesync", "start", "--poll-interval", "90s", "--with-hub"]);
        assert_eq!(
            o.values.get("poll_interval").map(String::as_str),
            Some("90s")
        );
    }

    #[test]
    fn a_flag_is_refused_where_its_setting_is_not_used() {
        let err = command().try_get_matches_from(["mesync", "send", "t", "--bind", "x"]);
        assert!(err.is_err());
    }
}
