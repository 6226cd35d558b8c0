//! barman-cloud's vocabulary: its exit codes, the `barman-cloud-backup-list --format json` listing,
//! which base backup a recovery starts from, and the recovery settings PostgreSQL is given. Nothing
//! here runs barman-cloud; `persistctl::barman` does.
//!
//! barman-cloud exits 0 on success; 1 when the operation failed with the cloud reachable (for
//! `barman-cloud-wal-restore`: the WAL is not in the archive, the normal end of a recovery); 2 on a
//! network error (only the connectivity checks say so); 3 on bad arguments; 4 on anything else,
//! *including most network errors*. PostgreSQL takes any non-zero `restore_command` status as "no more
//! WAL" and ends recovery there — so a transient S3 error during a recovery to the end of the archive
//! would silently promote a database missing its last transactions. The `restore_command` wrapper
//! therefore passes on 0 and 1 only and turns everything else into [`ABORT_RECOVERY`] (> 125), on
//! which PostgreSQL aborts the recovery and the server does not start.

use serde::Deserialize;

/// barman-cloud: success.
pub const EXIT_OK: i32 = 0;
/// barman-cloud: the operation failed with the cloud reachable (WAL not found, backup not DONE, ...).
pub const EXIT_OPERATION: i32 = 1;
/// barman-cloud: a network error (connectivity checks only).
pub const EXIT_NETWORK: i32 = 2;
/// barman-cloud: bad arguments.
pub const EXIT_CLI: i32 = 3;
/// barman-cloud: anything else, most network errors included.
pub const EXIT_GENERAL: i32 = 4;

/// What the `restore_command` wrapper exits with when PostgreSQL must stop recovering rather than take
/// the end of the archive for reached: PostgreSQL aborts recovery on an exit status above 125 (as for
/// a shell's "command not found") or a signal.
pub const ABORT_RECOVERY: u8 = 200;
const _: () = assert!(ABORT_RECOVERY > 125, "PostgreSQL aborts recovery only above 125");

/// The `restore_command` wrapper's exit status for one `barman-cloud-wal-restore` run: `Some(code)`
/// when it exited, `None` when it was killed or timed out.
#[must_use]
pub fn wal_restore_exit(code: Option<i32>) -> u8 {
    match code {
        Some(EXIT_OK) => 0,
        // The WAL is not in the archive: the end of the archive, where recovery to "latest" stops.
        Some(EXIT_OPERATION) => 1,
        _ => ABORT_RECOVERY,
    }
}

/// One base backup as `barman-cloud-backup-list --format json` lists it (the fields used).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Backup {
    /// `20240501T120000`.
    pub backup_id: String,
    /// `DONE`, `FAILED`, `STARTED`, ...: only `DONE` backups are restored.
    pub status: String,
    /// ISO 8601 with offset (barman ≥ 3.12.1 lists it beside the older `ctime` form).
    #[serde(default)]
    pub end_time_iso: Option<String>,
    /// The first WAL segment the backup needs.
    #[serde(default)]
    pub begin_wal: Option<String>,
    /// The last WAL segment the backup needs.
    #[serde(default)]
    pub end_wal: Option<String>,
    /// Its timeline.
    #[serde(default)]
    pub timeline: Option<u32>,
    /// The name given with `--name`, if any.
    #[serde(default)]
    pub backup_name: Option<String>,
}

impl Backup {
    /// When the backup ended, in nanoseconds since the epoch, if barman says.
    #[must_use]
    pub fn end_ns(&self) -> Option<i128> {
        self.end_time_iso.as_deref().and_then(parse_iso)
    }
}

/// barman's `isoformat()` (`2024-05-01T12:00:00.123456+00:00`) → nanoseconds since the epoch.
pub fn parse_iso(text: &str) -> Option<i128> {
    text.parse::<jiff::Timestamp>().ok().map(jiff::Timestamp::as_nanosecond)
}

#[derive(Deserialize)]
struct Listing {
    backups_list: Vec<Backup>,
}

/// Whether `text` is a WAL segment file name: 24 upper-case hex digits.
#[must_use]
pub fn is_wal_name(text: &str) -> bool {
    text.len() == 24 && text.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// Parses `barman-cloud-backup-list --format json`. Every listed backup must have an id made of
/// letters, digits, `T`, `-` and `_` (it is passed to barman and recorded in a ZFS property) and, when
/// `DONE`, a WAL name as its first WAL.
pub fn parse_backup_list(stdout: &str) -> Result<Vec<Backup>, String> {
    let listing: Listing =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("unexpected backup-list output: {e}"))?;
    for b in &listing.backups_list {
        let id_ok = !b.backup_id.is_empty()
            && b.backup_id.len() <= 64
            && b.backup_id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
        if !id_ok {
            return Err(format!("a backup has the id {:?}, not a barman backup id", b.backup_id));
        }
        if b.status == "DONE" && !b.begin_wal.as_deref().is_some_and(is_wal_name) {
            return Err(format!("backup {} has no readable begin_wal", b.backup_id));
        }
    }
    Ok(listing.backups_list)
}

/// Which base backup a recovery starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The newest `DONE` backup; recovery replays to the end of the archive.
    Latest,
    /// The newest `DONE` backup that ended before this time (nanoseconds since the epoch); recovery
    /// stops at it.
    Time(i128),
    /// This backup; recovery replays to the end of the archive.
    Id(String),
}

/// What [`choose`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<'a> {
    /// Restore this one.
    Found(&'a Backup),
    /// No `DONE` backup at all: "no backup" (an empty start only with `allowEmptyBootstrap`).
    NoBackup,
    /// Backups exist, but none fits: a failure, never "no backup" (the operator asked for something
    /// the archive does not hold). The text says why.
    Unfit(String),
}

/// Chooses the base backup for `select` among a listing (pure).
#[must_use]
pub fn choose<'a>(backups: &'a [Backup], select: &Select) -> Choice<'a> {
    let done: Vec<&Backup> = backups.iter().filter(|b| b.status == "DONE").collect();
    if done.is_empty() {
        return Choice::NoBackup;
    }
    // barman's ids are its start times (`YYYYMMDDTHHMMSS`), so they sort by age.
    let newest = |list: Vec<&'a Backup>| list.into_iter().max_by(|a, b| a.backup_id.cmp(&b.backup_id));
    match select {
        Select::Latest => newest(done).map_or(Choice::NoBackup, Choice::Found),
        Select::Id(id) => done.iter().find(|b| &b.backup_id == id).map_or_else(
            || Choice::Unfit(format!("backup {id} is not a DONE backup of this server in the archive")),
            |b| Choice::Found(b),
        ),
        Select::Time(target) => {
            if done.iter().any(|b| b.end_ns().is_none()) {
                return Choice::Unfit(
                    "the listing gives no end_time_iso (barman-cloud older than 3.12.1?): a backup cannot be \
                     chosen for a target time"
                        .into(),
                );
            }
            let before: Vec<&Backup> = done.into_iter().filter(|b| b.end_ns().is_some_and(|e| e < *target)).collect();
            newest(before)
                .map_or_else(|| Choice::Unfit("no DONE backup ended before the target time".into()), Choice::Found)
        }
    }
}

/// Quotes a value for `postgresql.auto.conf` (single quotes, a quote doubled).
#[must_use]
pub fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The recovery settings appended to a restored cluster's `postgresql.auto.conf` (with
/// `recovery.signal` beside it): fetch WAL through `restore_command`, stop at `target_time` (RFC 3339)
/// when given, else at the end of the archive, on the newest timeline, then promote. `promote`, never
/// `pause`: NixOS' `postgresql-setup.service` waits for the end of recovery with no timeout.
#[must_use]
pub fn recovery_settings(restore_command: &str, target_time: Option<&str>) -> String {
    let mut lines = vec![
        "# persistctl: recovery settings (removed after promotion)".to_string(),
        format!("restore_command = {}", conf_quote(restore_command)),
        "recovery_target_timeline = 'latest'".to_string(),
    ];
    if let Some(time) = target_time {
        lines.push(format!("recovery_target_time = {}", conf_quote(time)));
        lines.push("recovery_target_inclusive = 'true'".to_string());
    }
    lines.push("recovery_target_action = 'promote'".to_string());
    lines.join("\n") + "\n"
}

/// Where an archive is: the destination URL (`s3://bucket/prefix`), the server name in it, and how to
/// reach the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// `s3://bucket/prefix`.
    pub destination: String,
    /// The server name under the destination.
    pub server_name: String,
    /// An S3-compatible endpoint (`--endpoint-url`).
    pub endpoint_url: Option<String>,
    /// `--cloud-provider` (barman's default, `aws-s3`, when unset).
    pub cloud_provider: Option<String>,
}

impl Archive {
    /// The options every barman-cloud command takes before its positional arguments, then the
    /// destination and server name.
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(provider) = &self.cloud_provider {
            args.extend(["--cloud-provider".to_string(), provider.clone()]);
        }
        if let Some(url) = &self.endpoint_url {
            args.extend(["--endpoint-url".to_string(), url.clone()]);
        }
        args.extend([self.destination.clone(), self.server_name.clone()]);
        args
    }
}

impl From<&crate::config::BarmanArchive> for Archive {
    fn from(config: &crate::config::BarmanArchive) -> Self {
        Self {
            destination: config.destination.clone(),
            server_name: config.server_name.clone(),
            endpoint_url: config.endpoint_url.clone(),
            cloud_provider: config.cloud_provider.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"{"backups_list": [
        {"backup_id": "20240501T120000", "status": "DONE", "end_time": "Wed May  1 12:00:05 2024",
         "end_time_iso": "2024-05-01T12:00:05.123456+00:00", "begin_wal": "000000010000000000000002",
         "end_wal": "000000010000000000000002", "timeline": 1, "backup_name": null, "server_name": "pg"},
        {"backup_id": "20240502T120000", "status": "FAILED", "begin_wal": null},
        {"backup_id": "20240503T120000", "status": "DONE", "end_time_iso": "2024-05-03T14:00:05+02:00",
         "begin_wal": "000000010000000000000009", "end_wal": "00000001000000000000000A", "timeline": 1}
    ]}"#;

    fn ns(rfc3339: &str) -> i128 {
        parse_iso(rfc3339).unwrap()
    }

    #[test]
    fn wal_restore_passes_on_found_and_end_of_archive_only() {
        let cases = [
            (Some(0), 0),
            (Some(1), 1),
            (Some(2), ABORT_RECOVERY),
            (Some(3), ABORT_RECOVERY),
            (Some(4), ABORT_RECOVERY),
            (Some(127), ABORT_RECOVERY),
            (None, ABORT_RECOVERY),
        ];
        for (code, want) in cases {
            assert_eq!(wal_restore_exit(code), want, "{code:?}");
        }
    }

    #[test]
    fn listings_parse_and_refuse_what_could_not_be_passed_on() {
        let list = parse_backup_list(LISTING).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].end_ns(), Some(ns("2024-05-01T12:00:05.123456Z")));
        assert_eq!(list[2].end_ns(), Some(ns("2024-05-03T12:00:05Z")));
        assert!(parse_backup_list(r#"{"backups_list": []}"#).unwrap().is_empty());
        for bad in [
            "",
            "[]",
            r#"{"backups_list": [{"backup_id": "x; rm", "status": "DONE", "begin_wal": "000000010000000000000002"}]}"#,
            r#"{"backups_list": [{"backup_id": "20240501T120000", "status": "DONE", "begin_wal": "bad"}]}"#,
        ] {
            assert!(parse_backup_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_backup_is_chosen_by_age_target_time_or_id() {
        let list = parse_backup_list(LISTING).unwrap();
        let id = |c: Choice<'_>| match c {
            Choice::Found(b) => b.backup_id.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(id(choose(&list, &Select::Latest)), "20240503T120000");
        assert_eq!(id(choose(&list, &Select::Time(ns("2024-05-02T00:00:00Z")))), "20240501T120000");
        assert_eq!(id(choose(&list, &Select::Time(ns("2024-05-03T13:00:00Z")))), "20240503T120000");
        assert!(matches!(choose(&list, &Select::Time(ns("2024-05-01T12:00:00Z"))), Choice::Unfit(_)));
        assert_eq!(id(choose(&list, &Select::Id("20240501T120000".into()))), "20240501T120000");
        assert!(matches!(choose(&list, &Select::Id("20240502T120000".into())), Choice::Unfit(_)), "FAILED");
        assert_eq!(choose(&[], &Select::Latest), Choice::NoBackup);
        assert_eq!(choose(&list[1..2], &Select::Latest), Choice::NoBackup, "only a FAILED backup");
        let mut old = list.clone();
        old[0].end_time_iso = None;
        assert!(matches!(choose(&old, &Select::Time(ns("2024-05-02T00:00:00Z"))), Choice::Unfit(_)));
        assert_eq!(id(choose(&old, &Select::Latest)), "20240503T120000", "latest needs no end time");
    }

    #[test]
    fn recovery_settings_quote_and_promote() {
        let text = recovery_settings("persistctl pg-wal-restore 'x' %f %p", Some("2024-05-01 12:00:00+00"));
        assert!(text.contains("restore_command = 'persistctl pg-wal-restore ''x'' %f %p'\n"), "{text}");
        assert!(text.contains("recovery_target_time = '2024-05-01 12:00:00+00'\n"), "{text}");
        assert!(text.contains("recovery_target_action = 'promote'\n"), "{text}");
        assert!(!recovery_settings("c", None).contains("recovery_target_time ="));
    }

    #[test]
    fn wal_names_are_24_upper_hex() {
        assert!(is_wal_name("000000010000000000000002"));
        assert!(!is_wal_name("00000001000000000000000a"));
        assert!(!is_wal_name("000000010000000000000002.history"));
    }

    #[test]
    fn options_come_before_destination_and_server() {
        let archive = Archive {
            destination: "s3://b/p".into(),
            server_name: "pg".into(),
            endpoint_url: Some("http://127.0.0.1:9000".into()),
            cloud_provider: Some("aws-s3".into()),
        };
        assert_eq!(
            archive.args(),
            ["--cloud-provider", "aws-s3", "--endpoint-url", "http://127.0.0.1:9000", "s3://b/p", "pg"]
        );
        let plain = Archive { endpoint_url: None, cloud_provider: None, ..archive };
        assert_eq!(plain.args(), ["s3://b/p", "pg"]);
    }
}
