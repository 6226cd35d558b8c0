//! psql's vocabulary, for `persistctl status`: the argv (no psqlrc, unaligned, tuples only, quiet,
//! never prompting, stop at the first error, over the server's Unix socket), the WAL archiver query
//! and its answer. Nothing here runs psql; `persistctl::psql` does.
//!
//! The answer is one JSON object per query (`json_build_object`), printed by psql as one line:
//! values are file names and settings that could hold any character, and JSON quotes every one of
//! them, where a field separator would have to be hoped absent. Times come as integer microseconds
//! since the epoch (`extract(epoch ...)`), so no time zone or `DateStyle` is ever parsed.

use serde::{Deserialize, Serialize};

/// `psql` arguments for one statement `sql` as `user`, over the socket in `socket_dir` at `port`,
/// in the `postgres` database: `-X` no psqlrc, `-A -t` unaligned tuples only, `-q` quiet, `-w`
/// never ask for a password (an interactive prompt would wait for the deadline), `ON_ERROR_STOP`
/// so an SQL error is a non-zero exit.
#[must_use]
pub fn argv(socket_dir: &str, port: u16, user: &str, sql: &str) -> Vec<String> {
    let port = port.to_string();
    let fixed = ["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1"];
    let rest = ["-h", socket_dir, "-p", &port, "-U", user, "-d", "postgres", "-c", sql];
    fixed.iter().chain(rest.iter()).map(|s| (*s).to_string()).collect()
}

/// The WAL archiver's state: `pg_stat_archiver`, `archive_mode`, whether the server is in recovery,
/// and the segments waiting for `archive_command` (the `.ready` files of `pg_wal/archive_status`,
/// with the oldest one's name and time).
///
/// Why `.ready` files and not `pg_walfile_name(pg_current_wal_lsn())` against `last_archived_wal`:
/// they are PostgreSQL's own queue of completed segments not yet archived, so "is WAL waiting?" needs
/// no reasoning about segment numbers; the oldest one's modification time says since when, which is
/// what an idle server needs (its last archived WAL may be days old, legitimately, and a segment that
/// became ready a minute ago is not days late). The LSN comparison fails on a server in recovery
/// (`pg_current_wal_lsn()` raises an error), maps an LSN on a segment boundary to the previous
/// segment, must skip `.history`/`.backup`/`.partial` names and timeline switches in
/// `last_archived_wal`, and still gives no "since when". `pg_ls_archive_statusdir()` (PostgreSQL ≥
/// 12) needs superuser or `pg_monitor`: the server's own user, as `status` connects, has it.
pub const ARCHIVER_QUERY: &str = "SELECT json_build_object(\
'archive_mode', current_setting('archive_mode'), \
'in_recovery', pg_is_in_recovery(), \
'archived_count', a.archived_count, \
'last_archived_wal', a.last_archived_wal, \
'last_archived_us', (extract(epoch FROM a.last_archived_time) * 1000000)::bigint, \
'failed_count', a.failed_count, \
'last_failed_wal', a.last_failed_wal, \
'last_failed_us', (extract(epoch FROM a.last_failed_time) * 1000000)::bigint, \
'ready_count', r.n, \
'oldest_ready', r.oldest, \
'oldest_ready_us', (extract(epoch FROM r.oldest_at) * 1000000)::bigint) \
FROM pg_stat_archiver a, \
(SELECT count(*) AS n, min(modification) AS oldest_at, \
(array_agg(name ORDER BY modification, name))[1] AS oldest \
FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') r";

/// The archiver's state, times in seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiverStats {
    /// `off`, `on` or `always`.
    pub archive_mode: String,
    /// `pg_is_in_recovery()`: a standby, or a restore still replaying.
    pub in_recovery: bool,
    /// Segments archived since the statistics were reset.
    pub archived_count: u64,
    /// The last file archived (a segment, `.history`, `.backup` or `.partial` file).
    pub last_archived_wal: Option<String>,
    /// When.
    pub last_archived_time: Option<i64>,
    /// Failed `archive_command` runs since the statistics were reset.
    pub failed_count: u64,
    /// The last file whose archiving failed.
    pub last_failed_wal: Option<String>,
    /// When.
    pub last_failed_time: Option<i64>,
    /// The last attempt failed: `last_failed_time` after `last_archived_time` (to the microsecond),
    /// or a failure and no success at all. PostgreSQL retries the same file until it succeeds, so
    /// a failure stays the latest event until archiving works again.
    pub failing: bool,
    /// Files waiting for `archive_command` (`.ready` in `pg_wal/archive_status`).
    pub ready_count: u64,
    /// The oldest of them (its name without `.ready`).
    pub oldest_ready_wal: Option<String>,
    /// Since when it waits (the `.ready` file's modification time: when the segment was completed).
    pub oldest_ready_time: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiverRow {
    archive_mode: String,
    in_recovery: bool,
    archived_count: u64,
    last_archived_wal: Option<String>,
    last_archived_us: Option<i64>,
    failed_count: u64,
    last_failed_wal: Option<String>,
    last_failed_us: Option<i64>,
    ready_count: u64,
    oldest_ready: Option<String>,
    oldest_ready_us: Option<i64>,
}

fn secs(us: Option<i64>) -> Option<i64> {
    us.map(|us| us.div_euclid(1_000_000))
}

/// Parses what psql printed for [`ARCHIVER_QUERY`]: exactly one line, one JSON object.
///
/// # Errors
/// Anything else (nothing, several lines, other fields), with a short sentence.
pub fn parse_archiver(stdout: &str) -> Result<ArchiverStats, String> {
    let text = stdout.strip_suffix('\n').unwrap_or(stdout);
    if text.trim().is_empty() {
        return Err("psql printed no row for the archiver query".into());
    }
    if text.contains('\n') {
        return Err("psql printed more than one row for the archiver query".into());
    }
    let row: ArchiverRow =
        serde_json::from_str(text).map_err(|e| format!("unexpected answer to the archiver query: {e}"))?;
    let failing = match (row.last_failed_us, row.last_archived_us) {
        (Some(failed), Some(archived)) => failed > archived,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let oldest_ready_wal = row.oldest_ready.map(|n| n.strip_suffix(".ready").map_or_else(|| n.clone(), str::to_string));
    Ok(ArchiverStats {
        archive_mode: row.archive_mode,
        in_recovery: row.in_recovery,
        archived_count: row.archived_count,
        last_archived_wal: row.last_archived_wal,
        last_archived_time: secs(row.last_archived_us),
        failed_count: row.failed_count,
        last_failed_wal: row.last_failed_wal,
        last_failed_time: secs(row.last_failed_us),
        failing,
        ready_count: row.ready_count,
        oldest_ready_wal,
        oldest_ready_time: secs(row.oldest_ready_us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row in the form PostgreSQL 15 prints it (`json_build_object`: ` : ` between key and value).
    const ROW: &str = r#"{"archive_mode" : "on", "in_recovery" : false, "archived_count" : 4, "last_archived_wal" : "000000010000000000000003.00000028.backup", "last_archived_us" : 1800000000123456, "failed_count" : 2, "last_failed_wal" : "000000010000000000000004", "last_failed_us" : 1800000000123455, "ready_count" : 1, "oldest_ready" : "000000010000000000000004.ready", "oldest_ready_us" : 1799999999999999}"#;

    #[test]
    fn the_argv_never_prompts_and_stops_on_error() {
        let a = argv("/run/postgresql", 5433, "postgres", "SELECT 1");
        assert_eq!(
            a,
            [
                "-X",
                "-A",
                "-t",
                "-q",
                "-w",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "/run/postgresql",
                "-p",
                "5433",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn a_row_parses_with_times_in_seconds_and_failing_to_the_microsecond() {
        let s = parse_archiver(&format!("{ROW}\n")).unwrap();
        assert_eq!(s.last_archived_time, Some(1_800_000_000));
        assert_eq!(s.last_failed_time, Some(1_800_000_000), "the same second ...");
        assert!(!s.failing, "... but the success came a microsecond after the failure");
        assert_eq!(s.oldest_ready_wal.as_deref(), Some("000000010000000000000004"));
        assert_eq!(s.oldest_ready_time, Some(1_799_999_999), "floored");
        assert_eq!((s.archived_count, s.failed_count, s.ready_count), (4, 2, 1));
    }

    #[test]
    fn failing_means_the_last_event_was_a_failure() {
        let row = |failed: &str, archived: &str| {
            ROW.replace("1800000000123455", failed).replace("1800000000123456", archived)
        };
        // (last failed, last archived, failing)
        let cases = [
            ("1800000000123457", "1800000000123456", true),
            ("1800000000123456", "1800000000123456", false),
            ("null", "null", false),
            ("1800000000123457", "null", true),
            ("null", "1800000000123456", false),
        ];
        for (failed, archived, want) in cases {
            assert_eq!(parse_archiver(&row(failed, archived)).unwrap().failing, want, "{failed} {archived}");
        }
    }

    #[test]
    fn anything_but_one_json_row_is_refused() {
        let two = format!("{ROW}\n{ROW}\n");
        let extra = ROW.replace("\"in_recovery\"", "\"x\" : 1, \"in_recovery\"");
        let missing = ROW.replace("\"ready_count\" : 1, ", "");
        for bad in ["", "\n", "ERROR: x", two.as_str(), extra.as_str(), missing.as_str(), "[]"] {
            assert!(parse_archiver(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_holding_anything_come_through_json_whole() {
        let odd = ROW.replace("000000010000000000000004.ready", "a|b\\nc\\u001fd.ready");
        let s = parse_archiver(&odd).unwrap();
        assert_eq!(s.oldest_ready_wal.as_deref(), Some("a|b\nc\u{1f}d"));
    }
}
