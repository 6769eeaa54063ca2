//! The commands in the documentation work as written: each ```sh block of a page is run, in
//! order, as one bash script (against a fresh SoftHSM2, with the built `sealctl` on PATH).

use std::fs;
use std::process::Command;

use seald_tests::{binary, run, workspace_root};

/// The ```sh blocks of a Markdown page, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "unterminated code block");
    blocks
}

#[test]
fn the_token_ceremony_page_runs_as_written() {
    let page = fs::read_to_string(workspace_root().join("docs/token-admin.md")).expect("page");
    let blocks = shell_blocks(&page);
    assert!(
        blocks.len() >= 10,
        "expected the ceremony's steps, found {} blocks",
        blocks.len()
    );
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));

    let dir = tempfile::tempdir().expect("temp dir");
    // The page runs from the seald checkout (it calls deploy/pki.sh); give it one.
    std::os::unix::fs::symlink(workspace_root().join("deploy"), dir.path().join("deploy"))
        .expect("link deploy/");
    let bin_dir = binary("sealctl").parent().expect("bin dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("SOFTHSM2_CONF")
        .env_remove("SEALD_PIN")
        .env_remove("SEALD_SO_PIN")
        .env_remove("SEALD_NEW_PIN"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the page failed:\n{stdout}\n{stderr}");
    // The independent check at the end of the ceremony really verified the signature.
    assert!(stdout.contains("Verified OK"), "{stdout}");
    assert!(stdout.contains("Deleted key 'contract-seal'"), "{stdout}");
}

#[test]
fn the_signing_page_runs_as_written() {
    let page = fs::read_to_string(workspace_root().join("docs/signing.md")).expect("page");
    let blocks = shell_blocks(&page);
    assert!(blocks.len() >= 6, "found {} blocks", blocks.len());
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let demo = tempfile::tempdir().expect("temp dir");
    // The page runs from the checkout, against the quickstart's demo (here in a temp dir).
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(workspace_root())
        .env("SEALD_DEMO_DIR", demo.path())
        .env_remove("SOFTHSM2_CONF")
        .env_remove("SEALD_PIN"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the page failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("contract-sealed.pdf: intact and validly sealed"),
        "{stdout}"
    );
    assert!(stdout.contains("Signature is Valid."), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(demo.path().join("report.json")).expect("report"))
            .expect("json");
    assert_eq!(report["verdict"], "not_tampered");
    assert_eq!(report["signatures"][0]["timestamp_valid"], true, "{report}");
    assert!(stderr.contains("time-stamped"), "{stderr}");
}
