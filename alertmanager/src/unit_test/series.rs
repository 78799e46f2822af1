//! promtool's input notation: series selectors (`up{job="a"}`) and
//! expanding value notation (`1+2x3`, `_x2`, `stale`).

use tidewatch_common::Labels;
use tidewatch_promql::native::{FloatHistogram, expand_histogram_token};
use tidewatch_promql::promqltest::split_values;
use tidewatch_promql::storage::STALE_NAN_BITS;

/// Parses `name{a="b"}` (or `{a="b"}`) into labels.
pub fn parse_labels(s: &str) -> Result<Labels, String> {
    use promql_parser::label::MatchOp;
    use promql_parser::parser::{Expr, parse};
    let expr = parse(s).map_err(|e| format!("parsing series {s:?}: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("{s:?} is not a series selector"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    for m in vs.matchers.matchers {
        if !matches!(m.op, MatchOp::Equal) {
            return Err(format!("{s:?}: only '=' matchers are allowed in a series"));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

/// One expanded value: `None` is a missing sample.
pub type Value = Option<f64>;

fn parse_num(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        "stale" => Ok(f64::from_bits(STALE_NAN_BITS)),
        _ => s.parse().map_err(|_| format!("invalid number {s:?}")),
    }
}

/// Whether a values string is in native-histogram notation
/// (`{{schema:1 sum:… buckets:[…]}}`, `{{…}}xN`, `{{…}}+{{…}}xN`).
pub fn is_native_histogram(values: &str) -> bool {
    values.contains("{{")
}

/// One expanded value of a series that holds native histograms.
#[derive(Clone, Debug, PartialEq)]
pub enum Mixed {
    /// A float sample (or stale marker).
    Float(f64),
    /// A native histogram.
    Histogram(FloatHistogram),
}

/// Expands a values string that may mix native-histogram notation with
/// float notation; `None` is a missing sample.
pub fn expand_mixed(values: &str) -> Result<Vec<Option<Mixed>>, String> {
    let mut out = Vec::new();
    for tok in split_values(values) {
        if tok.starts_with("{{") {
            out.extend(
                expand_histogram_token(tok)?
                    .into_iter()
                    .map(|h| Some(Mixed::Histogram(h))),
            );
        } else {
            out.extend(expand(tok)?.into_iter().map(|v| v.map(Mixed::Float)));
        }
    }
    Ok(out)
}

/// Expands a values string.
pub fn expand(values: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        if tok.contains("{{") {
            return Err(format!(
                "native histogram values are not supported: {tok:?}"
            ));
        }
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n
                .parse()
                .map_err(|_| format!("invalid repetition {tok:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if tok == "stale" {
            out.push(Some(parse_num(tok)?));
            continue;
        }
        match tok.rsplit_once('x') {
            Some((head, n))
                if !head.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() =>
            {
                let n: usize = n
                    .parse()
                    .map_err(|_| format!("invalid repetition {tok:?}"))?;
                // Split `a+b` / `a-b` at the operator after the first char.
                let idx = head[1..].find(['+', '-']).map(|i| i + 1);
                let (a, b) = match idx {
                    Some(i) if !head[..i].ends_with(['e', 'E']) => {
                        let a = parse_num(&head[..i])?;
                        let b = parse_num(&head[i + 1..])?;
                        (a, if &head[i..i + 1] == "-" { -b } else { b })
                    }
                    _ => (parse_num(head)?, 0.0),
                };
                for k in 0..=n {
                    out.push(Some(a + b * k as f64));
                }
            }
            _ => out.push(Some(parse_num(tok)?)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation() {
        assert_eq!(
            expand("-2+4x3").unwrap(),
            vec![Some(-2.0), Some(2.0), Some(6.0), Some(10.0)]
        );
        assert_eq!(
            expand(" 1-2x4").unwrap(),
            vec![Some(1.0), Some(-1.0), Some(-3.0), Some(-5.0), Some(-7.0)]
        );
        assert_eq!(expand("1x2").unwrap(), vec![Some(1.0); 3]);
        let v = expand("1 _x3 stale").unwrap();
        assert_eq!(v.len(), 5);
        assert!(v[4].unwrap().to_bits() == STALE_NAN_BITS);
        assert_eq!(expand("1e3").unwrap(), vec![Some(1000.0)]);
        assert!(expand("{{sum:1}}").is_err());
        let m = expand_mixed("{{sum:3 count:2 buckets:[2]}}x2 _ stale").unwrap();
        assert_eq!(m.len(), 5);
        assert!(matches!(&m[2], Some(Mixed::Histogram(h)) if h.count == 2.0));
        assert_eq!(m[3], None);
        assert!(matches!(m[4], Some(Mixed::Float(v)) if v.to_bits() == STALE_NAN_BITS));
        let m = expand_mixed("{{sum:3 buckets:[2]}}+{{sum:1 buckets:[1]}}x2 {{count:1}}").unwrap();
        assert_eq!(m.len(), 4);
        assert!(matches!(&m[2], Some(Mixed::Histogram(h)) if h.sum == 5.0));
        assert!(expand_mixed("{{sum:3").is_err());
        assert!(expand_mixed("{{sum:3 bogus:1}}").is_err());
        assert_eq!(parse_labels("up{job=\"a\"}").unwrap().get("job"), Some("a"));
        assert!(parse_labels("up{job=\"a\"").is_err());
    }
}
