//! The credentials file (`tokens_file`): what `mesync token` writes and the
//! hub reads.
//!
//! Each entry is a role (`host` for one host id, `read`, `admin`), a label,
//! its creation time and the SHA-256 digest of the secret, never the secret
//! itself: the secret is printed once when it is made. The file is TOML
//! (`[[token]]` tables), mode 0600, replaced atomically so a hub that
//! reloads it never sees half a file.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a credential may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One host: post as it, stream, long-poll and ack its own queue, list hosts.
    Host,
    /// Every GET, as a watcher; never registers, posts, acks or deletes.
    Read,
    /// Everything.
    Admin,
}

/// One credential as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// A short name for `mesync token remove` (not secret).
    pub id: String,
    pub role: Role,
    /// The host a `host` credential speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default)]
    pub label: String,
    pub created_at: String,
    /// Lower-case hex SHA-256 of the secret.
    pub sha256: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokensFile {
    #[serde(default, rename = "token")]
    pub tokens: Vec<Entry>,
}

impl TokensFile {
    /// Reads `path`; a missing file holds no credentials.
    pub fn load(path: &Path) -> anyhow::Result<TokensFile> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TokensFile::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: TokensFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for t in &file.tokens {
            let hex = t.sha256.len() == 64 && t.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                anyhow::bail!(
                    "{}: token {} has no valid sha256 digest",
                    path.display(),
                    t.id
                );
            }
            if (t.role == Role::Host) != t.host.is_some() {
                anyhow::bail!(
                    "{}: token {}: a host credential names its host, and only it does",
                    path.display(),
                    t.id
                );
            }
        }
        Ok(file)
    }

    /// Replaces `path` atomically with these credentials, mode 0600.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(self).context("encoding the tokens file")?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let header = "# mesync credentials: digests only (mesync token add|list|remove)\n";
        let written = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(header.as_bytes())?;
                f.write_all(text.as_bytes())?;
                f.sync_all()
            });
        written
            .and_then(|()| fs::rename(&tmp, path))
            .with_context(|| format!("writing {}", path.display()))?;
        if let Some(dir) = dir {
            crate::spool::sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The lower-case hex SHA-256 of a secret.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether two digests are equal, without an early exit (so timing does not
/// tell how much of a guess was right).
pub fn same_digest(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new secret: 256 random bits from the kernel, as text.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(format!("mesync_{}", hex(&bytes)))
}

/// A short random id for an entry.
pub fn new_id() -> anyhow::Result<String> {
    let secret = new_secret()?;
    Ok(secret["mesync_".len()..]
        .chars()
        .take(8)
        .collect::<String>())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same_digest(&digest("x"), &digest("x")));
        assert!(!same_digest(&digest("x"), &digest("y")));
    }

    #[test]
    fn saved_file_reloads_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let file = TokensFile {
            tokens: vec![Entry {
                id: "a1".into(),
                role: Role::Host,
                host: Some("web-1".into()),
                label: "web".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
                sha256: digest("s"),
            }],
        };
        file.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = TokensFile::load(&path).unwrap();
        assert_eq!(back.tokens[0].host.as_deref(), Some("web-1"));
        assert!(new_secret().unwrap().len() > 64);
    }
}
