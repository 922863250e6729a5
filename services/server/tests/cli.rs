//! The `dispatch-server` binary's clock settings: the cluster epoch layered from file,
//! environment and flag, and the refusal to run a separate process on a scaled clock without it.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Command, Output};

use dispatch_core::Clock;
use dispatch_core::clock::WallClock;

fn server() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dispatch-server"));
    // The runner's own settings must not leak into these checks.
    c.env_remove("DISPATCH_CLOCK_SCALE")
        .env_remove("DISPATCH_CLOCK_EPOCH_MS")
        .env("RUST_LOG", "warn");
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `dispatch-server run intake` with `args` on an address this test holds: a process that
/// got past its clock checks fails to bind it (exit 1) instead of serving forever.
fn run_intake(args: &[&str], env: &[(&str, &str)]) -> Output {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut c = server();
    c.args(["run", "intake", "--listen", &addr]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    drop(taken);
    out
}

#[test]
fn a_separate_process_on_a_scaled_clock_without_the_epoch_exits_2() {
    let out = run_intake(&["--clock-scale", "60"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--clock-epoch-ms") && err.contains("clock_scale is 60"),
        "{err}"
    );
    // The scale from the environment is refused the same way.
    let out = run_intake(&[], &[("DISPATCH_CLOCK_SCALE", "60")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--clock-epoch-ms"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_epochs_exit_2_naming_the_value() {
    // Seconds for milliseconds.
    let out = run_intake(
        &["--clock-scale", "60", "--clock-epoch-ms", "1764000000"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("clock_epoch_ms") && stderr(&out).contains("got 1764000000"),
        "{}",
        stderr(&out)
    );
    // A day ahead of this host's clock.
    let ahead = (WallClock.now().as_millis() + 86_400_000).to_string();
    let out = run_intake(&["--clock-scale", "60", "--clock-epoch-ms", &ahead], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&ahead) && stderr(&out).contains("ahead"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn with_the_epoch_or_at_scale_1_a_separate_process_passes_the_clock_checks() {
    let now = WallClock.now().as_millis().to_string();
    for (args, env) in [
        (
            vec!["--clock-scale", "60", "--clock-epoch-ms", now.as_str()],
            vec![],
        ),
        (
            vec![],
            vec![
                ("DISPATCH_CLOCK_SCALE", "60"),
                ("DISPATCH_CLOCK_EPOCH_MS", now.as_str()),
            ],
        ),
        (vec![], vec![]),
    ] {
        let out = run_intake(&args, &env);
        // Exit 1: the address is taken, so the clock was accepted.
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} {env:?}: {}",
            stderr(&out)
        );
    }
    // The embedded cluster is one process: its scaled clock may start now.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = server()
        .args(["all", "--listen", &addr, "--clock-scale", "60"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn the_epoch_layers_file_then_environment_then_flag() {
    let dir = std::env::temp_dir().join(format!("dispatch-server-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clock.toml");
    std::fs::write(
        &file,
        "clock_scale = 60.0\nclock_epoch_ms = 1764000000001\n",
    )
    .unwrap();
    let printed = |env: Option<&str>, flag: Option<&str>| {
        let mut c = server();
        c.arg("--config").arg(&file).arg("--print-config");
        if let Some(v) = env {
            c.env("DISPATCH_CLOCK_EPOCH_MS", v);
        }
        if let Some(v) = flag {
            c.args(["--clock-epoch-ms", v]);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.starts_with("clock_epoch_ms"))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(printed(None, None), "clock_epoch_ms = 1764000000001");
    assert_eq!(
        printed(Some("1764000000002"), None),
        "clock_epoch_ms = 1764000000002"
    );
    assert_eq!(
        printed(Some("1764000000002"), Some("1764000000003")),
        "clock_epoch_ms = 1764000000003"
    );
}
