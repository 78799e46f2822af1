//! Config loading with precise errors: every problem names the field path
//! (`alerting.receivers[2].email.to`) and, where known, the line.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `aggregator.limits.max_series_per_request`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line in the file, when the parser knows it.
    pub line: Option<usize>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "."
        } else {
            &self.path
        };
        match self.line {
            Some(l) => write!(f, "{path}: {} (line {l})", self.message),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

/// All problems found in one file.
#[derive(Debug, Clone, Default)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Semantic validation after parsing: push one [`FieldError`] per problem,
/// with `path` as the prefix of this value's fields.
pub trait Validate {
    /// Checks the value; `path` is where it sits in the file (may be empty).
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>);
}

/// Joins a parent path and a child field name.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else if field.starts_with('[') {
        format!("{path}{field}")
    } else {
        format!("{path}.{field}")
    }
}

/// Parses YAML text into `T`, reporting the failing field's path and line.
pub fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigErrors> {
    let de = serde_yaml::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.location().map(|l| l.line());
            // serde_yaml prefixes its message with the path and location; keep
            // only the description.
            let mut message = inner.to_string();
            if let Some(idx) = message.find(" at line ") {
                message.truncate(idx);
            }
            if let Some(rest) = message.strip_prefix(&format!("{path}: ")) {
                message = rest.to_string();
            }
            Err(ConfigErrors(vec![FieldError {
                path: if path == "." { String::new() } else { path },
                message,
                line,
            }]))
        }
    }
}

/// Parses and validates YAML text.
pub fn load_str<T: DeserializeOwned + Validate>(text: &str) -> Result<T, ConfigErrors> {
    load_str_adjusted(text, |_: &mut T, _: &mut Vec<FieldError>| {})
}

/// Parses YAML text, lets `adjust` change the value (an environment
/// overlay, say, which reports its own errors into the vector), then
/// validates the result.
pub fn load_str_adjusted<T: DeserializeOwned + Validate>(
    text: &str,
    adjust: impl FnOnce(&mut T, &mut Vec<FieldError>),
) -> Result<T, ConfigErrors> {
    let mut v: T = parse_yaml(text)?;
    let mut errors = Vec::new();
    adjust(&mut v, &mut errors);
    v.validate("", &mut errors);
    if errors.is_empty() {
        Ok(v)
    } else {
        // Attach line numbers by locating the leaf key in the text, best effort.
        for e in &mut errors {
            if e.line.is_none() {
                e.line = guess_line(text, &e.path);
            }
        }
        Err(ConfigErrors(errors))
    }
}

/// Reads, parses and validates a YAML file.
pub fn load_file<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![FieldError {
            path: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
            line: None,
        }])
    })?;
    load_str(&text)
}

/// Finds the line of the last key of a dotted path (best effort).
fn guess_line(text: &str, path: &str) -> Option<usize> {
    let leaf = path.rsplit('.').next()?;
    let leaf = leaf.split('[').next()?;
    if leaf.is_empty() {
        return None;
    }
    let needle = format!("{leaf}:");
    text.lines()
        .position(|l| l.trim_start().trim_start_matches("- ").starts_with(&needle))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        inner: Inner,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u32,
    }
    impl Validate for Outer {
        fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
            if self.inner.n == 0 {
                errors.push(FieldError {
                    path: join(&join(path, "inner"), "n"),
                    message: "must be positive".into(),
                    line: None,
                });
            }
        }
    }

    #[test]
    fn errors_name_path_and_line() {
        let e = load_str::<Outer>("inner:\n  n: x\n").unwrap_err();
        assert_eq!(e.0[0].path, "inner.n");
        assert_eq!(e.0[0].line, Some(2));
        let e = load_str::<Outer>("inner:\n  m: 1\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `m`"), "{e}");
        let e = load_str::<Outer>("inner:\n  n: 0\n").unwrap_err();
        assert_eq!(e.to_string(), "inner.n: must be positive (line 2)");
    }
}
