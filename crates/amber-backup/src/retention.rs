//! Retention: which backups to keep. Every verified backup of the last `keep_hourly_hours`
//! hours is kept, and the newest verified backup of each of the last `keep_daily_days` UTC days;
//! the newest verified backup is always kept. Backups that failed verification never count as
//! kept and are pruned. Nothing else decides: a failed backup can never push out a good one.

use std::collections::BTreeSet;

use crate::catalog::Backup;
use crate::time::DAY_MS;

/// The retention settings (`backup-keep-hourly`, `backup-keep-daily`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Keep every backup of this many last hours.
    pub keep_hourly_hours: u64,
    /// Keep the newest backup of each of this many last days.
    pub keep_daily_days: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            keep_hourly_hours: 48,
            keep_daily_days: 30,
        }
    }
}

/// What a prune keeps and deletes (ids, oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Backups that stay.
    pub keep: Vec<String>,
    /// Backups to delete.
    pub delete: Vec<String>,
}

/// Applies `policy` at time `now_ms` to `backups`.
pub fn plan(backups: &[Backup], now_ms: i64, policy: Policy) -> Plan {
    let mut good: Vec<&Backup> = backups.iter().filter(|b| b.is_good()).collect();
    good.sort_by_key(|b| b.time_ms);
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    if let Some(newest) = good.last() {
        keep.insert(&newest.id);
    }
    let hourly_from =
        now_ms.saturating_sub((policy.keep_hourly_hours as i64).saturating_mul(3_600_000));
    for backup in &good {
        if backup.time_ms > hourly_from {
            keep.insert(&backup.id);
        }
    }
    let today = now_ms.div_euclid(DAY_MS);
    let first_day = today - policy.keep_daily_days as i64 + 1;
    let mut newest_of_day: std::collections::BTreeMap<i64, &Backup> = Default::default();
    for backup in &good {
        let day = backup.time_ms.div_euclid(DAY_MS);
        if day >= first_day && day <= today {
            newest_of_day.insert(day, backup);
        }
    }
    for backup in newest_of_day.values() {
        keep.insert(&backup.id);
    }
    let mut ordered: Vec<&Backup> = backups.iter().collect();
    ordered.sort_by_key(|b| b.time_ms);
    let (kept, deleted): (Vec<&Backup>, Vec<&Backup>) = ordered
        .into_iter()
        .partition(|b| keep.contains(b.id.as_str()));
    Plan {
        keep: kept.into_iter().map(|b| b.id.clone()).collect(),
        delete: deleted.into_iter().map(|b| b.id.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Kind, Status};

    fn backup(time_ms: i64, good: bool) -> Backup {
        Backup {
            id: crate::time::backup_id(time_ms),
            time_ms,
            kind: Kind::Rdb,
            size: 1,
            keys: 1,
            digest: String::new(),
            checksum: String::new(),
            status: if good {
                Status::Verified
            } else {
                Status::Failed("damaged".into())
            },
        }
    }

    #[test]
    fn the_newest_good_backup_is_kept_whatever_its_age() {
        let backups = vec![backup(0, true), backup(DAY_MS, false)];
        let plan = plan(&backups, 400 * DAY_MS, Policy::default());
        assert_eq!(plan.keep, vec![backups[0].id.clone()]);
        assert_eq!(plan.delete, vec![backups[1].id.clone()]);
    }

    #[test]
    fn a_failed_backup_does_not_replace_the_days_good_one() {
        let day = 100 * DAY_MS;
        let backups = vec![
            backup(day + 1000, true),
            backup(day + 2000, false),
            backup(day + 5 * DAY_MS, true),
        ];
        let plan = plan(
            &backups,
            day + 5 * DAY_MS,
            Policy {
                keep_hourly_hours: 1,
                keep_daily_days: 30,
            },
        );
        assert!(plan.keep.contains(&backups[0].id), "{plan:?}");
        assert_eq!(plan.delete, vec![backups[1].id.clone()]);
    }
}
