//! Kubernetes resource quantities (`500m`, `2`, `1Gi`, `1.5e3`) as exact
//! milli-units, and the ResourceQuota keys a business quota may use.

use std::collections::BTreeMap;

/// Quota keys accepted in business and namespace quotas (TKEStack's
/// console list plus storage requests and `count/<resource>`).
pub const QUOTA_KEYS: &[&str] = &[
    "pods",
    "services",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
    "requests.cpu",
    "limits.cpu",
    "requests.memory",
    "limits.memory",
    "requests.ephemeral-storage",
    "limits.ephemeral-storage",
    "requests.storage",
];

/// Whether `key` is an accepted ResourceQuota key.
pub fn valid_key(key: &str) -> bool {
    QUOTA_KEYS.contains(&key) || key.strip_prefix("count/").is_some_and(|r| !r.is_empty())
}

/// Parses a quantity to milli-units.
pub fn parse(q: &str) -> Result<i128, String> {
    let s = q.trim();
    let bad = || format!("invalid quantity {q:?}");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num.starts_with('-') {
        return Err(bad());
    }
    let (mul_num, mul_den, exp10): (i128, i128, i32) = match suffix {
        "" => (1, 1, 0),
        "m" => (1, 1000, 0),
        "k" => (1, 1, 3),
        "M" => (1, 1, 6),
        "G" => (1, 1, 9),
        "T" => (1, 1, 12),
        "P" => (1, 1, 15),
        "E" => (1, 1, 18),
        "Ki" => (1 << 10, 1, 0),
        "Mi" => (1 << 20, 1, 0),
        "Gi" => (1 << 30, 1, 0),
        "Ti" => (1 << 40, 1, 0),
        "Pi" => (1 << 50, 1, 0),
        "Ei" => (1 << 60, 1, 0),
        e if e.starts_with(['e', 'E']) => (1, 1, e[1..].parse::<i32>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let int = int.trim_start_matches('+');
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let digits = format!("{int}{frac}");
    let mut value: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| bad())?
    };
    // value × 10^(exp10 − len(frac)) × 1000 × mul_num / mul_den
    let mut e = exp10 - frac.len() as i32 + 3;
    value = value.checked_mul(mul_num).ok_or_else(bad)?;
    while e > 0 {
        value = value.checked_mul(10).ok_or_else(bad)?;
        e -= 1;
    }
    let mut den = mul_den;
    while e < 0 {
        den = den.checked_mul(10).ok_or_else(bad)?;
        e += 1;
    }
    // Round up like Kubernetes does for sub-milli precision.
    Ok((value + den - 1) / den)
}

/// A quota: key → quantity string.
pub type Hard = BTreeMap<String, String>;

/// Validates keys and values; errors name `{field}.{key}`.
pub fn validate(field: &str, hard: &Hard) -> Result<(), (String, String)> {
    for (k, v) in hard {
        let f = format!("{field}.{k}");
        if !valid_key(k) {
            return Err((f, format!("unknown quota key {k:?}")));
        }
        parse(v).map_err(|e| (f, e))?;
    }
    Ok(())
}

/// Adds `b` into `a` key by key (milli-units).
pub fn add_into(a: &mut BTreeMap<String, i128>, b: &Hard) {
    for (k, v) in b {
        if let Ok(n) = parse(v) {
            *a.entry(k.clone()).or_default() += n;
        }
    }
}

/// Formats milli-units back to a quantity string.
pub fn format(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(parse("2").unwrap(), 2000);
        assert_eq!(parse("500m").unwrap(), 500);
        assert_eq!(parse("1.5").unwrap(), 1500);
        assert_eq!(parse("1Ki").unwrap(), 1024 * 1000);
        assert_eq!(parse("1Gi").unwrap(), (1i128 << 30) * 1000);
        assert_eq!(parse("1k").unwrap(), 1_000_000);
        assert_eq!(parse("1e3").unwrap(), 1_000_000);
        assert_eq!(parse("0.5Gi").unwrap(), (1i128 << 29) * 1000);
        assert!(parse("abc").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("1Xi").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn validates_keys() {
        let mut h = Hard::new();
        h.insert("requests.cpu".into(), "2".into());
        h.insert("count/deployments.apps".into(), "10".into());
        assert!(validate("quotas.c1", &h).is_ok());
        h.insert("bogus".into(), "1".into());
        assert_eq!(validate("quotas.c1", &h).unwrap_err().0, "quotas.c1.bogus");
    }
}
