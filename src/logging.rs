//! Logs go to stderr. Under systemd, when stderr *is* the journal stream (`$JOURNAL_STREAM` names its
//! device and inode, see systemd.exec(5)), every line carries its syslog priority as an sd-daemon(3)
//! prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug/trace), which journald stores as the
//! entry's `PRIORITY=` (`SyslogLevelPrefix=` is on by default), so `journalctl -p warning` shows
//! exactly persistctl's warnings and errors. Anywhere else (a terminal, a pipe, activation output
//! that only inherited `$JOURNAL_STREAM`) the lines are plain.

use std::io::{self, IsTerminal as _, Write};
use std::os::fd::AsFd as _;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The sd-daemon priority prefix of a tracing level.
#[must_use]
pub fn priority_prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        _ => "<7>",
    }
}

/// PURE: whether `$JOURNAL_STREAM` (`<device>:<inode>`, both decimal) names the file stderr is.
#[must_use]
pub fn journal_stream_matches(value: &str, device: u64, inode: u64) -> bool {
    let Some((dev, ino)) = value.trim().split_once(':') else { return false };
    dev.parse() == Ok(device) && ino.parse() == Ok(inode)
}

/// Whether this process's stderr is connected to the journal.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Ok(stat) = nix::sys::stat::fstat(io::stderr().as_fd()) else { return false };
    journal_stream_matches(&value.to_string_lossy(), stat.st_dev, stat.st_ino)
}

/// Writes one formatted event to stderr with `prefix` before every line. The formatter writes an
/// event in one piece, so the lines of two events never interleave.
pub struct Prefixed<W: Write> {
    inner: W,
    prefix: &'static str,
}

impl<W: Write> Write for Prefixed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 8);
        for line in buf.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(self.prefix.as_bytes());
            out.extend_from_slice(line);
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// stderr, with each event's priority prefixed to its lines.
struct JournalStderr;

impl<'a> MakeWriter<'a> for JournalStderr {
    type Writer = Prefixed<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Prefixed { inner: io::stderr(), prefix: priority_prefix(Level::INFO) }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Prefixed { inner: io::stderr(), prefix: priority_prefix(*meta.level()) }
    }
}

/// Installs the global subscriber: `RUST_LOG` if set, else info / debug (`-v`) / trace (`-vv`).
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let tty = io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(tty).with_target(false);
    if stderr_is_journal() {
        // The journal stamps every entry itself.
        builder.with_writer(JournalStderr).without_time().init();
    } else if tty {
        builder.with_writer(io::stderr).init();
    } else {
        builder.with_writer(io::stderr).without_time().init();
    }
}

/// The prefix for the top-level error line `main` prints after a failed command.
#[must_use]
pub fn error_prefix() -> &'static str {
    if stderr_is_journal() { priority_prefix(Level::ERROR) } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_stderr_exactly() {
        let cases = [
            ("8:1234", 8, 1234, true),
            (" 8:1234\n", 8, 1234, true),
            ("8:1235", 8, 1234, false),
            ("9:1234", 8, 1234, false),
            ("8-1234", 8, 1234, false),
            ("", 8, 1234, false),
            ("8:", 8, 1234, false),
            ("x:1234", 8, 1234, false),
        ];
        for (value, dev, ino, want) in cases {
            assert_eq!(journal_stream_matches(value, dev, ino), want, "{value:?}");
        }
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        let got: Vec<&str> =
            [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE].map(priority_prefix).to_vec();
        assert_eq!(got, ["<3>", "<4>", "<6>", "<7>", "<7>"]);
    }

    #[test]
    fn every_line_of_an_event_carries_the_prefix() {
        let mut w = Prefixed { inner: Vec::new(), prefix: "<4>" };
        assert_eq!(w.write(b"first\nsecond\n").unwrap(), 13);
        w.write_all(b"third").unwrap();
        assert_eq!(String::from_utf8(w.inner).unwrap(), "<4>first\n<4>second\n<4>third");
    }
}
