//! Converting wire payloads (remote-write, text exposition) into ingest
//! batches and metadata.
//!
//! The `/api/v1/write` hot path ([`decode_remote_write`]) reads the
//! protobuf in place: label strings are borrowed from the body, a series' id
//! is hashed from them, and only series the store does not know yet get an
//! owned label set. [`from_remote_write`] (the prost-decoded form) serves the
//! other paths (Kafka ingest).

use std::collections::HashMap;

use prost::Message;
use tidewatch_common::Labels;
use tidewatch_common::exposition::Exposition;
use tidewatch_common::labels::stable_hash_pairs;
use tidewatch_common::remote_write::{MetricMetadata, MetricType, WriteRequest};

use crate::batch::{Batch, IngestSeries};
use crate::store::{IngestError, MetricMeta};

/// Minimal protobuf wire reader over a byte slice.
struct Wire<'a> {
    buf: &'a [u8],
}

/// Why a body is not a valid `WriteRequest`.
type WireError = &'static str;

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for (i, &b) in self.buf.iter().take(10).enumerate() {
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(v);
            }
        }
        Err("invalid varint")
    }

    /// The next field's number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.varint()? as usize;
        if n > self.buf.len() {
            return Err("length past the end of the message");
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn fixed64(&mut self) -> Result<u64, WireError> {
        let (a, b) = self
            .buf
            .split_first_chunk::<8>()
            .ok_or("truncated fixed64")?;
        self.buf = b;
        Ok(u64::from_le_bytes(*a))
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), WireError> {
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.fixed64().map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => {
                let (_, b) = self
                    .buf
                    .split_first_chunk::<4>()
                    .ok_or("truncated fixed32")?;
                self.buf = b;
                Ok(())
            }
            _ => Err("unsupported wire type"),
        }
    }

    fn string(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "label is not valid UTF-8")
    }
}

/// Reusable buffers of [`decode_remote_write`].
#[derive(Default)]
struct Parsed<'a> {
    /// Every series' labels, series after series.
    labels: Vec<(&'a str, &'a str)>,
    /// Per series: end in `labels`, id (`None`: labels need normalizing),
    /// end in `timestamps`, index in the request.
    series: Vec<(usize, Option<u64>, usize, usize)>,
    timestamps: Vec<i64>,
    values: Vec<f64>,
    metadata: Vec<&'a [u8]>,
}

fn parse_series<'a>(i: usize, body: &'a [u8], p: &mut Parsed<'a>) -> Result<(), IngestError> {
    let bad = |e: WireError| {
        IngestError::BadData(format!("malformed remote-write body: timeseries[{i}]: {e}"))
    };
    let first_label = p.labels.len();
    let first_sample = p.timestamps.len();
    let mut w = Wire { buf: body };
    while let Some((field, wt)) = w.key().map_err(bad)? {
        match (field, wt) {
            (1, 2) => {
                let mut l = Wire {
                    buf: w.bytes().map_err(bad)?,
                };
                let (mut name, mut value) = ("", "");
                while let Some((f, wt)) = l.key().map_err(bad)? {
                    match (f, wt) {
                        (1, 2) => name = l.string().map_err(bad)?,
                        (2, 2) => value = l.string().map_err(bad)?,
                        _ => l.skip(wt).map_err(bad)?,
                    }
                }
                p.labels.push((name, value));
            }
            (2, 2) => {
                let mut s = Wire {
                    buf: w.bytes().map_err(bad)?,
                };
                let (mut v, mut t) = (0.0, 0i64);
                while let Some((f, wt)) = s.key().map_err(bad)? {
                    match (f, wt) {
                        (1, 1) => v = f64::from_bits(s.fixed64().map_err(bad)?),
                        (2, 0) => t = s.varint().map_err(bad)? as i64,
                        _ => s.skip(wt).map_err(bad)?,
                    }
                }
                p.timestamps.push(t);
                p.values.push(v);
            }
            (4, _) => {
                return Err(IngestError::BadData(format!(
                    "timeseries[{i}]: native histogram samples are not supported"
                )));
            }
            _ => w.skip(wt).map_err(bad)?,
        }
    }
    let labels = &p.labels[first_label..];
    // Well-behaved senders send labels sorted, unique and non-empty: the id
    // is then hashed in place.
    let canonical =
        labels.iter().all(|(_, v)| !v.is_empty()) && labels.windows(2).all(|w| w[0].0 < w[1].0);
    let id = canonical.then(|| stable_hash_pairs(labels.iter().copied()));
    if p.timestamps.len() == first_sample {
        // No samples: ignored, like an empty series.
        p.labels.truncate(first_label);
        return Ok(());
    }
    p.series.push((p.labels.len(), id, p.timestamps.len(), i));
    Ok(())
}

/// Decodes a (decompressed) remote-write 1.0 `WriteRequest` into a batch;
/// `known` says which series ids the store knows (their labels are left
/// out). Native histograms are refused (400).
pub fn decode_remote_write(
    body: &[u8],
    known: impl FnOnce(&mut dyn Iterator<Item = u64>) -> Vec<bool>,
) -> Result<(Batch, Vec<(String, MetricMeta)>), IngestError> {
    let mut p = Parsed::default();
    let mut w = Wire { buf: body };
    let mut i = 0;
    let bad = |e: WireError| {
        IngestError::BadData(format!(
            "malformed remote-write body: protobuf decoding failed: {e}"
        ))
    };
    while let Some((field, wt)) = w.key().map_err(bad)? {
        match (field, wt) {
            (1, 2) => {
                parse_series(i, w.bytes().map_err(bad)?, &mut p)?;
                i += 1;
            }
            (3, 2) => p.metadata.push(w.bytes().map_err(bad)?),
            _ => w.skip(wt).map_err(bad)?,
        }
    }
    let known = known(&mut p.series.iter().filter_map(|s| s.1));
    let mut known = known.into_iter();
    let mut batch = Batch {
        series: Vec::with_capacity(p.series.len()),
        timestamps: p.timestamps,
        values: p.values,
    };
    let mut label_start = 0;
    for &(label_end, id, end, n) in &p.series {
        let pairs = &p.labels[label_start..label_end];
        label_start = label_end;
        let (id, labels) = match id {
            Some(id) if known.next() == Some(true) => (id, None),
            Some(id) => (id, Some(Labels::from_sorted_unchecked(owned(pairs)))),
            None => {
                let nonempty = pairs.iter().filter(|(_, v)| !v.is_empty()).count();
                let labels = Labels::from_vec(owned(pairs));
                if labels.len() != nonempty {
                    return Err(IngestError::BadData(format!(
                        "timeseries[{n}] {labels}: duplicate label name"
                    )));
                }
                (labels.stable_hash(), Some(labels))
            }
        };
        batch
            .series
            .push(crate::batch::BatchSeries { id, labels, end });
    }
    let mut meta = Vec::with_capacity(p.metadata.len());
    for m in p.metadata {
        let m = MetricMetadata::decode(m)
            .map_err(|e| IngestError::BadData(format!("malformed remote-write metadata: {e}")))?;
        meta.push(convert_meta(m));
    }
    Ok((batch, meta))
}

fn owned(pairs: &[(&str, &str)]) -> Vec<tidewatch_common::Label> {
    pairs
        .iter()
        .map(|(n, v)| tidewatch_common::Label::new(*n, *v))
        .collect()
}

fn convert_meta(m: MetricMetadata) -> (String, MetricMeta) {
    let kind = MetricType::try_from(m.r#type).unwrap_or(MetricType::Unknown);
    (
        m.metric_family_name,
        MetricMeta {
            kind: kind.api_name().to_string(),
            help: m.help,
            unit: m.unit,
        },
    )
}

/// An ingest batch with the metric metadata that came with it.
pub type Converted = (Vec<IngestSeries>, Vec<(String, MetricMeta)>);

/// Remote-write request → batch and metadata. Native histograms are refused
/// (400) since the store holds floats only.
pub fn from_remote_write(req: WriteRequest) -> Result<Converted, IngestError> {
    let mut out = Vec::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        if !ts.histograms.is_empty() {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}]: native histogram samples are not supported"
            )));
        }
        // Empty values mean "no label" (dropped); a name twice is an error.
        let n = ts.labels.iter().filter(|l| !l.value.is_empty()).count();
        let labels = Labels::from_pairs(ts.labels.into_iter().map(|l| (l.name, l.value)));
        if labels.len() != n {
            return Err(IngestError::BadData(format!(
                "timeseries[{i}] {labels}: duplicate label name"
            )));
        }
        if ts.samples.is_empty() {
            continue;
        }
        let timestamps = ts.samples.iter().map(|s| s.timestamp).collect();
        let values = ts.samples.iter().map(|s| s.value).collect();
        out.push(IngestSeries::new(labels, timestamps, values));
    }
    let meta = req.metadata.into_iter().map(convert_meta).collect();
    Ok((out, meta))
}

/// Parsed exposition → batch (samples without a timestamp get `now_ms`) and
/// metadata.
pub fn from_exposition(exp: Exposition, now_ms: i64) -> Converted {
    let mut by_series: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<IngestSeries> = Vec::new();
    for s in exp.samples {
        let t = s.timestamp_ms.unwrap_or(now_ms);
        match by_series.get(&s.labels) {
            Some(&i) => {
                out[i].timestamps.push(t);
                out[i].values.push(s.value);
            }
            None => {
                by_series.insert(s.labels.clone(), out.len());
                out.push(IngestSeries::new(s.labels, vec![t], vec![s.value]));
            }
        }
    }
    let meta = exp
        .metadata
        .into_iter()
        .map(|m| {
            let kind = if m.kind.is_empty() || m.kind == "untyped" {
                "unknown".to_string()
            } else {
                m.kind
            };
            (
                m.name,
                MetricMeta {
                    kind,
                    help: m.help,
                    unit: m.unit,
                },
            )
        })
        .collect();
    (out, meta)
}

#[cfg(test)]
mod tests {
    use tidewatch_common::remote_write::{Histogram, Label, MetricMetadata, Sample, TimeSeries};

    use super::*;

    fn ts(labels: &[(&str, &str)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: vec![Sample {
                value: 1.0,
                timestamp: 5,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn remote_write_conversion() {
        let req = WriteRequest {
            timeseries: vec![ts(&[("__name__", "a"), ("empty", "")])],
            metadata: vec![MetricMetadata {
                r#type: 2,
                metric_family_name: "a".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let (b, m) = from_remote_write(req).unwrap();
        assert_eq!(b[0].labels.len(), 1);
        assert_eq!(m[0].1.kind, "gauge");
        let dup = WriteRequest {
            timeseries: vec![ts(&[("__name__", "a"), ("x", "1"), ("x", "2")])],
            metadata: vec![],
        };
        assert!(
            from_remote_write(dup)
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
        let mut h = ts(&[("__name__", "h")]);
        h.histograms.push(Histogram {
            sum: 1.0,
            timestamp: 1,
        });
        let e = from_remote_write(WriteRequest {
            timeseries: vec![h],
            metadata: vec![],
        })
        .unwrap_err();
        assert!(e.to_string().contains("native histogram"), "{e}");
    }
    #[test]
    fn in_place_decoding_matches_prost() {
        let mut unsorted = ts(&[("job", "j"), ("__name__", "b"), ("empty", "")]);
        unsorted.samples.push(Sample {
            value: f64::from_bits(0x7ff0_0000_0000_0002),
            timestamp: 6,
        });
        let req = WriteRequest {
            timeseries: vec![
                ts(&[("__name__", "a"), ("i", "1")]),
                ts(&[("__name__", "a"), ("i", "2")]),
                TimeSeries {
                    samples: vec![],
                    ..ts(&[("__name__", "no_samples")])
                },
                unsorted,
            ],
            metadata: vec![MetricMetadata {
                r#type: 1,
                metric_family_name: "a".into(),
                help: "h".into(),
                unit: "u".into(),
            }],
        };
        let raw = req.encode_to_vec();
        let (want, want_meta) = from_remote_write(req).unwrap();
        let known_id = want[1].id;
        let (got, meta) =
            decode_remote_write(&raw, |ids| ids.map(|id| id == known_id).collect()).unwrap();
        assert_eq!(meta, want_meta);
        assert_eq!(got.series.len(), 3);
        for (i, w) in want.iter().enumerate() {
            let s = &got.series[i];
            assert_eq!(s.id, w.id);
            // The known series comes without labels.
            assert_eq!(s.labels.as_ref(), (i != 1).then_some(&w.labels));
            let (t, v) = got.samples(i);
            assert_eq!(t, &w.timestamps[..]);
            let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(v), bits(&w.values));
        }
        // Errors: duplicate names, native histograms, garbage.
        let dup = WriteRequest {
            timeseries: vec![ts(&[("__name__", "a"), ("x", "1"), ("x", "2")])],
            metadata: vec![],
        };
        let none = |ids: &mut dyn Iterator<Item = u64>| ids.map(|_| false).collect();
        let e = decode_remote_write(&dup.encode_to_vec(), none).unwrap_err();
        assert!(
            e.to_string().contains("timeseries[0]") && e.to_string().contains("duplicate"),
            "{e}"
        );
        let mut h = ts(&[("__name__", "h")]);
        h.histograms.push(Histogram {
            sum: 1.0,
            timestamp: 1,
        });
        let hist = WriteRequest {
            timeseries: vec![ts(&[("__name__", "a")]), h],
            metadata: vec![],
        };
        let e = decode_remote_write(&hist.encode_to_vec(), none).unwrap_err();
        assert!(
            e.to_string().contains("timeseries[1]: native histogram"),
            "{e}"
        );
        let e = decode_remote_write(&raw[..raw.len() - 3], none).unwrap_err();
        assert!(e.to_string().contains("malformed remote-write body"), "{e}");
    }
}
