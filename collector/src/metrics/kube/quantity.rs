//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `2e3`).

/// Parses a quantity into a plain number (cores, bytes, …).
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantities() {
        assert_eq!(super::parse("100m"), Some(0.1));
        assert_eq!(super::parse("2"), Some(2.0));
        assert_eq!(super::parse("128Mi"), Some(134_217_728.0));
        assert_eq!(super::parse("1G"), Some(1e9));
        assert_eq!(super::parse("1e3"), Some(1000.0));
        assert_eq!(super::parse("1x"), None);
    }
}
