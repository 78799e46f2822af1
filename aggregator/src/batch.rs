//! A validated ingest batch and its compact binary encoding (the WAL record
//! payload).

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

/// Error decoding a payload (a torn or corrupt record).
#[derive(Debug, thiserror::Error)]
#[error("corrupt WAL payload: {0}")]
pub struct CorruptPayload(&'static str);

/// Appends the encoding of `batch` to `out`.
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

/// Decodes a payload written by [`encode`].
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
