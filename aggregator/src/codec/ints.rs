//! Integer sequences (timestamps, decimal values) as their first value and
//! bit-packed changes.
//!
//! The changes are divided by their greatest common divisor (15 000 for a
//! 15 s scrape, 4 096 for memory in pages) and stored with whichever of
//! three methods is smallest for the chunk, computed exactly:
//!
//! - **fixed**: every change minus the smallest, in the width of the range
//!   (a regular scrape's timestamps: zero bits; counters: about the bits of
//!   their spread);
//! - **sparse**: one bit per change saying whether it is non-zero, then the
//!   non-zero ones as in *fixed* (gauges that often stay put);
//! - **rice**: Rice codes of the zigzagged distance from the median change
//!   (skewed distributions: mostly small changes, rare large ones).
//!
//! Layout: `varint(zigzag(first))`, and when there is more than one value
//! `varint(gcd)`, a method byte, its parameters and the bit stream.

use super::bits::{
    BitReader, BitWriter, Corrupt, get_u8, get_varint, put_varint, unzigzag, zigzag,
};

const FIXED: u8 = 0;
const SPARSE: u8 = 1;
const RICE: u8 = 2;
/// Rice quotients from this size on are escaped (raw 64 bits follow).
const RICE_ESCAPE: u32 = 24;

fn width(span: u64) -> u32 {
    64 - span.leading_zeros()
}

fn varint_len(v: u64) -> usize {
    (width(v).max(1) as usize).div_ceil(7)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Smallest and span (`max - min`) of `qs`.
fn range(qs: impl Iterator<Item = i64>) -> Option<(i64, u64)> {
    let mut it = qs;
    let first = it.next()?;
    let (lo, hi) = it.fold((first, first), |(lo, hi), q| (lo.min(q), hi.max(q)));
    Some((lo, hi.wrapping_sub(lo) as u64))
}

/// Cost in bits of the Rice codes of `rs` with parameter `k`.
fn rice_bits(rs: &[u64], k: u32) -> u64 {
    rs.iter()
        .map(|&r| {
            let q = r >> k;
            if q >= RICE_ESCAPE as u64 {
                RICE_ESCAPE as u64 + 1 + 64
            } else {
                q + 1 + k as u64
            }
        })
        .sum()
}

/// Appends the encoding of `xs` to `out`.
pub fn encode(xs: &[i64], out: &mut Vec<u8>) {
    let Some(&first) = xs.first() else {
        return;
    };
    put_varint(out, zigzag(first));
    if xs.len() == 1 {
        return;
    }
    let deltas = xs.windows(2).map(|w| w[1].wrapping_sub(w[0]));
    let g = deltas.clone().fold(0, |g, d| gcd(g, d.unsigned_abs()));
    // A divisor of i64::MIN's magnitude does not fit: keep the changes.
    let g = if g == 0 || g > i64::MAX as u64 { 1 } else { g };
    put_varint(out, g);
    let qs: Vec<i64> = deltas.map(|d| d / g as i64).collect();
    let m = qs.len() as u64;

    // Fixed.
    let (lo, span) = range(qs.iter().copied()).expect("non-empty");
    let fixed_w = width(span);
    let fixed = 8 * (varint_len(zigzag(lo)) as u64 + 1) + m * fixed_w as u64;
    // Sparse.
    let nz = qs.iter().filter(|&&q| q != 0).count() as u64;
    let sparse_range = range(qs.iter().copied().filter(|&q| q != 0));
    let sparse = sparse_range
        .map(|(lo, span)| 8 * (varint_len(zigzag(lo)) as u64 + 1) + m + nz * width(span) as u64);
    // Rice around the median.
    let mut sorted = qs.clone();
    sorted.sort_unstable();
    let center = sorted[sorted.len() / 2];
    let rs: Vec<u64> = qs.iter().map(|&q| zigzag(q.wrapping_sub(center))).collect();
    // Candidate parameters around the width of the mean and of the
    // median distance (the mean alone is pulled up by rare spikes).
    let mean = rs.iter().map(|&r| r as u128).sum::<u128>() / m as u128;
    let mut by_size = rs.clone();
    by_size.sort_unstable();
    let guesses = [
        width(mean.min(u64::MAX as u128) as u64),
        width(by_size[by_size.len() / 2]),
    ];
    let (rice_k, rice) = guesses
        .iter()
        .flat_map(|&g| g.saturating_sub(2)..=(g + 1).min(63))
        .map(|k| {
            (
                k,
                8 * (varint_len(zigzag(center)) as u64 + 1) + rice_bits(&rs, k),
            )
        })
        .min_by_key(|&(_, bits)| bits)
        .expect("non-empty range");

    if sparse.is_some_and(|s| s < fixed && s <= rice) {
        let (lo, span) = sparse_range.expect("sparse has a range");
        let w = width(span);
        out.push(SPARSE);
        put_varint(out, zigzag(lo));
        out.push(w as u8);
        let mut bw = BitWriter::new(out);
        for &q in &qs {
            bw.write((q != 0) as u64, 1);
            if q != 0 {
                bw.write(q.wrapping_sub(lo) as u64, w);
            }
        }
        bw.finish();
    } else if rice < fixed {
        out.push(RICE);
        put_varint(out, zigzag(center));
        out.push(rice_k as u8);
        let mut bw = BitWriter::new(out);
        for &r in &rs {
            let q = r >> rice_k;
            if q >= RICE_ESCAPE as u64 {
                bw.write_unary(RICE_ESCAPE);
                bw.write(r, 64);
            } else {
                bw.write_unary(q as u32);
                bw.write(r, rice_k);
            }
        }
        bw.finish();
    } else {
        out.push(FIXED);
        put_varint(out, zigzag(lo));
        out.push(fixed_w as u8);
        let mut bw = BitWriter::new(out);
        for &q in &qs {
            bw.write(q.wrapping_sub(lo) as u64, fixed_w);
        }
        bw.finish();
    }
}

/// Decodes `n` integers from the front of `buf` (advancing it), appending
/// them to `out`.
pub fn decode(buf: &mut &[u8], n: usize, out: &mut Vec<i64>) -> Result<(), Corrupt> {
    if n == 0 {
        return Ok(());
    }
    let mut x = unzigzag(get_varint(buf)?);
    out.reserve(n);
    out.push(x);
    if n == 1 {
        return Ok(());
    }
    let g = get_varint(buf)? as i64;
    let method = get_u8(buf)?;
    let param = unzigzag(get_varint(buf)?);
    let w = get_u8(buf)? as u32;
    if w > 64 {
        return Err(Corrupt("bit width above 64"));
    }
    let mut r = BitReader::new(buf);
    match method {
        FIXED => {
            for _ in 1..n {
                let q = param.wrapping_add(r.read(w)? as i64);
                x = x.wrapping_add(q.wrapping_mul(g));
                out.push(x);
            }
        }
        SPARSE => {
            for _ in 1..n {
                if r.read(1)? == 1 {
                    let q = param.wrapping_add(r.read(w)? as i64);
                    x = x.wrapping_add(q.wrapping_mul(g));
                }
                out.push(x);
            }
        }
        RICE => {
            if w >= 64 {
                return Err(Corrupt("Rice parameter above 63"));
            }
            for _ in 1..n {
                let u = r.read_unary(RICE_ESCAPE)?;
                let z = if u == RICE_ESCAPE {
                    r.read(64)?
                } else {
                    ((u as u64) << w) | r.read(w)?
                };
                let q = param.wrapping_add(unzigzag(z));
                x = x.wrapping_add(q.wrapping_mul(g));
                out.push(x);
            }
        }
        _ => return Err(Corrupt("unknown integer method")),
    }
    let used = r.bytes_read();
    *buf = &buf[used..];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(xs: &[i64]) -> usize {
        let mut out = Vec::new();
        encode(xs, &mut out);
        out.extend_from_slice(b"tail");
        let mut buf = &out[..];
        let mut got = Vec::new();
        decode(&mut buf, xs.len(), &mut got).unwrap();
        assert_eq!(got, xs);
        assert_eq!(buf, b"tail", "decode consumes exactly its bytes");
        out.len() - 4
    }

    use crate::codec::tests::Rng;

    #[test]
    fn regular_timestamps_cost_no_bits_per_sample() {
        let ts: Vec<i64> = (0..480).map(|i| 1_700_000_000_000 + i * 15_000).collect();
        assert!(round_trip(&ts) <= 12, "{}", round_trip(&ts));
    }

    #[test]
    fn each_method_is_chosen_where_it_is_smallest() {
        let mut rng = Rng(7);
        // Counter with a uniform spread of 1000: fixed, 10 bits a sample.
        let mut x = 0;
        let counter: Vec<i64> = (0..1000)
            .map(|_| {
                x += 500 + (rng.next() % 1000) as i64;
                x
            })
            .collect();
        let n = round_trip(&counter);
        assert!(n <= 1000 * 10 / 8 + 16, "{n}");
        // Gauge unchanged 90 % of the time: sparse.
        let mut x = 4_000_000_000i64;
        let gauge: Vec<i64> = (0..1000)
            .map(|_| {
                if rng.next().is_multiple_of(10) {
                    x += (rng.next() % 2001) as i64 * 4096 - 1000 * 4096;
                }
                x
            })
            .collect();
        let n = round_trip(&gauge);
        assert!(n < 1000 / 8 + 100 * 11 / 8 + 32, "{n}");
        // Small changes with rare spikes: rice beats a 30-bit fixed width.
        let spiky: Vec<i64> = (0..1000)
            .scan(0i64, |x, i| {
                *x += if i % 100 == 0 {
                    1 << 30
                } else {
                    (rng.next() % 8) as i64
                };
                Some(*x)
            })
            .collect();
        let n = round_trip(&spiky);
        assert!(n < 1000 * 6 / 8, "{n}");
    }

    #[test]
    fn extremes_round_trip() {
        for xs in [
            vec![],
            vec![42],
            vec![i64::MIN, i64::MAX, i64::MIN, 0, -1, i64::MAX],
            vec![5; 100],
            vec![0, i64::MIN],
            (0..300)
                .map(|i| if i % 2 == 0 { i64::MAX } else { -i })
                .collect(),
        ] {
            round_trip(&xs);
        }
        let mut rng = Rng(99);
        for len in [2, 3, 31, 64, 65, 500] {
            for shift in [0, 7, 33, 60, 63] {
                let xs: Vec<i64> = (0..len).map(|_| (rng.next() >> shift) as i64).collect();
                round_trip(&xs);
            }
        }
    }

    #[test]
    fn a_rice_parameter_of_64_is_an_error_not_a_panic() {
        // first 0, gcd 1, RICE, center 0, k = 64, then quotient 1 (which
        // shifted by 64 would overflow) and zero padding.
        let buf = [0u8, 1, RICE, 0, 64, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut b = &buf[..];
        assert!(decode(&mut b, 3, &mut Vec::new()).is_err());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let xs: Vec<i64> = (0..100).map(|i| i * i * 37).collect();
        let mut out = Vec::new();
        encode(&xs, &mut out);
        for cut in 0..out.len() {
            let mut buf = &out[..cut];
            let mut got = Vec::new();
            assert!(
                decode(&mut buf, xs.len(), &mut got).is_err(),
                "cut at {cut}"
            );
        }
    }
}
