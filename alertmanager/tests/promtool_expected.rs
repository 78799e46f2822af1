//! Every file of `shared/promtool/` gives the exit code its `EXPECTED.tsv`
//! row lists (transcribed from promtool's own tests), with that row's
//! options.

use std::path::PathBuf;

use tidewatch_alertmanager::unit_test::{Options, run_files_with};

fn shared() -> PathBuf {
    std::env::var_os("TIDEWATCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared")
        })
}

struct Row {
    file: String,
    code: u8,
    opts: Options,
    name: String,
}

fn rows() -> Vec<Row> {
    let dir = shared().join("promtool");
    let text = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let mut opts = Options::default();
        let mut words = cols[2].split_whitespace();
        while let Some(w) = words.next() {
            match w {
                // promtool joins its `--run` values with `|` and matches
                // unanchored: `--run wrong` selects "wrong test".
                "--run" => opts
                    .run
                    .push(words.next().expect("--run value").to_string()),
                "--ignore-unknown-fields" => opts.ignore_unknown_fields = true,
                "EnableAtModifier=false" => opts.enable_at_modifier = false,
                "EnableNegativeOffset=false" => opts.enable_negative_offset = false,
                _ => {}
            }
        }
        out.push(Row {
            file: cols[0].to_string(),
            code: cols[1].parse().expect("exit code"),
            opts,
            name: cols[3].to_string(),
        });
    }
    out
}

#[tokio::test]
async fn every_file_gives_its_expected_exit_code() {
    let dir = shared().join("promtool");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for r in rows() {
        let path = dir.join(&r.file);
        let code = run_files_with(&[path], &r.opts).await;
        checked += 1;
        if code != r.code {
            wrong.push(format!(
                "{} ({}): got {code}, want {}",
                r.file, r.name, r.code
            ));
        }
    }
    assert_eq!(checked, rows().len(), "every row is checked");
    assert!(checked >= 21, "only {checked} rows checked");
    assert!(wrong.is_empty(), "wrong exit codes:\n{}", wrong.join("\n"));
}
