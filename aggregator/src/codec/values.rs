//! Sample values of one series chunk.
//!
//! - **decimal** (almost every series: counters, byte gauges, CPU seconds,
//!   ratios with few digits): each value is an integer over `10^scale`
//!   (one scale, 0–3, per chunk) reproducing the float bit for bit; the
//!   integers go through [`super::ints`], so a sample costs about the bits
//!   of its change. Values that are not such decimals (staleness markers,
//!   ±Inf, −0, 0.1 + 0.2) are kept as exceptions with their position and
//!   raw bits.
//! - **float** (a chunk where more than a quarter of the values are not
//!   decimals): the values compressed with [`pco`].
//!
//! Layout: a mode byte; decimal: `scale`, `varint(exceptions)`, per
//! exception `varint(gap)` + 8 bytes, then the integers; float: pco's
//! standalone format.

use super::bits::{Corrupt, get_u8, get_varint, put_varint};
use super::ints;

const DECIMAL: u8 = 0;
const FLOAT: u8 = 1;

/// Powers of ten for the decimal scales 0..=3.
const SCALES: [f64; 4] = [1.0, 10.0, 100.0, 1000.0];

/// Largest integer magnitude stored (exactly representable as f64).
const MAX_EXACT: f64 = 9.0e15;

/// `v` as `i` with `i as f64 / 10^k == v` bit for bit, if there is one.
fn at_scale(v: f64, k: usize) -> Option<i64> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    let p = SCALES[k];
    let x = (v * p).round();
    (x.abs() < MAX_EXACT && (x / p).to_bits() == v.to_bits()).then_some(x as i64)
}

/// Appends the encoding of `vs` to `out`.
pub fn encode(vs: &[f64], out: &mut Vec<u8>) {
    // The smallest scale that makes every decimal value exact.
    let scale = vs
        .iter()
        .filter_map(|&v| (0..SCALES.len()).find(|&k| at_scale(v, k).is_some()))
        .max()
        .unwrap_or(0);
    let mut ints = Vec::with_capacity(vs.len());
    let mut exceptions = Vec::new();
    for (i, &v) in vs.iter().enumerate() {
        match at_scale(v, scale) {
            Some(x) => ints.push(x),
            None => exceptions.push((i, v)),
        }
    }
    if exceptions.len() * 4 > vs.len() {
        out.push(FLOAT);
        let packed = pco::standalone::simple_compress(vs, &pco::ChunkConfig::default())
            .expect("pco compresses any f64 slice");
        out.extend_from_slice(&packed);
        return;
    }
    out.push(DECIMAL);
    out.push(scale as u8);
    put_varint(out, exceptions.len() as u64);
    let mut prev = 0;
    for &(i, v) in &exceptions {
        put_varint(out, (i - prev) as u64);
        out.extend_from_slice(&v.to_bits().to_le_bytes());
        prev = i;
    }
    ints::encode(&ints, out);
}

/// Decodes `n` values from the front of `buf` (advancing it), appending
/// them to `out`.
pub fn decode(buf: &mut &[u8], n: usize, out: &mut Vec<f64>) -> Result<(), Corrupt> {
    match get_u8(buf)? {
        DECIMAL => {
            let scale = get_u8(buf)? as usize;
            let p = *SCALES.get(scale).ok_or(Corrupt("decimal scale above 3"))?;
            let n_exc = get_varint(buf)? as usize;
            if n_exc > n {
                return Err(Corrupt("more exceptions than values"));
            }
            let mut exceptions = Vec::with_capacity(n_exc);
            let mut at = 0usize;
            for _ in 0..n_exc {
                at = at.saturating_add(get_varint(buf)? as usize);
                let (bits, rest) = buf
                    .split_first_chunk::<8>()
                    .ok_or(Corrupt("exception ends early"))?;
                *buf = rest;
                exceptions.push((at, f64::from_bits(u64::from_le_bytes(*bits))));
            }
            let mut ints = Vec::with_capacity(n - n_exc);
            ints::decode(buf, n - n_exc, &mut ints)?;
            let scaled = |x: i64| if p == 1.0 { x as f64 } else { x as f64 / p };
            out.reserve(n);
            if exceptions.is_empty() {
                out.extend(ints.into_iter().map(scaled));
                return Ok(());
            }
            let mut ints = ints.into_iter();
            let mut exceptions = exceptions.into_iter().peekable();
            for i in 0..n {
                match exceptions.next_if(|&(at, _)| at == i) {
                    Some((_, v)) => out.push(v),
                    None => out.push(scaled(ints.next().ok_or(Corrupt("values end early"))?)),
                }
            }
            if exceptions.next().is_some() {
                return Err(Corrupt("exception position out of range"));
            }
            Ok(())
        }
        FLOAT => {
            let vs: Vec<f64> =
                pco::standalone::simple_decompress(buf).map_err(|_| Corrupt("pco float chunk"))?;
            if vs.len() != n {
                return Err(Corrupt("float chunk holds the wrong number of values"));
            }
            *buf = &[];
            out.extend_from_slice(&vs);
            Ok(())
        }
        _ => Err(Corrupt("unknown value mode")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(vs: &[f64]) -> usize {
        let mut out = Vec::new();
        encode(vs, &mut out);
        let mut buf = &out[..];
        let mut got = Vec::new();
        decode(&mut buf, vs.len(), &mut got).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(vs), "bit-exact round trip");
        out.len()
    }

    #[test]
    fn decimals_with_exceptions_round_trip_bit_for_bit() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut vs: Vec<f64> = (0..200).map(|i| (10_000 + i * 37) as f64 / 100.0).collect();
        vs[0] = -0.0;
        vs[50] = f64::INFINITY;
        vs[51] = 0.1 + 0.2;
        vs[199] = stale;
        let n = round_trip(&vs);
        assert!(n < 200 + 4 * 9 + 16, "{n}");
    }

    #[test]
    fn non_decimal_series_use_pco_and_round_trip() {
        let vs: Vec<f64> = (0..300)
            .map(|i| (i as f64 * 0.37).sin() * 1e-3 + 1.0 / 3.0)
            .collect();
        let n = round_trip(&vs);
        assert!(n < 300 * 8, "{n}");
        round_trip(&[f64::NAN; 10]);
        round_trip(&[]);
        round_trip(&[1e300, -1e-300, f64::MIN_POSITIVE, f64::MAX]);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let vs: Vec<f64> = (0..100).map(|i| i as f64 * 1.5).collect();
        let mut out = Vec::new();
        encode(&vs, &mut out);
        for cut in 0..out.len() {
            let mut buf = &out[..cut];
            assert!(
                decode(&mut buf, vs.len(), &mut Vec::new()).is_err(),
                "cut {cut}"
            );
        }
        let mut buf: &[u8] = &[9];
        assert!(decode(&mut buf, 1, &mut Vec::new()).is_err());
    }
}
