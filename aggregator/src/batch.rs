//! Ingest batches: [`IngestSeries`] (the public input type), [`Batch`] (what
//! the WAL logs and the head applies: flat sample columns, labels only for
//! series the store may not know yet) and the WAL record payloads.

use tidewatch_common::{Label, Labels};

/// One series' samples to ingest.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestSeries {
    /// Series id ([`Labels::stable_hash`] of `labels`).
    pub id: u64,
    /// Labels, `__name__` included.
    pub labels: Labels,
    /// Timestamps (ms), any order.
    pub timestamps: Vec<i64>,
    /// Values, one per timestamp.
    pub values: Vec<f64>,
}

impl IngestSeries {
    /// Builds a series, computing its id.
    pub fn new(labels: Labels, timestamps: Vec<i64>, values: Vec<f64>) -> Self {
        IngestSeries {
            id: labels.stable_hash(),
            labels,
            timestamps,
            values,
        }
    }
}

/// One series of a [`Batch`].
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSeries {
    /// Series id ([`Labels::stable_hash`] of its labels).
    pub id: u64,
    /// Labels; `None` when the store knew the series as the batch was built
    /// (the WAL writer then takes them from the index).
    pub labels: Option<Labels>,
    /// End of this series' samples in [`Batch::timestamps`] (its start is
    /// the previous series' end).
    pub end: usize,
}

/// Samples grouped by series, in flat columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Series, in order.
    pub series: Vec<BatchSeries>,
    /// Timestamps (ms) of every series, series after series.
    pub timestamps: Vec<i64>,
    /// Values, one per timestamp.
    pub values: Vec<f64>,
}

impl Batch {
    /// A batch of `series` (labels kept).
    pub fn from_series(series: Vec<IngestSeries>) -> Batch {
        let n = series.iter().map(|s| s.timestamps.len()).sum();
        let mut b = Batch {
            series: Vec::with_capacity(series.len()),
            timestamps: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
        };
        for s in series {
            b.timestamps.extend_from_slice(&s.timestamps);
            b.values.extend_from_slice(&s.values);
            b.series.push(BatchSeries {
                id: s.id,
                labels: Some(s.labels),
                end: b.timestamps.len(),
            });
        }
        b
    }

    /// Adds a series' samples.
    pub fn push(&mut self, id: u64, labels: Option<Labels>, ts: &[i64], vs: &[f64]) {
        self.timestamps.extend_from_slice(ts);
        self.values.extend_from_slice(vs);
        self.series.push(BatchSeries {
            id,
            labels,
            end: self.timestamps.len(),
        });
    }

    /// Samples of series `i`.
    pub fn samples(&self, i: usize) -> (&[i64], &[f64]) {
        let start = if i == 0 { 0 } else { self.series[i - 1].end };
        let end = self.series[i].end;
        (&self.timestamps[start..end], &self.values[start..end])
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Keeps only samples for which `keep(t)` holds (drops emptied series);
    /// returns how many were dropped.
    pub fn retain_samples(&mut self, keep: impl Fn(i64) -> bool) -> usize {
        let before = self.timestamps.len();
        let (mut w, mut start) = (0, 0);
        let mut series = Vec::with_capacity(self.series.len());
        for mut s in std::mem::take(&mut self.series) {
            for r in start..s.end {
                if keep(self.timestamps[r]) {
                    self.timestamps[w] = self.timestamps[r];
                    self.values[w] = self.values[r];
                    w += 1;
                }
            }
            start = s.end;
            let prev_end = series.last().map_or(0, |p: &BatchSeries| p.end);
            if w > prev_end {
                s.end = w;
                series.push(s);
            }
        }
        self.series = series;
        self.timestamps.truncate(w);
        self.values.truncate(w);
        before - w
    }
}

/// Appends a WAL (v2) record of `batch` to `out`: per series its id, its
/// labels when `with_labels(i)` gives them, and its samples.
pub fn encode_v2<'a>(
    batch: &'a Batch,
    mut with_labels: impl FnMut(usize) -> Option<&'a Labels>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&(batch.series.len() as u32).to_le_bytes());
    for (i, s) in batch.series.iter().enumerate() {
        out.extend_from_slice(&s.id.to_le_bytes());
        match with_labels(i) {
            Some(labels) => {
                out.extend_from_slice(&(labels.len() as u32 + 1).to_le_bytes());
                for l in labels.iter() {
                    for part in [&l.name, &l.value] {
                        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                        out.extend_from_slice(part.as_bytes());
                    }
                }
            }
            None => out.extend_from_slice(&0u32.to_le_bytes()),
        }
        let (ts, vs) = batch.samples(i);
        out.extend_from_slice(&(ts.len() as u32).to_le_bytes());
        for t in ts {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for v in vs {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
}

/// Decodes a record written by [`encode_v2`] (labels `None` where the
/// record did not repeat them).
pub fn decode_v2(buf: &[u8]) -> Result<Batch, CorruptPayload> {
    let mut r = Reader { buf };
    let n = r.u32()?;
    let mut b = Batch::default();
    b.series.reserve(n.min(1 << 16));
    for _ in 0..n {
        let id = r.u64()?;
        let nl = r.u32()?;
        let labels = if nl == 0 {
            None
        } else {
            let mut labels = Vec::with_capacity((nl - 1).min(256));
            for _ in 1..nl {
                let name = r.string()?;
                let value = r.string()?;
                labels.push(Label { name, value });
            }
            Some(Labels::from_vec(labels))
        };
        let ns = r.u32()?;
        if r.buf.len() < ns.saturating_mul(16) {
            return Err(CorruptPayload("truncated samples"));
        }
        for _ in 0..ns {
            b.timestamps.push(r.u64()? as i64);
        }
        for _ in 0..ns {
            b.values.push(f64::from_bits(r.u64()?));
        }
        b.series.push(BatchSeries {
            id,
            labels,
            end: b.timestamps.len(),
        });
    }
    if !r.buf.is_empty() {
        return Err(CorruptPayload("trailing bytes"));
    }
    Ok(b)
}

/// Error decoding a payload (a torn or corrupt record).
#[derive(Debug, thiserror::Error)]
#[error("corrupt WAL payload: {0}")]
pub struct CorruptPayload(&'static str);

/// Appends the (v1) encoding of `batch` to `out`: every series with its
/// labels (segments written before v2; kept for tests of their replay).
pub fn encode(batch: &[IngestSeries], out: &mut Vec<u8>) {
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for s in batch {
        out.extend_from_slice(&(s.labels.len() as u32).to_le_bytes());
        for l in s.labels.iter() {
            for part in [&l.name, &l.value] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        out.extend_from_slice(&(s.timestamps.len() as u32).to_le_bytes());
        for t in &s.timestamps {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for v in &s.values {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CorruptPayload> {
        if self.buf.len() < n {
            return Err(CorruptPayload("truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<usize, CorruptPayload> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }
    fn u64(&mut self) -> Result<u64, CorruptPayload> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self) -> Result<String, CorruptPayload> {
        let n = self.u32()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| CorruptPayload("invalid UTF-8"))
    }
}

/// Decodes a (v1) payload written by [`encode`].
pub fn decode(buf: &[u8]) -> Result<Vec<IngestSeries>, CorruptPayload> {
    let mut r = Reader { buf };
    let n = r.u32()?;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let nl = r.u32()?;
        let mut labels = Vec::with_capacity(nl.min(256));
        for _ in 0..nl {
            let name = r.string()?;
            let value = r.string()?;
            labels.push(Label { name, value });
        }
        let ns = r.u32()?;
        if r.buf.len() < ns.saturating_mul(16) {
            return Err(CorruptPayload("truncated samples"));
        }
        let mut ts = Vec::with_capacity(ns);
        for _ in 0..ns {
            ts.push(r.u64()? as i64);
        }
        let mut vs = Vec::with_capacity(ns);
        for _ in 0..ns {
            vs.push(f64::from_bits(r.u64()?));
        }
        out.push(IngestSeries::new(Labels::from_vec(labels), ts, vs));
    }
    if !r.buf.is_empty() {
        return Err(CorruptPayload("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_roundtrip_and_retain() {
        let l = Labels::from_pairs([("__name__", "x")]);
        let mut b = Batch::default();
        b.push(1, Some(l.clone()), &[1, 2, 3], &[1.0, 2.0, 3.0]);
        b.push(2, None, &[1], &[f64::from_bits(0x7ff0_0000_0000_0002)]);
        b.push(3, None, &[5, 6], &[5.0, 6.0]);
        let mut buf = Vec::new();
        encode_v2(&b, |i| b.series[i].labels.as_ref(), &mut buf);
        let d = decode_v2(&buf).unwrap();
        assert_eq!(d.series, b.series);
        assert_eq!(d.timestamps, b.timestamps);
        assert_eq!(d.values[3].to_bits(), 0x7ff0_0000_0000_0002);
        assert!(decode_v2(&buf[..buf.len() - 1]).is_err());
        assert_eq!(b.retain_samples(|t| t != 1 && t != 5), 3);
        assert_eq!(b.series.len(), 2);
        assert_eq!(b.samples(0), (&[2, 3][..], &[2.0, 3.0][..]));
        assert_eq!(b.samples(1), (&[6][..], &[6.0][..]));
        assert_eq!(b.series[1].id, 3);
    }

    #[test]
    fn roundtrip_keeps_nan_bits() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let b = vec![IngestSeries::new(
            Labels::from_pairs([("__name__", "x"), ("a", "é")]),
            vec![1, 2],
            vec![1.5, stale],
        )];
        let mut buf = Vec::new();
        encode(&b, &mut buf);
        let d = decode(&buf).unwrap();
        assert_eq!(d[0].labels, b[0].labels);
        assert_eq!(d[0].id, b[0].id);
        assert_eq!(d[0].values[1].to_bits(), stale.to_bits());
        assert!(decode(&buf[..buf.len() - 3]).is_err());
    }
}
