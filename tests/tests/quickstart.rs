//! The README's first command: `deploy/quickstart.sh` makes a working demo and runs seald with
//! it (sealing a sample over mTLS), reuses a complete demo, and rebuilds a broken one. (`deploy/test.sh` builds the release binaries first, so the
//! script's own build step has nothing left to do.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use seald_tests::{run_ok, workspace_root};
use serde_json::Value;

/// Runs the quickstart until it prints READY, checks the running demo with curl, then
/// presses Ctrl-C (SIGINT) and waits for a clean exit. Returns its output.
fn quickstart(demo: &Path) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log = demo.with_extension("log");
    let mut child = Command::new(workspace_root().join("deploy/quickstart.sh"))
        .env("SEALD_DEMO_DIR", demo)
        .env("SEALD_DEMO_PORT", port.to_string())
        .env_remove("SOFTHSM2_CONF")
        .env_remove("SEALD_PKCS11_MODULE")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start the quickstart");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let url = loop {
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
                if let Some(url) = line.strip_prefix("READY ") {
                    break url.to_owned();
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no READY line:\n{text}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    };
    assert_eq!(url, format!("https://127.0.0.1:{port}"));
    // The commands the quickstart printed work as printed (run where the user would be).
    let printed = text
        .split_once("Do it yourself:\n")
        .and_then(|(_, rest)| rest.split_once("\nPress Ctrl-C"))
        .map(|(block, _)| block.to_owned())
        .unwrap_or_else(|| panic!("no commands printed:\n{text}"));
    assert!(
        printed.contains("curl") && printed.contains("audit verify"),
        "{printed}"
    );
    let work = demo.with_extension("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let out = run_ok(
        Command::new("bash")
            .arg("-c")
            .arg(format!("set -euo pipefail\n{printed}"))
            .current_dir(&work)
            .env_remove("SOFTHSM2_CONF"),
    );
    assert!(out.contains("not_tampered"), "{out}");
    assert!(out.contains("audit log intact"), "{out}");
    let verdict = run_ok(
        Command::new(workspace_root().join("target/release/sealctl"))
            .args(["verify", "--json", "--trust"])
            .arg(demo.join("root.crt"))
            .arg(work.join("sealed.pdf")),
    );
    assert!(verdict.contains("not_tampered"), "{verdict}");
    // Ctrl-C (SIGINT to the script): it stops seald and exits 0.
    run_ok(Command::new("kill").arg("-INT").arg(child.id().to_string()));
    let status = child.wait().expect("wait");
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    text.extend(rx.try_iter().map(|l| l + "\n"));
    assert!(
        status.success(),
        "quickstart exited with {status}:\n{text}\n{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "seald still listens"
    );
    text + &stderr
}

fn demo_objects(demo: &Path) -> Vec<Value> {
    let out = seald_tests::run_ok(
        Command::new(workspace_root().join("target/release/sealctl"))
            .args([
                "token",
                "--token",
                "seald-demo",
                "objects",
                "--json",
                "--pin-file",
            ])
            .arg(demo.join("secrets/user.pin"))
            .env("SOFTHSM2_CONF", demo.join("softhsm2.conf"))
            .env("SEALD_PKCS11_MODULE", seald_tests::softhsm_module()),
    );
    serde_json::from_str::<Value>(&out)
        .expect("json")
        .as_array()
        .expect("objects")
        .clone()
}

#[test]
fn quickstart_creates_reuses_and_repairs_the_demo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = dir.path().join("demo");

    let first = quickstart(&demo);
    assert!(first.contains("creating the demo"), "{first}");
    assert!(first.contains("seald demo running"), "{first}");
    assert!(first.contains("verdict not_tampered"), "{first}");
    for file in [
        "client.crt",
        "client.key",
        "server-ca.crt",
        "root.crt",
        "contract-sealed.pdf",
    ] {
        assert!(demo.join(file).exists(), "{file} missing");
    }
    let objects = demo_objects(&demo);
    let key = objects
        .iter()
        .find(|o| o["class"] == "private-key" && o["label"] == "contract-seal")
        .expect("seal key on the demo token");
    let cert = objects
        .iter()
        .find(|o| o["class"] == "certificate" && o["label"] == "contract-seal")
        .expect("seal certificate on the demo token");
    assert_eq!(key["id"], cert["id"]);
    assert_eq!(
        cert["certificate"]["issuer"],
        "CN=seald demo enterprise CA,O=seald demo,C=CN"
    );
    let pin_mode = std::fs::metadata(demo.join("secrets/user.pin")).expect("pin file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        pin_mode.permissions().mode() & 0o077,
        0,
        "PIN file readable by others"
    );

    // Again: the complete demo is kept as it is.
    let second = quickstart(&demo);
    assert!(second.contains("reusing the demo"), "{second}");
    assert_eq!(demo_objects(&demo), objects);

    // A demo broken half-way (its token store lost) is rebuilt, not half-used.
    std::fs::remove_dir_all(demo.join("tokens")).expect("break the demo");
    std::fs::create_dir(demo.join("tokens")).expect("empty token dir");
    let third = quickstart(&demo);
    assert!(third.contains("creating the demo"), "{third}");
    assert!(demo_objects(&demo)
        .iter()
        .any(|o| o["class"] == "certificate" && o["label"] == "contract-seal"));
}
