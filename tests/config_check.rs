//! `wasp check-config` as a user runs it: the repository's sessions.toml passes with a
//! summary, and every invalid fixture in tests/fixtures/config/ fails with exactly the
//! `FILE:LINE:COL: message` lines of its `.expected` sidecar and exit code 2.

// Test helpers: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check_config(file: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasp"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check-config", file])
        .output()
        .expect("the wasp binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

#[test]
fn the_example_sessions_toml_is_valid() {
    let output = check_config("sessions.toml");
    assert_eq!(text(&output.stderr), "");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout),
        "sessions.toml: ok, 3 sessions (2 autostart), data dir ./wasp-data, http 127.0.0.1:9464\n"
    );
}

/// Every `NAME.toml` fixture, relative to the crate root, as the test passes it.
fn fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            format!("tests/fixtures/config/{name}")
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_invalid_fixture_reports_exactly_its_expected_lines() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 15, "only {} fixtures", fixtures.len());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let sidecar = root.join(fixture.replace(".toml", ".expected"));
        let expected = std::fs::read_to_string(&sidecar)
            .unwrap_or_else(|e| panic!("{} is missing: {e}", sidecar.display()));
        assert!(
            !expected.trim().is_empty(),
            "{} is empty",
            sidecar.display()
        );
        let output = check_config(fixture);
        let stderr = text(&output.stderr);
        if output.status.code() != Some(2) || stderr != expected || !output.stdout.is_empty() {
            failures.push(format!(
                "{fixture}: exit {:?}\n--- expected\n{expected}--- got stderr\n{stderr}--- got stdout\n{}",
                output.status.code(),
                text(&output.stdout)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_line_names_the_fixture_with_line_and_column() {
    for fixture in fixtures() {
        let sidecar =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture.replace(".toml", ".expected"));
        let expected = std::fs::read_to_string(&sidecar).expect("sidecar exists");
        for line in expected.lines() {
            let rest = line
                .strip_prefix(&format!("{fixture}:"))
                .unwrap_or_else(|| panic!("{line:?} does not start with {fixture}:"));
            let mut parts = rest.splitn(3, ':');
            let line_no = parts.next().and_then(|n| n.parse::<usize>().ok());
            let column = parts.next().and_then(|n| n.parse::<usize>().ok());
            let message = parts.next().unwrap_or_default();
            assert!(line_no.is_some_and(|n| n > 0), "{line:?}");
            assert!(column.is_some_and(|n| n > 0), "{line:?}");
            assert!(message.starts_with(' ') && message.len() > 10, "{line:?}");
        }
    }
}

#[test]
fn an_unreadable_file_is_one_sentence_naming_it() {
    let output = check_config("tests/fixtures/config/no-such-file.toml");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("cannot read config file tests/fixtures/config/no-such-file.toml: "),
        "{stderr}"
    );
}

#[test]
fn the_summary_counts_sessions_and_autostart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("one.toml");
    std::fs::write(
        &file,
        "[storage]\ndata_dir = \"/var/lib/wasp\"\n[[session]]\nid = \"a\"\n",
    )
    .expect("write config");
    let output = check_config(file.to_str().expect("UTF-8 path"));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout),
        format!(
            "{}: ok, 1 session (0 autostart), data dir /var/lib/wasp\n",
            file.display()
        )
    );
}

#[test]
fn bad_usage_exits_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["check-config"])
        .output()
        .expect("the wasp binary runs");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn terminal_escapes_in_a_bad_id_are_printed_escaped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("escapes.toml");
    std::fs::write(&file, "[[session]]\nid = \"a\\u001b[2Jb\\u0007\"\n").expect("write config");
    let output = check_config(file.to_str().expect("UTF-8 path"));
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        !stderr.chars().any(|c| c.is_control() && c != '\n'),
        "raw control characters: {stderr:?}"
    );
    assert!(stderr.contains("a\\u{1b}[2Jb\\u{7}"), "{stderr}");
}

#[test]
fn an_endless_file_is_refused_after_4_mib_in_one_sentence() {
    let output = check_config("/dev/zero");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        "cannot read config file /dev/zero: it is larger than 4 MiB, far more than a sessions file\n"
    );
}

#[test]
fn a_webhook_secret_variable_that_is_not_set_is_one_sentence_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("hook.toml");
    std::fs::write(
        &file,
        "[webhook]\nurl = \"https://hooks.example.com/wasp\"\nsecret_env = \"WASP_TEST_HOOK_SECRET\"\n",
    )
    .expect("written");
    let run = |value: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasp"));
        command.arg("check-config").arg(&file);
        match value {
            Some(v) => command.env("WASP_TEST_HOOK_SECRET", v),
            None => command.env_remove("WASP_TEST_HOOK_SECRET"),
        };
        command.output().expect("the wasp binary runs")
    };
    let unset = run(None);
    assert_eq!(unset.status.code(), Some(2));
    let stderr = text(&unset.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "secret_env in [webhook] names the variable WASP_TEST_HOOK_SECRET, which is not set"
        ),
        "{stderr}"
    );
    let blank = run(Some("  "));
    assert_eq!(blank.status.code(), Some(2));
    let set = run(Some("s3cret-value"));
    assert_eq!(set.status.code(), Some(0), "{}", text(&set.stderr));
    let stdout = text(&set.stdout);
    assert!(stdout.contains("webhook hooks.example.com:443"), "{stdout}");
    assert!(!stdout.contains("s3cret"), "{stdout}");
}
