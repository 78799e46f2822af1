//! promtool series notation: `1+2x10`, `_`, `_x3`, `stale`, `1x5`, `Inf`.

use crate::native::{FloatHistogram, expand_histogram_token};
use crate::storage::STALE_NAN_BITS;

/// One expanded value: a sample or a gap.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqValue {
    /// A float sample (stale markers use the staleness NaN).
    Value(f64),
    /// A native-histogram sample.
    Histogram(Box<FloatHistogram>),
    /// No sample at this position.
    Omitted,
}

/// Parses a float the way Go's `strconv.ParseFloat` accepts them in tests.
pub fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        b if b.starts_with("0x") => i64::from_str_radix(&b[2..], 16).ok()? as f64,
        _ => body.replace('_', "").parse::<f64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// Expands series-notation tokens (floats and native-histogram
/// notation, see [`crate::native::notation`]) into values.
pub fn expand(tokens: &[&str]) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for &tok in tokens {
        if tok.starts_with("{{") {
            let hs = expand_histogram_token(tok)?;
            out.extend(hs.into_iter().map(|h| SeqValue::Histogram(Box::new(h))));
            continue;
        }
        let (head, times) = match tok.rfind('x') {
            Some(p) if p + 1 < tok.len() && tok[p + 1..].chars().all(|c| c.is_ascii_digit()) => (
                &tok[..p],
                Some(tok[p + 1..].parse::<usize>().map_err(|e| e.to_string())?),
            ),
            _ => (tok, None),
        };
        if head == "_" {
            out.extend(std::iter::repeat_n(SeqValue::Omitted, times.unwrap_or(1)));
            continue;
        }
        if head == "stale" {
            let v = SeqValue::Value(f64::from_bits(STALE_NAN_BITS));
            out.extend(std::iter::repeat_n(v, times.map_or(1, |t| t + 1)));
            continue;
        }
        // `a+b` / `a-b`: find a sign that is not at the start nor after an
        // exponent marker.
        let b = head.as_bytes();
        let mut split = None;
        for i in 1..b.len() {
            if (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        match (split, times) {
            (Some(i), Some(n)) => {
                let start = parse_float(&head[..i]).ok_or_else(|| format!("bad value {tok:?}"))?;
                let mut inc =
                    parse_float(&head[i + 1..]).ok_or_else(|| format!("bad value {tok:?}"))?;
                if b[i] == b'-' {
                    inc = -inc;
                }
                let mut cur = start;
                for _ in 0..=n {
                    out.push(SeqValue::Value(cur));
                    cur += inc;
                }
            }
            (None, Some(n)) => {
                let v = parse_float(head).ok_or_else(|| format!("bad value {tok:?}"))?;
                out.extend(std::iter::repeat_n(SeqValue::Value(v), n + 1));
            }
            (_, None) => {
                let v = parse_float(head).ok_or_else(|| format!("bad value {tok:?}"))?;
                out.push(SeqValue::Value(v));
            }
        }
    }
    Ok(out)
}

/// Expands promtool series notation (`"0+10x5 _ stale 3"`) into samples
/// `interval_ms` apart starting at 0; gaps are skipped and `stale` becomes
/// the staleness marker. Native histograms are left out.
pub fn series_samples(values: &str, interval_ms: i64) -> Result<Vec<(i64, f64)>, String> {
    let toks: Vec<&str> = values.split_whitespace().collect();
    Ok(expand(&toks)?
        .into_iter()
        .enumerate()
        .filter_map(|(k, v)| match v {
            SeqValue::Value(f) => Some((k as i64 * interval_ms, f)),
            SeqValue::Histogram(_) | SeqValue::Omitted => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(s: &str) -> Vec<SeqValue> {
        expand(&s.split_whitespace().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn expands_notation() {
        use SeqValue::*;
        assert_eq!(vals("1+2x2"), vec![Value(1.0), Value(3.0), Value(5.0)]);
        assert_eq!(
            vals("5-1x1 _x2 7"),
            vec![Value(5.0), Value(4.0), Omitted, Omitted, Value(7.0)]
        );
        assert_eq!(vals("3x2"), vec![Value(3.0); 3]);
        assert_eq!(vals("-2 1e3"), vec![Value(-2.0), Value(1000.0)]);
        assert!(matches!(vals("stale")[0], Value(v) if crate::storage::is_stale_nan(v)));
        assert!(matches!(&vals("{{schema:1}}x1")[1], Histogram(h) if h.schema == 1));
        assert!(expand(&["{{schema:0"]).is_err());
    }

    #[test]
    fn series_samples_are_spaced_by_the_interval() {
        let s = series_samples("1+1x2 _ 7", 60_000).unwrap();
        assert_eq!(
            s,
            vec![(0, 1.0), (60_000, 2.0), (120_000, 3.0), (240_000, 7.0)]
        );
    }
}
