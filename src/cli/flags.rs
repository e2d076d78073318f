//! The settings' command-line flags, generated from the settings table: each
//! key's `--flag` on the commands that use it, with its help text, its
//! variable (clap shows `[env: ...]`) and its default. Only values typed on
//! the command line count as flags here; the variables and config.toml are
//! read by `config`, so that every source is resolved in one place.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

use crate::config::keys::Flag;
use crate::config::{Key, Overrides, BASE_DIR_ENV, KEYS};

const BASE_DIR: &str = "base_dir";
/// Settings are listed after a command's own flags, in table order.
const FIRST_SETTING: usize = 100;

/// `cmd` (the root command) with every setting's flag added where it belongs.
pub fn add(cmd: Command) -> Command {
    let base_dir = Arg::new(BASE_DIR)
        .long("base-dir")
        .global(true)
        .value_name("DIR")
        .env(BASE_DIR_ENV)
        .hide_env_values(true)
        .display_order(FIRST_SETTING)
        .default_value("~/.daemon")
        .help("Base dir with config.toml, the queues and the hooks");
    let mut cmd = cmd.arg(base_dir);
    for (i, key) in KEYS.iter().enumerate() {
        let arg = arg(key).display_order(FIRST_SETTING + 1 + i);
        match key.flag {
            Flag::None => {}
            Flag::Global => cmd = cmd.arg(arg.global(true)),
            Flag::On(commands) => {
                for name in commands {
                    cmd = cmd.mut_subcommand(*name, |sub| sub.arg(arg.clone()));
                }
            }
        }
    }
    let unflagged = unflagged_help();
    let after = match cmd.get_after_help() {
        Some(text) => format!("{text}\n\n{unflagged}"),
        None => unflagged,
    };
    cmd.after_help(after)
}

fn arg(key: &'static Key) -> Arg {
    Arg::new(key.name)
        .long(key.flag_name())
        .value_name(key.value_name)
        .env(key.env)
        // The variable's name, not its value: a help text is often pasted.
        .hide_env_values(true)
        .default_value(key.default.shown())
        .help(key.help.trim())
}

/// The settings that have no flag, for the root's help.
fn unflagged_help() -> String {
    let mut text = String::from(
        "Every setting can also be set in <base dir>/config.toml; `mesync status` shows each value and its source.",
    );
    for key in KEYS.iter().filter(|k| matches!(k.flag, Flag::None)) {
        text.push_str(&format!(
            "\nWithout a flag: {} (variable {}): {}",
            key.name,
            key.env,
            key.help.trim()
        ));
    }
    text
}

/// The settings typed on this command line.
pub fn overrides(matches: &ArgMatches) -> Overrides {
    let sub = matches.subcommand().map(|(_, m)| m);
    let given = |id: &str| {
        [sub, Some(matches)]
            .into_iter()
            .flatten()
            .find_map(|m| typed(m, id))
    };
    let mut overrides = Overrides {
        base_dir: given(BASE_DIR).map(PathBuf::from),
        ..Overrides::default()
    };
    for key in KEYS {
        overrides.set(key.name, given(key.name));
    }
    overrides
}

/// The value of `id` in `m` if it was typed (not a variable, not the default).
fn typed(m: &ArgMatches, id: &str) -> Option<String> {
    if !m.ids().any(|i| i.as_str() == id) {
        return None;
    }
    if m.value_source(id) != Some(ValueSource::CommandLine) {
        return None;
    }
    m.try_get_one::<String>(id).ok().flatten().cloned()
}
