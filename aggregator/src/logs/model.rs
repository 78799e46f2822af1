//! The in-memory model of log data: interned streams, rows, and the binary
//! encoding of an ingested batch (the WAL record payload).

use std::sync::Arc;

use tidewatch_common::Labels;
use tidewatch_common::loki::format_labels;

/// One log stream: a label set, with its selector string and hash cached.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    /// The labels.
    pub labels: Labels,
    /// `{a="b", …}`, the stream's identity in storage.
    pub key: String,
}

impl Stream {
    /// Builds a stream from its labels.
    pub fn new(labels: Labels) -> Stream {
        let key = format_labels(&labels);
        Stream { labels, key }
    }
}

/// One stored log line.
#[derive(Clone, Debug)]
pub struct Row {
    /// Its stream.
    pub stream: Arc<Stream>,
    /// Nanoseconds since the epoch.
    pub ts: i64,
    /// The line.
    pub line: Arc<str>,
}

/// A batch as ingested: per stream, `(timestamp ns, line)` entries.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// Streams and their entries.
    pub streams: Vec<(Labels, Vec<(i64, String)>)>,
}

impl Batch {
    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.streams.iter().map(|(_, e)| e.len()).sum()
    }
}

/// Encodes rows grouped by stream as a WAL payload.
pub fn encode_rows(rows: &[Row], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for r in rows {
        put_str(out, &r.stream.key);
        out.extend_from_slice(&r.ts.to_le_bytes());
        put_str(out, &r.line);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Decodes a WAL payload into `(stream key, ts, line)` triples.
pub fn decode_rows(mut b: &[u8]) -> Option<Vec<(String, i64, String)>> {
    let n = take_u32(&mut b)? as usize;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let key = take_str(&mut b)?;
        let ts = i64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        b = &b[8..];
        let line = take_str(&mut b)?;
        out.push((key, ts, line));
    }
    Some(out)
}

fn take_u32(b: &mut &[u8]) -> Option<u32> {
    let v = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
    *b = &b[4..];
    Some(v)
}

fn take_str(b: &mut &[u8]) -> Option<String> {
    let n = take_u32(b)? as usize;
    let s = std::str::from_utf8(b.get(..n)?).ok()?.to_string();
    *b = &b[n..];
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_roundtrip() {
        let s = Arc::new(Stream::new(Labels::from_pairs([("app", "x")])));
        let rows = vec![
            Row {
                stream: s.clone(),
                ts: 5,
                line: "a".into(),
            },
            Row {
                stream: s,
                ts: -1,
                line: "ünï".into(),
            },
        ];
        let mut buf = Vec::new();
        encode_rows(&rows, &mut buf);
        let back = decode_rows(&buf).unwrap();
        assert_eq!(
            back,
            vec![
                ("{app=\"x\"}".to_string(), 5, "a".to_string()),
                ("{app=\"x\"}".to_string(), -1, "ünï".to_string())
            ]
        );
        assert!(decode_rows(&buf[..buf.len() - 1]).is_none());
    }
}
