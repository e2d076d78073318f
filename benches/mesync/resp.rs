//! A minimal client of redis's wire protocol (RESP2) over one blocking
//! `TcpStream`: commands are encoded as arrays of bulk strings, replies are
//! parsed into [`Reply`]. Enough for XADD, XREADGROUP and XACK with
//! pipelining; a crate would bring a connection pool and async runtime the
//! benchmark does not want between its clock and the socket.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One reply; `Nil` is RESP's null bulk string or null array.
#[derive(Debug)]
pub enum Reply {
    /// A simple string such as `OK`; its text is never needed here.
    Status,
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    Nil,
}

/// Appends one command to `out`, so several can be written at once.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn connect(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        // A reply that never comes is a dead reference, not a hung benchmark.
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Writes already encoded commands.
    pub fn send(&mut self, encoded: &[u8]) -> io::Result<()> {
        self.writer.write_all(encoded)
    }

    pub fn send_command(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut out = Vec::new();
        encode(&mut out, args);
        self.send(&out)
    }

    /// One command and its reply; an error reply becomes an `Err`.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.send_command(args)?;
        match self.read()? {
            Reply::Error(e) => Err(io::Error::other(format!(
                "redis refused {}: {e}",
                String::from_utf8_lossy(args[0])
            ))),
            reply => Ok(reply),
        }
    }

    pub fn read(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader)
    }
}

fn read_reply(r: &mut BufReader<TcpStream>) -> io::Result<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "redis closed the connection",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| io::Error::other(format!("bad RESP line {line:?}")))
    };
    Ok(match kind {
        "+" => Reply::Status,
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Nil,
            Ok(len) => {
                let mut buf = vec![0; len + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(len);
                Reply::Bulk(buf)
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Nil,
            Ok(n) => Reply::Array((0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?),
        },
        _ => return Err(io::Error::other(format!("bad RESP line {line:?}"))),
    })
}

impl Reply {
    /// The bulk string at `path` inside nested arrays, e.g. the first
    /// entry's id of an XREADGROUP reply.
    pub fn bulk_at(&self, path: &[usize]) -> Option<&[u8]> {
        let mut at = self;
        for &i in path {
            match at {
                Reply::Array(items) => at = items.get(i)?,
                _ => return None,
            }
        }
        match at {
            Reply::Bulk(b) => Some(b),
            _ => None,
        }
    }
}
