//! Delivery: every enabled backend in parallel, each with a per-attempt timeout, retries with a
//! doubling delay, and one overall deadline that no attempt or pause outlasts.
//!
//! Secrets are read from their files at delivery time and go only into the request (a header or
//! the form body); errors name the backend (`webhook/ops`), the host and the HTTP status, never a URL's
//! path, a server's reply or a token (every secret read is masked in what an attempt reports).
//! Commands and sendmail get a scrubbed environment ([`child::scrub_env`]).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::{
    Backends, CommandBackend, EmailBackend, NotificationsConfig, NtfyBackend, PushoverBackend, WebhookBackend,
};
use super::message;
use super::template::Rendered;
use crate::child;
use crate::redact::{self, Secrets};

/// The most that is waited between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// Worth another try: a network error, a timeout, HTTP 5xx/429/408, a program that failed.
    Transient(String),
    /// Another try would fail the same way: HTTP 4xx, an unreadable secret file.
    Permanent(String),
}

impl AttemptError {
    fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Permanent(m) => m,
        }
    }
}

/// What happened at one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendOutcome {
    /// `ntfy/phone`, `email/admin`, ...
    pub backend: String,
    /// Whether it was accepted.
    pub delivered: bool,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed (when not delivered), else null.
    pub error: Option<String>,
}

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts at most.
    pub attempts: u32,
    /// Before the second attempt; doubled after each (at most [`MAX_RETRY_DELAY`]).
    pub retry_delay: Duration,
    /// Nothing runs past this.
    pub deadline: Instant,
}

impl Policy {
    /// The config's settings, with `deadline` as the overall limit.
    #[must_use]
    pub fn from_config(n: &NotificationsConfig, deadline: Instant) -> Self {
        Self {
            timeout: Duration::from_secs(n.timeout),
            attempts: n.attempts.max(1),
            retry_delay: Duration::from_secs(n.retry_delay),
            deadline,
        }
    }

    /// The longest delivery can take with these settings (for a caller's own time budget).
    #[must_use]
    pub fn worst_case(timeout: Duration, attempts: u32, retry_delay: Duration) -> Duration {
        let pauses: Duration = backoff(retry_delay, attempts).iter().sum();
        timeout * attempts.max(1) + pauses
    }
}

/// The pauses between `attempts` attempts: `first`, doubled each time, capped.
#[must_use]
pub fn backoff(first: Duration, attempts: u32) -> Vec<Duration> {
    let mut delays = Vec::new();
    let mut next = first;
    for _ in 1..attempts {
        delays.push(next.min(MAX_RETRY_DELAY));
        next = next.saturating_mul(2);
    }
    delays
}

/// Runs `attempt` (given this attempt's deadline) until it succeeds, fails permanently, runs out of
/// attempts or of time. `sleep` is how pauses are taken (tests pass a fake).
pub fn with_retries(
    policy: &Policy,
    mut attempt: impl FnMut(Instant) -> Result<(), AttemptError>,
    mut sleep: impl FnMut(Duration),
    now: impl Fn() -> Instant,
) -> (u32, Result<(), String>) {
    let delays = backoff(policy.retry_delay, policy.attempts);
    let mut made = 0;
    loop {
        let start = now();
        if start >= policy.deadline {
            let why = if made == 0 { "no time left to try" } else { "no time left for another attempt" };
            return (made, Err(why.to_string()));
        }
        made += 1;
        let until = (start + policy.timeout).min(policy.deadline);
        let error = match attempt(until) {
            Ok(()) => return (made, Ok(())),
            Err(e) => e,
        };
        let last = made >= policy.attempts || matches!(error, AttemptError::Permanent(_));
        let pause = delays.get(made as usize - 1).copied().unwrap_or_default();
        if last || now() + pause >= policy.deadline {
            let mut why = error.message().to_string();
            if !last {
                why.push_str(" (no time left for another attempt)");
            }
            return (made, Err(why));
        }
        tracing::warn!("attempt {made} failed: {}; retrying in {} s", error.message(), pause.as_secs_f64());
        sleep(pause);
    }
}

/// One configured, enabled backend that this notification's priority reaches.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Ntfy(&'a NtfyBackend),
    Webhook(&'a WebhookBackend),
    Pushover(&'a PushoverBackend),
    Email(&'a EmailBackend),
    Command(&'a CommandBackend),
}

/// The backends a notification goes to, with their `kind/name`.
fn targets<'a>(b: &'a Backends, n: &Rendered) -> Vec<(String, Target<'a>)> {
    let mut all: Vec<(String, bool, super::template::Priority, Target<'a>)> = Vec::new();
    for (name, x) in &b.ntfy {
        all.push((format!("ntfy/{name}"), x.enable, x.min_priority, Target::Ntfy(x)));
    }
    for (name, x) in &b.webhook {
        all.push((format!("webhook/{name}"), x.enable, x.min_priority, Target::Webhook(x)));
    }
    for (name, x) in &b.pushover {
        all.push((format!("pushover/{name}"), x.enable, x.min_priority, Target::Pushover(x)));
    }
    for (name, x) in &b.email {
        all.push((format!("email/{name}"), x.enable, x.min_priority, Target::Email(x)));
    }
    for (name, x) in &b.command {
        all.push((format!("command/{name}"), x.enable, x.min_priority, Target::Command(x)));
    }
    all.into_iter().filter(|(_, enable, min, _)| *enable && n.priority >= *min).map(|(k, _, _, t)| (k, t)).collect()
}

/// The names of the backends `n` would go to (for `--dry-run`).
#[must_use]
pub fn target_names(b: &Backends, n: &Rendered) -> Vec<String> {
    targets(b, n).into_iter().map(|(name, _)| name).collect()
}

/// Delivers `n` to every backend it reaches, in parallel; waits for all of them, never past
/// `policy.deadline` (plus the time to kill a program).
#[must_use]
pub fn deliver(b: &Backends, n: &Rendered, policy: &Policy) -> Vec<BackendOutcome> {
    let targets = targets(b, n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|(name, target)| {
                scope.spawn(move || {
                    let span = tracing::info_span!("notify", backend = %name);
                    let _entered = span.enter();
                    let (attempts, result) =
                        with_retries(policy, |until| send(*target, n, until), std::thread::sleep, Instant::now);
                    match &result {
                        Ok(()) => tracing::info!("{name}: delivered (attempt {attempts})"),
                        Err(e) => tracing::error!("{name}: not delivered after {attempts} attempt(s): {e}"),
                    }
                    BackendOutcome { backend: name.clone(), delivered: result.is_ok(), attempts, error: result.err() }
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(&targets)
            .map(|(h, (name, _))| {
                h.join().unwrap_or_else(|_| BackendOutcome {
                    backend: name.clone(),
                    delivered: false,
                    attempts: 0,
                    error: Some("delivery thread panicked".into()),
                })
            })
            .collect()
    })
}

/// One attempt at one backend. Whatever it reports is masked: the secrets it read (tokens, a URL from a
/// file) and URL passwords never reach the log, the `--json` output or the caller's status file.
fn send(target: Target<'_>, n: &Rendered, until: Instant) -> Result<(), AttemptError> {
    let mut secrets = Secrets::default();
    send_reading(target, n, until, &mut secrets).map_err(|e| match e {
        AttemptError::Transient(m) => AttemptError::Transient(secrets.redact(&m)),
        AttemptError::Permanent(m) => AttemptError::Permanent(secrets.redact(&m)),
    })
}

fn send_reading(target: Target<'_>, n: &Rendered, until: Instant, secrets: &mut Secrets) -> Result<(), AttemptError> {
    let mut read = |path: &str| {
        let value = read_secret(path)?;
        secrets.add(&value);
        Ok::<_, AttemptError>(value)
    };
    match target {
        Target::Ntfy(x) => {
            let token = x.token_file.as_deref().map(&mut read).transpose()?;
            let body = message::ntfy_json(&x.topic, n).to_string();
            post(&x.url, token.as_deref(), Body::Json(body), until)
        }
        Target::Webhook(x) => {
            let url = match (&x.url, &x.url_file) {
                (Some(url), _) => url.clone(),
                (None, Some(file)) => {
                    let url = read(file)?;
                    super::config::check_url(&url)
                        .map_err(|_| AttemptError::Permanent(format!("{file} does not hold an http(s) URL")))?;
                    url
                }
                (None, None) => return Err(AttemptError::Permanent("no url".into())),
            };
            let token = x.token_file.as_deref().map(&mut read).transpose()?;
            let body = message::webhook_json(n).to_string();
            post(&url, token.as_deref(), Body::Json(body), until)
        }
        Target::Pushover(x) => {
            let token = read(&x.token_file)?;
            let user = read(&x.user_file)?;
            post(&x.api_url, None, Body::Form(message::pushover_form(&token, &user, n)), until)
        }
        Target::Email(x) => {
            let mut cmd = Command::new(&x.sendmail);
            child::scrub_env(&mut cmd);
            cmd.arg("-i").args(&x.to);
            let text = message::email_text(x.from.as_deref(), &x.to, n);
            run_program(cmd, Some(text.into_bytes()), until)
        }
        Target::Command(x) => {
            let Some((program, args)) = x.command.split_first() else {
                return Err(AttemptError::Permanent("empty command".into()));
            };
            let mut cmd = Command::new(program);
            child::scrub_env(&mut cmd);
            cmd.args(args).envs(message::command_env(n));
            run_program(cmd, None, until)
        }
    }
}

/// Reads a secret file: its content without surrounding whitespace. The content is never logged.
fn read_secret(path: &str) -> Result<String, AttemptError> {
    let text = std::fs::read_to_string(Path::new(path))
        .map_err(|e| AttemptError::Permanent(format!("Failed to read secret file {path}: {e}")))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(AttemptError::Permanent(format!("secret file {path} is empty")));
    }
    Ok(text.to_string())
}

fn run_program(cmd: Command, input: Option<Vec<u8>>, until: Instant) -> Result<(), AttemptError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let done = child::run(cmd, input, until).map_err(|e| AttemptError::Transient(e.to_string()))?;
    if done.status.success() {
        return Ok(());
    }
    let how = done.status.code().map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
    let stderr = child::tail(&done.stderr_text(), 500);
    Err(AttemptError::Transient(format!(
        "{program} failed ({how}){}",
        if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
    )))
}

enum Body {
    Json(String),
    Form(Vec<(&'static str, String)>),
}

/// One POST. Its errors name the host and the HTTP status, never the URL (its path or query may be the
/// secret) and never the server's reply (servers echo tokens and paths back).
fn post(url: &str, bearer: Option<&str>, body: Body, until: Instant) -> Result<(), AttemptError> {
    let host = redact::url_host(url);
    let timeout = until.saturating_duration_since(Instant::now());
    if timeout.is_zero() {
        return Err(AttemptError::Transient("no time left".into()));
    }
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("persistctl/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let mut request = agent.post(url);
    if let Some(token) = bearer {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let response = match body {
        Body::Json(json) => request.content_type("application/json").send(json.as_bytes()),
        Body::Form(form) => request.send_form(form),
    };
    let response = response.map_err(|e| {
        AttemptError::Transient(match e {
            ureq::Error::Timeout(_) => format!("{host}: timed out after {:.1} s", timeout.as_secs_f64()),
            // ureq's texts may quote the URL: it is replaced by the host before anything else masks.
            other => format!("{host}: {}", other.to_string().replace(url, &host)),
        })
    })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let what = format!("{host} answered HTTP {status}");
    if status >= 500 || status == 429 || status == 408 {
        Err(AttemptError::Transient(what))
    } else {
        Err(AttemptError::Permanent(what))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    /// A clock that only moves when the code under test sleeps or an attempt "takes" time.
    struct Clock {
        start: Instant,
        elapsed: Cell<Duration>,
    }

    impl Clock {
        fn new() -> Self {
            Self { start: Instant::now(), elapsed: Cell::new(Duration::ZERO) }
        }
        fn now(&self) -> Instant {
            self.start + self.elapsed.get()
        }
        fn advance(&self, d: Duration) {
            self.elapsed.set(self.elapsed.get() + d);
        }
    }

    fn policy(clock: &Clock, attempts: u32, total: u64) -> Policy {
        Policy {
            timeout: Duration::from_secs(10),
            attempts,
            retry_delay: Duration::from_secs(2),
            deadline: clock.now() + Duration::from_secs(total),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(2), 1), Vec::<Duration>::new());
        assert_eq!(backoff(s(2), 4), [s(2), s(4), s(8)]);
        assert_eq!(backoff(s(40), 3), [s(40), s(60)]);
        assert_eq!(backoff(s(0), 3), [s(0), s(0)]);
        assert_eq!(Policy::worst_case(s(10), 3, s(2)), s(36));
    }

    /// (attempts, overall seconds, each attempt's outcome, attempts made, result, pauses taken)
    type Case = (u32, u64, Vec<Result<(), AttemptError>>, u32, Result<(), &'static str>, Vec<u64>);

    #[test]
    fn retry_cases() {
        use AttemptError::{Permanent, Transient};
        let t = || Transient("HTTP 500".into());
        let cases: Vec<Case> = vec![
            (3, 600, vec![Ok(())], 1, Ok(()), vec![]),
            (3, 600, vec![Err(t()), Ok(())], 2, Ok(()), vec![2]),
            (3, 600, vec![Err(t()), Err(t()), Ok(())], 3, Ok(()), vec![2, 4]),
            (3, 600, vec![Err(t()), Err(t()), Err(t())], 3, Err("HTTP 500"), vec![2, 4]),
            (3, 600, vec![Err(Permanent("HTTP 401".into()))], 1, Err("HTTP 401"), vec![]),
            (1, 600, vec![Err(t())], 1, Err("HTTP 500"), vec![]),
            // Each attempt takes 10 s: after the first (10 s) plus a 2 s pause the 11 s budget is gone.
            (3, 11, vec![Err(t()), Ok(())], 1, Err("HTTP 500 (no time left for another attempt)"), vec![]),
        ];
        for (attempts, total, script, made_want, want, pauses_want) in cases {
            let clock = Clock::new();
            let p = policy(&clock, attempts, total);
            let script = RefCell::new(script.into_iter());
            let pauses = RefCell::new(Vec::new());
            let (made, result) = with_retries(
                &p,
                |until| {
                    assert!(until <= p.deadline, "an attempt never runs past the deadline");
                    let outcome = script.borrow_mut().next().expect("no more attempts expected");
                    if total < 600 {
                        clock.advance(Duration::from_secs(10));
                    }
                    outcome
                },
                |d| {
                    pauses.borrow_mut().push(d.as_secs());
                    clock.advance(d);
                },
                || clock.now(),
            );
            assert_eq!(made, made_want, "{attempts} attempts / {total} s");
            assert_eq!(result, want.map_err(String::from), "{attempts} attempts / {total} s");
            assert_eq!(*pauses.borrow(), pauses_want);
        }
    }

    #[test]
    fn attempts_are_cut_to_the_deadline() {
        let clock = Clock::new();
        let p = Policy {
            timeout: Duration::from_secs(10),
            attempts: 3,
            retry_delay: Duration::ZERO,
            deadline: clock.now() + Duration::from_secs(4),
        };
        let (made, result) = with_retries(
            &p,
            |until| {
                assert_eq!(until, p.deadline, "a 10 s attempt gets only the 4 s left");
                clock.advance(Duration::from_secs(4));
                Err(AttemptError::Transient("timed out".into()))
            },
            |_| {},
            || clock.now(),
        );
        assert_eq!(made, 1);
        assert!(result.unwrap_err().contains("no time left"));
    }

    #[test]
    fn secrets_are_trimmed_and_empty_or_missing_files_are_permanent_errors() {
        let dir = std::env::temp_dir().join(format!("persistctl-notify-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "tk_abc\n").unwrap();
        assert_eq!(read_secret(file.to_str().unwrap()).unwrap(), "tk_abc");
        std::fs::write(&file, " \n").unwrap();
        assert!(matches!(read_secret(file.to_str().unwrap()), Err(AttemptError::Permanent(m)) if m.contains("empty")));
        assert!(
            matches!(read_secret("/nonexistent/token"), Err(AttemptError::Permanent(m)) if m.contains("/nonexistent/token"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
