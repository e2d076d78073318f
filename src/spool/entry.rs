//! Reading a file someone else put into a queue, without trusting it.
//!
//! Any program may write into outbox/, so an entry may be a directory, a
//! FIFO, a device, a symlink, an unreadable or a sparse file of any size.
//! [`read_entry`] never follows a link (`O_NOFOLLOW`), never blocks on a FIFO
//! (`O_NONBLOCK`, then `fstat` before any read), and never reads more than
//! the size limit plus one byte, so no entry can block, exhaust or mislead
//! the sender. What it cannot read comes back as a reason to move it aside.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What one entry of a queue holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// Removed meanwhile: nothing to do.
    Gone,
    Bytes(Vec<u8>),
    /// Never a message as it is; the reason says why.
    Refused(String),
}

/// Reads the regular file `path` if it holds at most `max_bytes` bytes.
pub fn read_entry(path: &Path, max_bytes: u64) -> Entry {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Entry::Gone,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Entry::Refused("a symbolic link; links are never followed".into())
        }
        Err(e) => return Entry::Refused(format!("cannot be opened: {e}")),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Entry::Refused(format!("cannot be inspected: {e}")),
    };
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Entry::Refused(format!("{what}, not a message file"));
    }
    if meta.len() > max_bytes {
        return Entry::Refused(too_big(meta.len(), max_bytes));
    }
    // The file may grow after the fstat: read one byte past the limit at most.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    if let Err(e) = file.take(max_bytes + 1).read_to_end(&mut bytes) {
        return Entry::Refused(format!("cannot be read: {e}"));
    }
    if bytes.len() as u64 > max_bytes {
        return Entry::Refused(too_big(bytes.len() as u64, max_bytes));
    }
    Entry::Bytes(bytes)
}

fn too_big(len: u64, max: u64) -> String {
    format!("{len} bytes, over max_message_bytes ({max}); not read")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(e: Entry) -> String {
        match e {
            Entry::Refused(why) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn hostile_entries_are_refused_without_reading_them() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("ok.json"), b"{}").unwrap();
        assert_eq!(
            read_entry(&d.join("ok.json"), 10),
            Entry::Bytes(b"{}".to_vec())
        );
        assert_eq!(read_entry(&d.join("missing.json"), 10), Entry::Gone);

        std::fs::create_dir(d.join("dir.json")).unwrap();
        assert!(refused(read_entry(&d.join("dir.json"), 10)).contains("directory"));

        let fifo = std::ffi::CString::new(d.join("fifo.json").to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(refused(read_entry(&d.join("fifo.json"), 10)).contains("FIFO"));

        std::os::unix::fs::symlink(d.join("ok.json"), d.join("link.json")).unwrap();
        assert!(refused(read_entry(&d.join("link.json"), 10)).contains("symbolic link"));

        let sparse = std::fs::File::create(d.join("sparse.json")).unwrap();
        sparse.set_len(1 << 40).unwrap();
        assert!(refused(read_entry(&d.join("sparse.json"), 1 << 20)).contains("over max"));
    }
}
