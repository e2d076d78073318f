//! `config.toml`: read once, checked against the settings table, with the
//! line and column of every value kept for error messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::keys::{self, Key};
use super::kinds::Toml;
use super::{ConfigError, Source};

/// The values of one config.toml, by key.
#[derive(Debug, Default)]
pub struct ConfigFile {
    path: PathBuf,
    text: String,
    values: BTreeMap<String, toml::Spanned<toml::Value>>,
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty one. Malformed TOML and
    /// unknown keys are errors naming the file, line and column.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(ConfigError::File {
                    file: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
        let values: BTreeMap<String, toml::Spanned<toml::Value>> =
            toml::from_str(&text).map_err(|e| {
                let (line, column) = line_column(&text, e.span().map_or(0, |s| s.start));
                ConfigError::Syntax {
                    file: path.to_path_buf(),
                    line,
                    column,
                    // One sentence: the parser's message may span lines.
                    reason: e.message().trim().lines().collect::<Vec<_>>().join(": "),
                }
            })?;
        let file = ConfigFile {
            path: path.to_path_buf(),
            text,
            values,
        };
        let unknown = file.values.iter().find(|(k, _)| keys::find(k).is_none());
        if let Some((name, value)) = unknown {
            return Err(ConfigError::Unknown {
                key: name.clone(),
                at: file.source_at(value.span().start),
            });
        }
        Ok(file)
    }

    /// The value of `key` as text, with its source; `None` when the file
    /// does not set it. A TOML type the key's kind does not take is an error.
    pub fn get(&self, key: &Key) -> Result<Option<(String, Source)>, ConfigError> {
        let Some(spanned) = self.values.get(key.name) else {
            return Ok(None);
        };
        let source = self.source_at(spanned.span().start);
        let text = match (spanned.get_ref(), key.toml) {
            (toml::Value::String(s), Toml::String | Toml::IntegerOrString) => s.clone(),
            (toml::Value::Integer(i), Toml::Integer | Toml::IntegerOrString) => i.to_string(),
            (other, _) => {
                return Err(ConfigError::Invalid {
                    key: key.name,
                    origin: source,
                    expected: key.expected,
                    got: format!("{} {other}", other.type_str()),
                })
            }
        };
        Ok(Some((text, source)))
    }

    fn source_at(&self, offset: usize) -> Source {
        let (line, _) = line_column(&self.text, offset);
        Source::File {
            path: self.path.clone(),
            line,
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        assert_eq!(line_column("a = 1\nbb = x\n", 11), (2, 6));
        assert_eq!(line_column("", 0), (1, 1));
        assert_eq!(line_column("é = 1", 4), (1, 4));
    }
}
