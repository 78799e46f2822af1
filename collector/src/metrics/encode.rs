//! Remote-write 1.0 encoding straight from collected samples: protobuf
//! bytes of a `WriteRequest` written by hand (no intermediate message
//! structs, no per-sample allocation). Concatenated encodings are a valid
//! `WriteRequest` holding all their series, so queued records can be merged
//! into one request by appending bytes.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tidewatch_common::labels::Labels;

use super::sample::Sample;

fn string_field_len(tag: u32, s: &str) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
}

fn label_len(name: &str, value: &str) -> usize {
    string_field_len(1, name) + string_field_len(2, value)
}

fn sample_len(value: f64, ts: i64) -> usize {
    let _ = value;
    prost::encoding::key_len(1) + 8 + prost::encoding::key_len(2) + encoded_len_varint(ts as u64)
}

fn put_string(buf: &mut Vec<u8>, tag: u32, s: &str) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.extend_from_slice(s.as_bytes());
}

/// Appends one `TimeSeries` (labels and a single sample) as field 1 of a
/// `WriteRequest` to `buf`. `extra` labels are merged in name order unless
/// the series already has them.
pub fn put_series(
    buf: &mut Vec<u8>,
    labels: &Labels,
    extra: &[(String, String)],
    value: f64,
    ts: i64,
) {
    let merged = MergedLabels { labels, extra };
    let labels_len: usize = merged
        .iter()
        .map(|(n, v)| {
            let l = label_len(n, v);
            prost::encoding::key_len(1) + encoded_len_varint(l as u64) + l
        })
        .sum();
    let s_len = sample_len(value, ts);
    let ts_len =
        labels_len + prost::encoding::key_len(2) + encoded_len_varint(s_len as u64) + s_len;
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(ts_len as u64, buf);
    for (n, v) in merged.iter() {
        encode_key(1, WireType::LengthDelimited, buf);
        encode_varint(label_len(n, v) as u64, buf);
        put_string(buf, 1, n);
        put_string(buf, 2, v);
    }
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(s_len as u64, buf);
    encode_key(1, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&value.to_bits().to_le_bytes());
    encode_key(2, WireType::Varint, buf);
    encode_varint(ts as u64, buf);
}

/// A series' labels merged with external labels (the series wins).
struct MergedLabels<'a> {
    labels: &'a Labels,
    extra: &'a [(String, String)],
}

impl<'a> MergedLabels<'a> {
    fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut a = self.labels.iter().peekable();
        let mut b = self.extra.iter().peekable();
        std::iter::from_fn(move || {
            loop {
                match (a.peek(), b.peek()) {
                    (Some(x), Some((bn, bv))) => {
                        if x.name.as_str() < bn.as_str() {
                            let x = a.next().unwrap();
                            return Some((x.name.as_str(), x.value.as_str()));
                        } else if x.name == *bn {
                            b.next();
                            continue;
                        } else {
                            b.next();
                            return Some((bn.as_str(), bv.as_str()));
                        }
                    }
                    (Some(_), None) => {
                        let x = a.next().unwrap();
                        return Some((x.name.as_str(), x.value.as_str()));
                    }
                    (None, Some(_)) => {
                        let (n, v) = b.next().unwrap();
                        return Some((n.as_str(), v.as_str()));
                    }
                    (None, None) => return None,
                }
            }
        })
    }
}

/// Encodes samples into records of at most `per_record` series each.
/// `extra` must be sorted by name.
pub fn encode_records(
    samples: &[Sample],
    extra: &[(String, String)],
    per_record: usize,
) -> Vec<Vec<u8>> {
    samples
        .chunks(per_record.max(1))
        .map(|chunk| {
            let mut buf = Vec::with_capacity(chunk.len() * 96);
            for s in chunk {
                put_series(&mut buf, &s.labels, extra, s.value, s.timestamp_ms);
            }
            buf
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tidewatch_common::remote_write::WriteRequest;

    #[test]
    fn records_decode_as_write_requests_and_concatenate() {
        let s = |name: &str, inst: &str, v: f64| Sample {
            labels: Labels::from_pairs([("__name__", name), ("instance", inst)]),
            value: v,
            timestamp_ms: 1_700_000_000_123,
        };
        let samples = vec![s("a", "x", 1.5), s("b", "y", f64::NAN), s("c", "", -3.0)];
        let extra = vec![
            ("cluster_id".to_string(), "local".to_string()),
            ("instance".to_string(), "node1".to_string()),
        ];
        let recs = encode_records(&samples, &extra, 2);
        assert_eq!(recs.len(), 2);
        let joined: Vec<u8> = recs.concat();
        let req = WriteRequest::decode(joined.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 3);
        let names = |i: usize| {
            req.timeseries[i]
                .labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(names(0), "__name__=a,cluster_id=local,instance=x");
        assert_eq!(names(2), "__name__=c,cluster_id=local,instance=node1");
        assert_eq!(req.timeseries[0].samples[0].value, 1.5);
        assert!(req.timeseries[1].samples[0].value.is_nan());
        assert_eq!(req.timeseries[2].samples[0].timestamp, 1_700_000_000_123);
    }
}
