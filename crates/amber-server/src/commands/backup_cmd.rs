//! `BACKUP NOW | LIST | STATUS | HELP` and the `INFO backup` section.

use bytes::Bytes;

use super::blocking::Blocked;
use super::{Ctx, is, unknown_subcommand};
use crate::server::Server;

/// `BACKUP NOW`: replies (with the backup's id) once it is written and verified; other clients
/// are served meanwhile. `BACKUP LIST`: the catalog. `BACKUP STATUS`: the `INFO backup` fields.
pub(crate) fn backup(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    if is(sub, "now") && args.len() == 2 {
        now(ctx, args);
    } else if is(sub, "list") && args.len() == 2 {
        list(ctx);
    } else if is(sub, "status") && args.len() == 2 {
        let text = info_section(ctx.server);
        ctx.out.bulk(text.as_bytes());
    } else if is(sub, "help") && args.len() == 2 {
        ctx.out.array(HELP.len());
        for line in HELP {
            ctx.out.simple(line);
        }
    } else {
        unknown_subcommand(ctx, "backup", sub);
    }
}

const HELP: &[&str] = &[
    "BACKUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "NOW",
    "    Takes a backup of the dataset now; replies with its id once it is written and",
    "    verified (other clients are served meanwhile). Needs backup-dir.",
    "LIST",
    "    Lists the backups of backup-dir, oldest first. Each is, in this order: id, time",
    "    (unix seconds), kind (rdb or aof), size (bytes), keys, verified (yes or no); a map",
    "    with those names under RESP3.",
    "STATUS",
    "    The INFO backup fields: the last backup and ship, and how many are kept.",
    "HELP",
    "    Prints this help.",
];

/// The fields of a `BACKUP LIST` entry, in their order.
const LIST_FIELDS: [&str; 6] = ["id", "time", "kind", "size", "keys", "verified"];

fn now(ctx: &mut Ctx, args: &[Bytes]) {
    let seq = match ctx.client.awaiting_backup {
        Some(seq) => seq,
        None => match ctx.server.start_backup() {
            Ok(seq) => seq,
            Err(error) => return ctx.error(&format!("ERR {error}")),
        },
    };
    match ctx.server.backup.finished.get(&seq).cloned() {
        Some(Ok(backup)) => {
            ctx.client.awaiting_backup = None;
            ctx.out.simple(&backup.id);
        }
        Some(Err(error)) => {
            ctx.client.awaiting_backup = None;
            ctx.error(&format!("ERR backup failed: {error}"));
        }
        None if ctx.client.in_exec => {
            ctx.client.awaiting_backup = None;
            ctx.out.simple("Backup started");
        }
        None => {
            // Wait like a blocked client: woken when the backup is verified.
            ctx.client.awaiting_backup = Some(seq);
            ctx.server.backup.waiters.push(ctx.client.id);
            ctx.client.blocked = Some(Blocked {
                args: args.to_vec(),
                keys: Vec::new(),
                db: ctx.client.db,
                deadline: None,
                rerun_on_timeout: false,
                recheck: false,
            });
        }
    }
}

fn list(ctx: &mut Ctx) {
    let dir = ctx.server.config.get("backup-dir").to_string();
    if dir.is_empty() {
        return ctx.error("ERR backup-dir is not set");
    }
    let catalog = match amber_backup::Catalog::open(std::path::Path::new(&dir)) {
        Ok(catalog) => catalog,
        Err(error) => return ctx.error(&format!("ERR {error}")),
    };
    let resp3 = ctx.out.protocol() == amber_protocol::Protocol::Resp3;
    ctx.out.array(catalog.backups.len());
    for backup in &catalog.backups {
        let field = |ctx: &mut Ctx, index: usize| {
            if resp3 {
                ctx.out.bulk(LIST_FIELDS[index].as_bytes());
            }
        };
        if resp3 {
            ctx.out.map(LIST_FIELDS.len());
        } else {
            ctx.out.array(LIST_FIELDS.len());
        }
        field(ctx, 0);
        ctx.out.bulk(backup.id.as_bytes());
        field(ctx, 1);
        ctx.out.integer(backup.time_ms / 1000);
        field(ctx, 2);
        ctx.out.bulk(backup.kind.name().as_bytes());
        field(ctx, 3);
        ctx.out.integer(backup.size as i64);
        field(ctx, 4);
        ctx.out.integer(backup.keys as i64);
        field(ctx, 5);
        ctx.out.bulk(if backup.is_good() {
            b"yes".as_slice()
        } else {
            b"no"
        });
    }
}

/// `INFO backup`: whether backups are on, the last one (time, status, duration, id), how many
/// verified backups are kept, and the last ship to the remote.
pub(crate) fn info_section(server: &Server) -> String {
    let state = &server.backup;
    let (last_time, last_status, last_seconds, last_id, last_error) = match &state.last {
        None => (-1, "none", 0.0, String::new(), String::new()),
        Some((at, Ok(backup), seconds)) => {
            (at / 1000, "ok", *seconds, backup.id.clone(), String::new())
        }
        Some((at, Err(error), seconds)) => {
            (at / 1000, "err", *seconds, String::new(), error.clone())
        }
    };
    let (ship_time, ship_status, ship_error) = match &state.last_ship {
        None => (-1, "none", String::new()),
        Some((at, Ok(_))) => (at / 1000, "ok", String::new()),
        Some((at, Err(error))) => (at / 1000, "err", error.clone()),
    };
    let fields = [
        (
            "backup_enabled",
            u8::from(!server.config.get("backup-dir").is_empty()).to_string(),
        ),
        (
            "backup_in_progress",
            u8::from(server.jobs.scheduler.backup_in_progress()).to_string(),
        ),
        ("backup_last_time", last_time.to_string()),
        ("backup_last_status", last_status.to_string()),
        ("backup_last_duration_sec", format!("{last_seconds:.3}")),
        ("backup_last_id", last_id),
        ("backup_last_error", last_error.replace(['\r', '\n'], " ")),
        ("backup_count_kept", state.kept.to_string()),
        ("backup_last_ship_time", ship_time.to_string()),
        ("backup_last_ship_status", ship_status.to_string()),
        (
            "backup_last_ship_error",
            ship_error.replace(['\r', '\n'], " "),
        ),
    ];
    let archive = &server.archive;
    let (archive_status, archive_error) = match &archive.last {
        None => ("none", String::new()),
        Some((_, Ok(_))) => ("ok", String::new()),
        Some((_, Err(error))) => ("err", error.replace(['\r', '\n'], " ")),
    };
    let archive_fields = [
        (
            "backup_archive_enabled",
            u8::from(crate::persistence::archive::archiving_configured(
                &server.config,
            ))
            .to_string(),
        ),
        ("backup_archive_status", archive_status.to_string()),
        ("backup_archive_last_error", archive_error),
        (
            "backup_archive_through",
            archive
                .archived_through_ms
                .map_or(-1, |ms| ms / 1000)
                .to_string(),
        ),
        ("backup_archive_bytes", archive.bytes.to_string()),
    ];
    let fields: Vec<(&str, String)> = fields.into_iter().chain(archive_fields).collect();
    fields
        .iter()
        .map(|(name, value)| format!("{name}:{value}\r\n"))
        .collect()
}
