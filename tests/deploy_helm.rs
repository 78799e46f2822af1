//! The Helm chart (`deploy/helm/tidewatch`) and the container image definition
//! (`deploy/Dockerfile`), tested by the Python suite in `deploy/tests/`: Helm
//! SDK lint and render with default and non-default values, strict validation
//! of every rendered object against the Kubernetes API schemas and for
//! cross-object consistency, rejection of bad values, `tidewatch config check`
//! of every rendered component config and a start of every rendered container
//! (args, config, env) with the binary built for these tests, polling its
//! probes; hadolint and structural checks of the Dockerfile.

mod support;

use std::process::Command;

use support::{repo_root, tidewatch_bin, venv};

#[test]
fn helm_chart_and_dockerfile_pass_their_checks() {
    let python = venv().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps",
        python.display()
    );
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(repo_root().join("deploy/tests"))
        .current_dir(repo_root())
        .env("TIDEWATCH_BIN", tidewatch_bin());
    let hadolint = venv().join("bin/hadolint");
    if hadolint.exists() {
        cmd.env("HADOLINT", hadolint);
    }
    let out = cmd.output().expect("run the deploy/tests suite");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "deploy/tests failed ({}):\n{}\n{report}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    // Every test ran (the binary is available here, so nothing may be skipped),
    // and discovery found both test modules.
    let ran: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no test count in:\n{report}"));
    assert!(ran >= 30, "only {ran} tests ran:\n{report}");
    assert!(
        !report.contains("skipped"),
        "a deploy test was skipped:\n{report}"
    );
    for module in ["test_chart.", "test_dockerfile."] {
        assert!(report.contains(module), "{module} did not run:\n{report}");
    }
}
