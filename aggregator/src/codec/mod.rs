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
