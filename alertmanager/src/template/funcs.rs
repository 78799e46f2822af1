//! Template functions with Prometheus's semantics: `humanize*`, `printf`,
//! `title`, Go's float formatting.

use minijinja::{Error, ErrorKind, Value};

/// Go's `%g`-like shortest float formatting.
pub fn fmt_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v}");
    if v.abs() >= 1e21 || (v != 0.0 && v.abs() < 1e-4) {
        return format!("{v:e}");
    }
    s
}

pub(super) fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return fmt_g(v);
    }
    let abs = v.abs();
    if abs >= 1.0 {
        let units = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];
        let mut x = v;
        let mut i = 0;
        while x.abs() >= 1000.0 && i < units.len() - 1 {
            x /= 1000.0;
            i += 1;
        }
        format!("{}{}", round4(x), units[i])
    } else {
        let units = ["", "m", "u", "n", "p", "f", "a", "z", "y"];
        let mut x = v;
        let mut i = 0;
        while x.abs() < 1.0 && i < units.len() - 1 {
            x *= 1000.0;
            i += 1;
        }
        format!("{}{}", round4(x), units[i])
    }
}

pub(super) fn humanize_1024(v: f64) -> String {
    if v.abs() < 1.0 {
        return fmt_g(v);
    }
    let units = ["", "ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];
    let mut x = v;
    let mut i = 0;
    while x.abs() >= 1024.0 && i < units.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    format!("{}{}", round4(x), units[i])
}

/// Four significant digits, like Go's `%.4g`.
fn round4(x: f64) -> String {
    let digits = if x.abs() >= 1.0 {
        x.abs().log10().floor() as i32 + 1
    } else {
        1
    };
    let decimals = (4 - digits).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub(super) fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return fmt_g(v);
    }
    if v.abs() < 1.0 && v != 0.0 {
        return format!("{}ms", round4(v * 1000.0));
    }
    let neg = v < 0.0;
    let total = v.abs() as u64;
    let (d, h, m, s) = (
        total / 86400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if d > 0 {
        out.push_str(&format!("{d}d {h}h {m}m {s}s"));
    } else if h > 0 {
        out.push_str(&format!("{h}h {m}m {s}s"));
    } else if m > 0 {
        out.push_str(&format!("{m}m {s}s"));
    } else {
        out.push_str(&format!("{s}s"));
    }
    out
}

pub(super) fn titlecase(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go `printf` subset: `%s %v %d %f %.Nf %g %e %q %%`.
pub(super) fn printf(fmt: String, args: minijinja::value::Rest<Value>) -> Result<String, Error> {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut prec: Option<usize> = None;
        let mut spec = String::new();
        while let Some(&n) = chars.peek() {
            if n == '.' || n.is_ascii_digit() {
                spec.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if let Some(p) = spec.strip_prefix('.') {
            prec = p.parse().ok();
        }
        let verb = chars.next().unwrap_or('%');
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = it
            .next()
            .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "printf: missing argument"))?;
        let num = f64::try_from(arg.clone()).ok();
        match verb {
            'd' => out.push_str(&format!("{}", num.unwrap_or(0.0) as i64)),
            'f' | 'F' => out.push_str(&format!("{:.*}", prec.unwrap_or(6), num.unwrap_or(0.0))),
            'e' => out.push_str(&format!("{:.*e}", prec.unwrap_or(6), num.unwrap_or(0.0))),
            'g' => out.push_str(&num.map(fmt_g).unwrap_or_else(|| arg.to_string())),
            'q' => out.push_str(&format!("{:?}", arg.to_string())),
            _ => match num {
                Some(n) if !arg.is_kind_string() => out.push_str(&fmt_g(n)),
                _ => out.push_str(&arg.to_string()),
            },
        }
    }
    Ok(out)
}

trait KindExt {
    fn is_kind_string(&self) -> bool;
}

impl KindExt for Value {
    fn is_kind_string(&self) -> bool {
        self.kind() == minijinja::value::ValueKind::String
    }
}
