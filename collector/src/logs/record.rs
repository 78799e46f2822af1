//! A log record as it travels from a tailer through the disk buffers to the
//! sinks, and its compact binary encoding (the buffer payload).
//!
//! A buffer payload is a *block*: records with consecutive ids, each label
//! set written once (at its first use) and referred to by index after that:
//!
//! ```text
//! block  := magic u32 | first_rid u64 | count u32 | entry*
//! entry  := ts i64 | set u32 | [labels, when set = sets defined so far] | line
//! labels := n u16 | (name, value)*      string := len u32 | utf-8 bytes
//! ```
//!
//! One block per push keeps the buffer's per-payload costs (frame header,
//! CRC, read) off the per-line path. Payloads of the earlier one-record
//! format (no magic) are still decoded.

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

const BLOCK_MAGIC: u32 = 0x7477_6c62;

/// Builds one block payload from records with consecutive ids.
pub struct BlockEncoder {
    buf: Vec<u8>,
    count: u32,
    sets: HashMap<usize, u32>,
    last_set: Option<(usize, u32)>,
}

impl Default for BlockEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockEncoder {
    /// An empty encoder (call [`BlockEncoder::start`] before adding).
    pub fn new() -> BlockEncoder {
        BlockEncoder {
            buf: Vec::new(),
            count: 0,
            sets: HashMap::new(),
            last_set: None,
        }
    }

    /// Starts a block whose first record has id `first_rid`, reusing the
    /// encoder's memory.
    pub fn start(&mut self, first_rid: u64) {
        self.buf.clear();
        self.sets.clear();
        self.last_set = None;
        self.count = 0;
        self.buf.extend_from_slice(&BLOCK_MAGIC.to_le_bytes());
        self.buf.extend_from_slice(&first_rid.to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
    }

    /// Records in the block.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the block has no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded bytes so far.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends the next record (id `first_rid + len()`); label sets are
    /// recognised by their `Arc`.
    pub fn push(&mut self, ts: i64, labels: &Arc<Labels>, line: &str) {
        let key = Arc::as_ptr(labels) as usize;
        self.buf.extend_from_slice(&ts.to_le_bytes());
        let known = match self.last_set {
            Some((k, i)) if k == key => Some(i),
            _ => self.sets.get(&key).copied(),
        };
        match known {
            Some(i) => {
                self.buf.extend_from_slice(&i.to_le_bytes());
                self.last_set = Some((key, i));
            }
            None => {
                let i = self.sets.len() as u32;
                self.sets.insert(key, i);
                self.last_set = Some((key, i));
                self.buf.extend_from_slice(&i.to_le_bytes());
                put_labels(&mut self.buf, labels);
            }
        }
        put(&mut self.buf, line);
        self.count += 1;
    }

    /// The finished payload (valid until the next `start`).
    pub fn finish(&mut self) -> &[u8] {
        let count = self.count.to_le_bytes();
        self.buf[12..16].copy_from_slice(&count);
        &self.buf
    }
}

/// Decodes a buffer payload (a block, or one record of the earlier format)
/// into `out`; `None` for a corrupt payload (nothing appended then).
pub fn decode_payload(b: &[u8], out: &mut Vec<Record>) -> Option<()> {
    if b.get(..4) != Some(&BLOCK_MAGIC.to_le_bytes()[..]) {
        out.push(decode(b)?);
        return Some(());
    }
    let first_rid = u64::from_le_bytes(b.get(4..12)?.try_into().ok()?);
    let count = u32::from_le_bytes(b.get(12..16)?.try_into().ok()?) as usize;
    let mut rest = &b[16..];
    let mut sets: Vec<Arc<Labels>> = Vec::new();
    let before = out.len();
    out.reserve(count);
    for i in 0..count {
        let entry = (|| {
            let ts = i64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            let set = u32::from_le_bytes(rest.get(8..12)?.try_into().ok()?) as usize;
            rest = &rest[12..];
            if set == sets.len() {
                sets.push(Arc::new(take_labels(&mut rest)?));
            }
            let labels = sets.get(set)?.clone();
            let line = take(&mut rest)?;
            Some(Record {
                rid: first_rid + i as u64,
                ts,
                labels,
                line,
            })
        })();
        match entry {
            Some(r) => out.push(r),
            None => {
                out.truncate(before);
                return None;
            }
        }
    }
    if !rest.is_empty() {
        out.truncate(before);
        return None;
    }
    Some(())
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.extend_from_slice(&(labels.len() as u16).to_le_bytes());
    for l in labels.iter() {
        put(out, &l.name);
        put(out, &l.value);
    }
}

fn take_labels(b: &mut &[u8]) -> Option<Labels> {
    let n = u16::from_le_bytes(b.get(..2)?.try_into().ok()?) as usize;
    *b = &b[2..];
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let name = take(b)?;
        let value = take(b)?;
        labels.push(Label { name, value });
    }
    Some(Labels::from_sorted_unchecked(labels))
}

/// Encodes a record (appends to `out`).
pub fn encode(r: &Record, out: &mut Vec<u8>) {
    encode_parts(r.rid, r.ts, &r.labels, &r.line, out)
}

/// Encodes a record from its parts (appends to `out`).
pub fn encode_parts(rid: u64, ts: i64, labels: &Labels, line: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&rid.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    put_labels(out, labels);
    put(out, line);
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Decodes one record of the earlier one-record payload format; `None`
/// for a corrupt payload.
pub fn decode(b: &[u8]) -> Option<Record> {
    let rid = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let ts = i64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    let mut rest = &b[16..];
    let labels = Arc::new(take_labels(&mut rest)?);
    let line = take(&mut rest)?;
    Some(Record {
        rid,
        ts,
        labels,
        line,
    })
}

fn take(b: &mut &[u8]) -> Option<String> {
    let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let s = String::from_utf8(b.get(4..4 + n)?.to_vec()).ok()?;
    *b = &b[4 + n..];
    Some(s)
}

/// Only the (first) record id of a payload (cheap).
pub fn peek_rid(b: &[u8]) -> Option<u64> {
    if b.get(..4) == Some(&BLOCK_MAGIC.to_le_bytes()[..]) {
        return Some(u64::from_le_bytes(b.get(4..12)?.try_into().ok()?));
    }
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
        // The earlier one-record payloads still decode.
        let mut out = Vec::new();
        decode_payload(&buf, &mut out).unwrap();
        assert_eq!(out, vec![r]);
    }

    #[test]
    fn block_roundtrip_shares_label_sets() {
        let a = Arc::new(Labels::from_pairs([("pod", "a")]));
        let b = Arc::new(Labels::from_pairs([("pod", "b"), ("stream", "stderr")]));
        let mut enc = BlockEncoder::new();
        enc.start(5 << 40 | 10);
        enc.push(1, &a, "one");
        enc.push(2, &b, "two ✓");
        enc.push(3, &a, "");
        enc.push(4, &b, "four");
        assert_eq!(enc.len(), 4);
        let block = enc.finish().to_vec();
        assert_eq!(peek_rid(&block), Some(5 << 40 | 10));
        let mut out = Vec::new();
        decode_payload(&block, &mut out).unwrap();
        let lines: Vec<(u64, i64, &str, &str)> = out
            .iter()
            .map(|r| (r.rid, r.ts, r.labels.get("pod").unwrap(), r.line.as_str()))
            .collect();
        let base = 5 << 40;
        assert_eq!(
            lines,
            vec![
                (base | 10, 1, "a", "one"),
                (base | 11, 2, "b", "two ✓"),
                (base | 12, 3, "a", ""),
                (base | 13, 4, "b", "four"),
            ]
        );
        assert!(Arc::ptr_eq(&out[0].labels, &out[2].labels));
        assert_eq!(*out[1].labels, *b);
        // Truncated or trailing garbage: refused, nothing appended.
        let mut none = Vec::new();
        assert!(decode_payload(&block[..block.len() - 2], &mut none).is_none());
        let mut longer = block.clone();
        longer.push(0);
        assert!(decode_payload(&longer, &mut none).is_none());
        assert!(none.is_empty());
        // The encoder is reused for the next block.
        enc.start(7);
        enc.push(9, &b, "again");
        let mut out = Vec::new();
        decode_payload(enc.finish(), &mut out).unwrap();
        assert_eq!((out[0].rid, out[0].line.as_str()), (7, "again"));
    }
}
