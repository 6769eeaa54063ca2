//! Deployment files: the systemd unit passes `systemd-analyze verify`.

use std::fs;
use std::process::Command;

use seald_tests::{binary, run, workspace_root};

#[test]
fn the_systemd_unit_verifies_cleanly() {
    if run(Command::new("sh").args(["-c", "command -v systemd-analyze"]))
        .status
        .code()
        != Some(0)
    {
        eprintln!("systemd-analyze is not installed; skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let unit = fs::read_to_string(workspace_root().join("deploy/seald.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/seald --config /etc/seald/seald.toml"));
    // systemd-analyze checks that the binary exists: point it at the one just built.
    let unit = unit.replace(
        "/usr/local/bin/seald",
        &binary("seald").display().to_string(),
    );
    let path = dir.path().join("seald.service");
    fs::write(&path, unit).expect("write");
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("seald.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}
