//! What each backend is sent, built from a rendered notification (pure: no I/O, no secrets read).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::template::{Priority, Rendered};

/// ntfy's JSON publish body (posted to the server's URL).
#[must_use]
pub fn ntfy_json(topic: &str, n: &Rendered) -> Value {
    json!({
        "topic": topic,
        "title": n.title,
        "message": n.body,
        "priority": n.priority.ntfy(),
        "tags": [n.template],
    })
}

/// The generic webhook's JSON body.
#[must_use]
pub fn webhook_json(n: &Rendered) -> Value {
    json!({
        "source": "persistctl",
        "template": n.template,
        "priority": n.priority.name(),
        "title": n.title,
        "body": n.body,
        "variables": n.variables,
    })
}

/// Pushover's form fields, the secrets given by the caller. Emergency priority needs `retry` and
/// `expire`: every 60 s for an hour, until acknowledged.
#[must_use]
pub fn pushover_form(token: &str, user: &str, n: &Rendered) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("token", token.to_string()),
        ("user", user.to_string()),
        ("title", n.title.clone()),
        ("message", if n.body.is_empty() { n.title.clone() } else { n.body.clone() }),
        ("priority", n.priority.pushover().to_string()),
    ];
    if n.priority == Priority::Urgent {
        form.push(("retry", "60".into()));
        form.push(("expire", "3600".into()));
    }
    form
}

/// The environment a command backend gets.
#[must_use]
pub fn command_env(n: &Rendered) -> Vec<(&'static str, String)> {
    vec![
        ("PERSISTCTL_NOTIFY_TEMPLATE", n.template.clone()),
        ("PERSISTCTL_NOTIFY_PRIORITY", n.priority.name().into()),
        ("PERSISTCTL_NOTIFY_TITLE", n.title.clone()),
        ("PERSISTCTL_NOTIFY_BODY", n.body.clone()),
        ("PERSISTCTL_NOTIFY_VARS", serde_json::to_string(&n.variables).unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.replace('\0', " ")))
    .collect()
}

/// A header value: control characters become spaces; non-ASCII text is RFC 2047-encoded, in words
/// short enough for 78-column lines.
#[must_use]
pub fn header_value(text: &str) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.is_ascii() {
        return clean;
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in clean.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
    }
    words.join("\n ")
}

/// Standard base64 with padding.
#[must_use]
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The mail `sendmail -i` reads on stdin: headers, a blank line, the body.
#[must_use]
pub fn email_text(from: Option<&str>, to: &[String], n: &Rendered) -> String {
    let mut text = String::new();
    if let Some(from) = from {
        let _ = writeln!(text, "From: {}", header_value(from));
    }
    let _ = writeln!(text, "To: {}", header_value(&to.join(", ")));
    let _ = writeln!(text, "Subject: {}", header_value(&format!("[{}] {}", n.priority, n.title)));
    let _ = writeln!(text, "X-Priority: {}", n.priority.x_priority());
    let _ = writeln!(text, "X-Persistctl-Template: {}", header_value(&n.template));
    text.push_str("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
    text.push_str(&n.body);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rendered(priority: Priority, title: &str, body: &str) -> Rendered {
        Rendered {
            template: "preseed-failure".into(),
            priority,
            title: title.into(),
            body: body.into(),
            variables: BTreeMap::from([("serviceName".to_string(), "sonarr".to_string())]),
            missing: vec![],
        }
    }

    #[test]
    fn ntfy_and_webhook_shapes() {
        let n = rendered(Priority::High, "Restore Failed: sonarr", "all failed");
        assert_eq!(
            ntfy_json("homelab", &n),
            json!({"topic": "homelab", "title": "Restore Failed: sonarr", "message": "all failed", "priority": 4,
                   "tags": ["preseed-failure"]})
        );
        assert_eq!(
            webhook_json(&n),
            json!({"source": "persistctl", "template": "preseed-failure", "priority": "high",
                   "title": "Restore Failed: sonarr", "body": "all failed", "variables": {"serviceName": "sonarr"}})
        );
    }

    #[test]
    fn pushover_form_has_emergency_parameters_only_when_urgent() {
        let form = pushover_form("tok", "usr", &rendered(Priority::Low, "t", ""));
        assert_eq!(
            form,
            [
                ("token", "tok".to_string()),
                ("user", "usr".into()),
                ("title", "t".into()),
                ("message", "t".into()),
                ("priority", "-1".into())
            ]
        );
        let form = pushover_form("tok", "usr", &rendered(Priority::Urgent, "t", "b"));
        assert!(form.contains(&("priority", "2".into())) && form.contains(&("retry", "60".into())));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn header_values_cannot_inject_headers_and_encode_non_ascii() {
        assert_eq!(header_value("a\nBcc: evil@x\r\n"), "a Bcc: evil@x  ");
        assert_eq!(header_value("Daten: ü"), "=?UTF-8?B?RGF0ZW46IMO8?=");
        let long = header_value(&"ü".repeat(40));
        assert!(long.split("\n ").all(|w| w.len() <= 76 && w.starts_with("=?UTF-8?B?")), "{long}");
        assert_eq!(long.split("\n ").count(), 2);
    }

    #[test]
    fn the_email_has_headers_then_the_body() {
        let text = email_text(
            Some("forge@example.org"),
            &["a@example.org".into(), "b@example.org".into()],
            &rendered(Priority::High, "Restore Failed: sonarr", "line 1\n.\nline 3"),
        );
        assert_eq!(
            text,
            "From: forge@example.org\nTo: a@example.org, b@example.org\nSubject: [high] Restore Failed: sonarr\n\
             X-Priority: 2\nX-Persistctl-Template: preseed-failure\nMIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nline 1\n.\nline 3\n"
        );
    }

    #[test]
    fn command_environment_carries_everything_without_nul() {
        let env = command_env(&rendered(Priority::Medium, "t\0x", "b"));
        assert_eq!(env[2], ("PERSISTCTL_NOTIFY_TITLE", "t x".into()));
        assert_eq!(env[4], ("PERSISTCTL_NOTIFY_VARS", r#"{"serviceName":"sonarr"}"#.into()));
    }
}
