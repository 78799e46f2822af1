//! A log record as it travels from a tailer through the disk buffers to the
//! sinks, and its compact binary encoding (the buffer payload).

use std::collections::HashMap;
use std::sync::Arc;

use tidewatch_common::Labels;
use tidewatch_common::labels::Label;

/// One log record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Record id: `epoch << 40 | sequence`, increasing across restarts;
    /// sinks use it to recognise re-deliveries (Elasticsearch `_id`, Kafka
    /// header `tw-rid`).
    pub rid: u64,
    /// Nanoseconds since the epoch.
    pub ts: i64,
    /// Stream labels (shared by the records of one stream in a batch).
    pub labels: Arc<Labels>,
    /// The record text.
    pub line: String,
}

/// Encodes a record (appends to `out`).
pub fn encode(r: &Record, out: &mut Vec<u8>) {
    encode_parts(r.rid, r.ts, &r.labels, &r.line, out)
}

/// Encodes a record from its parts (appends to `out`).
pub fn encode_parts(rid: u64, ts: i64, labels: &Labels, line: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&rid.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(&(labels.len() as u16).to_le_bytes());
    for l in labels.iter() {
        put(out, &l.name);
        put(out, &l.value);
    }
    put(out, line);
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Decodes a record; `None` for a corrupt payload.
pub fn decode(b: &[u8]) -> Option<Record> {
    decode_cached(b, &mut HashMap::new())
}

/// Decodes a record, sharing label sets already seen in `cache` (keyed by
/// their encoded bytes), so a batch allocates each stream's labels once.
pub fn decode_cached<'a>(
    b: &'a [u8],
    cache: &mut HashMap<&'a [u8], Arc<Labels>>,
) -> Option<Record> {
    let rid = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let ts = i64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    let n = u16::from_le_bytes(b.get(16..18)?.try_into().ok()?) as usize;
    let mut rest = &b[18..];
    let start = rest;
    for _ in 0..2 * n {
        skip(&mut rest)?;
    }
    let raw = &start[..start.len() - rest.len()];
    let labels = match cache.get(raw) {
        Some(l) => l.clone(),
        None => {
            let mut r = raw;
            let mut labels = Vec::with_capacity(n);
            for _ in 0..n {
                let name = take(&mut r)?;
                let value = take(&mut r)?;
                labels.push(Label { name, value });
            }
            let l = Arc::new(Labels::from_sorted_unchecked(labels));
            cache.insert(raw, l.clone());
            l
        }
    };
    let line = take(&mut rest)?;
    Some(Record {
        rid,
        ts,
        labels,
        line,
    })
}

fn skip(b: &mut &[u8]) -> Option<()> {
    let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    b.get(4..4 + n)?;
    *b = &b[4 + n..];
    Some(())
}

fn take(b: &mut &[u8]) -> Option<String> {
    let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let s = String::from_utf8(b.get(4..4 + n)?.to_vec()).ok()?;
    *b = &b[4 + n..];
    Some(s)
}

/// Only the record id of an encoded record (cheap).
pub fn peek_rid(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let r = Record {
            rid: 7 << 40 | 3,
            ts: 1_700_000_000_000_000_001,
            labels: Arc::new(Labels::from_pairs([("pod", "p"), ("namespace", "ns")])),
            line: "hello ✓".into(),
        };
        let mut buf = Vec::new();
        encode(&r, &mut buf);
        assert_eq!(decode(&buf), Some(r.clone()));
        assert_eq!(peek_rid(&buf), Some(r.rid));
        assert_eq!(decode(&buf[..buf.len() - 1]), None);
    }
}
