//! The native-histogram notation of Prometheus's test files and promtool
//! rule unit tests (`promql/parser` series descriptions):
//! `{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05
//! buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5
//! custom_values:[…] counter_reset_hint:not_reset}}`, and the series
//! expansions `{{…}}xN`, `{{A}}+{{B}}xN`, `{{A}}-{{B}}xN`.

use super::histogram::{CounterResetHint, FloatHistogram, Span};
use crate::promqltest::parse_float;

/// Parses one `{{…}}` description; returns the histogram and the rest of
/// the input after the closing `}}`.
pub fn parse_histogram(s: &str) -> Result<(FloatHistogram, &str), String> {
    let body = s
        .strip_prefix("{{")
        .ok_or_else(|| format!("histogram must start with \"{{{{\": {s:?}"))?;
    let end = body
        .find("}}")
        .ok_or_else(|| format!("unterminated histogram {s:?}"))?;
    let (fields, rest) = (&body[..end], &body[end + 2..]);
    let mut h = FloatHistogram::default();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let (mut pos_off, mut neg_off) = (0i32, 0i32);
    let mut rem = fields.trim_start();
    while !rem.is_empty() {
        let colon = rem
            .find(':')
            .ok_or_else(|| format!("histogram field without ':' in {rem:?}"))?;
        let key = &rem[..colon];
        let after = rem[colon + 1..].trim_start();
        let (val, next) = if let Some(list) = after.strip_prefix('[') {
            let close = list
                .find(']')
                .ok_or_else(|| format!("unterminated list in {after:?}"))?;
            (&list[..close], &list[close + 1..])
        } else {
            let stop = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..stop], &after[stop..])
        };
        let num =
            |v: &str| parse_float(v).ok_or_else(|| format!("histogram {key}: bad number {v:?}"));
        let int = |v: &str| {
            v.parse::<i32>()
                .map_err(|_| format!("histogram {key}: bad integer {v:?}"))
        };
        let list = |v: &str| {
            v.split_whitespace()
                .map(num)
                .collect::<Result<Vec<f64>, _>>()
        };
        match key {
            "schema" => h.schema = int(val)?,
            "sum" => h.sum = num(val)?,
            "count" => h.count = num(val)?,
            "z_bucket" => h.zero_count = num(val)?,
            "z_bucket_w" => h.zero_threshold = num(val)?,
            "buckets" => pos = list(val)?,
            "n_buckets" => neg = list(val)?,
            "offset" => pos_off = int(val)?,
            "n_offset" => neg_off = int(val)?,
            "custom_values" => h.custom_values = list(val)?,
            "counter_reset_hint" => {
                h.counter_reset_hint = match val {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::Reset,
                    "not_reset" => CounterResetHint::NotReset,
                    "gauge" => CounterResetHint::Gauge,
                    v => return Err(format!("invalid counter_reset_hint {v:?}")),
                }
            }
            k => return Err(format!("unknown histogram field {k:?}")),
        }
        rem = next.trim_start();
    }
    let span = |off: i32, n: usize| {
        if n == 0 {
            Vec::new()
        } else {
            vec![Span {
                offset: off,
                length: n as u32,
            }]
        }
    };
    h.positive_spans = span(pos_off, pos.len());
    h.positive_buckets = pos;
    h.negative_spans = span(neg_off, neg.len());
    h.negative_buckets = neg;
    Ok((h, rest))
}

/// Expands one series-notation token that starts with `{{` into its
/// histograms: `{{A}}`, `{{A}}xN` (N+1 copies), `{{A}}+{{B}}xN` /
/// `{{A}}-{{B}}xN` (A, A±B, …, A±N·B).
pub fn expand_histogram_token(tok: &str) -> Result<Vec<FloatHistogram>, String> {
    let (base, rest) = parse_histogram(tok.trim())?;
    if rest.is_empty() {
        return Ok(vec![base]);
    }
    let times = |r: &str| -> Result<usize, String> {
        r.strip_prefix('x')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("invalid histogram series {tok:?}"))
    };
    let (sign, inc_text) = match rest.as_bytes()[0] {
        b'+' => (1.0, &rest[1..]),
        b'-' => (-1.0, &rest[1..]),
        _ => return Ok(vec![base; times(rest)? + 1]),
    };
    let (inc, rest) = parse_histogram(inc_text)?;
    let n = times(rest)?;
    let mut out = Vec::with_capacity(n + 1);
    let mut cur = base;
    out.push(cur.clone());
    for _ in 0..n {
        if cur.schema > inc.schema {
            return Err(format!(
                "error combining histograms: cannot merge from schema {} to {}",
                inc.schema, cur.schema
            ));
        }
        let r = if sign > 0.0 {
            cur.add(&inc)
        } else {
            cur.sub(&inc)
        };
        r.map_err(|e| format!("error combining histograms: {e}"))?;
        out.push(cur.clone());
    }
    Ok(out)
}

/// Go's `%g` (shortest representation, exponent below −4 or from 6 on).
pub fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

/// Prometheus's `FloatHistogram.TestExpression`: the notation with empty
/// buckets trimmed from both ends and every span merged into one.
pub fn format_histogram(h: &FloatHistogram) -> String {
    let mut res: Vec<String> = Vec::new();
    if h.schema != 0 {
        res.push(format!("schema:{}", h.schema));
    }
    for (k, v) in [
        ("count", h.count),
        ("sum", h.sum),
        ("z_bucket", h.zero_count),
        ("z_bucket_w", h.zero_threshold),
    ] {
        if v != 0.0 {
            res.push(format!("{k}:{}", go_g(v)));
        }
    }
    if h.uses_custom_buckets() {
        res.push(format!("custom_values:{}", go_list(&h.custom_values)));
    }
    match h.counter_reset_hint {
        CounterResetHint::Unknown => {}
        CounterResetHint::Reset => res.push("counter_reset_hint:reset".into()),
        CounterResetHint::NotReset => res.push("counter_reset_hint:not_reset".into()),
        CounterResetHint::Gauge => res.push("counter_reset_hint:gauge".into()),
    }
    for (pairs, off_key, key) in [
        (h.positive_pairs(), "offset", "buckets"),
        (h.negative_pairs(), "n_offset", "n_buckets"),
    ] {
        let first = pairs.iter().position(|p| p.1 != 0.0);
        let last = pairs.iter().rposition(|p| p.1 != 0.0);
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        let start = pairs[first].0;
        if start != 0 {
            res.push(format!("{off_key}:{start}"));
        }
        let mut dense = vec![0.0; (pairs[last].0 - start + 1) as usize];
        for &(i, c) in &pairs[first..=last] {
            dense[(i - start) as usize] += c;
        }
        res.push(format!("{key}:{}", go_list(&dense)));
    }
    format!("{{{{{}}}}}", res.join(" "))
}

fn go_list(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|&x| go_g(x)).collect();
    format!("[{}]", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_like_prometheus() {
        let text = "{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5}}";
        let (h, rest) = parse_histogram(text).unwrap();
        assert!(rest.is_empty());
        assert_eq!(h.positive_pairs(), vec![(-3, 5.1), (-2, 10.0), (-1, 7.0)]);
        assert_eq!(h.negative_pairs(), vec![(-5, 4.1), (-4, 5.0)]);
        assert_eq!(
            format_histogram(&h),
            "{{schema:1 count:32.1 sum:-0.3 z_bucket:7.1 z_bucket_w:0.05 offset:-3 buckets:[5.1 10 7] n_offset:-5 n_buckets:[4.1 5]}}"
        );
        let (g, _) = parse_histogram("{{counter_reset_hint:gauge buckets:[0 1 0 2 0]}}").unwrap();
        assert_eq!(
            format_histogram(&g),
            "{{counter_reset_hint:gauge offset:1 buckets:[1 0 2]}}"
        );
        assert!(parse_histogram("{{bogus:1}}").is_err());
        assert!(parse_histogram("{{sum:1").is_err());
        assert!(parse_histogram("{{counter_reset_hint:maybe}}").is_err());
    }

    #[test]
    fn expands_series() {
        let v = expand_histogram_token("{{sum:3 count:2 buckets:[2]}}x2").unwrap();
        assert_eq!(v.len(), 3);
        let v = expand_histogram_token(
            "{{sum:3 count:2 buckets:[2]}}+{{sum:1.3 count:1 buckets:[1]}}x2",
        )
        .unwrap();
        assert_eq!(format_histogram(&v[2]), "{{count:4 sum:5.6 buckets:[4]}}");
        let v =
            expand_histogram_token("{{count:5 buckets:[5]}}-{{count:1 buckets:[1]}}x1").unwrap();
        assert_eq!(format_histogram(&v[1]), "{{count:4 buckets:[4]}}");
        assert!(expand_histogram_token("{{count:1}}y2").is_err());
    }

    #[test]
    fn go_g_matches_go() {
        assert_eq!(go_g(1e6), "1e+06");
        assert_eq!(go_g(123456.0), "123456");
        assert_eq!(go_g(1234567.0), "1.234567e+06");
        assert_eq!(go_g(0.0001), "0.0001");
        assert_eq!(go_g(0.00001), "1e-05");
        assert_eq!(go_g(-0.3), "-0.3");
        assert_eq!(go_g(5.6), "5.6");
    }
}
