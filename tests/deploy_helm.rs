//! The Helm chart (`deploy/helm/tidewatch`) and the container image definition
//! (`deploy/Dockerfile`), tested by `deploy/tests/test_chart.py`: Helm SDK lint
//! and render with default and non-default values, validation of every
//! rendered object, rejection of bad values, hadolint and structural checks of
//! the Dockerfile, and `tidewatch config check` of every rendered component
//! config with the binary built for these tests.

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
    cmd.arg(repo_root().join("deploy/tests/test_chart.py"))
        .current_dir(repo_root())
        .env("TIDEWATCH_BIN", tidewatch_bin());
    let hadolint = venv().join("bin/hadolint");
    if hadolint.exists() {
        cmd.env("HADOLINT", hadolint);
    }
    let out = cmd.output().expect("run deploy/tests/test_chart.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "deploy/tests/test_chart.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Every test ran: none may be skipped under cargo (the binary is available here).
    assert!(
        !stderr.contains("skipped"),
        "a chart test was skipped:\n{stderr}"
    );
    assert!(stderr.contains("\nOK"), "{stderr}");
}
