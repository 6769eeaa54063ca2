//! PIN lockout and unblocking on a token that really locks: Debian's openCryptoki software
//! token (SoftHSM2 never locks a PIN). The token lives in the machine-wide openCryptoki store,
//! so this is one test that re-initializes it first; `deploy/test.sh` starts `pkcsslotd`.

use std::path::PathBuf;
use std::process::Command;

use seald_tests::{run, run_ok};
use serde_json::Value;

/// The factory SO PIN of openCryptoki's software token; this test never changes it, so it can
/// always re-initialize the token.
const SO_PIN: &str = "87654321";
const USER_PIN: &str = "12345678";
const LABEL: &str = "seald-ock";

fn module_path() -> PathBuf {
    std::env::var_os("SEALD_TEST_OPENCRYPTOKI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from("/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so.0")
        })
}

struct Ock {
    dir: tempfile::TempDir,
}

impl Ock {
    fn secret(&self, name: &str, value: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, value).expect("pin file");
        path
    }

    fn sealctl(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(seald_tests::binary("sealctl"));
        cmd.arg("token")
            .arg("--module")
            .arg(module_path())
            .args(args);
        cmd.env_remove("SEALD_PIN")
            .env_remove("SEALD_SO_PIN")
            .env_remove("SEALD_NEW_PIN");
        cmd
    }

    fn token(&self) -> Value {
        let list: Value = serde_json::from_str(&run_ok(&mut self.sealctl(&["list", "--json"])))
            .expect("list JSON");
        list["slots"]
            .as_array()
            .expect("slots")
            .iter()
            .find(|s| !s["token"].is_null())
            .unwrap_or_else(|| panic!("no openCryptoki token (is pkcsslotd running?): {list}"))
            .clone()
    }

    /// `objects` with the PIN in `file`: Ok(stdout) or Err(stderr).
    fn objects(&self, file: &PathBuf) -> Result<String, String> {
        let out = run(self
            .sealctl(&["--token", LABEL, "objects", "--pin-file"])
            .arg(file));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

#[test]
fn a_locked_user_pin_is_reported_and_unblocked_with_the_so_pin() {
    assert!(
        module_path().exists(),
        "openCryptoki is not installed ({}); deploy/test.sh installs it",
        module_path().display()
    );
    let ock = Ock {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let so = ock.secret("so", SO_PIN);
    let pin = ock.secret("pin", USER_PIN);
    let wrong = ock.secret("wrong", "00000000");
    let new_pin = ock.secret("new", "87651234");

    let slot = ock.token()["slot"].to_string();
    let mut init = ock.sealctl(&[
        "--slot", &slot, "init", "--reinit", "--yes", "--label", LABEL,
    ]);
    init.arg("--so-pin-file")
        .arg(&so)
        .arg("--pin-file")
        .arg(&pin);
    run_ok(&mut init);
    let token = ock.token()["token"].clone();
    assert_eq!(token["label"], LABEL);
    assert_eq!(token["user_pin"]["locked"], false);

    // A seal key works on this module too.
    let mut keygen = ock.sealctl(&[
        "--token",
        LABEL,
        "keygen",
        "--key",
        "seal",
        "--algorithm",
        "rsa-2048",
    ]);
    keygen.arg("--pin-file").arg(&pin);
    run_ok(&mut keygen);
    let csr = ock.dir.path().join("seal.csr");
    let mut cmd = ock.sealctl(&[
        "--token",
        LABEL,
        "csr",
        "--key",
        "seal",
        "--subject",
        "CN=OCK seal,C=CN",
        "--out",
    ]);
    cmd.arg(&csr).arg("--pin-file").arg(&pin);
    run_ok(&mut cmd);
    run_ok(
        Command::new("openssl")
            .args(["req", "-verify", "-noout", "-in"])
            .arg(&csr),
    );

    // A key type the token cannot make is refused with a clear message.
    let mut keygen = ock.sealctl(&[
        "--token",
        LABEL,
        "keygen",
        "--key",
        "ec",
        "--algorithm",
        "ec-p256",
    ]);
    keygen.arg("--pin-file").arg(&pin);
    let out = run(&mut keygen);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("offers no mechanism for generating EC P-256 keys"),
            "{err}"
        );
    }

    // Wrong PINs: the token counts down and the messages follow its flags.
    let first = ock.objects(&wrong).expect_err("wrong PIN");
    assert!(
        first.contains("user PIN was rejected by token 'seald-ock'"),
        "{first}"
    );
    assert!(first.contains("few tries left"), "{first}");
    let second = ock.objects(&wrong).expect_err("wrong PIN");
    assert!(second.contains("FINAL TRY"), "{second}");
    let third = ock.objects(&wrong).expect_err("wrong PIN");
    assert!(third.contains("now LOCKED"), "{third}");
    assert_eq!(ock.token()["token"]["user_pin"]["locked"], true);

    // Locked: even the right PIN is refused, with the way out.
    let locked = ock.objects(&pin).expect_err("locked");
    assert!(
        locked.contains("user PIN of token 'seald-ock' is locked"),
        "{locked}"
    );
    assert!(locked.contains("sealctl token unblock-pin"), "{locked}");
    for text in [&first, &second, &third, &locked] {
        assert!(
            !text.contains("00000000") && !text.contains(USER_PIN),
            "{text}"
        );
    }

    // The SO unblocks it by setting a new user PIN.
    let mut unblock = ock.sealctl(&["--token", LABEL, "unblock-pin", "--so-pin-file"]);
    unblock.arg(&so).arg("--new-pin-file").arg(&new_pin);
    run_ok(&mut unblock);
    assert_eq!(ock.token()["token"]["user_pin"]["locked"], false);
    let listing = ock.objects(&new_pin).expect("new PIN works");
    assert!(listing.contains("private-key RSA-2048 'seal'"), "{listing}");
}

/// A pool whose PIN stops working (changed behind its back) must not keep trying it: on a real
/// token every try counts towards locking the seal's PIN.
#[test]
fn a_pool_never_retries_a_rejected_pin() {
    use seald_pkcs11::{
        admin, Error, Module, Pin, PinRole, PoolConfig, PoolHealth, TokenPool, TokenSelector,
    };
    use std::time::Duration;

    let ock = Ock {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let module = Module::load(module_path()).expect("openCryptoki module");
    let so = Pin::new(SO_PIN.to_owned()).expect("pin");
    let pin = Pin::new(USER_PIN.to_owned()).expect("pin");
    let slot = ock.token()["slot"].as_u64().expect("slot");
    admin::init_token(&module, &TokenSelector::Slot(slot), LABEL, &so, &pin, true).expect("init");
    let token = TokenSelector::Label(LABEL.to_owned());
    admin::generate_key(&module, &token, &pin, "seal", admin::KeyAlgorithm::Rsa2048)
        .expect("keygen");
    // (openCryptoki 3.8's software token cannot make EC keys: sealctl says so, see below.)

    let config = PoolConfig {
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(20),
        ..PoolConfig::default()
    };
    let pool = TokenPool::open(&module, LABEL, pin.clone(), config).expect("pool");
    let key = pool
        .key(seald_pkcs11::KeySelector::Label("seal".into()), None)
        .expect("key");
    key.sign_blocking(b"before").expect("sign");

    // Someone changes the user PIN and the token loses the pool's login.
    let other = Pin::new("55556666".to_owned()).expect("pin");
    admin::change_pin(&module, &token, PinRole::User, &pin, &other).expect("change PIN");
    let raw = cryptoki::context::Pkcs11::new(module_path()).expect("raw module");
    let raw_slot = raw
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .next()
        .expect("slot");
    let session = raw.open_ro_session(raw_slot).expect("session");
    session.logout().expect("log the token out");
    drop(session);

    // The pool reconnects once, its PIN is rejected, and it stops.
    let err = key.sign_blocking(b"after").expect_err("PIN changed");
    assert!(matches!(err, Error::PinIncorrect { .. }), "{err}");
    assert!(matches!(pool.status().health, PoolHealth::Failed { .. }));
    assert!(!pool.wait_ready(Duration::from_millis(100)));
    // Every further request is refused without another login: three wrong logins would lock
    // this token, and it is not locked.
    for _ in 0..5 {
        let err = key.sign_blocking(b"again").expect_err("still failed");
        assert!(matches!(err, Error::PinIncorrect { .. }), "{err}");
    }
    let flags = ock.token()["token"]["user_pin"].clone();
    assert_eq!(flags["locked"], false, "{flags}");
    assert_eq!(
        flags["final_try"], false,
        "only one wrong try was made: {flags}"
    );
}
