//! `CLIENT TRACKING`, `CLIENT CACHING`, `CLIENT GETREDIR` and `CLIENT TRACKINGINFO` (see
//! [`crate::tracking`]).

use std::collections::BTreeSet;

use bytes::Bytes;

use super::{Ctx, errors, is};
use crate::tracking::{ClientTracking, prefix_overlap};

/// `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX prefix ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]`
pub(super) fn client_tracking(ctx: &mut Ctx, args: &[Bytes]) {
    let mut mode = ClientTracking::default();
    let mut prefixes: Vec<&[u8]> = Vec::new();
    let mut i = 3;
    while i < args.len() {
        let option = &args[i];
        let more = i + 1 < args.len();
        if is(option, "redirect") && more {
            i += 1;
            if mode.redirect != 0 {
                return ctx.error("ERR A client can only redirect to a single other client");
            }
            let Ok(id) = ctx.int_arg(&args[i]) else {
                return;
            };
            if id <= 0 || !ctx.server.clients.contains_key(&(id as u64)) {
                return ctx.error("ERR The client ID you want redirect to does not exist");
            }
            mode.redirect = id as u64;
        } else if is(option, "bcast") {
            mode.bcast = true;
        } else if is(option, "optin") {
            mode.optin = true;
        } else if is(option, "optout") {
            mode.optout = true;
        } else if is(option, "noloop") {
            mode.noloop = true;
        } else if is(option, "prefix") && more {
            i += 1;
            prefixes.push(&args[i]);
        } else {
            return ctx.error(errors::SYNTAX);
        }
        i += 1;
    }
    if is(&args[2], "off") {
        ctx.server.disable_tracking(ctx.client.id);
        return ctx.out.ok();
    }
    if !is(&args[2], "on") {
        return ctx.error(errors::SYNTAX);
    }
    let current = ctx.client.info.borrow().tracking.clone();
    if let Some(message) = refusal(&mode, !prefixes.is_empty(), current.as_ref()) {
        return ctx.error(message);
    }
    if mode.bcast {
        let existing = current.map(|c| c.prefixes).unwrap_or_default();
        if let Some(message) = prefix_overlap(&existing, &prefixes) {
            return ctx.error(&message);
        }
    }
    mode.prefixes = prefixes.iter().map(|p| p.to_vec()).collect::<BTreeSet<_>>();
    ctx.server.enable_tracking(ctx.client.id, mode);
    ctx.out.ok();
}

/// Why `CLIENT TRACKING ON` with `mode` is refused for a client now in `current`.
fn refusal(
    mode: &ClientTracking,
    has_prefixes: bool,
    current: Option<&ClientTracking>,
) -> Option<&'static str> {
    if !mode.bcast && has_prefixes {
        return Some("ERR PREFIX option requires BCAST mode to be enabled");
    }
    if current.is_some_and(|current| current.bcast != mode.bcast) {
        return Some(
            "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        );
    }
    if mode.bcast && (mode.optin || mode.optout) {
        return Some("ERR OPTIN and OPTOUT are not compatible with BCAST");
    }
    if mode.optin && mode.optout {
        return Some("ERR You can't specify both OPTIN mode and OPTOUT mode");
    }
    if current.is_some_and(|c| (mode.optin && c.optout) || (mode.optout && c.optin)) {
        return Some(
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        );
    }
    None
}

/// `CLIENT CACHING YES|NO`
pub(super) fn client_caching(ctx: &mut Ctx, args: &[Bytes]) {
    let info = ctx.client.info.clone();
    let mut info = info.borrow_mut();
    let Some(mode) = info.tracking.as_mut() else {
        drop(info);
        return ctx.error(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        );
    };
    let refusal = if is(&args[2], "yes") {
        (!mode.optin).then_some(
            "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
        )
    } else if is(&args[2], "no") {
        (!mode.optout).then_some(
            "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
        )
    } else {
        Some(errors::SYNTAX)
    };
    if refusal.is_none() {
        mode.caching = true;
    }
    drop(info);
    match refusal {
        Some(message) => ctx.error(message),
        None => ctx.out.ok(),
    }
}

/// `CLIENT GETREDIR`: the redirection target, 0 without one, -1 when tracking is off.
pub(super) fn client_getredir(ctx: &mut Ctx) {
    let redirect = ctx
        .client
        .info
        .borrow()
        .tracking
        .as_ref()
        .map_or(-1, |mode| mode.redirect as i64);
    ctx.out.integer(redirect);
}

/// `CLIENT TRACKINGINFO`: flags, redirection and prefixes.
pub(super) fn client_trackinginfo(ctx: &mut Ctx) {
    let mode = ctx.client.info.borrow().tracking.clone();
    let mut flags: Vec<&str> = Vec::new();
    match &mode {
        None => flags.push("off"),
        Some(mode) => {
            flags.push("on");
            if mode.bcast {
                flags.push("bcast");
            }
            if mode.optin {
                flags.push("optin");
                if mode.caching {
                    flags.push("caching-yes");
                }
            }
            if mode.optout {
                flags.push("optout");
                if mode.caching {
                    flags.push("caching-no");
                }
            }
            if mode.noloop {
                flags.push("noloop");
            }
            if mode.broken_redirect {
                flags.push("broken_redirect");
            }
        }
    }
    ctx.out.map(3);
    ctx.out.bulk(b"flags");
    ctx.out.set(flags.len());
    for flag in flags {
        ctx.out.bulk(flag.as_bytes());
    }
    ctx.out.bulk(b"redirect");
    ctx.out
        .integer(mode.as_ref().map_or(-1, |mode| mode.redirect as i64));
    ctx.out.bulk(b"prefixes");
    let prefixes = mode.map(|mode| mode.prefixes).unwrap_or_default();
    ctx.out.array(prefixes.len());
    for prefix in prefixes {
        ctx.out.bulk(&prefix);
    }
}
