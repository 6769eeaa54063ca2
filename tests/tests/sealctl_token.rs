//! `sealctl token …` end to end on a private SoftHSM2, with OpenSC `pkcs11-tool` and openssl
//! as the independent parties.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use seald_tests::{pki_init, pki_issue, run, run_ok, SoftHsm, SO_PIN, USER_PIN};
use serde_json::Value;

const TOKEN: &str = "seal-ukey";

/// A SoftHSM2 instance driven only through binaries, with PIN files.
struct Ceremony {
    hsm: SoftHsm,
    pin: PathBuf,
    so: PathBuf,
}

impl Ceremony {
    fn new() -> Self {
        let hsm = SoftHsm::new();
        let pin = hsm.secret_file("user.pin", USER_PIN);
        let so = hsm.secret_file("so.pin", SO_PIN);
        Ceremony { hsm, pin, so }
    }

    fn sealctl(&self, args: &[&str]) -> Command {
        let mut cmd = self.hsm.sealctl();
        cmd.arg("token").args(args);
        cmd
    }

    /// `sealctl token --token TOKEN ARGS --pin-file PIN`, which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let mut cmd = self.sealctl(&["--token", TOKEN]);
        cmd.args(args).arg("--pin-file").arg(&self.pin);
        run_ok(&mut cmd)
    }

    /// `sealctl token --token TOKEN ARGS --pin-file PIN`, which must fail: (exit code, stderr).
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let mut cmd = self.sealctl(&["--token", TOKEN]);
        cmd.args(args).arg("--pin-file").arg(&self.pin);
        failure(&run(&mut cmd))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).expect("JSON output")
    }

    fn list(&self) -> Value {
        serde_json::from_str(&run_ok(&mut self.sealctl(&["list", "--json"]))).expect("list JSON")
    }

    fn free_slot(&self) -> String {
        self.list()["slots"]
            .as_array()
            .expect("slots")
            .iter()
            .find(|s| s["token"]["initialized"] == false)
            .expect("an uninitialized slot")["slot"]
            .to_string()
    }

    fn init(&self) {
        let slot = self.free_slot();
        let mut cmd = self.sealctl(&["init", "--slot", &slot, "--label", TOKEN, "--yes"]);
        cmd.arg("--so-pin-file")
            .arg(&self.so)
            .arg("--pin-file")
            .arg(&self.pin);
        let out = run_ok(&mut cmd);
        assert!(out.contains("Initialized token 'seal-ukey'"), "{out}");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.hsm.path().join(name)
    }
}

/// Exit code and stderr of a command expected to fail.
fn failure(out: &Output) -> (i32, String) {
    assert!(
        !out.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_no_pin(text: &str) {
    for pin in [USER_PIN, SO_PIN, "97531864", "11223344"] {
        assert!(!text.contains(pin), "a PIN leaked into output: {text}");
    }
}

fn spki_der_of_csr(csr: &Path) -> Vec<u8> {
    let pem = run_ok(
        Command::new("openssl")
            .args(["req", "-pubkey", "-noout", "-in"])
            .arg(csr),
    );
    let der = csr.with_extension("spki.der");
    let mut cmd = Command::new("openssl");
    cmd.args(["pkey", "-pubin", "-outform", "DER", "-out"])
        .arg(&der);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("openssl pkey");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write pem");
    assert!(child.wait().expect("wait").success());
    fs::read(der).expect("spki der")
}

/// The DER public key of `label` as pkcs11-tool exports it (selected by id: pkcs11-tool's
/// label matching is not reliable across versions).
fn pkcs11_tool_public_key(c: &Ceremony, label: &str) -> Vec<u8> {
    let out = c.path(&format!("{label}.pub.der"));
    let id = key_id(c, label);
    run_ok(
        c.hsm
            .pkcs11_tool()
            .args([
                "--token-label",
                TOKEN,
                "--read-object",
                "--type",
                "pubkey",
                "--id",
                &id,
                "-o",
            ])
            .arg(&out),
    );
    fs::read(out).expect("exported key")
}

/// The bare EC point of `label` from pkcs11-tool's listing (`EC_POINT: 04 <len> 04 x y`).
/// (`--list-objects` ignores `--label`: find the object's block.)
fn pkcs11_tool_ec_point(c: &Ceremony, label: &str) -> Vec<u8> {
    let listing = run_ok(c.hsm.pkcs11_tool().args([
        "--token-label",
        TOKEN,
        "--list-objects",
        "--type",
        "pubkey",
    ]));
    let wanted = format!("label:      {label}");
    let block = listing
        .split("Public Key Object")
        .find(|b| b.lines().any(|l| l.trim() == wanted))
        .unwrap_or_else(|| panic!("no public key {label}: {listing}"));
    let line = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("EC_POINT:"))
        .unwrap_or_else(|| panic!("no EC_POINT for {label}: {block}"));
    let wrapped = hex::decode(line.trim()).expect("hex point");
    // Drop the OCTET STRING header (tag, one length byte).
    wrapped[2..].to_vec()
}

/// The CKA_ID (hex) sealctl reports for the private key `label`.
fn key_id(c: &Ceremony, label: &str) -> String {
    let objects = c.json(&["objects"]);
    objects
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["class"] == "private-key" && o["label"] == label)
        .and_then(|o| o["id"].as_str())
        .unwrap_or_else(|| panic!("no key {label}: {objects}"))
        .to_owned()
}

#[test]
fn the_whole_ceremony_works_and_interoperates_with_pkcs11_tool() {
    let c = Ceremony::new();

    // A fresh module has one uninitialized slot.
    let list = c.list();
    let slots = list["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 1, "{list}");
    assert_eq!(slots[0]["token"]["initialized"], false);

    // init is destructive: without --yes nothing happens.
    let slot = c.free_slot();
    let mut cmd = c.sealctl(&["init", "--slot", &slot, "--label", TOKEN]);
    cmd.arg("--so-pin-file")
        .arg(&c.so)
        .arg("--pin-file")
        .arg(&c.pin);
    let (code, err) = failure(&run(&mut cmd));
    assert_eq!(code, 2);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(c.list()["slots"][0]["token"]["initialized"], false);

    c.init();
    let list = c.list();
    let token = list["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .find(|s| s["token"]["label"] == TOKEN)
        .expect("initialized token listed")["token"]
        .clone();
    assert_eq!(token["initialized"], true);
    assert_eq!(token["login_required"], true);
    assert_eq!(token["user_pin_initialized"], true);
    assert_eq!(token["user_pin"]["locked"], false);
    assert!(token["pin_min_len"].as_u64().expect("min") >= 4);

    // Initializing it again needs --reinit: it would erase the seal keys.
    let mut cmd = c.sealctl(&["init", "--token", TOKEN, "--label", TOKEN, "--yes"]);
    cmd.arg("--so-pin-file")
        .arg(&c.so)
        .arg("--pin-file")
        .arg(&c.pin);
    let (code, err) = failure(&run(&mut cmd));
    assert_eq!(code, 1);
    assert!(
        err.contains("already holds an initialized token 'seal-ukey'"),
        "{err}"
    );
    assert!(err.contains("--reinit"), "{err}");

    // Key generation for every algorithm.
    for (label, algorithm, kind) in [
        (
            "contract-seal",
            "rsa-2048",
            serde_json::json!({"type": "rsa", "bits": 2048}),
        ),
        (
            "finance-seal",
            "rsa-3072",
            serde_json::json!({"type": "rsa", "bits": 3072}),
        ),
        (
            "hr-seal",
            "ec-p256",
            serde_json::json!({"type": "ec", "curve": "P-256"}),
        ),
        (
            "legal-seal",
            "ec-p384",
            serde_json::json!({"type": "ec", "curve": "P-384"}),
        ),
    ] {
        let key = c.json(&["keygen", "--key", label, "--algorithm", algorithm]);
        assert_eq!(key["label"], label);
        assert_eq!(key["kind"], kind, "{key}");
        assert_eq!(key["id"].as_str().expect("id").len(), 32);
    }
    let (code, err) = c.fails(&["keygen", "--key", "hr-seal", "--algorithm", "ec-p256"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("already holds a key labelled 'hr-seal'"),
        "{err}"
    );

    // Private keys: sensitive, never extractable, sign-only; the pair shares label and id.
    let objects = c.json(&["objects"]);
    let objects = objects.as_array().expect("objects");
    for label in ["contract-seal", "finance-seal", "hr-seal", "legal-seal"] {
        let private = objects
            .iter()
            .find(|o| o["class"] == "private-key" && o["label"] == label)
            .expect("private key listed");
        let flags: Vec<&str> = private["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for wanted in ["private", "sensitive", "never-extractable", "sign"] {
            assert!(flags.contains(&wanted), "{label}: {flags:?}");
        }
        for unwanted in ["extractable", "decrypt"] {
            assert!(!flags.contains(&unwanted), "{label}: {flags:?}");
        }
        let public = objects
            .iter()
            .find(|o| o["class"] == "public-key" && o["label"] == label)
            .expect("public key listed");
        assert_eq!(public["id"], private["id"]);
    }
    // Without a login the private keys stay hidden.
    let public_only: Value = serde_json::from_str(&run_ok(
        &mut c.sealctl(&["--token", TOKEN, "objects", "--public", "--json"]),
    ))
    .expect("json");
    assert!(public_only
        .as_array()
        .expect("objects")
        .iter()
        .all(|o| o["class"] != "private-key"));

    // CSR: verifies, carries the subject, and its key is the token's key (as pkcs11-tool reads it).
    let pki = c.path("pki");
    pki_init(&pki);
    for label in ["contract-seal", "hr-seal", "legal-seal"] {
        let csr = c.path(&format!("{label}.csr"));
        c.ok(&[
            "csr",
            "--key",
            label,
            "--subject",
            "CN=合同专用章,O=示例科技有限公司,C=CN",
            "--out",
            csr.to_str().expect("utf-8 path"),
        ]);
        let verify = run(Command::new("openssl")
            .args([
                "req", "-verify", "-noout", "-subject", "-nameopt", "utf8", "-in",
            ])
            .arg(&csr));
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let subject = String::from_utf8_lossy(&verify.stdout);
        assert!(
            subject.contains("C=CN, O=示例科技有限公司, CN=合同专用章"),
            "{subject}"
        );
        let csr_key = spki_der_of_csr(&csr);
        if label == "legal-seal" {
            // pkcs11-tool cannot export P-384 keys ("cannot create EVP_PKEY"); compare the
            // EC point it lists with the end of the CSR's SubjectPublicKeyInfo instead.
            let point = pkcs11_tool_ec_point(&c, label);
            assert!(
                csr_key.ends_with(&point),
                "{label}: {} vs {}",
                hex::encode(&csr_key),
                hex::encode(&point)
            );
        } else {
            assert_eq!(csr_key, pkcs11_tool_public_key(&c, label), "{label}");
        }

        // The CA issues the certificate; it goes on the token with the chain.
        let cert = c.path(&format!("{label}.pem"));
        pki_issue(&pki, &csr, &cert);
        let imported = c.json(&[
            "import-cert",
            "--key",
            label,
            "--cert",
            cert.to_str().expect("path"),
            "--chain",
            pki.join("chain.pem").to_str().expect("path"),
        ]);
        assert_eq!(imported["key_label"], label);
    }

    // Certificates sit under the key's id; the CA certificates were stored once.
    let objects = c.json(&["objects"]);
    let objects = objects.as_array().expect("objects");
    let certs: Vec<&Value> = objects
        .iter()
        .filter(|o| o["class"] == "certificate")
        .collect();
    assert_eq!(certs.len(), 5, "{certs:?}");
    let seal_cert = certs
        .iter()
        .find(|o| o["label"] == "contract-seal")
        .expect("seal certificate");
    let seal_key = objects
        .iter()
        .find(|o| o["class"] == "private-key" && o["label"] == "contract-seal")
        .expect("key");
    assert_eq!(seal_cert["id"], seal_key["id"]);
    assert_eq!(
        seal_cert["certificate"]["issuer"],
        "CN=seald demo enterprise CA,O=seald demo,C=CN"
    );

    // pkcs11-tool lists what sealctl made, and signs with it.
    let listing = run_ok(c.hsm.pkcs11_tool().args([
        "--token-label",
        TOKEN,
        "--login",
        "--pin",
        USER_PIN,
        "--list-objects",
    ]));
    assert!(listing.contains("Certificate Object"), "{listing}");
    assert!(listing.contains("label:      contract-seal"), "{listing}");
    assert!(listing.contains("Private Key Object; RSA"), "{listing}");
    let data = c.path("data.bin");
    fs::write(&data, b"a contract to seal").expect("data");
    let sig = c.path("data.sig");
    run_ok(
        c.hsm
            .pkcs11_tool()
            .args([
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                USER_PIN,
                "--sign",
                "-m",
                "SHA256-RSA-PKCS",
            ])
            .args(["--id", &key_id(&c, "contract-seal"), "-i"])
            .arg(&data)
            .arg("-o")
            .arg(&sig),
    );
    let pubkey = c.path("contract-seal.pub.pem");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-pubkey", "-noout", "-in"])
            .arg(c.path("contract-seal.pem"))
            .arg("-out")
            .arg(&pubkey),
    );
    let verified = run_ok(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&pubkey)
            .arg("-signature")
            .arg(&sig)
            .arg(&data),
    );
    assert!(verified.contains("Verified OK"), "{verified}");

    // A certificate for another key is refused, and so is a misordered chain.
    let seal_pem = c.path("contract-seal.pem");
    let seal_pem = seal_pem.to_str().expect("path");
    let (code, err) = c.fails(&["import-cert", "--key", "hr-seal", "--cert", seal_pem]);
    assert_eq!(code, 1);
    assert!(
        err.contains("does not match key labelled 'hr-seal'"),
        "{err}"
    );
    let root = pki.join("root.pem");
    let (_, err) = c.fails(&[
        "import-cert",
        "--key",
        "contract-seal",
        "--cert",
        seal_pem,
        "--chain",
        root.to_str().expect("path"),
    ]);
    assert!(err.contains("is not the issuer of"), "{err}");

    // delete-key needs --yes, then removes the pair and its certificate (not the CA ones).
    let (code, err) = c.fails(&["delete-key", "--key", "contract-seal"]);
    assert_eq!(code, 2);
    assert!(err.contains("--yes"), "{err}");
    let deleted = c.json(&["delete-key", "--key", "contract-seal", "--yes"]);
    assert_eq!(deleted["private_keys"], 1);
    assert_eq!(deleted["public_keys"], 1);
    assert_eq!(deleted["certificates"], 1);
    let objects = c.json(&["objects"]);
    let objects = objects.as_array().expect("objects");
    assert!(objects.iter().all(|o| o["label"] != "contract-seal"));
    assert_eq!(
        objects
            .iter()
            .filter(|o| o["class"] == "certificate")
            .count(),
        4
    );
}

#[test]
fn pins_change_unblock_and_never_show() {
    let c = Ceremony::new();
    c.init();
    let new_pin = c.hsm.secret_file("new.pin", "97531864");
    let wrong = c.hsm.secret_file("wrong.pin", "11223344");

    // Wrong current PIN: a clear error naming the PIN, never the digits.
    let mut cmd = c.sealctl(&["--token", TOKEN, "change-pin", "--pin-file"]);
    cmd.arg(&wrong).arg("--new-pin-file").arg(&new_pin);
    let (code, err) = failure(&run(&mut cmd));
    assert_eq!(code, 1);
    assert!(
        err.contains("user PIN was rejected by token 'seal-ukey'"),
        "{err}"
    );
    assert_no_pin(&err);

    // Change the user PIN; the old one stops working, the new one works.
    let mut cmd = c.sealctl(&["--token", TOKEN, "change-pin", "--pin-file"]);
    cmd.arg(&c.pin).arg("--new-pin-file").arg(&new_pin);
    let out = run_ok(&mut cmd);
    assert_no_pin(&out);
    let mut cmd = c.sealctl(&["--token", TOKEN, "objects", "--pin-file"]);
    cmd.arg(&c.pin);
    let (_, err) = failure(&run(&mut cmd));
    assert!(err.contains("user PIN was rejected"), "{err}");
    run_ok(
        c.sealctl(&["--token", TOKEN, "objects", "--pin-file"])
            .arg(&new_pin),
    );

    // The PIN may come from the environment.
    run_ok(
        c.sealctl(&["--token", TOKEN, "objects"])
            .env("SEALD_PIN", "97531864"),
    );

    // A too-short new PIN is refused with the token's limits.
    let short = c.hsm.secret_file("short.pin", "12");
    let mut cmd = c.sealctl(&["--token", TOKEN, "change-pin", "--pin-file"]);
    cmd.arg(&new_pin).arg("--new-pin-file").arg(&short);
    let (_, err) = failure(&run(&mut cmd));
    assert!(err.contains("must be 4 to 255 characters"), "{err}");

    // unblock-pin: the SO sets a new user PIN; a wrong SO PIN is named as such.
    let mut cmd = c.sealctl(&["--token", TOKEN, "unblock-pin", "--so-pin-file"]);
    cmd.arg(&wrong).arg("--new-pin-file").arg(&c.pin);
    let (_, err) = failure(&run(&mut cmd));
    assert!(err.contains("SO PIN was rejected"), "{err}");
    let mut cmd = c.sealctl(&["--token", TOKEN, "unblock-pin", "--so-pin-file"]);
    cmd.arg(&c.so).arg("--new-pin-file").arg(&c.pin);
    run_ok(&mut cmd);
    run_ok(
        c.sealctl(&["--token", TOKEN, "objects", "--pin-file"])
            .arg(&c.pin),
    );

    // The SO PIN can be changed too.
    let new_so = c.hsm.secret_file("new-so.pin", "11223344");
    let mut cmd = c.sealctl(&["--token", TOKEN, "change-pin", "--so", "--so-pin-file"]);
    cmd.arg(&c.so).arg("--new-pin-file").arg(&new_so);
    run_ok(&mut cmd);
    let mut cmd = c.sealctl(&["--token", TOKEN, "unblock-pin", "--so-pin-file"]);
    cmd.arg(&c.so).arg("--new-pin-file").arg(&c.pin);
    let (_, err) = failure(&run(&mut cmd));
    assert!(err.contains("SO PIN was rejected"), "{err}");

    // On a terminal, sealctl asks without echo; a PIN being set is asked twice.
    let answers = c
        .hsm
        .secret_file("answers", &format!("{USER_PIN}\n97531864\n97531864"));
    let typed = run(Command::new("python3")
        .arg(seald_tests::workspace_root().join("tests/pty_prompt.py"))
        .arg(&answers)
        .arg("--")
        .arg(seald_tests::binary("sealctl"))
        .args(["token", "--token", TOKEN, "change-pin"])
        .env("SOFTHSM2_CONF", c.hsm.conf())
        .env("SEALD_PKCS11_MODULE", seald_tests::softhsm_module())
        .env_remove("SEALD_PIN")
        .env_remove("SEALD_NEW_PIN"));
    let screen = String::from_utf8_lossy(&typed.stdout);
    assert!(
        typed.status.success(),
        "{screen} {}",
        String::from_utf8_lossy(&typed.stderr)
    );
    assert!(screen.contains("User PIN: "), "{screen}");
    assert!(screen.contains("New user PIN again: "), "{screen}");
    assert_no_pin(&screen);
    run_ok(
        c.sealctl(&["--token", TOKEN, "objects"])
            .env("SEALD_PIN", "97531864"),
    );

    // No PIN source and no terminal to ask on: a usage error that says what to pass, no hang.
    let mut cmd = Command::new("setsid");
    cmd.arg("-w").arg(seald_tests::binary("sealctl"));
    cmd.args(["token", "--token", TOKEN, "objects"])
        .env("SOFTHSM2_CONF", c.hsm.conf())
        .env("SEALD_PKCS11_MODULE", seald_tests::softhsm_module())
        .env_remove("SEALD_PIN")
        .stdin(std::process::Stdio::null());
    let (code, err) = failure(&run(&mut cmd));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--pin-file") && err.contains("SEALD_PIN"),
        "{err}"
    );
}

#[test]
fn bad_modules_tokens_and_slots_get_clear_errors() {
    let c = Ceremony::new();

    let mut cmd = c.sealctl(&["list", "--module", "/nonexistent/libpkcs11.so"]);
    let (code, err) = failure(&run(&mut cmd));
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot load the PKCS#11 module /nonexistent/libpkcs11.so"),
        "{err}"
    );

    let not_a_module = c.path("not-a-module.so");
    fs::write(&not_a_module, b"garbage").expect("file");
    let mut cmd = c.sealctl(&["list", "--module"]);
    cmd.arg(&not_a_module);
    let (_, err) = failure(&run(&mut cmd));
    assert!(err.contains("cannot load the PKCS#11 module"), "{err}");

    let mut cmd = c.sealctl(&["list"]);
    cmd.env_remove("SEALD_PKCS11_MODULE");
    let (code, err) = failure(&run(&mut cmd));
    assert_eq!(code, 2);
    assert!(
        err.contains("--module") && err.contains("SEALD_PKCS11_MODULE"),
        "{err}"
    );

    // The uninitialized slot says how to initialize it.
    let slot = c.free_slot();
    let mut cmd = c.sealctl(&["--slot", &slot, "objects", "--pin-file"]);
    cmd.arg(&c.pin);
    let (code, err) = failure(&run(&mut cmd));
    assert_eq!(code, 1);
    assert!(err.contains("is not initialized"), "{err}");
    assert!(err.contains("sealctl token init"), "{err}");

    c.init();
    let mut cmd = c.sealctl(&["--token", "other-ukey", "objects", "--pin-file"]);
    cmd.arg(&c.pin);
    let (_, err) = failure(&run(&mut cmd));
    assert!(err.contains("no token labelled 'other-ukey'"), "{err}");
    assert!(
        err.contains("'seal-ukey'"),
        "lists the tokens present: {err}"
    );

    let mut cmd = c.sealctl(&["--slot", "4242", "objects", "--pin-file"]);
    cmd.arg(&c.pin);
    let (_, err) = failure(&run(&mut cmd));
    assert!(err.contains("slot 4242 does not exist"), "{err}");

    let (_, err) = c.fails(&["csr", "--key", "nope", "--subject", "CN=x", "--out", "-"]);
    assert!(err.contains("no private key labelled 'nope'"), "{err}");

    c.ok(&["keygen", "--key", "k", "--algorithm", "ec-p256"]);
    let (_, err) = c.fails(&["csr", "--key", "k", "--subject", "BOGUS=1", "--out", "-"]);
    assert!(err.contains("invalid subject 'BOGUS=1'"), "{err}");

    let garbage = c.path("garbage.pem");
    fs::write(
        &garbage,
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("file");
    let (_, err) = c.fails(&[
        "import-cert",
        "--key",
        "k",
        "--cert",
        garbage.to_str().expect("path"),
    ]);
    assert!(err.contains("invalid certificate in"), "{err}");
}

#[test]
fn keys_made_by_pkcs11_tool_are_usable_by_sealctl() {
    let c = Ceremony::new();
    c.init();
    for (label, key_type) in [("tool-rsa", "rsa:2048"), ("tool-ec", "EC:prime256v1")] {
        run_ok(c.hsm.pkcs11_tool().args([
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            USER_PIN,
            "--keypairgen",
            "--key-type",
            key_type,
            "--label",
            label,
            "--id",
            if label == "tool-rsa" { "0a01" } else { "0a02" },
        ]));
        let csr = c.path(&format!("{label}.csr"));
        c.ok(&[
            "csr",
            "--key",
            label,
            "--subject",
            "CN=Tool key,O=Example,C=CN",
            "--out",
            csr.to_str().expect("path"),
        ]);
        run_ok(
            Command::new("openssl")
                .args(["req", "-verify", "-noout", "-in"])
                .arg(&csr),
        );
        assert_eq!(spki_der_of_csr(&csr), pkcs11_tool_public_key(&c, label));
    }
    // Data objects other programs store are listed too.
    let note = c.path("note.txt");
    fs::write(&note, b"seal register v1").expect("note");
    run_ok(
        c.hsm
            .pkcs11_tool()
            .args([
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                USER_PIN,
                "--write-object",
            ])
            .arg(&note)
            .args([
                "--type",
                "data",
                "--label",
                "note",
                "--application-label",
                "seald-test",
            ]),
    );
    let objects = c.json(&["objects"]);
    assert!(
        objects
            .as_array()
            .expect("objects")
            .iter()
            .any(|o| o["class"] == "data"
                && o["label"] == "note"
                && o["application"] == "seald-test"),
        "{objects}"
    );

    // By id as well as by label.
    let csr = c.path("by-id.csr");
    c.ok(&[
        "csr",
        "--id",
        "0a02",
        "--subject",
        "CN=By id",
        "--out",
        csr.to_str().expect("path"),
    ]);
    run_ok(
        Command::new("openssl")
            .args(["req", "-verify", "-noout", "-in"])
            .arg(&csr),
    );
}
