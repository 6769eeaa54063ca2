//! Seal keys on serial signing devices (the emulator on a pseudo-terminal), end to end:
//! sealctl has the device sign its certificate request, the test CA certifies it, and seald
//! seals PDFs with it that the independent validators accept — the P-256 profile in pdfsig,
//! pyHanko and qpdf; the TKey's Ed25519 profile in pyHanko and qpdf. /readyz and the metrics
//! follow the device as it waits for a touch, goes away and comes back.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use seald_firmware_bridge::emulator::{Emulator, EmulatorConfig, Touch};
use seald_firmware_bridge::Profile;
use seald_tests::daemon::{send, wait_until, Answer, Daemon, Setup};
use seald_tests::pdf::Validators;
use seald_tests::{binary, pki_issue, run_ok};
use serde_json::Value;

fn sealctl_device(args: &[&str]) -> String {
    run_ok(Command::new(binary("sealctl")).arg("device").args(args))
}

/// A device emulated at `link`, and a setup whose seald knows it as `appliance`.
fn device_setup(profile: Profile, dir: &Path, app: Option<&Path>) -> (Emulator, Setup) {
    let link = dir.join("seal-device");
    let mut config = EmulatorConfig::new(profile, [42; 32]);
    config.link = Some(link.clone());
    let emulator = Emulator::start(config).expect("emulator");
    let mut toml = format!(
        "[[device]]\nname = \"appliance\"\nprofile = \"{}\"\npath = \"{}\"\ntouch_timeout_seconds = 3\n",
        profile.name(),
        link.display()
    );
    if let Some(app) = app {
        toml.push_str(&format!("app = \"{}\"\n", app.display()));
    }
    (emulator, Setup::new(&toml))
}

/// The ceremony, before seald holds the device: a request the device signs, certified by the
/// test CA; the chain file.
fn certify(setup: &Setup, which: &[&str], subject: &str) -> PathBuf {
    let dir = setup.dir();
    let req = dir.join("device.csr");
    sealctl_device(
        &[
            &["csr"][..],
            which,
            &["--subject", subject, "--out", req.to_str().expect("utf-8")],
        ]
        .concat(),
    );
    let cert = dir.join("device.pem");
    pki_issue(&setup.seal.pki, &req, &cert);
    let chain = dir.join("device-chain.pem");
    let mut text = fs::read(&cert).expect("cert");
    text.extend(fs::read(setup.seal.pki.join("chain.pem")).expect("chain"));
    fs::write(&chain, text).expect("chain");
    chain
}

/// Registers seal `device-seal` on the device with `chain`, and application `erp` for it.
fn register(setup: &Setup, d: &Daemon, chain: &Path) {
    run_ok(
        setup
            .sealctl(d, "admin")
            .args([
                "admin",
                "seal",
                "register",
                "--id",
                "device-seal",
                "--name",
                "设备合同章",
                "--token",
                "appliance",
                "--key",
                "device",
                "--chain",
            ])
            .arg(chain)
            .arg("--image")
            .arg(&setup.image),
    );
    run_ok(
        setup
            .sealctl(d, "admin")
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
}

fn sign(setup: &Setup, d: &Daemon) -> Answer {
    send(
        d.client("app")
            .post(format!(
                "{}/v1/seals/device-seal/sign?document_id=D-1&page=1&x=120&y=40&width=40",
                d.api
            ))
            .header("Content-Type", "application/pdf")
            .body(setup.sample()),
    )
}

/// A signature that succeeded.
fn sealed(setup: &Setup, d: &Daemon) -> Answer {
    let answer = sign(setup, d);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer
}

/// seald's own verifier agrees.
fn verified_by_seald(d: &Daemon, pdf: &[u8]) {
    let report = send(
        d.client("app")
            .post(format!("{}/v1/verify", d.api))
            .header("Content-Type", "application/pdf")
            .body(pdf.to_vec()),
    )
    .json();
    assert_eq!(report["verdict"], "not_tampered", "{report}");
    assert_eq!(report["signatures"][0]["valid"], true, "{report}");
}

fn pyhanko_valid(v: &Validators, pdf: &Path) {
    let ph = v.pyhanko(pdf, true);
    assert!(
        ph.len() == 1
            && ph[0]["intact"] == true
            && ph[0]["valid"] == true
            && ph[0]["trusted"] == true,
        "{ph:?}"
    );
}

#[test]
fn a_seal_on_a_p256_device_seals_pdfs_every_validator_accepts_and_readyz_follows_the_device() {
    let emulator_dir = tempfile::tempdir().expect("dir");
    let (mut emulator, setup) = device_setup(Profile::P256, emulator_dir.path(), None);
    let path = emulator.path().display().to_string();
    let which = ["--path", path.as_str(), "--profile", "p256"];
    // The USB serial ports present (a pseudo-terminal is none of them).
    let listed: Value = serde_json::from_str(&sealctl_device(&["--json", "list"])).expect("json");
    let ports = listed.as_array().expect("a list");
    assert!(
        ports
            .iter()
            .all(|p| p["path"] != path.as_str() && p["vid"].is_string()),
        "{listed}"
    );
    let info: Value = serde_json::from_str(&sealctl_device(
        &[&["--json", "info"][..], &which[..]].concat(),
    ))
    .expect("json");
    assert_eq!(info["app"], "sealp256", "{info}");
    let pem = sealctl_device(&[&["pubkey"][..], &which[..]].concat());
    let dir = setup.dir().to_path_buf();
    fs::write(dir.join("device.pub.pem"), &pem).expect("pem");
    let parsed = run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubin", "-noout", "-text", "-in"])
            .arg(dir.join("device.pub.pem")),
    );
    assert!(parsed.contains("prime256v1"), "{parsed}");
    let chain = certify(&setup, &which, "CN=设备合同章,O=seald demo,C=CN");

    let d = setup.start();
    // A certificate for another key is refused for the device.
    let wrong = seald_tests::run(
        setup
            .sealctl(&d, "admin")
            .args([
                "admin",
                "seal",
                "register",
                "--id",
                "wrong",
                "--name",
                "错",
                "--token",
                "appliance",
                "--key",
                "device",
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
    register(&setup, &d, &chain);
    let signed = sealed(&setup, &d);
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
    pyhanko_valid(&v, &out);
    verified_by_seald(&d, &signed.body);

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
    let untouched = sign(&setup, &d);
    assert_eq!(
        (untouched.status, untouched.code()),
        (503, "touch_timeout".to_owned()),
        "{}",
        String::from_utf8_lossy(&untouched.body)
    );
    emulator.set_touch(Touch::Immediately);

    // Unplugged: refused as unavailable, /readyz says so; plugged in again, it recovers by itself.
    emulator.unplug();
    let gone = sign(&setup, &d);
    assert_eq!(
        (gone.status, gone.code()),
        (503, "token_unavailable".to_owned())
    );
    let down = readyz();
    assert_eq!(down.status, 503);
    assert_eq!(down.json()["checks"]["devices"]["appliance"], "absent");
    emulator.replug().expect("replug");
    assert!(wait_until(Duration::from_secs(10), || readyz().status == 200));
    let again = sealed(&setup, &d);
    let out = dir.join("device-sealed-again.pdf");
    fs::write(&out, &again.body).expect("write");
    let sigs = v.pdfsig(&out);
    assert!(
        sigs.len() == 1 && sigs[0].valid && sigs[0].trusted,
        "{sigs:?}"
    );

    // Unplugged while idle, with nothing but metric scrapes: the metric notices by itself.
    emulator.unplug();
    let metric = |status: &str| {
        let text = String::from_utf8_lossy(&send(plain.get(format!("{}/metrics", d.plain))).body)
            .into_owned();
        text.contains(&format!(
            "seald_device_status{{device=\"appliance\",status=\"{status}\"}} 1"
        ))
    };
    assert!(
        wait_until(Duration::from_secs(10), || metric("absent")),
        "the metric still says the unplugged device is there"
    );
    emulator.replug().expect("replug");
    assert!(wait_until(Duration::from_secs(10), || metric("ready")));
}

#[test]
fn a_seal_on_a_tkey_with_the_ed25519_signer_app_seals_pdfs_pyhanko_accepts() {
    let emulator_dir = tempfile::tempdir().expect("dir");
    // A stand-in for the signer app's binary: the key depends on its digest.
    let app = emulator_dir.path().join("signer.bin");
    fs::write(
        &app,
        (0..5000u32).map(|i| (i % 253) as u8).collect::<Vec<u8>>(),
    )
    .expect("app");
    let (mut emulator, setup) = device_setup(Profile::Ed25519, emulator_dir.path(), Some(&app));
    let path = emulator.path().display().to_string();
    let app_arg = app.display().to_string();
    let which = [
        "--path",
        path.as_str(),
        "--profile",
        "ed25519",
        "--app",
        app_arg.as_str(),
    ];
    let info: Value = serde_json::from_str(&sealctl_device(
        &[&["--json", "info"][..], &which[..]].concat(),
    ))
    .expect("json");
    assert_eq!(
        (info["app"].clone(), info["loaded_app"].clone()),
        (Value::from("tk1 sign"), Value::from(true)),
        "{info}"
    );
    let chain = certify(&setup, &which, "CN=法定代表人章,O=seald demo,C=CN");
    // Power-cycled: seald finds it in firmware mode and loads the app itself.
    emulator.replug().expect("replug");
    let d = setup.start();
    register(&setup, &d, &chain);
    let signed = sealed(&setup, &d);
    let dir = setup.dir().to_path_buf();
    let out = dir.join("ed25519-sealed.pdf");
    fs::write(&out, &signed.body).expect("write");
    let v = Validators::new(&dir, &[setup.seal.root()]);
    v.qpdf(&out).expect("qpdf --check");
    pyhanko_valid(&v, &out);
    verified_by_seald(&d, &signed.body);
    // poppler's pdfsig (NSS) finds the signature over the whole document with its digest
    // intact, though it does not validate Ed25519 signatures (docs/firmware-bridge.md).
    let sigs = v.pdfsig(&out);
    assert!(
        sigs.len() == 1 && sigs[0].signed && sigs[0].whole_document && !sigs[0].digest_mismatch,
        "{sigs:?}"
    );
    // The signature is Ed25519, over a SHA-512 message digest (RFC 8419). (The placeholder's
    // zero padding is cut at the DER length.)
    let dumped = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import re, sys\n\
                 data = open(sys.argv[1], 'rb').read()\n\
                 hexsig = re.findall(rb'/Contents\\s*<([0-9A-Fa-f]+)>', data)[-1]\n\
                 der = bytes.fromhex(hexsig.decode())\n\
                 k = der[1] & 0x7f if der[1] & 0x80 else 0\n\
                 n = 2 + k + (int.from_bytes(der[2:2 + k], 'big') if k else der[1])\n\
                 open(sys.argv[2], 'wb').write(der[:n])",
            )
            .arg(&out)
            .arg(dir.join("cms.der")),
    );
    assert!(dumped.is_empty(), "{dumped}");
    let asn1 = run_ok(
        Command::new("openssl")
            .args(["asn1parse", "-inform", "DER", "-in"])
            .arg(dir.join("cms.der")),
    );
    assert!(asn1.contains("ED25519"), "{asn1}");
    assert!(asn1.contains("sha512"), "{asn1}");
}
