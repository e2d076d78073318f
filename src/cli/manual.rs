//! `mesync completions` and `mesync man`: the command line describing
//! itself, generated from the same definitions as `--help` (with every
//! setting's flag), so neither can drift from the binary.
//!
//! Neither reads the settings: they work on a machine where mesync is not
//! set up yet (a package build, a fresh install).

use std::io::Write;

use clap_complete::Shell;

/// Prints the completion script for `shell`.
pub fn completions(shell: Shell) -> anyhow::Result<()> {
    let mut cmd = super::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mesync", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}

/// Prints one man page (section 1): the whole command, then a subsection
/// per subcommand with its synopsis, options and examples (one page to
/// install, rather than a page per subcommand).
pub fn man() -> anyhow::Result<()> {
    let cmd = super::command();
    let page = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    writeln!(out, ".SH COMMANDS")?;
    // In the order they are declared (adding the settings' flags reorders
    // the built command's list).
    let declared = <super::Cli as clap::CommandFactory>::command();
    for name in declared.get_subcommands().map(|s| s.get_name()) {
        if let Some(sub) = cmd.find_subcommand(name) {
            out.extend_from_slice(&subcommand(sub)?);
        }
    }
    page.render_extra_section(&mut out)?;
    page.render_version_section(&mut out)?;
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}

/// One subcommand as a subsection: its sections become paragraphs under
/// its name.
fn subcommand(sub: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let name = format!("mesync {}", sub.get_name());
    let page = clap_mangen::Man::new(sub.clone().name(&name).bin_name(&name));
    let mut text = Vec::new();
    page.render_synopsis_section(&mut text)?;
    page.render_options_section(&mut text)?;
    text.extend_from_slice(b".PP\n");
    page.render_extra_section(&mut text)?;
    let text = String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.starts_with(".SH"))
        .collect::<Vec<_>>()
        .join("\n");
    let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
    Ok(format!(".SS \"{name}\"\n{about}\n.PP\n{text}\n").into_bytes())
}
