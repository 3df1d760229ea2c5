//! Backups shipped to an S3-compatible bucket: a real `moto_server` (PyPI's `moto[server]`,
//! installed by `cargo xtask test`) on 127.0.0.1, the real server shipping to it, and the
//! `amber-backup` CLI listing, verifying and restoring from the bucket alone. Damage in the
//! bucket, a killed upload, wrong credentials and an unreachable endpoint are each shown to be
//! caught and reported while the server keeps serving.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ServerProcess, digest, info_field, wait_for};

const CREDENTIALS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "amber-test"),
    ("AWS_SECRET_ACCESS_KEY", "amber-test-secret"),
];
const BUCKET: &str = "amber-backups";

/// A moto S3 server on 127.0.0.1, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto; `auth_after` turns on its credential checks after that many requests.
    /// A port found free may be taken by another process before moto binds it (moto then
    /// exits, and whatever holds the port answered the probe): so moto must still run once
    /// the port answers, and the bucket's creation must succeed, or it starts again elsewhere.
    fn start(auth_after: Option<u32>) -> Moto {
        let mut last = String::new();
        for _ in 0..5 {
            let mut moto = Moto::spawn(auth_after);
            let deadline = Instant::now() + Duration::from_secs(30);
            while TcpStream::connect(("127.0.0.1", moto.port)).is_err() {
                assert!(Instant::now() < deadline, "moto_server did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(moto.child.try_wait(), Ok(None)) {
                last = format!("moto_server exited at start (port {})", moto.port);
                continue;
            }
            match moto.try_http("PUT", &format!("/{BUCKET}"), b"") {
                Ok(status) if status.starts_with("HTTP/1.1 200") => return moto,
                Ok(status) => last = format!("creating the bucket: {status}"),
                Err(error) => last = format!("creating the bucket: {error}"),
            }
        }
        panic!("moto_server did not start: {last}");
    }

    /// Spawns moto on a free port.
    fn spawn(auth_after: Option<u32>) -> Moto {
        let port = common::free_port();
        let mut command = Command::new("moto_server");
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(count) = auth_after {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", count.to_string());
        }
        let child = command.spawn().expect(
            "moto_server is installed (pip install 'moto[server]'; cargo xtask test does it)",
        );
        Moto { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A raw, unsigned request (moto accepts them): returns the status line.
    fn try_http(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(String::from_utf8_lossy(&response)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string())
    }

    /// The bucket, through object_store's S3 client with the test credentials.
    fn store(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(CREDENTIALS[0].1)
            .with_secret_access_key(CREDENTIALS[1].1)
            .build()
            .unwrap()
    }

    /// Flips one bit in the middle of an object, as rot in the store would.
    fn damage(&self, key: &str) {
        use object_store::ObjectStoreExt;
        let store = self.store();
        let path = object_store::path::Path::from(key);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut bytes = store
                .get(&path)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            store.put(&path, bytes.into()).await.unwrap();
        });
    }
}

fn remote(prefix: &str) -> String {
    format!("s3://{BUCKET}/{prefix}")
}

fn server_flags<'a>(backups: &'a str, remote: &'a str, endpoint: &'a str) -> Vec<&'a str> {
    vec![
        "--backup-dir",
        backups,
        "--backup-remote",
        remote,
        "--backup-s3-endpoint",
        endpoint,
        "--backup-s3-path-style",
        "yes",
        "--backup-ship-interval",
        "1",
        "--backup-interval",
        "0",
    ]
}

/// Runs the `amber-backup` CLI against the bucket, with the test credentials.
fn amber_backup(moto_endpoint: &str, remote: &str, args: &[&str]) -> Output {
    let tool = common::amber_binary().with_file_name("amber-backup");
    Command::new(tool)
        .args([
            "--remote-url",
            remote,
            "--s3-endpoint",
            moto_endpoint,
            "--s3-path-style",
        ])
        .args(args)
        .envs(CREDENTIALS.iter().copied())
        .output()
        .unwrap()
}

/// `amber-backup restore --from-remote ID --dir DIR`.
fn restore_from_bucket(endpoint: &str, remote: &str, id: &str, dir: &std::path::Path) -> Output {
    amber_backup(
        endpoint,
        remote,
        &[
            "restore",
            "--from-remote",
            id,
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
}

/// `amber-backup --key-file KEY restore --from-remote --at SECOND --dir DIR`.
fn restore_at(
    endpoint: &str,
    remote: &str,
    key: &str,
    second: u64,
    dir: &std::path::Path,
) -> Output {
    amber_backup(
        endpoint,
        remote,
        &[
            "--key-file",
            key,
            "restore",
            "--from-remote",
            "--at",
            &second.to_string(),
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn backup_now(client: &mut common::Client) -> String {
    match client.cmd(&["BACKUP", "NOW"]) {
        common::Frame::Simple(id) => String::from_utf8(id.to_vec()).unwrap(),
        other => panic!("BACKUP NOW: {other:?}"),
    }
}

fn wait_for_ship(client: &mut common::Client, status: &str) {
    wait_for(
        || info_field(client, "backup_last_ship_status") == status,
        &format!("a ship ending with {status}"),
    );
}

#[test]
fn the_server_ships_and_a_bare_machine_restores_the_exact_digest_from_the_bucket() {
    let moto = Moto::start(None);
    let endpoint = moto.endpoint();
    for aof in [false, true] {
        let prefix = if aof { "prod-aof" } else { "prod-rdb" };
        let remote = remote(prefix);
        let backups = common::temp_dir("s3-backups");
        let mut flags = server_flags(backups.to_str().unwrap(), &remote, &endpoint);
        if aof {
            flags.extend(["--appendonly", "yes"]);
        }
        let server = ServerProcess::amber_with_env(&flags, CREDENTIALS);
        let mut client = server.client();
        client.cmd(&["DEBUG", "POPULATE", "30000", "key", "200"]);
        client.cmd(&["HSET", "hash", "a", "1"]);
        client.cmd(&["SET", "ttl", "v", "EX", "100000"]);
        let expected = digest(&mut client);
        let id = backup_now(&mut client);
        wait_for_ship(&mut client, "ok");
        wait_for(
            || stdout(&amber_backup(&endpoint, &remote, &["list", "--remote"])).contains(&id),
            "the backup in the bucket",
        );
        assert!(
            server
                .log()
                .contains(&format!("Backups shipped to {remote}")),
            "{}",
            server.log()
        );

        let listed = amber_backup(&endpoint, &remote, &["list", "--remote"]);
        assert!(listed.status.success(), "{listed:?}");
        assert!(stdout(&listed).contains(&id), "{}", stdout(&listed));
        let verified = amber_backup(&endpoint, &remote, &["verify", "--remote", &id]);
        assert!(verified.status.success(), "{verified:?}");
        assert!(stdout(&verified).contains(&format!("{id}: OK")));

        // The machine is lost: nothing but the bucket is left.
        let data = server.kill9();
        std::fs::remove_dir_all(&data).unwrap();
        std::fs::remove_dir_all(&backups).unwrap();
        let restored = restore_from_bucket(&endpoint, &remote, &id, &data);
        assert!(restored.status.success(), "{restored:?}");
        let extra: &[&str] = if aof { &["--appendonly", "yes"] } else { &[] };
        let restarted = ServerProcess::amber_in(&data, extra);
        assert_eq!(digest(&mut restarted.client()), expected, "aof {aof}");
        assert!(
            !data
                .join(format!(".amber-download-{}", std::process::id()))
                .exists(),
            "the download directory is removed"
        );
    }
}

#[test]
fn a_damaged_object_fails_remote_verification_with_exit_code_3() {
    let moto = Moto::start(None);
    let endpoint = moto.endpoint();
    let remote = remote("damaged");
    let backups = common::temp_dir("s3-damage");
    // Only the backup asked for: the scheduled one, due at once on a new backup directory,
    // would race it (and make two to ship) on a loaded machine.
    let server = ServerProcess::amber(&[
        "--backup-dir",
        backups.to_str().unwrap(),
        "--backup-interval",
        "0",
    ]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "20000"]);
    let id = backup_now(&mut client);
    let shipped = amber_backup(
        &endpoint,
        &remote,
        &["--backup-dir", backups.to_str().unwrap(), "ship"],
    );
    assert!(shipped.status.success(), "{shipped:?}");
    assert!(
        stdout(&shipped).contains("1 uploaded"),
        "{}",
        stdout(&shipped)
    );

    moto.damage(&format!("damaged/backups/{id}/dump.rdb"));

    let verified = amber_backup(&endpoint, &remote, &["verify", "--remote", &id]);
    assert_eq!(verified.status.code(), Some(3), "{verified:?}");
    let text = stdout(&verified);
    assert!(
        text.contains("FAILED") && text.contains("damaged in the bucket"),
        "{text}"
    );
}

/// Writes and catalogues a ~200 MB RDB backup of incompressible values (as the server's
/// backup child would, without the cost of a server holding it); returns its id.
fn big_backup(backups: &std::path::Path) -> String {
    let staging = backups.join(".staging-1-1");
    std::fs::create_dir_all(&staging).unwrap();
    let file = std::fs::File::create(staging.join("dump.rdb")).unwrap();
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut writer = amber_rdb::RdbWriter::new(out, amber_rdb::WriteOptions::default()).unwrap();
    let keys = 200_000u64;
    writer.select_db(0, keys, 0).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut value = vec![0u8; 1000];
    for i in 0..keys {
        for byte in value.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        writer
            .string_entry(format!("key:{i}").as_bytes(), &value, None)
            .unwrap();
    }
    let file = writer.finish().unwrap().into_inner().unwrap();
    file.sync_all().unwrap();
    amber_backup::catalog::Meta {
        time_ms: 1_796_000_000_000,
        keys,
        digest: "0".repeat(40),
    }
    .write(&staging)
    .unwrap();
    let mut catalog = amber_backup::Catalog::open(backups).unwrap();
    let backup =
        amber_backup::finalize(&mut catalog, &staging, amber_backup::Kind::Rdb, &mut ()).unwrap();
    assert!(backup.is_good());
    backup.id
}

#[test]
fn an_upload_killed_halfway_is_never_listed_and_the_next_ship_completes_it() {
    let moto = Moto::start(None);
    let endpoint = moto.endpoint();
    let remote = remote("killed");
    let backups = common::temp_dir("s3-killed");
    let id = big_backup(&backups);
    let original = backups.join(&id).join("dump.rdb");
    let size = std::fs::metadata(&original).unwrap().len();
    assert!(
        size > 150_000_000,
        "a backup big enough to kill mid-upload: {size}"
    );

    let tool = common::amber_binary().with_file_name("amber-backup");
    let mut shipping = Command::new(tool)
        .args([
            "--remote-url",
            &remote,
            "--s3-endpoint",
            &endpoint,
            "--s3-path-style",
        ])
        .args(["--backup-dir", backups.to_str().unwrap(), "ship"])
        .envs(CREDENTIALS.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first part of the upload reached the store.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = stdout(&amber_backup(&endpoint, &remote, &["list", "--remote"]));
        if listed.contains("partial") {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    shipping.kill().unwrap();
    shipping.wait().unwrap();

    let listed = stdout(&amber_backup(&endpoint, &remote, &["list", "--remote"]));
    assert!(
        listed.contains(&format!("{id:<20} partial upload")),
        "{listed}"
    );
    let restore_dir = common::temp_dir("s3-killed-restore");
    let refused = restore_from_bucket(&endpoint, &remote, &id, &restore_dir);
    assert!(
        !refused.status.success(),
        "a partial backup is not restorable"
    );

    let again = amber_backup(
        &endpoint,
        &remote,
        &["--backup-dir", backups.to_str().unwrap(), "ship"],
    );
    assert!(again.status.success(), "{again:?}");
    assert!(stdout(&again).contains("1 uploaded"), "{}", stdout(&again));
    let restored = restore_from_bucket(&endpoint, &remote, &id, &restore_dir);
    assert!(restored.status.success(), "{restored:?}");
    assert!(
        std::fs::read(restore_dir.join("dump.rdb")).unwrap() == std::fs::read(&original).unwrap(),
        "the restored file is the backup's, byte for byte"
    );
    let _ = std::fs::remove_dir_all(&backups);
}

fn assert_ship_fails_while_serving(endpoint: &str, remote: &str, expected: &str) {
    let backups = common::temp_dir("s3-failing");
    let server = ServerProcess::amber_with_env(
        &server_flags(backups.to_str().unwrap(), remote, endpoint),
        CREDENTIALS,
    );
    let mut client = server.client();
    client.cmd(&["SET", "k", "v"]);
    backup_now(&mut client);
    let started = Instant::now();
    wait_for_ship(&mut client, "err");
    let error = info_field(&mut client, "backup_last_ship_error");
    assert!(error.contains(expected), "{error}");
    assert!(
        !error.contains("amber-test-secret"),
        "credentials never appear in messages"
    );
    assert!(server.log().contains("Shipping backups failed"));
    // Served throughout, and promptly: the ship runs on its own thread.
    let ping = Instant::now();
    assert_eq!(client.cmd(&["PING"]), common::simple("PONG"));
    assert!(ping.elapsed() < Duration::from_millis(500));
    assert!(started.elapsed() < Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&backups);
}

#[test]
fn wrong_credentials_and_an_unreachable_endpoint_are_reported_while_the_server_serves() {
    let moto = Moto::start(Some(1));
    assert_ship_fails_while_serving(
        &moto.endpoint(),
        &remote("auth"),
        "403 Forbidden InvalidAccessKeyId",
    );
    let nobody = format!("http://127.0.0.1:{}", common::free_port());
    assert_ship_fails_while_serving(&nobody, &remote("x"), "Connection refused");
    let listed = amber_backup(&nobody, &remote("x"), &["list", "--remote"]);
    assert_eq!(listed.status.code(), Some(4), "{listed:?}");
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

/// Sleeps into the next wall-clock second (plus a margin), and returns it.
fn next_second() -> u64 {
    let now = unix_now();
    let next = now.as_secs() + 1;
    std::thread::sleep(Duration::from_secs(next) + Duration::from_millis(30) - now);
    next
}

/// Every object's bytes under `prefix`.
fn objects_under(moto: &Moto, prefix: &str) -> Vec<(String, Vec<u8>)> {
    use futures::StreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let store = moto.store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let prefix = object_store::path::Path::from(prefix);
        let metas: Vec<_> = store.list(Some(&prefix)).collect().await;
        let mut objects = Vec::new();
        for meta in metas {
            let location = meta.unwrap().location;
            let bytes = store.get(&location).await.unwrap().bytes().await.unwrap();
            objects.push((location.to_string(), bytes.to_vec()));
        }
        objects
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const MARKER: &str = "plaintext-marker-7d1f";

#[test]
fn the_bucket_alone_restores_the_dataset_at_chosen_seconds() {
    let moto = Moto::start(None);
    let endpoint = moto.endpoint();
    let remote = remote("pitr");
    let backups = common::temp_dir("s3-pitr");
    // Encrypted at rest: the backups, locally and in the bucket, and the archive.
    let key_dir = common::temp_dir("s3-pitr-key");
    let key_file = key_dir.join("backup.key");
    let key_path = key_file.to_str().unwrap();
    let keygen = amber_backup(&endpoint, &remote, &["keygen", key_path]);
    assert!(keygen.status.success(), "{keygen:?}");
    let mut flags = server_flags(backups.to_str().unwrap(), &remote, &endpoint);
    flags.extend(["--backup-encryption-key-file", key_path]);
    flags.extend([
        "--appendonly",
        "yes",
        "--aof-timestamp-enabled",
        "yes",
        "--backup-archive-interval",
        "1",
    ]);
    let server = ServerProcess::amber_with_env(&flags, CREDENTIALS);
    let mut client = server.client();
    client.cmd(&["SET", MARKER, MARKER]);
    // One batch of writes at the start of each second, then the dataset's digest for that
    // second; a backup at 3, a rewrite (closing an incr file) at 6, a second backup at 9.
    let mut states: Vec<(u64, common::Frame)> = Vec::new();
    let mut backup_seconds = Vec::new();
    for step in 0..14u64 {
        let second = next_second();
        // Pipelined, so that a loaded machine still fits the batch in its second.
        let mut sent = 0;
        for i in 0..40u64 {
            let key = format!("k{}", (step * 7 + i) % 60);
            client.send(&["SET", &key, &format!("{step}-{i}")]);
            client.send(&["INCR", "counter"]);
            client.send(&["HSET", "hash", &format!("f{}", i % 9), &step.to_string()]);
            sent += 3;
            if i % 5 == 0 {
                client.send(&["DEL", &format!("k{}", (step * 3 + i) % 60)]);
                sent += 1;
            }
        }
        for _ in 0..sent {
            client.read().expect("a reply");
        }
        let state = digest(&mut client);
        if unix_now().as_secs() == second {
            states.push((second, state));
        }
        match step {
            3 | 9 => {
                backup_now(&mut client);
                backup_seconds.push(second);
            }
            6 => {
                client.cmd(&["BGREWRITEAOF"]);
                wait_for(
                    || info_field(&mut client, "aof_rewrite_in_progress") == "0",
                    "the rewrite",
                );
            }
            _ => {}
        }
    }
    let last = states.last().map(|(s, _)| *s).unwrap();
    wait_for(
        || {
            info_field(&mut client, "backup_archive_through")
                .parse::<u64>()
                .is_ok_and(|through| through > last)
        },
        "the archive to catch up",
    );
    let listed = || stdout(&amber_backup(&endpoint, &remote, &["list", "--remote"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed().lines().filter(|l| l.contains(" aof ")).count() != 2 {
        assert!(
            Instant::now() < deadline,
            "both backups in the bucket: {}\n{}",
            listed(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        server
            .log()
            .contains("Closed AOF files are archived; removing them"),
        "the closed incr file was held until archived"
    );
    for (name, bytes) in objects_under(&moto, "pitr") {
        assert!(!contains(&bytes, MARKER.as_bytes()), "{name} is in clear");
    }
    for path in common::files_under(&backups) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !contains(&bytes, MARKER.as_bytes()),
            "{} is in clear",
            path.display()
        );
    }
    // Without the key, or with another, a clear refusal (exit code 5), not a parse error.
    let unkeyed = amber_backup(&endpoint, &remote, &["verify", "--remote"]);
    assert_eq!(unkeyed.status.code(), Some(5), "{unkeyed:?}");
    assert!(String::from_utf8_lossy(&unkeyed.stderr).contains("is encrypted: give its key"));
    let other_key = key_dir.join("other.key");
    amber_backup(&endpoint, &remote, &["keygen", other_key.to_str().unwrap()]);
    let wrong = amber_backup(
        &endpoint,
        &remote,
        &[
            "--key-file",
            other_key.to_str().unwrap(),
            "verify",
            "--remote",
        ],
    );
    assert_eq!(wrong.status.code(), Some(5), "{wrong:?}");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("encrypted to another key"));
    let keyed = amber_backup(
        &endpoint,
        &remote,
        &["--key-file", key_path, "verify", "--remote"],
    );
    assert!(keyed.status.success(), "{keyed:?}");
    // The machine is lost.
    let data = server.kill9();
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_dir_all(&backups).unwrap();

    // Every other recorded second after the first backup (between the backups, across the
    // rewrite, after the second), and the last.
    let first_backup = backup_seconds[0];
    let mut chosen: Vec<&(u64, common::Frame)> = states
        .iter()
        .filter(|(s, _)| *s > first_backup)
        .step_by(2)
        .collect();
    if chosen.last().map(|(s, _)| *s) != Some(last) {
        chosen.extend(states.last());
    }
    assert!(chosen.len() >= 3, "{chosen:?} after {first_backup}");
    for (second, expected) in chosen {
        let dir = common::temp_dir("s3-pitr-restore");
        let restored = restore_at(&endpoint, &remote, key_path, *second, &dir);
        assert!(restored.status.success(), "{restored:?}");
        let text = stdout(&restored);
        assert!(
            text.contains("bytes of archived AOF") && !text.contains("replayed 0 bytes"),
            "{text}"
        );
        let server = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
        assert_eq!(
            &digest(&mut server.client()),
            expected,
            "state at {second} (start {})",
            states[0].0
        );
    }
    // Before the oldest backup there is nothing to continue.
    let dir = common::temp_dir("s3-pitr-early");
    let early = restore_at(&endpoint, &remote, key_path, states[0].0, &dir);
    assert_eq!(early.status.code(), Some(1), "{early:?}");
}
