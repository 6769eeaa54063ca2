//! The README's first command: `deploy/quickstart.sh` makes a working demo, reuses a complete
//! one, and rebuilds a broken one. (`deploy/test.sh` builds the release binaries first, so the
//! script's own build step has nothing left to do.)

use std::path::Path;
use std::process::Command;

use seald_tests::{run, workspace_root};
use serde_json::Value;

fn quickstart(demo: &Path) -> String {
    let out = run(Command::new(workspace_root().join("deploy/quickstart.sh"))
        .env("SEALD_DEMO_DIR", demo)
        .env_remove("SOFTHSM2_CONF")
        .env_remove("SEALD_PKCS11_MODULE"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "quickstart failed:\n{text}");
    text
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
    assert!(first.contains("seald demo ready"), "{first}");
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
