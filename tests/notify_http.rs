//! `persistctl notify`, the real binary, against real local receivers: a small HTTP server on
//! 127.0.0.1 that records every request (ntfy, webhook and Pushover shapes) and can fail (500),
//! hang (never answer) or recover; sendmail and command backends as scripts in a temp dir.
//! No traffic leaves 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What the server does with the n-th request (the last entry repeats).
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Answer with this status and a body that echoes the request line, headers and body back (as
    /// servers' error pages do), tokens and secret paths included.
    Echo(u16),
    /// Read the request, never answer.
    Hang,
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn form(&self) -> Vec<(String, String)> {
        self.body
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (decode(k), decode(v))
            })
            .collect()
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(replies: &[Reply]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let replies = replies.to_vec();
        let count = Arc::new(AtomicUsize::new(0));
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let reply = replies[n.min(replies.len() - 1)];
                let recorded = Arc::clone(&recorded);
                std::thread::spawn(move || serve(stream, reply, &recorded));
            }
        });
        Self { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, reply: Reply, recorded: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let length: usize =
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    recorded.lock().unwrap().push(Request { path, headers, body: String::from_utf8(body).unwrap() });
    let mut stream = stream;
    match reply {
        Reply::Status(code) => {
            let text = format!("status {code}");
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
        Reply::Echo(code) => {
            let r = recorded.lock().unwrap().last().cloned().unwrap();
            let text = format!("error at {}: headers {:?} body {}", r.path, r.headers, r.body);
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
        Reply::Hang => std::thread::sleep(Duration::from_secs(120)),
    }
}

/// A temp dir with a config, secret files and scripts.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(notifications: &Value) -> Self {
        let setup = Self { dir: tempfile::tempdir().unwrap() };
        setup.write_config(notifications);
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write_config(&self, notifications: &Value) {
        let config = json!({
            "version": 1,
            "datasets": { "parentDataset": "tank/persist", "parentMount": "/persist", "services": {} },
            "notifications": notifications,
        });
        std::fs::write(self.path("config.json"), config.to_string()).unwrap();
    }

    fn secret(&self, name: &str, content: &str) -> String {
        std::fs::write(self.path(name), content).unwrap();
        self.p(name)
    }

    fn script(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{text}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_persistctl"));
        cmd.arg("--config").arg(self.path("config.json")).args(args);
        for proxy in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
            cmd.env_remove(proxy);
        }
        cmd.env_remove("MONITOR_UNIT").env_remove("MONITOR_INVOCATION_ID").env("RUST_LOG", "info");
        cmd
    }

    /// Runs `persistctl notify ...`; fails the test instead of hanging.
    fn notify(&self, args: &[&str]) -> Run {
        run(self.command(&[&["notify"], args].concat()))
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn all(&self) -> String {
        format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

fn run(mut cmd: Command) -> Run {
    let started = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("persistctl notify hung for 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn quick(backends: &Value) -> Value {
    json!({ "timeout": 2, "attempts": 3, "retryDelay": 0, "backends": backends })
}

#[test]
fn ntfy_gets_a_json_publish_with_the_token_from_its_file() {
    let server = Server::start(&[Reply::Status(200)]);
    let setup = Setup::new(&json!({}));
    let token = setup.secret("ntfy-token", "tk_s3cr3t\n");
    setup.write_config(&quick(
        &json!({"ntfy": {"phone": {"url": server.url(""), "topic": "homelab", "tokenFile": token}}}),
    ));
    let run = setup.notify(&["preseed-failure", "--var", "serviceName=sonarr", "--var", "errorMessage=no source"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.contains("ntfy/phone") && run.stdout.contains("delivered"), "{}", run.all());
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.path, "/");
    assert_eq!(r.header("authorization"), Some("Bearer tk_s3cr3t"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["topic"], "homelab");
    assert_eq!(body["title"], "Restore Failed: sonarr");
    assert_eq!(body["priority"], 4, "high");
    assert!(body["message"].as_str().unwrap().starts_with("All restore methods failed\n"), "{body}");
    assert!(body["message"].as_str().unwrap().ends_with("no source"), "{body}");
    assert!(!run.all().contains("tk_s3cr3t"), "the token is never printed");
}

#[test]
fn webhook_gets_the_json_shape_and_a_url_from_a_file_is_never_printed() {
    let server = Server::start(&[Reply::Status(204)]);
    let setup = Setup::new(&json!({}));
    let url = setup.secret("hook-url", &server.url("/hook/SECRETPATH"));
    setup.write_config(&quick(&json!({"webhook": {"ops": {"urlFile": url}}})));
    let run = setup.notify(&["syncoid-lag-warning", "--var", "lagHours=13", "--var", "dataset=tank/persist/sonarr"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let r = &server.requests()[0];
    assert_eq!(r.path, "/hook/SECRETPATH");
    assert!(r.header("authorization").is_none());
    let body = r.json();
    assert_eq!(body["source"], "persistctl");
    assert_eq!(body["template"], "syncoid-lag-warning");
    assert_eq!(body["priority"], "medium");
    assert_eq!(body["title"], "Syncoid Replication Lag");
    assert_eq!(body["body"], "Lag: 13 hours\nDataset: tank/persist/sonarr");
    assert_eq!(body["variables"]["lagHours"], "13");
    assert!(body["variables"]["hostname"].is_string());

    // A 404 is permanent: one attempt, exit 2, and the secret URL appears nowhere.
    let failing = Server::start(&[Reply::Status(404)]);
    std::fs::write(setup.path("hook-url"), failing.url("/hook/SECRETPATH")).unwrap();
    let run = setup.notify(&["syncoid-lag-warning", "--var", "lagHours=1", "--var", "dataset=d"]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert_eq!(failing.requests().len(), 1, "no retry after a 4xx");
    assert!(run.stdout.contains("HTTP 404"), "{}", run.all());
    assert!(!run.all().contains("SECRETPATH"), "{}", run.all());
}

#[test]
fn pushover_gets_a_form_with_token_and_user_from_files() {
    let server = Server::start(&[Reply::Status(200)]);
    let setup = Setup::new(&json!({}));
    let token = setup.secret("po-token", "apptoken\n");
    let user = setup.secret("po-user", "userkey");
    setup.write_config(&quick(&json!({"pushover": {"me": {
        "apiUrl": server.url("/1/messages.json"), "tokenFile": token, "userFile": user}}})));
    let run = setup.notify(&[
        "preseed-success",
        "--var",
        "serviceName=sonarr",
        "--var",
        "restoreSource=restic",
        "--var",
        "duration=42 s",
        "--var",
        "note=full send needed",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let r = &server.requests()[0];
    assert_eq!(r.path, "/1/messages.json");
    assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form = r.form();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("token"), Some("apptoken"));
    assert_eq!(field("user"), Some("userkey"));
    assert_eq!(field("title"), Some("Data Restored: sonarr"));
    assert_eq!(field("priority"), Some("-1"), "low");
    assert_eq!(field("message"), Some("Source: restic\nSnapshot: \nDuration: 42 s\nfull send needed"));
    assert!(!run.all().contains("apptoken") && !run.all().contains("userkey"));
}

#[test]
fn a_failing_server_is_retried_then_reported_with_exit_2() {
    let server = Server::start(&[Reply::Status(500)]);
    let setup = Setup::new(&quick(&json!({"webhook": {"ops": {"url": server.url("/h")}}})));
    let run = setup.notify(&["unit-failure", "--var", "unit=x.service"]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert_eq!(server.requests().len(), 3, "attempts = 3");
    assert!(
        run.stdout.contains("FAILED") && run.stdout.contains("3 attempts") && run.stdout.contains("HTTP 500"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("not delivered"), "logged: {}", run.all());
}

#[test]
fn a_hanging_server_times_out_and_the_caller_does_not_hang() {
    let server = Server::start(&[Reply::Hang]);
    let setup = Setup::new(&json!({"timeout": 1, "attempts": 2, "retryDelay": 0,
        "backends": {"webhook": {"ops": {"url": server.url("/h")}}}}));
    let run = setup.notify(&["unit-failure", "--var", "unit=x.service"]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(run.stdout.contains("timed out"), "{}", run.all());
    assert_eq!(server.requests().len(), 2);
    assert!(run.took < Duration::from_secs(8), "two 1 s attempts took {:?}", run.took);
}

#[test]
fn a_server_that_recovers_gets_the_notification_after_backoff() {
    let server = Server::start(&[Reply::Status(500), Reply::Status(503), Reply::Status(200)]);
    let setup = Setup::new(&json!({"timeout": 2, "attempts": 3, "retryDelay": 1,
        "backends": {"ntfy": {"phone": {"url": server.url(""), "topic": "t"}}}}));
    let run = setup.notify(&["preseed-skipped", "--var", "serviceName=sonarr"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(server.requests().len(), 3);
    assert!(run.stdout.contains("delivered  (3 attempts)"), "{}", run.all());
    assert!(run.took >= Duration::from_secs(3), "pauses of 1 s then 2 s: {:?}", run.took);
}

#[test]
fn one_failing_backend_does_not_stop_the_others() {
    let good = Server::start(&[Reply::Status(200)]);
    let setup = Setup::new(&quick(&json!({
        "ntfy": {"phone": {"url": good.url(""), "topic": "t"}},
        "webhook": {"down": {"url": "http://127.0.0.1:9/nothing-listens"}}})));
    let run = setup.notify(&["unit-failure", "--var", "unit=x.service"]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert_eq!(good.requests().len(), 1);
    assert!(run.stdout.contains("delivered to 1 of 2 backend(s)"), "{}", run.all());
}

#[test]
fn sendmail_gets_recipients_on_argv_and_the_message_on_stdin() {
    let setup = Setup::new(&json!({}));
    let out = setup.p("mail");
    let sendmail = setup.script("sendmail", &format!("printf '%s\\n' \"$@\" > {out}.argv; cat > {out}.msg"));
    setup.write_config(&quick(&json!({"email": {"admin": {"sendmail": sendmail, "from": "forge@example.org",
        "to": ["a@example.org", "b@example.org"]}}})));
    let run = setup.notify(&["sanoid-failure", "--var", "errorMessage=cannot snapshot: out of space"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(std::fs::read_to_string(format!("{out}.argv")).unwrap(), "-i\na@example.org\nb@example.org\n");
    let msg = std::fs::read_to_string(format!("{out}.msg")).unwrap();
    assert!(msg.starts_with("From: forge@example.org\nTo: a@example.org, b@example.org\n"), "{msg}");
    assert!(msg.contains("Subject: [high] Sanoid Snapshot Failed\n"), "{msg}");
    assert!(
        msg.ends_with("\n\nDataset: every dataset sanoid manages\nError: cannot snapshot: out of space\n"),
        "{msg}"
    );
}

#[test]
fn the_command_backend_gets_the_notification_in_its_environment() {
    let setup = Setup::new(&json!({}));
    let out = setup.p("env");
    let cmd = setup.script(
        "hook",
        &format!("printf '%s|%s|%s|%s|%s|%s' \"$1\" \"$PERSISTCTL_NOTIFY_TEMPLATE\" \"$PERSISTCTL_NOTIFY_PRIORITY\" \"$PERSISTCTL_NOTIFY_TITLE\" \"$PERSISTCTL_NOTIFY_BODY\" \"$PERSISTCTL_NOTIFY_VARS\" > {out}"),
    );
    let mut config = quick(&json!({"command": {"log": {"command": [cmd, "--flag"]}}}));
    config["templates"] =
        json!({"disk-full": {"priority": "urgent", "title": "Pool ${pool} full", "body": "${pct}% used"}});
    setup.write_config(&config);
    let run = setup.notify(&["disk-full", "--var", "pool=tank", "--var", "pct=95"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let got = std::fs::read_to_string(&out).unwrap();
    let fields: Vec<&str> = got.splitn(6, '|').collect();
    assert_eq!(&fields[..5], ["--flag", "disk-full", "urgent", "Pool tank full", "95% used"]);
    let vars: Value = serde_json::from_str(fields[5]).unwrap();
    assert_eq!(vars["pool"], "tank");
}

#[test]
fn a_failing_or_hanging_command_is_reported_and_killed() {
    let setup = Setup::new(&json!({}));
    let fail = setup.script("fail", "echo 'gateway down' >&2; exit 7");
    setup.write_config(&json!({"timeout": 1, "attempts": 2, "retryDelay": 0,
        "backends": {"command": {"fail": {"command": [fail]}}}}));
    let run = setup.notify(&["unit-failure", "--var", "unit=x.service"]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(run.stdout.contains("exit 7") && run.stdout.contains("gateway down"), "{}", run.all());

    let hang = setup.script("hang", "sleep 100");
    setup.write_config(&json!({"timeout": 1, "attempts": 2, "retryDelay": 0,
        "backends": {"command": {"hang": {"command": [hang]}}}}));
    let run = setup.notify(&["unit-failure", "--var", "unit=x.service"]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(run.stdout.contains("timed out"), "{}", run.all());
    assert!(run.took < Duration::from_secs(8), "{:?}", run.took);
}

#[test]
fn a_failed_unit_is_reported_with_its_journal_and_mapped_template() {
    let server = Server::start(&[Reply::Status(200)]);
    let setup = Setup::new(&quick(&json!({"webhook": {"ops": {"url": server.url("/h")}}})));
    let bin = setup.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let journal_args = setup.p("journal-args");
    std::fs::write(
        bin.join("journalctl"),
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {journal_args}\necho 'cannot create snapshot tank/persist@x'\n"),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("journalctl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    let mut cmd = setup.command(&["notify", "sanoid.service"]);
    cmd.env("PATH", &path)
        .env("MONITOR_UNIT", "sanoid.service")
        .env("MONITOR_SERVICE_RESULT", "exit-code")
        .env("MONITOR_EXIT_STATUS", "1")
        .env("MONITOR_INVOCATION_ID", "0123abcd");
    let done = run(cmd);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let body = server.requests()[0].json();
    assert_eq!(body["template"], "sanoid-failure", "unitTemplates maps sanoid.service");
    assert_eq!(body["body"], "Dataset: every dataset sanoid manages\nError: cannot create snapshot tank/persist@x");
    assert_eq!(body["variables"]["result"], "exit-code");
    let args = std::fs::read_to_string(&journal_args).unwrap();
    assert!(args.contains("_SYSTEMD_INVOCATION_ID=0123abcd"), "the failed run's lines: {args}");

    // Any other unit: unit-failure, named in the title.
    let mut cmd = setup.command(&["notify", "syncoid-tank-persist.service"]);
    cmd.env("PATH", &path);
    let done = run(cmd);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let body = server.requests()[1].json();
    assert_eq!(body["template"], "unit-failure");
    assert_eq!(body["title"], "Unit Failed: syncoid-tank-persist.service");
    assert!(std::fs::read_to_string(&journal_args).unwrap().contains("--unit=syncoid-tank-persist.service"));

    // A restic job's journal quoting its repository URL: the password is masked in errorMessage.
    std::fs::write(bin.join("journalctl"), "#!/bin/sh\necho 'Fatal: unable to open sftp://u:hunter2@h/r'\n").unwrap();
    let mut cmd = setup.command(&["notify", "restic-backups-sonarr.service"]);
    cmd.env("PATH", &path);
    let done = run(cmd);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let body = &server.requests()[2].body;
    assert!(body.contains("sftp://u:***@h/r") && !body.contains("hunter2"), "{body}");
}

#[test]
fn missing_variables_show_as_placeholders_or_fail_with_strict() {
    let server = Server::start(&[Reply::Status(200)]);
    let setup = Setup::new(&quick(&json!({"webhook": {"ops": {"url": server.url("/h")}}})));
    let run = setup.notify(&["syncoid-lag-warning", "--var", "dataset=tank"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stderr.contains("lagHours"), "the warning names it: {}", run.all());
    assert_eq!(server.requests()[0].json()["body"], "Lag: ${lagHours?} hours\nDataset: tank");

    let run = setup.notify(&["syncoid-lag-warning", "--strict", "--var", "dataset=tank"]);
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(run.stderr.contains("needs variables that were not given: lagHours"), "{}", run.all());
    assert_eq!(server.requests().len(), 1, "nothing sent");
}

#[test]
fn nothing_is_sent_for_unknown_disabled_or_filtered_templates_and_dry_runs() {
    let server = Server::start(&[Reply::Status(200)]);
    let setup =
        Setup::new(&json!({"backends": {"webhook": {"ops": {"url": server.url("/h"), "minPriority": "medium"}}},
        "templates": {"preseed-skipped": {"enable": false}}}));
    let run = setup.notify(&["no-such-template"]);
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(run.stderr.contains("unknown template \"no-such-template\""), "{}", run.all());
    let run = setup.notify(&["--var", "bad", "unit-failure"]);
    assert_eq!(run.code, Some(1), "{}", run.all());
    let run = setup.notify(&["preseed-skipped"]);
    assert_eq!(run.code, Some(0), "disabled is not an error: {}", run.all());
    let run = setup.notify(&["preseed-success", "--var", "serviceName=s"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.contains("no enabled backend"), "low is below minPriority medium: {}", run.all());
    let run = setup.notify(&["--dry-run", "preseed-failure", "--var", "serviceName=sonarr"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(
        run.stdout.contains("title     Restore Failed: sonarr") && run.stdout.contains("to        webhook/ops"),
        "{}",
        run.all()
    );
    let run = setup.notify(&["--dry-run", "--priority", "low", "status-change", "--var", "state=OK"]);
    assert!(
        run.stdout.contains("priority  low") && run.stdout.contains("to        (no enabled backend)"),
        "{}",
        run.all()
    );
    let run = setup.notify(&["--dry-run", "--json", "unit-failure", "--var", "unit=a.service"]);
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["rendered"]["title"], "Unit Failed: a.service");
    assert_eq!(out["targets"], json!(["webhook/ops"]));
    assert!(server.requests().is_empty());
}

#[test]
fn json_output_lists_each_backend() {
    let server = Server::start(&[Reply::Status(200)]);
    let setup = Setup::new(&quick(&json!({"ntfy": {"phone": {"url": server.url(""), "topic": "t"}}})));
    let run = setup.notify(&["--json", "unit-failure", "--var", "unit=a.service"]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["delivered"], true);
    assert_eq!(out["backends"], json!([{"backend": "ntfy/phone", "delivered": true, "attempts": 1, "error": null}]));
}

#[test]
fn configs_without_notifications_or_with_bad_ones_are_refused() {
    let setup = Setup::new(&json!({}));
    std::fs::write(
        setup.path("config.json"),
        r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist"}}"#,
    )
    .unwrap();
    let run = setup.notify(&["unit-failure"]);
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(run.stderr.contains("no `notifications` section"), "{}", run.all());

    setup.write_config(&json!({"backends": {"ntfy": {"p": {"url": "ntfy.sh", "topic": "t", "token": "x"}}}}));
    let out = run_check(&setup.path("config.json"));
    assert!(out.contains("notifications.backends.ntfy.p") && out.contains("unknown field `token`"), "{out}");
    setup.write_config(&json!({"backends": {"ntfy": {"p": {"url": "ntfy.sh", "topic": "t"}}}}));
    let out = run_check(&setup.path("config.json"));
    assert!(out.contains("notifications.backends.ntfy.p.url: \"ntfy.sh\" is not an http:// or https:// URL"), "{out}");
}

fn run_check(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl")).arg("check-config").arg(config).output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_server_echoing_tokens_and_secret_paths_in_its_error_reply_is_never_quoted() {
    for code in [500, 401] {
        let server = Server::start(&[Reply::Echo(code)]);
        let setup = Setup::new(&json!({}));
        let url = setup.secret("hook-url", &server.url("/hooks/SECRETPATH123?key=QUERYSECRET"));
        let token = setup.secret("token", "tok-SECRET-456\n");
        let ntfy_token = setup.secret("ntfy-token", "tk_NTFYSECRET");
        let pushover = (setup.secret("po-token", "POTOKENSECRET"), setup.secret("po-user", "POUSERSECRET"));
        setup.write_config(&quick(&json!({
            "webhook": {"ops": {"urlFile": url, "tokenFile": token}},
            "ntfy": {"phone": {"url": server.url("/"), "topic": "homelab", "tokenFile": ntfy_token}},
            "pushover": {"po": {"tokenFile": pushover.0, "userFile": pushover.1, "apiUrl": server.url("/1/messages.json")}},
        })));
        let run = setup.notify(&["syncoid-lag-warning", "--var", "lagHours=1", "--var", "dataset=d", "--json"]);
        assert_eq!(run.code, Some(2), "{}", run.all());
        assert!(!server.requests().is_empty());
        for secret in ["SECRETPATH123", "QUERYSECRET", "tok-SECRET-456", "NTFYSECRET", "POTOKENSECRET", "POUSERSECRET"]
        {
            assert!(!run.all().contains(secret), "{secret} leaked (HTTP {code}):\n{}", run.all());
        }
        let host = format!("127.0.0.1:{}", server.port);
        assert!(run.all().contains(&format!("{host} answered HTTP {code}")), "backend, host, status: {}", run.all());
        assert!(run.stderr.contains("webhook/ops") && run.stderr.contains("pushover/po"), "{}", run.all());
    }
}

#[test]
fn a_notification_command_gets_no_secret_from_the_parent_environment() {
    let setup = Setup::new(&json!({}));
    let out = setup.p("env");
    let cmd = setup.script("hook", &format!("env > {out}"));
    setup.write_config(&quick(&json!({"command": {"log": {"command": [cmd]}}})));
    let mut command = setup.command(&["notify", "syncoid-lag-warning", "--var", "lagHours=1", "--var", "dataset=d"]);
    command
        .env("RESTIC_PASSWORD", "parent-restic-password")
        .env("RESTIC_REPOSITORY", "sftp://u:parent-pass@h/r")
        .env("AWS_SECRET_ACCESS_KEY", "parent-aws")
        .env("B2_ACCOUNT_KEY", "parent-b2")
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC");
    let run = run(command);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let env = std::fs::read_to_string(&out).unwrap();
    for secret in ["RESTIC_", "AWS_", "B2_", "parent-"] {
        assert!(!env.contains(secret), "{secret} reached the command:\n{env}");
    }
    for kept in ["PATH=", "LC_ALL=C.UTF-8", "TZ=UTC", "PERSISTCTL_NOTIFY_TEMPLATE=syncoid-lag-warning"] {
        assert!(env.lines().any(|l| l.starts_with(kept)), "{kept} missing:\n{env}");
    }
}
