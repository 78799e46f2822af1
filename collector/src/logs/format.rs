//! Container log line formats: CRI (`<RFC3339Nano> <stream> <P|F> <text>`,
//! written by containerd and CRI-O under `/var/log/pods`) and docker's
//! json-file (`{"log":"…\n","stream":"stdout","time":"…"}`).

/// One parsed container log line.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerLine<'a> {
    /// Nanoseconds since the epoch.
    pub ts: i64,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// `false` for a CRI partial line (`P`): the text continues in the next line.
    pub complete: bool,
    /// The text (without the trailing newline of docker's format).
    pub text: std::borrow::Cow<'a, str>,
}

/// Parses an RFC 3339 timestamp to nanoseconds.
pub fn parse_ts(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()?
        .timestamp_nanos_opt()
}

/// Parses a CRI log line.
pub fn parse_cri(line: &str) -> Option<ContainerLine<'_>> {
    let (ts, rest) = line.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ')?;
    let (tag, text) = match rest.split_once(' ') {
        Some((t, text)) => (t, text),
        None => (rest, ""),
    };
    // Tags may carry more flags after `:`; the first is P or F.
    let complete = match tag.split(':').next()? {
        "F" => true,
        "P" => false,
        _ => return None,
    };
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    Some(ContainerLine {
        ts: parse_ts(ts)?,
        stream,
        complete,
        text: text.into(),
    })
}

/// Parses a docker json-file line. Docker splits lines over 16 KiB into
/// pieces whose `log` lacks the trailing newline: those are partial.
pub fn parse_docker(line: &str) -> Option<ContainerLine<'static>> {
    #[derive(serde::Deserialize)]
    struct D {
        log: String,
        stream: String,
        time: String,
    }
    let d: D = serde_json::from_str(line).ok()?;
    let complete = d.log.ends_with('\n');
    let text = d.log.strip_suffix('\n').unwrap_or(&d.log).to_string();
    let stream: &'static str = match d.stream.as_str() {
        "stdout" => "stdout",
        "stderr" => "stderr",
        _ => return None,
    };
    Some(ContainerLine {
        ts: parse_ts(&d.time)?,
        stream,
        complete,
        text: text.into(),
    })
}

/// Parses either format (docker's starts with `{`).
pub fn parse_container_line(line: &str) -> Option<ContainerLine<'_>> {
    if line.starts_with('{') {
        parse_docker(line)
    } else {
        parse_cri(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri() {
        let l = parse_cri("2024-05-01T10:00:00.123456789Z stdout F hello world").unwrap();
        assert_eq!(l.ts, 1_714_557_600_123_456_789);
        assert_eq!(l.stream, "stdout");
        assert!(l.complete);
        assert_eq!(l.text, "hello world");
        let p = parse_cri("2024-05-01T10:00:00.1+02:00 stderr P part").unwrap();
        assert!(!p.complete);
        assert_eq!(p.stream, "stderr");
        assert_eq!(parse_cri("2024-05-01T10:00:00Z stdout F").unwrap().text, "");
        assert!(parse_cri("garbage").is_none());
        assert!(parse_cri("2024-05-01T10:00:00Z stdout X y").is_none());
    }

    #[test]
    fn docker() {
        let l = parse_docker(r#"{"log":"hi\n","stream":"stderr","time":"2024-05-01T10:00:00.5Z"}"#)
            .unwrap();
        assert!(l.complete);
        assert_eq!(l.text, "hi");
        assert_eq!(l.stream, "stderr");
        let p = parse_docker(r#"{"log":"part","stream":"stdout","time":"2024-05-01T10:00:00Z"}"#)
            .unwrap();
        assert!(!p.complete);
    }
}
