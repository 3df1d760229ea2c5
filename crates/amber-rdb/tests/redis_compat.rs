//! Files written by `RdbWriter` are accepted by Redis 7.0's own tools: `redis-check-rdb`
//! passes them, and `redis-server` loads them with the dataset's exact `DEBUG DIGEST` and
//! the encodings Redis itself chose for that data.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amber_protocol::Frame;
use amber_rdb::{Item, RdbReader, RdbWriter, WriteOptions};
use support::{Json, fixtures, parse_json};

fn redis_binary(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{name} missing: apt-get install -y redis-server redis-tools (cargo xtask test does this)"
    );
    path
}

struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis(dir: &Path, dbfilename: &str) -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(redis_binary("redis-server"))
        .args([
            "--port",
            &port.to_string(),
            "--dir",
            dir.to_str().unwrap(),
            "--dbfilename",
            dbfilename,
        ])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
            "--logfile",
            "redis.log",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut redis = Redis { child, port };
    loop {
        // Wait until loading finished: PING replies -LOADING while it loads.
        if try_command(port, &["PING"]) == Some(Frame::Simple(b"PONG".to_vec())) {
            return redis;
        }
        if let Ok(Some(status)) = redis.child.try_wait() {
            let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
            panic!("redis-server exited with {status}: {log}");
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
        redis.port = port;
    }
}

fn command(redis: &Redis, args: &[&str]) -> Frame {
    try_command(redis.port, args).expect("a reply from redis-server")
}

/// Sends one command on a new connection; `None` if the connection fails or closes before a
/// whole reply (a server still starting, or another process briefly on the port).
fn try_command(port: u16, args: &[&str]) -> Option<Frame> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut wire = bytes::BytesMut::new();
    Frame::command(args).encode(&mut wire);
    stream.write_all(&wire).ok()?;
    let mut buffer = Vec::new();
    loop {
        if let Some((frame, _)) = Frame::parse(&buffer).ok()? {
            return Some(frame);
        }
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn rewrite(source: &Path, target: &Path, options: WriteOptions) {
    let bytes = std::fs::read(source).unwrap();
    let mut reader = RdbReader::new(bytes.as_slice()).unwrap();
    let mut entries: Vec<amber_rdb::Entry> = Vec::new();
    while let Some(item) = reader.next_item().unwrap() {
        if let Item::Entry(entry) = item {
            entries.push(entry);
        }
    }
    let file = std::fs::File::create(target).unwrap();
    let mut writer = RdbWriter::new(std::io::BufWriter::new(file), options).unwrap();
    writer
        .standard_aux(1_700_000_000, 1_000_000, false)
        .unwrap();
    let mut dbs: Vec<u64> = entries.iter().map(|e| e.db).collect();
    dbs.dedup();
    for db in dbs {
        let keys: Vec<&amber_rdb::Entry> = entries.iter().filter(|e| e.db == db).collect();
        let expires = keys.iter().filter(|e| e.expire_at_ms.is_some()).count();
        writer
            .select_db(db, keys.len() as u64, expires as u64)
            .unwrap();
        for entry in keys {
            writer
                .entry(&entry.key, &entry.value, entry.expire_at_ms)
                .unwrap();
        }
    }
    writer.finish().unwrap();
}

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amber-rdb-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check_against_manifest(fixture: &str, options: WriteOptions, label: &str) {
    let dir = scratch(label);
    rewrite(
        &fixtures().join("redis-7.0").join(fixture),
        &dir.join("amber.rdb"),
        options,
    );

    let check = Command::new(redis_binary("redis-check-rdb"))
        .arg(dir.join("amber.rdb"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "redis-check-rdb rejected the file:\n{report}"
    );
    assert!(report.contains("RDB looks OK"), "{report}");

    let manifest =
        parse_json(&std::fs::read_to_string(fixtures().join("redis-7.0/manifest.json")).unwrap());
    let expected = manifest
        .get("fixtures")
        .and_then(|f| f.get(fixture))
        .unwrap();
    let redis = start_redis(&dir, "amber.rdb");
    let digest = command(&redis, &["DEBUG", "DIGEST"]);
    let want = expected.get("digest").and_then(Json::as_str).unwrap();
    assert_eq!(
        digest,
        Frame::Simple(want.as_bytes().to_vec()),
        "dataset digest after Redis loaded our file"
    );
    let Some(Json::Object(dbs)) = expected.get("dbs") else {
        panic!()
    };
    for (db, keys) in dbs {
        let Json::Array(keys) = keys else { panic!() };
        for key in keys {
            let name = key.get("key").and_then(Json::as_str).unwrap();
            let encoding = key.get("encoding").and_then(Json::as_str).unwrap();
            let mut stream = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
            let mut wire = bytes::BytesMut::new();
            Frame::command(["SELECT", db]).encode(&mut wire);
            Frame::command(["OBJECT", "ENCODING", name]).encode(&mut wire);
            stream.write_all(&wire).unwrap();
            let mut buffer = Vec::new();
            let mut replies = Vec::new();
            while replies.len() < 2 {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).unwrap();
                buffer.extend_from_slice(&chunk[..n]);
                while let Some((frame, used)) = Frame::parse(&buffer).unwrap() {
                    buffer.drain(..used);
                    replies.push(frame);
                }
            }
            assert_eq!(
                replies[1],
                Frame::Bulk(encoding.as_bytes().to_vec()),
                "encoding of {name}"
            );
        }
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn redis_loads_our_files_with_the_same_digest_and_encodings() {
    check_against_manifest("encodings.rdb", WriteOptions::default(), "compressed");
}

#[test]
fn uncompressed_files_too() {
    let options = WriteOptions {
        compression: false,
        ..WriteOptions::default()
    };
    check_against_manifest("encodings-nocompress.rdb", options, "plain");
}

/// RDB 9 (Redis 5 and 6: ziplists, quicklists of ziplists) passes Redis 7.0's checker and
/// loads with the same digest, converted to the encodings Redis 7.0 uses.
#[test]
fn rdb_9_files_load_in_redis_too() {
    let options = WriteOptions {
        version: 9,
        ..WriteOptions::default()
    };
    check_against_manifest("encodings.rdb", options, "version-9");
}

/// Streams with consumer groups and pending entries, written back from what the reader
/// decoded, load in Redis with the fixture's digest, in RDB 10 and RDB 9 layouts.
#[test]
fn streams_we_write_load_in_redis() {
    check_against_manifest("stream.rdb", WriteOptions::default(), "stream");
    let version_9 = WriteOptions {
        version: 9,
        ..WriteOptions::default()
    };
    check_against_manifest("stream.rdb", version_9, "stream-9");
}
