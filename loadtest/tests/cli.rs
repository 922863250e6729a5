//! The `loadtest` binary's exit codes and output, end to end.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

fn loadtest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
}

#[test]
fn bad_scenario_value_exits_2_naming_the_key() {
    let dir = common::temp_dir("cli-bad-value");
    let path = dir.join("bad.toml");
    std::fs::write(&path, common::TINY.replace("scale = 300.0", "scale = 0.2")).unwrap();
    let out = loadtest().arg("run").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clock.scale") && err.contains("got 0.2"),
        "{err}"
    );
}

#[test]
fn unknown_key_exits_2() {
    let dir = common::temp_dir("cli-unknown-key");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        common::TINY.replace("seed = 7", "seed = 7\nsead = 8"),
    )
    .unwrap();
    let out = loadtest().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sead"));
}

#[test]
fn missing_files_and_bad_flags_exit_2() {
    let out = loadtest()
        .args(["run", "/nonexistent/scenario.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/scenario.toml"));

    let out = loadtest()
        .args(["run", "--no-such-flag", "x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");

    let dir = common::temp_dir("cli-bad-flags");
    let path = dir.join("tiny.toml");
    std::fs::write(&path, common::TINY).unwrap();
    // One address without the other four (and no --cluster).
    let out = loadtest()
        .arg("run")
        .arg(&path)
        .args(["--intake", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--notification is missing"));
    // A replica list with an empty item names its flag.
    let out = loadtest()
        .arg("run")
        .arg(&path)
        .args(["--cluster", "127.0.0.1:1", "--notification", "127.0.0.1:1,"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--notification: replica 1 of \"127.0.0.1:1,\" is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A population file for the built-in map.
    let out = loadtest()
        .arg("run")
        .arg(&path)
        .args(["--population", "p.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A map file that does not exist.
    let out = loadtest()
        .arg("run")
        .arg(&path)
        .args(["--map", "/nonexistent/towns.geojson"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/towns.geojson"));
}

#[test]
fn a_report_path_is_checked_before_the_run_and_its_folder_made() {
    let dir = common::temp_dir("cli-report-path");
    let path = dir.join("tiny.toml");
    std::fs::write(&path, common::TINY).unwrap();
    // A file where the report's folder should be: refused as bad input (2) before the run,
    // which would have failed with 1 (nothing listens on port 1).
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let report = blocker.join("report.json");
    let out = loadtest()
        .arg("run")
        .arg(&path)
        .args(["--cluster", "127.0.0.1:1", "--json"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("cannot write {}", report.display()))
    );
    // A folder that does not exist yet is made (then the run fails to connect, with 1), and no
    // empty report is left in it.
    let report = dir.join("new/folder/report.html");
    let out = loadtest()
        .arg("run")
        .arg(&path)
        .args(["--cluster", "127.0.0.1:1", "--html"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(dir.join("new/folder").is_dir());
    assert!(!report.exists());
}

#[test]
fn unreachable_cluster_exits_1() {
    let dir = common::temp_dir("cli-unreachable");
    let path = dir.join("tiny.toml");
    std::fs::write(&path, common::TINY).unwrap();
    // Port 1 on loopback: nothing listens there.
    let out = loadtest()
        .arg("run")
        .arg(&path)
        .args(["--cluster", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn check_describes_a_valid_scenario() {
    let out = loadtest()
        .args([
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/builtin-peak.toml"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("builtin-peak") && text.contains("60 s of calls"),
        "{text}"
    );
}
