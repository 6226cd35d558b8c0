//! What a PostgreSQL cluster's files say, for a restore: `pg_controldata`'s answer, `postmaster.pid`'s
//! status line, and `postgresql.auto.conf` with and without persistctl's recovery settings.

use crate::barman::{Archive, conf_quote, recovery_settings};
use crate::zfs::quote;

/// The parts of `pg_controldata` (run with `LC_ALL=C`) a restore checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlData {
    /// `Database cluster state` (`shut down`, `in production`, `in archive recovery`, ...).
    pub state: String,
    /// `Latest checkpoint's TimeLineID`.
    pub timeline: u32,
    /// `Latest checkpoint location` (an LSN such as `0/3000028`).
    pub checkpoint: String,
}

/// Parses `pg_controldata`'s output.
pub fn parse_controldata(text: &str) -> Result<ControlData, String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
            .map(str::trim)
            .ok_or_else(|| format!("pg_controldata printed no {name:?}"))
    };
    let state = field("Database cluster state")?.to_string();
    let timeline = field("Latest checkpoint's TimeLineID")?;
    let timeline = timeline.parse().map_err(|_| format!("pg_controldata's TimeLineID {timeline:?} is not a number"))?;
    let checkpoint = field("Latest checkpoint location")?;
    let lsn = checkpoint.split_once('/').is_some_and(|(hi, lo)| {
        [hi, lo].iter().all(|part| !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_hexdigit()))
    });
    if !lsn {
        return Err(format!("pg_controldata's checkpoint location {checkpoint:?} is not an LSN"));
    }
    Ok(ControlData { state, timeline, checkpoint: checkpoint.to_string() })
}

/// Whether `postmaster.pid` says the server accepts connections: its 8th line is `ready` (with
/// `hot_standby = off` that is only after the end of recovery).
#[must_use]
pub fn server_ready(pid_file: &str) -> bool {
    pid_file.lines().nth(7).is_some_and(|status| status.trim() == "ready")
}

/// The settings persistctl writes for a recovery (and removes after it).
pub const RECOVERY_KEYS: &[&str] = &[
    "restore_command",
    "recovery_target",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_name",
    "recovery_target_lsn",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
];

/// The comment line persistctl's settings begin with.
const MARK: &str = "# persistctl: recovery settings";

/// `postgresql.auto.conf` without any recovery setting (restored ones included: a backup of a
/// cluster that was itself recovering must not steer this recovery) and without persistctl's mark.
#[must_use]
pub fn without_recovery_settings(auto_conf: &str) -> String {
    let recovery = |line: &str| {
        let key = line.trim_start().split(|c: char| c == '=' || c.is_whitespace()).next().unwrap_or_default();
        RECOVERY_KEYS.contains(&key.to_ascii_lowercase().as_str()) || line.starts_with(MARK)
    };
    let kept: Vec<&str> = auto_conf.lines().filter(|line| !recovery(line)).collect();
    if kept.is_empty() { String::new() } else { kept.join("\n") + "\n" }
}

/// An RFC 3339 time as PostgreSQL reads `recovery_target_time` (`2026-12-01 21:27:59.5+00`, in UTC:
/// it refuses the `T` and `Z` forms); `None` when `rfc3339` is not one.
#[must_use]
pub fn pg_timestamp(rfc3339: &str) -> Option<String> {
    let ts: jiff::Timestamp = rfc3339.parse().ok()?;
    Some(ts.strftime("%Y-%m-%d %H:%M:%S%.f+00").to_string())
}

/// `postgresql.auto.conf` for the recovery: its own settings, then persistctl's (`target_time` in
/// RFC 3339; an unreadable one is an error, never "no target").
pub fn with_recovery_settings(
    auto_conf: &str,
    restore_command: &str,
    target_time: Option<&str>,
) -> Result<String, String> {
    let target = match target_time {
        Some(time) => Some(pg_timestamp(time).ok_or_else(|| format!("targetTime {time:?} is not an RFC 3339 time"))?),
        None => None,
    };
    Ok(without_recovery_settings(auto_conf) + &recovery_settings(restore_command, target.as_deref()))
}

/// The `restore_command`: `persistctl pg-wal-restore` for `archive`, each argument shell-quoted
/// (PostgreSQL runs it through `sh -c`), then `%f %p`.
#[must_use]
pub fn restore_command(persistctl: &str, archive: &Archive, wal_timeout: u64) -> String {
    let mut argv = vec![persistctl.to_string(), "pg-wal-restore".to_string()];
    argv.extend(["--destination".to_string(), archive.destination.clone()]);
    argv.extend(["--server-name".to_string(), archive.server_name.clone()]);
    if let Some(url) = &archive.endpoint_url {
        argv.extend(["--endpoint-url".to_string(), url.clone()]);
    }
    if let Some(provider) = &archive.cloud_provider {
        argv.extend(["--cloud-provider".to_string(), provider.clone()]);
    }
    argv.extend(["--timeout".to_string(), wal_timeout.to_string()]);
    let mut text: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    text.extend(["%f".to_string(), "%p".to_string()]);
    text.join(" ")
}

/// The configuration file of the temporary recovery server: no TCP, a private socket directory, no
/// archiving yet (`archive_command` empty keeps the `.ready` marks, so the real server archives the
/// new timeline's history and segments), no hot standby (the server is "ready" only once promoted).
#[must_use]
pub fn recovery_server_conf(socket_dir: &str, hba_file: &str, ident_file: &str) -> String {
    [
        ("listen_addresses", String::new()),
        ("unix_socket_directories", socket_dir.to_string()),
        ("hba_file", hba_file.to_string()),
        ("ident_file", ident_file.to_string()),
        ("hot_standby", "off".to_string()),
        ("wal_level", "replica".to_string()),
        ("archive_mode", "on".to_string()),
        ("archive_command", String::new()),
        ("logging_collector", "off".to_string()),
        ("log_destination", "stderr".to_string()),
    ]
    .iter()
    .fold(String::new(), |mut conf, (key, value)| {
        conf.push_str(key);
        conf.push_str(" = ");
        conf.push_str(&conf_quote(value));
        conf.push('\n');
        conf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROLDATA: &str = "pg_control version number:            1300\n\
        Database cluster state:               shut down\n\
        Latest checkpoint location:           0/1500718\n\
        Latest checkpoint's REDO location:    0/1500718\n\
        Latest checkpoint's TimeLineID:       2\n\
        Latest checkpoint's PrevTimeLineID:   1\n";

    #[test]
    fn controldata_gives_state_timeline_and_checkpoint() {
        let data = parse_controldata(CONTROLDATA).unwrap();
        assert_eq!(data, ControlData { state: "shut down".into(), timeline: 2, checkpoint: "0/1500718".into() });
        for (bad, needle) in [
            ("", "no \"Database cluster state\""),
            (&CONTROLDATA.replace("TimeLineID:       2", "TimeLineID:       x"), "not a number"),
            (&CONTROLDATA.replace("0/1500718\nLatest checkpoint's REDO", "nope\nLatest checkpoint's REDO"), "LSN"),
        ] {
            let err = parse_controldata(bad).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn only_a_ready_status_line_is_ready() {
        let pid = |status: &str| format!("123\n/d\n1700000000\n5432\n/tmp\n\n  1 2\n{status}\n");
        assert!(server_ready(&pid("ready   ")));
        for status in ["starting", "standby ", "stopping"] {
            assert!(!server_ready(&pid(status)), "{status}");
        }
        assert!(!server_ready("123\n/d\n"), "a pid file still being written");
    }

    #[test]
    fn recovery_settings_are_replaced_and_removed_keeping_the_rest() {
        let own = "# Do not edit this file manually!\nwork_mem = '8MB'\nrestore_command = 'old %f %p'\n\
                   Recovery_Target_Time='2020-01-01'\n";
        let with = with_recovery_settings(own, "new %f %p", Some("2026-12-01T22:27:59.5+01:00")).unwrap();
        assert!(with.contains("recovery_target_time = '2026-12-01 21:27:59.5+00'\n"), "{with}");
        assert!(with_recovery_settings(own, "c", Some("yesterday")).is_err());
        assert_eq!(pg_timestamp("2026-12-01T21:27:59Z").as_deref(), Some("2026-12-01 21:27:59+00"));
        assert!(with.starts_with("# Do not edit this file manually!\nwork_mem = '8MB'\n# persistctl"), "{with}");
        assert!(!with.contains("old %f"), "{with}");
        assert_eq!(with.matches("recovery_target_time =").count(), 1, "{with}");
        let back = without_recovery_settings(&with);
        assert_eq!(back, "# Do not edit this file manually!\nwork_mem = '8MB'\n");
        assert_eq!(without_recovery_settings(""), "");
    }

    #[test]
    fn the_restore_command_quotes_every_argument() {
        let archive = Archive {
            destination: "s3://b/p x".into(),
            server_name: "main".into(),
            endpoint_url: Some("http://127.0.0.1:9000".into()),
            cloud_provider: None,
        };
        assert_eq!(
            restore_command("/nix/store/x-persistctl/bin/persistctl", &archive, 300),
            "/nix/store/x-persistctl/bin/persistctl pg-wal-restore --destination 's3://b/p x' --server-name main \
             --endpoint-url http://127.0.0.1:9000 --timeout 300 %f %p"
        );
    }

    #[test]
    fn the_recovery_server_listens_nowhere_and_keeps_wal_for_the_archiver() {
        let conf = recovery_server_conf("/s/run", "/s/hba", "/s/ident");
        for line in ["listen_addresses = ''\n", "hot_standby = 'off'\n", "archive_command = ''\n"] {
            assert!(conf.contains(line), "{line}: {conf}");
        }
    }
}
