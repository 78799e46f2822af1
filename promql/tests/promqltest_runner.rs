//! The corpus runner itself: it passes correct expectations, fails wrong
//! ones, runs native-histogram cases apart (skipping what the engine does
//! not evaluate) and drives a custom [`Target`].

use std::sync::Mutex;

use tidewatch_promql::promqltest::{
    LoadSeries, MemTarget, Outcome, Target, TargetFuture, run_file,
};
use tidewatch_promql::{Engine, MemStorage, Storage};

const FILE: &str = r#"
load 1m
    metric{job="a"} 0+10x10
    hist {{schema:0 sum:1 count:1}}x3

# Correct.
eval instant at 5m metric
    metric{job="a"} 50

# Wrong value.
eval instant at 5m metric
    metric{job="a"} 51

eval range from 0 to 2m step 1m metric * 2
    {job="a"} 0 20 40

eval instant at 0 sum(
    expect fail

eval instant at 1m hist
    hist {{schema:0 sum:1 count:1 counter_reset_hint:not_reset}}

eval instant at 1m histogram_count(hist)
    {} 1

eval instant at 1m hist
    hist {{schema:0 sum:2 count:1}}

eval instant at 1m rate(hist[1m])
    {} {{schema:0}}

clear

eval instant at 5m metric
"#;

#[tokio::test]
async fn runner_reports_pass_fail_and_skip() {
    let target = MemTarget::default();
    let report = run_file(FILE, &target, &Engine::default()).await.unwrap();
    let outcomes: Vec<&Outcome> = report.cases.iter().map(|c| &c.outcome).collect();
    assert!(matches!(outcomes[0], Outcome::Pass));
    assert!(matches!(outcomes[1], Outcome::Fail(_)), "{:?}", outcomes[1]);
    assert!(matches!(outcomes[2], Outcome::Pass), "{:?}", outcomes[2]);
    assert!(matches!(outcomes[3], Outcome::Pass));
    // Native histograms: a selector and histogram_count pass, a wrong
    // sum fails, rate over histograms is not evaluated.
    assert!(matches!(outcomes[4], Outcome::Pass), "{:?}", outcomes[4]);
    assert!(matches!(outcomes[5], Outcome::Pass), "{:?}", outcomes[5]);
    assert!(matches!(outcomes[6], Outcome::Fail(_)), "{:?}", outcomes[6]);
    assert!(matches!(outcomes[7], Outcome::Skipped), "{:?}", outcomes[7]);
    // After `clear` the metric is gone and the empty expectation holds.
    assert!(matches!(outcomes[8], Outcome::Pass), "{:?}", outcomes[8]);
    assert_eq!(
        (
            report.passed(),
            report.total(),
            report.native_passed(),
            report.skipped()
        ),
        (4, 5, 2, 2)
    );
}

/// A target that records what it was asked to load.
#[derive(Default)]
struct Recording {
    inner: MemStorage,
    loads: Mutex<usize>,
    clears: Mutex<usize>,
}

impl Target for Recording {
    fn load<'a>(&'a self, series: &'a [LoadSeries]) -> TargetFuture<'a> {
        *self.loads.lock().unwrap() += series.len();
        for s in series {
            self.inner
                .append(s.labels.clone(), s.samples.iter().copied());
        }
        Box::pin(async { Ok(()) })
    }

    fn clear(&self) -> TargetFuture<'_> {
        *self.clears.lock().unwrap() += 1;
        self.inner.clear();
        Box::pin(async { Ok(()) })
    }

    fn storage(&self) -> &dyn Storage {
        &self.inner
    }
}

#[tokio::test]
async fn runner_drives_a_pluggable_target() {
    let target = Recording::default();
    let report = run_file(FILE, &target, &Engine::default()).await.unwrap();
    assert_eq!(report.passed(), 4);
    // Both series handed to the target (this one keeps floats only), one
    // initial and one explicit clear.
    assert_eq!(*target.loads.lock().unwrap(), 2);
    assert_eq!(*target.clears.lock().unwrap(), 2);
}
