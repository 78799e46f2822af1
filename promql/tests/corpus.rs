//! Runs Prometheus's PromQL test corpus (`$TIDEWATCH_SHARED/promqltest`)
//! against [`MemStorage`] and fails if any file's pass count drops below the
//! baseline recorded in `corpus_baseline.tsv`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tidewatch_promql::Engine;
use tidewatch_promql::promqltest::{MemTarget, Outcome, run_corpus};

fn corpus_dir() -> PathBuf {
    let shared = std::env::var_os("TIDEWATCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared")
        });
    shared.join("promqltest")
}

/// Per file: (float cases passed, float cases, native-histogram cases passed).
fn baseline() -> BTreeMap<String, (usize, usize, usize)> {
    let text = include_str!("corpus_baseline.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                (
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f.get(3).map_or(0, |n| n.parse().unwrap()),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn promql_corpus_meets_baseline() {
    let dir = corpus_dir();
    let engine = Engine::default();
    let base = baseline();
    let verbose = std::env::var_os("CORPUS_VERBOSE").is_some();
    let (mut passed, mut total, mut skipped, mut native) = (0, 0, 0, 0);
    let mut regressions = Vec::new();
    println!("file\tpassed\tfloat_cases\tnative_passed\tnative_not_passed");
    let target = MemTarget::default();
    let reports = run_corpus(&dir, &target, &engine)
        .await
        .unwrap_or_else(|e| panic!("corpus at {}: {e}", dir.display()));
    assert!(!reports.is_empty(), "no corpus files in {}", dir.display());
    for (name, report) in &reports {
        println!(
            "{name}\t{}\t{}\t{}\t{}",
            report.passed(),
            report.total(),
            report.native_passed(),
            report.skipped()
        );
        if verbose {
            for c in &report.cases {
                match &c.outcome {
                    Outcome::Fail(why) if !c.native => {
                        println!("  FAIL {name}:{} {}\n       {why}", c.line, c.query)
                    }
                    Outcome::Fail(why) => {
                        println!("  NATIVE-FAIL {name}:{} {}\n       {why}", c.line, c.query)
                    }
                    Outcome::Skipped => println!("  SKIP {name}:{} {}", c.line, c.query),
                    Outcome::Pass => {}
                }
            }
        }
        passed += report.passed();
        total += report.total();
        skipped += report.skipped();
        native += report.native_passed();
        match base.get(name) {
            Some(&(min, _, _)) if report.passed() < min => {
                regressions.push(format!("{name}: {} < baseline {min}", report.passed()));
            }
            Some(&(_, _, min)) if report.native_passed() < min => {
                regressions.push(format!(
                    "{name}: native {} < baseline {min}",
                    report.native_passed()
                ));
            }
            Some(_) => {}
            None => regressions.push(format!("{name}: no baseline recorded")),
        }
    }
    println!(
        "TOTAL\t{passed}\t{total}\t{native}\t{skipped}\t({:.2}% of float cases)",
        100.0 * passed as f64 / total.max(1) as f64
    );
    assert!(
        regressions.is_empty(),
        "corpus regressions: {regressions:?}"
    );
}
