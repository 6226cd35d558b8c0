//! `postgresql.<service>`: a PostgreSQL cluster on a service's dataset and its barman-cloud archive —
//! where the archive is, how a restore from it runs (the `barman` preseed source), how base backups
//! and retention run, and what `status` checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::Errors;

/// The longest `walTimeout`: what `persistctl pg-wal-restore --timeout` takes.
pub const MAX_WAL_TIMEOUT_SECS: u64 = 86_400;

/// A barman-cloud archive: `barman-cloud-* [--cloud-provider P] [--endpoint-url U] DESTINATION SERVER`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BarmanArchive {
    /// `s3://bucket/prefix` (also `gs://...`, or an `https://` Azure container URL).
    pub destination: String,
    /// The server name under the destination: one cluster's base backups and WAL.
    pub server_name: String,
    /// An S3-compatible endpoint (`MinIO`, Garage, ...): `--endpoint-url`.
    pub endpoint_url: Option<String>,
    /// `aws-s3` (barman's default), `azure-blob-storage` or `google-cloud-storage`.
    pub cloud_provider: Option<String>,
    /// `KEY=value` lines (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...) for the barman-cloud
    /// processes: read by persistctl, never put on argv, masked in everything it reports.
    pub environment_file: Option<String>,
}

const fn default_wal_timeout() -> u64 {
    300
}
fn default_user() -> String {
    "postgres".to_string()
}

fn default_socket_dir() -> String {
    "/run/postgresql".to_string()
}
const fn default_port() -> u16 {
    5432
}

/// How barman-cloud compresses base backups and WAL: the four both `barman-cloud-backup` and
/// `barman-cloud-wal-archive` take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `--gzip`.
    Gzip,
    /// `--bzip2`.
    Bzip2,
    /// `--snappy` (needs python-snappy).
    Snappy,
    /// `--lz4` (needs python-lz4).
    Lz4,
}

/// `postgresql.<service>`: the PostgreSQL cluster whose PGDATA is the service's dataset root, restored
/// by the `barman` preseed source (replayed to the end of the archive or to `targetTime`, before
/// `postgresql.service` would run `initdb`), backed up by `persistctl pg-base-backup`, checked by
/// `status`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresConfig {
    /// Where the base backups and WAL are.
    pub archive: BarmanArchive,
    /// Replay up to this time (RFC 3339 with an offset, e.g. `2026-12-01T21:27:59Z`); absent: to the
    /// end of the archive. The base backup chosen is the newest one that ended before it.
    pub target_time: Option<String>,
    /// Restore this base backup (a barman backup id such as `20261201T212759`) instead of choosing.
    pub backup_id: Option<String>,
    /// The directory holding `postgres` and `pg_controldata` of the cluster's major version.
    pub bin_dir: String,
    /// The user PostgreSQL runs as (owns PGDATA; runs the recovery, the base backups and the checks'
    /// queries, over the Unix socket with peer authentication).
    #[serde(default = "default_user")]
    pub user: String,
    /// The server's Unix socket directory.
    #[serde(default = "default_socket_dir")]
    pub socket_dir: String,
    /// The server's port (the socket's name).
    #[serde(default = "default_port")]
    pub port: u16,
    /// A libpq password file (`PGPASSFILE`) for the base backup's connection, when peer
    /// authentication is not used.
    pub password_file: Option<String>,
    /// Base backup compression; absent: none.
    pub compression: Option<Compression>,
    /// `barman-cloud-backup-delete --retention-policy`: `RECOVERY WINDOW OF N DAYS|WEEKS|MONTHS` or
    /// `REDUNDANCY N`; absent: nothing is ever deleted.
    pub retention: Option<String>,
    /// The `datasets.services` entry whose dataset holds `pg_wal` (PGDATA's `pg_wal` is then a symlink
    /// to `<its mountpoint>/pg_wal`, as `initdb --waldir` makes it); absent: `pg_wal` inside PGDATA.
    pub wal_service: Option<String>,
    /// Seconds one WAL fetch may take before the recovery is aborted (not ended); at most a day.
    #[serde(default = "default_wal_timeout")]
    #[schemars(range(min = 1, max = MAX_WAL_TIMEOUT_SECS))]
    pub wal_timeout: u64,
}

/// Why `name` is not a barman server name (`[A-Za-z0-9._-]`, not starting with `-`).
fn check_server_name(name: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.starts_with('-') || !name.chars().all(fine) || name == "." || name == ".." {
        return Err(format!("{name:?} is not a server name (letters, digits, '.', '_', '-'; not starting with '-')"));
    }
    Ok(())
}

/// Why `url` is not a barman-cloud destination.
fn check_destination(url: &str) -> Result<(), String> {
    let rest = ["s3://", "gs://", "https://"].iter().find_map(|scheme| url.strip_prefix(scheme));
    let Some(rest) = rest else {
        return Err(format!("{url:?} is not an s3://, gs:// or https:// destination"));
    };
    let bucket = rest.split('/').next().unwrap_or_default();
    if bucket.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} needs a bucket (s3://bucket/prefix) and no spaces"));
    }
    if url.contains('@') {
        return Err("the destination must not carry credentials (use environmentFile)".to_string());
    }
    Ok(())
}

/// Why `id` is not a barman backup id (`YYYYMMDDTHHMMSS`).
fn check_backup_id(id: &str) -> Result<(), String> {
    let b = id.as_bytes();
    let shaped = b.len() == 15 && b[8] == b'T' && b.iter().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit());
    if shaped { Ok(()) } else { Err(format!("{id:?} is not a barman backup id (YYYYMMDDTHHMMSS)")) }
}

/// Checks an archive; `at` is its field path.
pub(super) fn validate_archive(errors: &mut Errors, at: &str, archive: &BarmanArchive) {
    errors.check(format!("{at}.destination"), check_destination(&archive.destination));
    errors.check(format!("{at}.serverName"), check_server_name(&archive.server_name));
    if let Some(url) = &archive.endpoint_url {
        let fine = (url.starts_with("http://") || url.starts_with("https://"))
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !fine {
            errors.push(format!("{at}.endpointUrl"), "is not an http:// or https:// URL without spaces");
        } else if url.contains('@') {
            errors.push(format!("{at}.endpointUrl"), "must not carry credentials (use environmentFile)");
        }
    }
    if let Some(provider) = &archive.cloud_provider {
        if !["aws-s3", "azure-blob-storage", "google-cloud-storage"].contains(&provider.as_str()) {
            errors.push(
                format!("{at}.cloudProvider"),
                format!("{provider:?} is not aws-s3, azure-blob-storage or google-cloud-storage"),
            );
        }
    }
    if let Some(file) = &archive.environment_file {
        errors.absolute_path(format!("{at}.environmentFile"), file);
    }
}

/// A barman retention policy (`barman-cloud-backup-delete --retention-policy`), as `status` judges
/// its coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// `RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS`: any point of the last `n` units must be
    /// recoverable. The number and unit as written.
    RecoveryWindow {
        /// `n`.
        count: u32,
        /// `DAYS`, `WEEKS` or `MONTHS`.
        unit: WindowUnit,
    },
    /// `REDUNDANCY <n>`: keep `n` base backups.
    Redundancy(u32),
}

/// The unit of a recovery window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowUnit {
    /// 1 day = 86 400 s.
    Days,
    /// 7 days.
    Weeks,
    /// 31 days: barman's own month (`retention_policies.py`: `timedelta(days=31 * value)`).
    Months,
}

impl RetentionPolicy {
    /// Parses the exact form the config accepts (upper case, single spaces, `n` ≥ 1 without leading
    /// zeros).
    ///
    /// # Errors
    /// Anything else, with a sentence saying what is accepted.
    pub fn parse(policy: &str) -> Result<Self, String> {
        let words: Vec<&str> = policy.split(' ').collect();
        // barman's own pattern is `\d+`: digits only (Rust would also take `+1`), no leading zero.
        let count = |n: &str| {
            let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0');
            n.parse::<u32>().ok().filter(|_| digits)
        };
        let parsed = match words.as_slice() {
            ["REDUNDANCY", n] => count(n).map(Self::Redundancy),
            ["RECOVERY", "WINDOW", "OF", n, unit] => {
                let unit = match *unit {
                    "DAYS" => Some(WindowUnit::Days),
                    "WEEKS" => Some(WindowUnit::Weeks),
                    "MONTHS" => Some(WindowUnit::Months),
                    _ => None,
                };
                count(n).zip(unit).map(|(count, unit)| Self::RecoveryWindow { count, unit })
            }
            _ => None,
        };
        parsed.ok_or_else(|| {
            format!("{policy:?} is not \"RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS\" or \"REDUNDANCY <n>\"")
        })
    }

    /// The recovery window in seconds (`None` for a redundancy policy).
    #[must_use]
    pub fn window_secs(self) -> Option<u64> {
        match self {
            Self::RecoveryWindow { count, unit } => Some(u64::from(count) * unit.secs()),
            Self::Redundancy(_) => None,
        }
    }
}

impl WindowUnit {
    /// Its length in seconds, as barman counts it.
    #[must_use]
    pub fn secs(self) -> u64 {
        let days = match self {
            Self::Days => 1,
            Self::Weeks => 7,
            Self::Months => 31,
        };
        days * 86_400
    }
}

impl std::fmt::Display for RetentionPolicy {
    /// The policy as barman writes it (and the config holds it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redundancy(n) => write!(f, "REDUNDANCY {n}"),
            Self::RecoveryWindow { count, unit } => {
                let unit = match unit {
                    WindowUnit::Days => "DAYS",
                    WindowUnit::Weeks => "WEEKS",
                    WindowUnit::Months => "MONTHS",
                };
                write!(f, "RECOVERY WINDOW OF {count} {unit}")
            }
        }
    }
}

impl Serialize for RetentionPolicy {
    /// As its text (`"RECOVERY WINDOW OF 30 DAYS"`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why `policy` is not a barman retention policy.
fn check_retention(policy: &str) -> Result<(), String> {
    RetentionPolicy::parse(policy).map(drop)
}

/// Checks `postgresql.<service>`; `at` is its field path. `is_service` tells the configured service
/// names (the entry's own and `walService` must be among them).
pub(super) fn validate_postgres(
    errors: &mut Errors,
    at: &str,
    barman: &PostgresConfig,
    service: &str,
    is_service: impl Fn(&str) -> bool,
) {
    if !is_service(service) {
        errors.push(at, format!("{service:?} is not a service in datasets.services"));
    }
    validate_archive(errors, &format!("{at}.archive"), &barman.archive);
    if let Some(time) = &barman.target_time {
        if time.parse::<jiff::Timestamp>().is_err() {
            errors.push(
                format!("{at}.targetTime"),
                format!("{time:?} is not an RFC 3339 time with an offset (e.g. 2026-12-01T21:27:59Z)"),
            );
        }
    }
    if let Some(id) = &barman.backup_id {
        errors.check(format!("{at}.backupId"), check_backup_id(id));
    }
    errors.absolute_path(format!("{at}.binDir"), &barman.bin_dir);
    let fine_user = !barman.user.is_empty()
        && !barman.user.starts_with('-')
        && barman.user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !fine_user {
        errors.push(format!("{at}.user"), format!("{:?} is not a user name", barman.user));
    }
    if let Some(wal) = &barman.wal_service {
        if wal == service {
            errors.push(format!("{at}.walService"), "names this service itself; it must be the WAL dataset's service");
        } else if !is_service(wal) {
            errors.push(format!("{at}.walService"), format!("{wal:?} is not a service in datasets.services"));
        }
    }
    errors.absolute_path(format!("{at}.socketDir"), &barman.socket_dir);
    if barman.port == 0 {
        errors.push(format!("{at}.port"), "0 is not a port");
    }
    if let Some(file) = &barman.password_file {
        errors.absolute_path(format!("{at}.passwordFile"), file);
    }
    if let Some(policy) = &barman.retention {
        errors.check(format!("{at}.retention"), check_retention(policy));
    }
    if !(1..=MAX_WAL_TIMEOUT_SECS).contains(&barman.wal_timeout) {
        errors.push(
            format!("{at}.walTimeout"),
            format!("{} is not 1 … {MAX_WAL_TIMEOUT_SECS} seconds (a day)", barman.wal_timeout),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> BarmanArchive {
        BarmanArchive {
            destination: "s3://pitr/pg".into(),
            server_name: "main".into(),
            endpoint_url: Some("http://127.0.0.1:9000".into()),
            cloud_provider: None,
            environment_file: Some("/run/secrets/pitr.env".into()),
        }
    }

    fn barman() -> PostgresConfig {
        PostgresConfig {
            archive: archive(),
            target_time: None,
            backup_id: None,
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            user: "postgres".into(),
            socket_dir: "/run/postgresql".into(),
            port: 5432,
            password_file: None,
            compression: Some(Compression::Gzip),
            retention: Some("RECOVERY WINDOW OF 30 DAYS".into()),
            wal_service: Some("postgres-wal".into()),
            wal_timeout: 300,
        }
    }

    fn errors_of(b: &PostgresConfig) -> Vec<String> {
        let mut errors = Errors::default();
        let services = ["postgres-data".to_string(), "postgres-wal".to_string()];
        validate_postgres(&mut errors, "p", b, "postgres-data", |s| services.iter().any(|k| k == s));
        errors.0.iter().map(|e| format!("{}: {}", e.path, e.message)).collect()
    }

    #[test]
    fn a_good_barman_source_passes() {
        assert_eq!(errors_of(&barman()), Vec::<String>::new());
        let timed = PostgresConfig {
            target_time: Some("2026-12-01T21:27:59.5+01:00".into()),
            backup_id: Some("20261201T212759".into()),
            ..barman()
        };
        assert_eq!(errors_of(&timed), Vec::<String>::new());
        for policy in ["REDUNDANCY 3", "RECOVERY WINDOW OF 1 WEEKS", "RECOVERY WINDOW OF 12 MONTHS"] {
            assert_eq!(check_retention(policy), Ok(()), "{policy}");
        }
    }

    #[test]
    fn retention_policies_parse_to_barmans_windows_and_print_back() {
        let day = 86_400;
        let cases: &[(&str, Option<u64>)] = &[
            ("REDUNDANCY 3", None),
            ("RECOVERY WINDOW OF 1 DAYS", Some(day)),
            ("RECOVERY WINDOW OF 2 WEEKS", Some(14 * day)),
            ("RECOVERY WINDOW OF 12 MONTHS", Some(12 * 31 * day)),
            ("RECOVERY WINDOW OF 10 DAYS", Some(10 * day)),
        ];
        for (text, window) in cases {
            let p = RetentionPolicy::parse(text).unwrap();
            assert_eq!(p.window_secs(), *window, "{text}");
            assert_eq!(p.to_string(), *text);
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(text));
        }
        assert_eq!(RetentionPolicy::parse("REDUNDANCY 2"), Ok(RetentionPolicy::Redundancy(2)));
        for bad in [
            "REDUNDANCY 0",
            "REDUNDANCY 01",
            "REDUNDANCY -1",
            "REDUNDANCY +1",
            "RECOVERY WINDOW OF 0 DAYS",
            "RECOVERY WINDOW OF 3 YEARS",
            "recovery window of 3 days",
            "REDUNDANCY  2",
            "REDUNDANCY 99999999999",
            "",
        ] {
            assert!(RetentionPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_entry_for_an_unknown_service_is_named() {
        let mut errors = Errors::default();
        let services = ["postgres-wal".to_string()];
        validate_postgres(&mut errors, "postgresql.pg", &barman(), "pg", |s| services.iter().any(|k| k == s));
        let got: Vec<String> = errors.0.iter().map(|e| format!("{}: {}", e.path, e.message)).collect();
        assert_eq!(got, ["postgresql.pg: \"pg\" is not a service in datasets.services"]);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Break = fn(&mut PostgresConfig);
        let cases: &[(Break, &str)] = &[
            (|b| b.archive.destination = "pitr/pg".into(), "p.archive.destination: \"pitr/pg\" is not an s3://"),
            (|b| b.archive.destination = "s3:///x".into(), "p.archive.destination: \"s3:///x\" needs a bucket"),
            (|b| b.archive.destination = "s3://k:s@b".into(), "p.archive.destination: the destination must not"),
            (|b| b.archive.server_name = "-x".into(), "p.archive.serverName: \"-x\" is not a server name"),
            (|b| b.archive.server_name = "a b".into(), "p.archive.serverName"),
            (|b| b.archive.endpoint_url = Some("127.0.0.1:9000".into()), "p.archive.endpointUrl: is not an http"),
            (|b| b.archive.cloud_provider = Some("s3".into()), "p.archive.cloudProvider: \"s3\" is not aws-s3"),
            (|b| b.archive.environment_file = Some("env".into()), "p.archive.environmentFile"),
            (|b| b.target_time = Some("yesterday".into()), "p.targetTime: \"yesterday\" is not an RFC 3339"),
            (|b| b.target_time = Some("2026-12-01 21:27:59".into()), "p.targetTime"),
            (|b| b.backup_id = Some("latest".into()), "p.backupId: \"latest\" is not a barman backup id"),
            (|b| b.bin_dir = "bin".into(), "p.binDir"),
            (|b| b.user = "-u".into(), "p.user"),
            (|b| b.wal_service = Some("postgres-data".into()), "p.walService: names this service itself"),
            (|b| b.wal_service = Some("wal".into()), "p.walService: \"wal\" is not a service"),
            (|b| b.wal_timeout = 0, "p.walTimeout: 0 is not 1"),
            (|b| b.socket_dir = "run".into(), "p.socketDir"),
            (|b| b.port = 0, "p.port: 0 is not a port"),
            (|b| b.password_file = Some("pgpass".into()), "p.passwordFile"),
            (|b| b.retention = Some("30 DAYS".into()), "p.retention: \"30 DAYS\" is not"),
            (|b| b.retention = Some("REDUNDANCY 0".into()), "p.retention"),
            (|b| b.retention = Some("RECOVERY WINDOW OF 2 YEARS".into()), "p.retention"),
        ];
        for (break_it, wanted) in cases {
            let mut b = barman();
            break_it(&mut b);
            let errors = errors_of(&b);
            assert!(errors.len() == 1 && errors[0].starts_with(wanted), "wanted {wanted:?}, got {errors:?}");
        }
    }
}
