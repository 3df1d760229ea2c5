//! `cargo xtask command-table`: asks Debian's redis-server 7.0.15 for its `COMMAND` reply and
//! writes the key specifications of every command and subcommand to
//! `crates/amber-server/src/commands/redis_key_specs.txt`, the table Amber's key extraction,
//! ACL key permissions and `COMMAND INFO` read. Run it again only to follow a new Redis.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use amber_protocol::Frame;
use anyhow::{Context, Result, bail};

use crate::tools::workspace_root;

/// Where the table goes, from the workspace root.
const TABLE: &str = "crates/amber-server/src/commands/redis_key_specs.txt";

/// Writes the table from a redis-server started for the purpose.
pub(crate) fn run() -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("amber-command-table-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let redis = crate::bench::start("redis", Path::new("/usr/bin/redis-server"), &scratch)?;
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port))?;
    stream.write_all(b"*1\r\n$7\r\nCOMMAND\r\n")?;
    let reply = read_frame(&mut stream)?;
    let Frame::Array(commands) = reply else {
        bail!("COMMAND answered {reply:?}");
    };
    let mut lines = Vec::new();
    for command in &commands {
        collect(command, &mut lines)?;
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::from(
        "# Key specifications of every Redis 7.0.15 command and subcommand, from its COMMAND reply\n\
         # (cargo xtask command-table). One line per specification, in the command's order:\n\
         # name <TAB> flags <TAB> begin_search <TAB> find_keys <TAB> notes\n",
    );
    for (name, specs) in lines {
        for spec in specs {
            writeln!(text, "{name}\t{spec}")?;
        }
    }
    let path = workspace_root().join(TABLE);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    drop(redis);
    let _ = std::fs::remove_dir_all(&scratch);
    println!("wrote {}", path.display());
    Ok(())
}

fn read_frame(stream: &mut TcpStream) -> Result<Frame> {
    let mut input = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if let Some((frame, _)) = Frame::parse(&input)? {
            return Ok(frame);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("redis-server closed the connection");
        }
        input.extend_from_slice(&chunk[..n]);
    }
}

/// One command's entry (and its subcommands'): its name and its specifications' lines.
fn collect(entry: &Frame, lines: &mut Vec<(String, Vec<String>)>) -> Result<()> {
    let Frame::Array(fields) = entry else {
        bail!("a COMMAND entry is {entry:?}");
    };
    let name = text(&fields[0])?;
    let specs = match fields.get(8) {
        Some(Frame::Array(specs)) => specs.iter().map(spec_line).collect::<Result<_>>()?,
        _ => Vec::new(),
    };
    if !specs.is_empty() {
        lines.push((name, specs));
    }
    if let Some(Frame::Array(subcommands)) = fields.get(9) {
        for subcommand in subcommands {
            collect(subcommand, lines)?;
        }
    }
    Ok(())
}

fn text(frame: &Frame) -> Result<String> {
    match frame {
        Frame::Bulk(bytes) | Frame::Simple(bytes) => Ok(String::from_utf8(bytes.clone())?),
        Frame::Integer(n) => Ok(n.to_string()),
        other => bail!("expected text, got {other:?}"),
    }
}

/// A flat RESP2 map's value for `key`.
fn field<'a>(pairs: &'a [Frame], key: &str) -> Option<&'a Frame> {
    pairs
        .chunks(2)
        .find(|pair| text(&pair[0]).is_ok_and(|k| k == key))
        .and_then(|pair| pair.get(1))
}

/// `flags <TAB> begin <TAB> find <TAB> notes` of one key specification.
fn spec_line(spec: &Frame) -> Result<String> {
    let Frame::Array(pairs) = spec else {
        bail!("a key spec is {spec:?}");
    };
    let flags = match field(pairs, "flags") {
        Some(Frame::Array(flags)) => flags.iter().map(text).collect::<Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    let notes = field(pairs, "notes")
        .map(text)
        .transpose()?
        .unwrap_or_default();
    Ok(format!(
        "{}\t{}\t{}\t{}",
        flags.join(","),
        search(field(pairs, "begin_search"))?,
        search(field(pairs, "find_keys"))?,
        notes
    ))
}

/// `type value...` of a begin_search or find_keys: `index 1`, `keyword STREAMS 1`,
/// `range 0 1 0`, `keynum 0 1 1`, `unknown`.
fn search(frame: Option<&Frame>) -> Result<String> {
    let Some(Frame::Array(pairs)) = frame else {
        bail!("a key spec without its search: {frame:?}");
    };
    let kind = field(pairs, "type")
        .map(text)
        .transpose()?
        .unwrap_or_default();
    let mut words = vec![kind];
    if let Some(Frame::Array(spec)) = field(pairs, "spec") {
        for pair in spec.chunks(2) {
            if let Some(value) = pair.get(1) {
                words.push(text(value)?);
            }
        }
    }
    Ok(words.join(" "))
}
