//! `mesync check`: validate message files exactly as the daemon reads `outbox/`.
//!
//! Lets a program's author test the files it will drop into `outbox/` before
//! they end up in `failed/`.

use std::io::Write;

use super::{CheckArgs, UsageError};
use crate::config::Settings;
use crate::message::{check_size, Draft, Fill, MessageError};

pub fn run(settings: &Settings, args: CheckArgs) -> anyhow::Result<()> {
    let fill = Fill {
        source: &settings.host_id,
    };
    let mut out = std::io::stdout().lock();
    let mut bad = 0;
    for path in &args.files {
        let verdict = std::fs::read(path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| {
                check_size(bytes.len(), settings.max_message_bytes).map_err(|e| e.to_string())?;
                let draft = Draft::from_json(&bytes).map_err(|e| e.to_string())?;
                let msg = draft
                    .complete(Some(&fill))
                    .map_err(|e| MessageError::from(e).to_string())?;
                msg.encode(settings.max_message_bytes)
                    .map_err(|e| e.to_string())?;
                Ok(msg)
            });
        match verdict {
            Ok(m) => writeln!(
                out,
                "ok    {}  (type {}, id {})",
                path.display(),
                m.kind,
                m.id
            )?,
            Err(e) => {
                bad += 1;
                writeln!(out, "bad   {}: {e}", path.display())?;
            }
        }
    }
    if bad > 0 {
        return Err(UsageError(format!(
            "{bad} of {} file(s) are not valid messages",
            args.files.len()
        ))
        .into());
    }
    Ok(())
}
