//! `mesync token add|list|remove`: the hub's credentials in `tokens_file`.
//!
//! A new credential is printed once, alone on stdout (so a script can take
//! it), and only its digest is stored. A running hub picks the change up
//! within two seconds, or at once on SIGHUP.

use std::io::Write;
use std::path::PathBuf;

use super::{table, TokenAction, TokenArgs, TokenRole, UsageError};
use crate::config::Settings;
use crate::message::{now_rfc3339, validate_host_id};
use crate::tokens::{self, Entry, Role, TokensFile};

pub fn run(settings: &Settings, args: TokenArgs) -> anyhow::Result<()> {
    let path = settings.tokens_file.clone().ok_or_else(|| {
        UsageError(
            "set tokens_file (MESYNC_TOKENS_FILE or config.toml) to the hub's credentials file"
                .to_string(),
        )
    })?;
    match args.action {
        TokenAction::Add { host, role, label } => add(path, host, role, label),
        TokenAction::List => list(path),
        TokenAction::Remove { id } => remove(path, &id),
    }
}

fn add(
    path: PathBuf,
    host: Option<String>,
    role: Option<TokenRole>,
    label: String,
) -> anyhow::Result<()> {
    let role = match (&host, role) {
        (Some(h), _) => {
            validate_host_id("--host", h).map_err(|e| UsageError(e.to_string()))?;
            Role::Host
        }
        (None, Some(TokenRole::Read)) => Role::Read,
        (None, Some(TokenRole::Admin)) => Role::Admin,
        (None, None) => {
            return Err(UsageError(
                "say whose credential: --host HOST, --role read or --role admin".into(),
            )
            .into())
        }
    };
    let mut file = TokensFile::load(&path)?;
    let secret = tokens::new_secret()?;
    let id = tokens::new_id()?;
    file.tokens.push(Entry {
        id: id.clone(),
        role,
        host,
        label,
        created_at: now_rfc3339(),
        sha256: tokens::digest(&secret),
    });
    file.save(&path)?;
    writeln!(std::io::stdout(), "{secret}")?;
    eprintln!(
        "credential {id} stored in {} (its digest only): the secret above is shown only now",
        path.display()
    );
    Ok(())
}

fn list(path: PathBuf) -> anyhow::Result<()> {
    let file = TokensFile::load(&path)?;
    let rows: Vec<[String; 5]> = file
        .tokens
        .into_iter()
        .map(|t| {
            let role = match t.role {
                Role::Host => "host",
                Role::Read => "read",
                Role::Admin => "admin",
            };
            [
                t.id,
                role.to_string(),
                t.host.unwrap_or_default(),
                t.label,
                t.created_at,
            ]
        })
        .collect();
    let header = ["ID", "ROLE", "HOST", "LABEL", "CREATED"];
    table::write(&mut std::io::stdout().lock(), header, &rows)?;
    Ok(())
}

fn remove(path: PathBuf, id: &str) -> anyhow::Result<()> {
    let mut file = TokensFile::load(&path)?;
    let before = file.tokens.len();
    file.tokens.retain(|t| t.id != id);
    if file.tokens.len() == before {
        return Err(UsageError(format!("no credential {id} in {}", path.display())).into());
    }
    file.save(&path)?;
    eprintln!("credential {id} removed; a running hub refuses it within 2 s");
    Ok(())
}
