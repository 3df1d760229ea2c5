//! `SLOWLOG` and `LATENCY` (see [`crate::diagnostics`]).

use bytes::Bytes;

use super::{Ctx, is, subcommand_arity, unknown_subcommand};

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

fn help(ctx: &mut Ctx, lines: &[&str]) {
    ctx.out.array(lines.len());
    for line in lines {
        ctx.out.simple(line);
    }
}

/// `SLOWLOG GET [count] | LEN | RESET | HELP`
pub(super) fn slowlog(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    if is(sub, "help") && args.len() == 2 {
        help(ctx, SLOWLOG_HELP);
    } else if is(sub, "reset") && args.len() == 2 {
        ctx.server.slowlog.reset();
        ctx.out.ok();
    } else if is(sub, "len") && args.len() == 2 {
        ctx.out.integer(ctx.server.slowlog.len() as i64);
    } else if is(sub, "get") && args.len() <= 3 {
        slowlog_get(ctx, args.get(2));
    } else if ["help", "reset", "len", "get"]
        .iter()
        .any(|name| is(sub, name))
    {
        subcommand_arity(ctx, "slowlog", sub);
    } else {
        unknown_subcommand(ctx, "slowlog", sub);
    }
}

fn slowlog_get(ctx: &mut Ctx, count: Option<&Bytes>) {
    const BAD_COUNT: &str = "ERR count should be greater than or equal to -1";
    let count = match count {
        None => 10,
        Some(arg) => match amber_protocol::parse_i64(arg) {
            Some(-1) => usize::MAX,
            Some(n) if n >= 0 => n as usize,
            _ => return ctx.error(BAD_COUNT),
        },
    };
    let entries: Vec<_> = ctx.server.slowlog.newest(count).cloned().collect();
    ctx.out.array(entries.len());
    for entry in entries {
        ctx.out.array(6);
        ctx.out.integer(entry.id as i64);
        ctx.out.integer(entry.time as i64);
        ctx.out.integer(entry.micros as i64);
        ctx.out.array(entry.args.len());
        for arg in &entry.args {
            ctx.out.bulk(arg);
        }
        ctx.out.bulk(entry.peer.as_bytes());
        ctx.out.bulk(&entry.name);
    }
}

/// `LATENCY LATEST | HISTORY event | RESET [event ...] | GRAPH event | DOCTOR |
/// HISTOGRAM [command ...] | HELP`
pub(super) fn latency(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    let argc = args.len();
    if is(sub, "history") && argc == 3 {
        let samples: Vec<_> = ctx
            .server
            .latency
            .series(&args[2])
            .map(|(_, series)| series.samples.iter().copied().collect())
            .unwrap_or_default();
        ctx.out.array(samples.len());
        for sample in samples {
            ctx.out.array(2);
            ctx.out.integer(sample.time as i64);
            ctx.out.integer(sample.millis as i64);
        }
    } else if is(sub, "graph") && argc == 3 {
        let Some(graph) = ctx
            .server
            .latency
            .series(&args[2])
            .map(|(event, series)| crate::diagnostics::graph(event, series))
        else {
            let message = format!(
                "ERR No samples available for event '{}'",
                String::from_utf8_lossy(&args[2])
            );
            return ctx.error(&message);
        };
        ctx.out.verbatim(b"txt", graph.as_bytes());
    } else if is(sub, "latest") && argc == 2 {
        let events: Vec<(String, u64, u64, u64)> = ctx
            .server
            .latency
            .events()
            .map(|(event, series)| {
                let last = series
                    .samples
                    .back()
                    .copied()
                    .unwrap_or(crate::diagnostics::Sample { time: 0, millis: 0 });
                (event.to_string(), last.time, last.millis, series.max)
            })
            .collect();
        ctx.out.array(events.len());
        for (event, time, millis, max) in events {
            ctx.out.array(4);
            ctx.out.bulk(event.as_bytes());
            ctx.out.integer(time as i64);
            ctx.out.integer(millis as i64);
            ctx.out.integer(max as i64);
        }
    } else if is(sub, "doctor") && argc == 2 {
        let report = crate::diagnostics::doctor(ctx.server);
        ctx.out.verbatim(b"txt", report.as_bytes());
    } else if is(sub, "reset") {
        let resets = if argc == 2 {
            ctx.server.latency.reset(None)
        } else {
            args[2..]
                .iter()
                .map(|event| ctx.server.latency.reset(Some(event)))
                .sum()
        };
        ctx.out.integer(resets as i64);
    } else if is(sub, "histogram") {
        latency_histogram(ctx, &args[2..]);
    } else if is(sub, "help") && argc == 2 {
        help(ctx, LATENCY_HELP);
    } else if ["history", "graph", "latest", "doctor", "help"]
        .iter()
        .any(|name| is(sub, name))
    {
        subcommand_arity(ctx, "latency", sub);
    } else {
        unknown_subcommand(ctx, "latency", sub);
    }
}

fn latency_histogram(ctx: &mut Ctx, names: &[Bytes]) {
    // Each named command stands for itself and its subcommands.
    let wanted: Option<Vec<&'static str>> = (!names.is_empty()).then(|| {
        names
            .iter()
            .flat_map(|name| super::stats_names_of(name))
            .collect()
    });
    let histograms = ctx
        .server
        .command_stats
        .latency_histograms(wanted.as_deref());
    ctx.out.map(histograms.len());
    for (name, calls, buckets) in histograms {
        ctx.out.bulk(name.as_bytes());
        ctx.out.map(2);
        ctx.out.bulk(b"calls");
        ctx.out.integer(calls as i64);
        ctx.out.bulk(b"histogram_usec");
        ctx.out.map(buckets.len());
        for (micros, cumulative) in buckets {
            ctx.out.integer(micros as i64);
            ctx.out.integer(cumulative as i64);
        }
    }
}
