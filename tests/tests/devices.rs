//! A seal key on a serial signing device (the emulator on a pseudo-terminal, P-256 profile),
//! end to end: sealctl has the device sign its certificate request, the test CA certifies it,
//! seald seals PDFs with it that pdfsig, pyHanko and qpdf accept, and /readyz and the metrics
//! follow the device as it waits for a touch, goes away and comes back.

use std::fs;
use std::process::Command;
use std::time::Duration;

use seald_firmware_bridge::emulator::{Emulator, EmulatorConfig, Touch};
use seald_firmware_bridge::Profile;
use seald_tests::daemon::{send, wait_until, Setup};
use seald_tests::pdf::Validators;
use seald_tests::{binary, pki_issue, run_ok};
use serde_json::Value;

fn sealctl_device(args: &[&str]) -> String {
    run_ok(Command::new(binary("sealctl")).arg("device").args(args))
}

#[test]
fn a_seal_on_a_p256_device_seals_pdfs_every_validator_accepts_and_readyz_follows_the_device() {
    let emulator_dir = tempfile::tempdir().expect("dir");
    let link = emulator_dir.path().join("seal-appliance");
    let mut config = EmulatorConfig::new(Profile::P256, [42; 32]);
    config.link = Some(link.clone());
    let mut emulator = Emulator::start(config).expect("emulator");
    let path = link.display().to_string();
    let setup = Setup::new(&format!(
        "[[device]]\nname = \"appliance\"\nprofile = \"p256\"\npath = \"{path}\"\ntouch_timeout_seconds = 3\n"
    ));

    // The ceremony, before seald holds the device: its key, and a request it signs.
    let which = ["--path", path.as_str(), "--profile", "p256"];
    let info: Value = serde_json::from_str(&sealctl_device(
        &[&["--json", "info"][..], &which[..]].concat(),
    ))
    .expect("json");
    assert_eq!(info["app"], "sealp256", "{info}");
    let pem = sealctl_device(&[&["pubkey"][..], &which[..]].concat());
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let dir = setup.dir().to_path_buf();
    fs::write(dir.join("device.pub.pem"), &pem).expect("pem");
    let parsed = run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubin", "-noout", "-text", "-in"])
            .arg(dir.join("device.pub.pem")),
    );
    assert!(parsed.contains("prime256v1"), "{parsed}");
    let req = dir.join("device.csr");
    sealctl_device(
        &[
            &["csr"][..],
            &which[..],
            &[
                "--subject",
                "CN=设备合同章,O=seald demo,C=CN",
                "--out",
                req.to_str().expect("utf-8"),
            ],
        ]
        .concat(),
    );
    let cert = dir.join("device.pem");
    pki_issue(&setup.seal.pki, &req, &cert);
    let chain = dir.join("device-chain.pem");
    let mut text = fs::read(&cert).expect("cert");
    text.extend(fs::read(setup.seal.pki.join("chain.pem")).expect("chain"));
    fs::write(&chain, text).expect("chain");

    let d = setup.start();
    let admin = |args: &[&str]| {
        let mut cmd = setup.sealctl(&d, "admin");
        cmd.args(["admin", "seal", "register"]).args(args);
        cmd
    };
    // A certificate for another key is refused for the device.
    let wrong = seald_tests::run(
        admin(&[
            "--id",
            "wrong",
            "--name",
            "错",
            "--token",
            "appliance",
            "--key",
            "p256",
            "--chain",
        ])
        .arg(&setup.chain),
    );
    assert!(!wrong.status.success(), "registered a foreign certificate");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("seal_key_mismatch"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    run_ok(
        admin(&[
            "--id",
            "device-seal",
            "--name",
            "设备合同章",
            "--token",
            "appliance",
            "--key",
            "p256",
            "--chain",
        ])
        .arg(&chain)
        .arg("--image")
        .arg(&setup.image),
    );
    run_ok(
        setup
            .sealctl(&d, "admin")
            .args([
                "admin",
                "app",
                "register",
                "--id",
                "erp",
                "--name",
                "ERP",
                "--role",
                "signer",
                "--seal",
                "device-seal",
                "--cert",
            ])
            .arg(setup.tls.join("app.crt")),
    );
    let app = d.client("app");
    let sign = || {
        send(
            app.post(format!(
                "{}/v1/seals/device-seal/sign?document_id=D-1&page=1&x=120&y=40&width=40",
                d.api
            ))
            .header("Content-Type", "application/pdf")
            .body(setup.sample()),
        )
    };
    let signed = sign();
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    let out = dir.join("device-sealed.pdf");
    fs::write(&out, &signed.body).expect("write");
    let v = Validators::new(&dir, &[setup.seal.root()]);
    v.qpdf(&out).expect("qpdf --check");
    let sigs = v.pdfsig(&out);
    assert!(
        sigs.len() == 1
            && sigs[0].valid
            && sigs[0].trusted
            && sigs[0].signer.contains("设备合同章"),
        "{sigs:?}"
    );
    let ph = v.pyhanko(&out, true);
    assert!(
        ph.len() == 1
            && ph[0]["intact"] == true
            && ph[0]["valid"] == true
            && ph[0]["trusted"] == true,
        "{ph:?}"
    );

    let plain = reqwest::blocking::Client::new();
    let readyz = || send(plain.get(format!("{}/readyz", d.plain)));
    let ready = readyz();
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["checks"]["devices"]["appliance"], "ready");
    let metrics =
        String::from_utf8_lossy(&send(plain.get(format!("{}/metrics", d.plain))).body).into_owned();
    assert!(
        metrics.contains("seald_device_status{device=\"appliance\",status=\"ready\"} 1"),
        "{metrics}"
    );

    // Nobody touches it: a clear code, within seald's touch timeout.
    emulator.set_touch(Touch::Never);
    let untouched = sign();
    assert_eq!(
        (untouched.status, untouched.code()),
        (503, "touch_timeout".to_owned()),
        "{}",
        String::from_utf8_lossy(&untouched.body)
    );
    emulator.set_touch(Touch::Immediately);

    // Unplugged: refused as unavailable, /readyz says so; plugged in again, it recovers by itself.
    emulator.unplug();
    let gone = sign();
    assert_eq!(
        (gone.status, gone.code()),
        (503, "token_unavailable".to_owned())
    );
    let down = readyz();
    assert_eq!(down.status, 503);
    assert_eq!(down.json()["checks"]["devices"]["appliance"], "absent");
    emulator.replug().expect("replug");
    assert!(wait_until(Duration::from_secs(10), || readyz().status == 200));
    let again = sign();
    assert_eq!(
        again.status,
        200,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    let out = dir.join("device-sealed-again.pdf");
    fs::write(&out, &again.body).expect("write");
    let sigs = v.pdfsig(&out);
    assert!(
        sigs.len() == 1 && sigs[0].valid && sigs[0].trusted,
        "{sigs:?}"
    );
}
