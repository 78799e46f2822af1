//! Codecs for one series chunk (the `timestamps` and `values` columns of a
//! block's `data.parquet`, see [`crate::block`]).
//!
//! Both are bit-level: a regular scrape's timestamps cost a few bytes per
//! chunk, a decimal value about the bits of its change (see [`ints`] and
//! [`values`]). General-purpose numeric codecs measured worse on the
//! benchmark's series: Parquet's DELTA_BINARY_PACKED + zstd 1.17 bytes per
//! sample, `pco` 0.94–1.03 (its ~40 bytes of metadata per chunk weigh on
//! 100–500-sample chunks), this codec 0.91–0.93 (`docs/benchmarks.md`).
//! `pco` still compresses the chunks whose values are not decimals.

pub mod bits;
pub mod ints;
pub mod values;

pub use bits::Corrupt;

/// Appends the encoding of a chunk's timestamps to `out`.
pub fn encode_timestamps(ts: &[i64], out: &mut Vec<u8>) {
    ints::encode(ts, out);
}

/// Decodes a chunk's `n` timestamps, appending them to `out`.
pub fn decode_timestamps(mut buf: &[u8], n: usize, out: &mut Vec<i64>) -> Result<(), Corrupt> {
    ints::decode(&mut buf, n, out)
}

/// Appends the encoding of a chunk's values to `out`.
pub fn encode_values(vs: &[f64], out: &mut Vec<u8>) {
    values::encode(vs, out);
}

/// Decodes a chunk's `n` values, appending them to `out`.
pub fn decode_values(mut buf: &[u8], n: usize, out: &mut Vec<f64>) -> Result<(), Corrupt> {
    values::decode(&mut buf, n, out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic xorshift generator for the codec tests.
    pub(super) struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// Thousands of random chunks mixing the shapes real series take
    /// (counters, gauges, resets, jittered and irregular timestamps,
    /// staleness markers, non-decimal floats, extremes) decode to exactly
    /// what was encoded.
    #[test]
    fn random_chunks_round_trip_exactly() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut float_chunks = 0;
        for case in 0..3000 {
            let n = 1 + rng.below(if case % 10 == 0 { 3000 } else { 300 }) as usize;
            let mut t = rng.next() as i64 >> rng.below(40);
            let step = 1 + rng.below(60_000) as i64;
            let ts: Vec<i64> = (0..n)
                .map(|_| {
                    let jitter = match case % 4 {
                        0 => 0,
                        1 => rng.below(20) as i64 - 10,
                        2 => rng.below(step as u64 * 3) as i64,
                        _ => (rng.next() >> rng.below(64)) as i64,
                    };
                    t = t.wrapping_add(step).wrapping_add(jitter);
                    t
                })
                .collect();
            let scale = [1.0, 10.0, 100.0, 1000.0][rng.below(4) as usize];
            let mut v = (rng.below(1 << 40) as f64) / scale;
            let vs: Vec<f64> = (0..n)
                .map(|_| {
                    v = match rng.below(12) {
                        _ if case % 13 == 0 => v * 1.1 + 0.7, // not decimals: pco
                        0 => 0.0,                             // counter reset
                        1 => v,                               // unchanged
                        2 if case % 3 == 0 => stale,          // staleness marker
                        3 if case % 5 == 0 => f64::from_bits(rng.next()), // any bits
                        4 if case % 7 == 0 => 1.0 / (1 + rng.below(1000)) as f64,
                        5 if case % 11 == 0 => {
                            [f64::INFINITY, -0.0, f64::MAX, -1e-300][rng.below(4) as usize]
                        }
                        _ => {
                            let bits = rng.below(50);
                            v + (rng.below(1 << bits) as f64) / scale
                        }
                    };
                    v
                })
                .collect();
            let (mut tb, mut vb) = (Vec::new(), Vec::new());
            encode_timestamps(&ts, &mut tb);
            encode_values(&vs, &mut vb);
            float_chunks += (vb[0] == 1) as usize;
            let (mut got_t, mut got_v) = (Vec::new(), Vec::new());
            decode_timestamps(&tb, n, &mut got_t).unwrap();
            decode_values(&vb, n, &mut got_v).unwrap();
            assert_eq!(got_t, ts, "case {case}");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got_v), bits(&vs), "case {case}");
        }
        assert!(
            float_chunks > 100,
            "{float_chunks} chunks took the pco path"
        );
    }
}
