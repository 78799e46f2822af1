//! Turns the raw lines of one file into records: merges CRI partial lines
//! (`P` … `F`) and docker's split lines, groups multiline records by a
//! start pattern, caps record size, and tracks the *safe offset*: the file
//! offset before the first byte of any record still being assembled, which
//! is what a checkpoint may record.

use std::time::{Duration, Instant};

use regex::Regex;

use super::format::parse_container_line;

/// A finished record before labels and ids are attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    /// Timestamp from the line (container formats), if any.
    pub ts: Option<i64>,
    /// `stdout`/`stderr` for container lines.
    pub stream: Option<&'static str>,
    /// The text.
    pub text: String,
}

#[derive(Debug)]
struct Pending {
    ts: Option<i64>,
    stream: Option<&'static str>,
    text: String,
    start: u64,
    touched: Instant,
}

/// Counters of one assembler.
#[derive(Debug, Default, Clone, Copy)]
pub struct AssembleStats {
    /// Records cut at `max_record_bytes`.
    pub truncated: u64,
    /// Container lines that matched neither CRI nor docker format.
    pub unparsed: u64,
}

/// Per-file record assembler.
pub struct Assembler {
    container: bool,
    start_pattern: Option<Regex>,
    max_bytes: usize,
    timeout: Duration,
    partial: Option<Pending>,
    multi: Option<Pending>,
    safe: u64,
    /// Counters.
    pub stats: AssembleStats,
}

impl Assembler {
    /// An assembler for a container log (`container`) or a plain file,
    /// starting at offset `start`.
    pub fn new(
        container: bool,
        start_pattern: Option<Regex>,
        max_bytes: usize,
        timeout: Duration,
        start: u64,
    ) -> Assembler {
        Assembler {
            container,
            start_pattern,
            max_bytes,
            timeout,
            partial: None,
            multi: None,
            safe: start,
            stats: AssembleStats::default(),
        }
    }

    /// The offset a checkpoint may record.
    pub fn safe_offset(&self) -> u64 {
        self.safe
    }

    /// Forgets pending state and restarts at `offset` (after a truncation).
    pub fn reset(&mut self, offset: u64) {
        self.partial = None;
        self.multi = None;
        self.safe = offset;
    }

    fn push_capped(&mut self, buf: &mut String, s: &str) {
        let room = self.max_bytes.saturating_sub(buf.len());
        if s.len() <= room {
            buf.push_str(s);
        } else {
            if room > 0 || !buf.ends_with('\u{2026}') {
                let mut cut = room;
                while cut > 0 && !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                buf.push_str(&s[..cut]);
            }
            self.stats.truncated += 1;
        }
    }

    /// Feeds one line (without its newline) that starts at `start` and whose
    /// newline ends at `end`; finished records are appended to `out`.
    pub fn push_line(
        &mut self,
        line: &str,
        start: u64,
        end: u64,
        now: Instant,
        out: &mut Vec<Assembled>,
    ) {
        let (ts, stream, text): (Option<i64>, Option<&'static str>, std::borrow::Cow<'_, str>);
        if self.container {
            match parse_container_line(line) {
                Some(cl) => {
                    let s: &'static str = if cl.stream == "stderr" {
                        "stderr"
                    } else {
                        "stdout"
                    };
                    if !cl.complete {
                        let mut p = self.partial.take().unwrap_or(Pending {
                            ts: Some(cl.ts),
                            stream: Some(s),
                            text: String::new(),
                            start,
                            touched: now,
                        });
                        let mut buf = std::mem::take(&mut p.text);
                        self.push_capped(&mut buf, &cl.text);
                        p.text = buf;
                        p.touched = now;
                        self.partial = Some(p);
                        self.update_safe(end);
                        return;
                    }
                    match self.partial.take() {
                        Some(mut p) => {
                            let mut buf = std::mem::take(&mut p.text);
                            self.push_capped(&mut buf, &cl.text);
                            ts = p.ts;
                            stream = p.stream;
                            text = buf.into();
                            self.logical(ts, stream, text.into_owned(), p.start, end, now, out);
                            return;
                        }
                        None => {
                            ts = Some(cl.ts);
                            stream = Some(s);
                            text = cl.text;
                        }
                    }
                }
                None => {
                    self.stats.unparsed += 1;
                    ts = None;
                    stream = None;
                    text = line.into();
                }
            }
        } else {
            ts = None;
            stream = None;
            text = line.into();
        }
        let mut owned = String::new();
        self.push_capped(&mut owned, &text);
        self.logical(ts, stream, owned, start, end, now, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn logical(
        &mut self,
        ts: Option<i64>,
        stream: Option<&'static str>,
        text: String,
        start: u64,
        end: u64,
        now: Instant,
        out: &mut Vec<Assembled>,
    ) {
        match &self.start_pattern {
            None => out.push(Assembled { ts, stream, text }),
            Some(re) => {
                if re.is_match(&text) || self.multi.is_none() {
                    if let Some(m) = self.multi.take() {
                        out.push(Assembled {
                            ts: m.ts,
                            stream: m.stream,
                            text: m.text,
                        });
                    }
                    self.multi = Some(Pending {
                        ts,
                        stream,
                        text,
                        start,
                        touched: now,
                    });
                } else if let Some(mut m) = self.multi.take() {
                    let mut buf = std::mem::take(&mut m.text);
                    self.push_capped(&mut buf, "\n");
                    self.push_capped(&mut buf, &text);
                    m.text = buf;
                    m.touched = now;
                    self.multi = Some(m);
                }
            }
        }
        self.update_safe(end);
    }

    fn update_safe(&mut self, end: u64) {
        self.safe = match (&self.multi, &self.partial) {
            (Some(m), _) => m.start,
            (None, Some(p)) => p.start,
            (None, None) => end,
        };
    }

    /// Emits records that waited longer than the flush timeout (or all of
    /// them when `force`); `consumed` is the offset read so far.
    pub fn flush(&mut self, now: Instant, force: bool, consumed: u64, out: &mut Vec<Assembled>) {
        let timeout = self.timeout;
        let due = |p: &Pending| force || now.duration_since(p.touched) >= timeout;
        if self.partial.as_ref().is_some_and(due) {
            let p = self.partial.take().unwrap();
            self.logical(p.ts, p.stream, p.text, p.start, consumed, now, out);
        }
        if self.multi.as_ref().is_some_and(due) && self.partial.is_none() {
            let m = self.multi.take().unwrap();
            out.push(Assembled {
                ts: m.ts,
                stream: m.stream,
                text: m.text,
            });
        }
        if self.partial.is_none() && self.multi.is_none() {
            self.safe = consumed;
        } else {
            self.update_safe(consumed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(a: &mut Assembler, lines: &[&str]) -> Vec<Assembled> {
        let mut out = Vec::new();
        let mut off = a.safe_offset();
        let now = Instant::now();
        for l in lines {
            let end = off + l.len() as u64 + 1;
            a.push_line(l, off, end, now, &mut out);
            off = end;
        }
        out
    }

    #[test]
    fn cri_partials_merge_and_safe_offset_waits() {
        let mut a = Assembler::new(true, None, 1000, Duration::from_secs(60), 0);
        let l1 = "2024-05-01T10:00:00Z stdout P hel";
        let out = feed(&mut a, &[l1]);
        assert!(out.is_empty());
        assert_eq!(a.safe_offset(), 0);
        let out = {
            let mut out = Vec::new();
            let start = l1.len() as u64 + 1;
            let l2 = "2024-05-01T10:00:01Z stdout F lo";
            a.push_line(
                l2,
                start,
                start + l2.len() as u64 + 1,
                Instant::now(),
                &mut out,
            );
            out
        };
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "hello");
        assert_eq!(out[0].ts, Some(1_714_557_600_000_000_000));
        assert!(a.safe_offset() > 0);
    }

    #[test]
    fn partial_cap_and_timeout() {
        let mut a = Assembler::new(true, None, 8, Duration::from_millis(0), 0);
        let out = feed(
            &mut a,
            &[
                "2024-05-01T10:00:00Z stdout P 12345",
                "2024-05-01T10:00:00Z stdout P 67890",
            ],
        );
        assert!(out.is_empty());
        assert_eq!(a.stats.truncated, 1);
        let mut out = Vec::new();
        a.flush(Instant::now(), false, 70, &mut out);
        assert_eq!(out[0].text, "12345678");
        assert_eq!(a.safe_offset(), 70);
    }

    #[test]
    fn multiline_by_start_pattern() {
        let re = Regex::new(r"^\d{4}-").unwrap();
        let mut a = Assembler::new(false, Some(re), 1000, Duration::from_secs(60), 0);
        let out = feed(
            &mut a,
            &[
                "2024-01-01 ERROR boom",
                "  at a.b(C.java:1)",
                "  at d.e(F.java:2)",
                "2024-01-01 INFO next",
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].text,
            "2024-01-01 ERROR boom\n  at a.b(C.java:1)\n  at d.e(F.java:2)"
        );
        // The INFO record is pending; the checkpoint may not pass its start.
        assert_eq!(a.safe_offset(), 22 + 19 + 19);
        let mut out = Vec::new();
        a.flush(Instant::now(), true, 100, &mut out);
        assert_eq!(out[0].text, "2024-01-01 INFO next");
        assert_eq!(a.safe_offset(), 100);
    }
}
