//! The exposition parser against the OpenMetrics conformance cases
//! (`shared/openmetrics/tests/testdata/parsers/`: every `bad_*` must be
//! rejected, every other case accepted) and Prometheus's textparse samples.

use std::path::PathBuf;

use tidewatch_common::exposition::{Format, ParseOptions, parse, parse_with};

fn shared_dir() -> PathBuf {
    match std::env::var_os("TIDEWATCH_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../shared"),
    }
}

#[test]
fn openmetrics_conformance_cases() {
    let dir = shared_dir().join("openmetrics/tests/testdata/parsers");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 200,
        "expected the 211 cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let (mut good, mut bad) = (0, 0);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let verdict: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("test.json")).unwrap()).unwrap();
        let should_parse = verdict["shouldParse"].as_bool().unwrap();
        assert_eq!(should_parse, !name.starts_with("bad_"), "{name}");
        let body = std::fs::read(case.join(verdict["file"].as_str().unwrap())).unwrap();
        let body = String::from_utf8(body).expect("cases are UTF-8");
        match (parse(&body, Format::OpenMetrics), should_parse) {
            (Ok(_), true) => good += 1,
            (Err(e), false) => {
                assert!(!e.message.is_empty());
                bad += 1
            }
            (Ok(e), false) => {
                failures.push(format!("{name}: accepted ({} samples)", e.samples.len()))
            }
            (Err(e), true) => failures.push(format!("{name}: rejected: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(good + bad, cases.len());
}

#[test]
fn textparse_samples() {
    let dir = shared_dir().join("textparse");
    let expect = [
        ("alltypes.237mfs.prom.txt", Format::PrometheusText, 237),
        ("alltypes.237mfs.nometa.prom.txt", Format::PrometheusText, 0),
        ("alltypes.5mfs.om.txt", Format::OpenMetrics, 5),
        ("1histogram.om.txt", Format::OpenMetrics, 1),
    ];
    for (file, format, families) in expect {
        let body = std::fs::read_to_string(dir.join(file)).unwrap();
        let lenient = ParseOptions { strict: false };
        let e = parse_with(&body, format, lenient).unwrap_or_else(|e| panic!("{file}: {e}"));
        let sample_lines = body
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(e.samples.len(), sample_lines, "{file}");
        assert_eq!(e.metadata.len(), families, "{file}");
        assert!(e.samples.iter().all(|s| s.labels.metric_name().is_some()));
    }
    // The same families with and without metadata give the same samples.
    let with = parse(
        &std::fs::read_to_string(dir.join("alltypes.237mfs.prom.txt")).unwrap(),
        Format::PrometheusText,
    )
    .unwrap();
    let without = parse(
        &std::fs::read_to_string(dir.join("alltypes.237mfs.nometa.prom.txt")).unwrap(),
        Format::PrometheusText,
    )
    .unwrap();
    // (NaN != NaN, so compare value bits.)
    let key = |e: &tidewatch_common::exposition::Exposition| {
        e.samples
            .iter()
            .map(|s| (s.labels.to_string(), s.value.to_bits(), s.timestamp_ms))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&with), key(&without));
}

/// Prometheus's OpenMetrics sample has a histogram with negative buckets and
/// a `_sum`, which the OpenMetrics 1.0 spec forbids: strict parsing names the
/// problem, lenient (scrape) parsing accepts it.
#[test]
fn strict_mode_rejects_sum_with_negative_buckets() {
    let body =
        std::fs::read_to_string(shared_dir().join("textparse/alltypes.5mfs.om.txt")).unwrap();
    let e = parse(&body, Format::OpenMetrics).unwrap_err();
    assert!(e.message.contains("negative buckets"), "{e}");
    let h = std::fs::read_to_string(shared_dir().join("textparse/1histogram.om.txt")).unwrap();
    parse(&h, Format::OpenMetrics).unwrap();
}

/// Prints every rejection message (run with --nocapture to review them).
#[test]
fn rejection_messages_are_specific() {
    let dir = shared_dir().join("openmetrics/tests/testdata/parsers");
    let mut generic = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let case = e.unwrap().path();
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("bad_") {
            continue;
        }
        let body = std::fs::read_to_string(case.join("metrics")).unwrap();
        let err = parse(&body, Format::OpenMetrics).unwrap_err();
        println!("{name}: {err}");
        if err.message.len() < 12 {
            generic.push(format!("{name}: {err}"));
        }
    }
    assert!(generic.is_empty(), "too terse: {generic:?}");
}
