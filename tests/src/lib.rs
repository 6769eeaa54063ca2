//! Fixtures for seald's end-to-end tests: private SoftHSM2 token directories, the test PKI
//! (`deploy/pki.sh`, plain openssl), the built binaries, and independent verification with the
//! `openssl` command line.
//!
//! Tests run one per process (cargo-nextest, as `deploy/test.sh` does): SoftHSM2 reads
//! `SOFTHSM2_CONF` once per process, so a test that uses a token in-process owns its process.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use seald_pkcs11::admin::{self, KeyAlgorithm};
use seald_pkcs11::{KeySelector, Module, Pin, PublicKey, TokenSelector};
use tempfile::TempDir;

pub mod daemon;
pub mod pdf;

pub const USER_PIN: &str = "246810";
pub const SO_PIN: &str = "13579135";

/// The SoftHSM2 module: `SEALD_TEST_SOFTHSM` or Debian's path.
pub fn softhsm_module() -> PathBuf {
    std::env::var_os("SEALD_TEST_SOFTHSM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

/// The workspace root (for `deploy/` scripts).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A binary built from this workspace (`cargo build --bins` must have run, as
/// `deploy/test.sh` does): next to the test executable's `deps/` directory, or in
/// `SEALD_BIN_DIR`.
pub fn binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("SEALD_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps/<test>")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

static ACTIVATED: AtomicBool = AtomicBool::new(false);

/// A private SoftHSM2 instance: its own configuration and token directory in a temp dir.
#[derive(Debug)]
pub struct SoftHsm {
    dir: TempDir,
}

impl Default for SoftHsm {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftHsm {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("seald-softhsm-")
            .tempdir()
            .expect("temp dir");
        fs::create_dir(dir.path().join("tokens")).expect("token dir");
        fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                dir.path().join("tokens").display()
            ),
        )
        .expect("softhsm2.conf");
        SoftHsm { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    pub fn token_dir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// Points this process's SoftHSM2 at this instance and loads the module. Only once per
    /// process: SoftHSM2 reads its configuration at `C_Initialize`.
    pub fn module(&self) -> Module {
        let first = !ACTIVATED.swap(true, Ordering::SeqCst);
        assert!(
            first,
            "one in-process SoftHSM2 per test process: run the tests with cargo nextest"
        );
        std::env::set_var("SOFTHSM2_CONF", self.conf());
        Module::load(softhsm_module()).expect("load SoftHSM2")
    }

    /// Writes `secret` into a mode-0600 file under the temp dir.
    pub fn secret_file(&self, name: &str, secret: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, format!("{secret}\n")).expect("secret file");
        set_private(&path);
        path
    }

    /// `sealctl` with this instance's environment (module and SoftHSM2 configuration).
    pub fn sealctl(&self) -> Command {
        let mut cmd = Command::new(binary("sealctl"));
        self.environ(&mut cmd);
        cmd
    }

    /// OpenSC's `pkcs11-tool` on this instance.
    pub fn pkcs11_tool(&self) -> Command {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module").arg(softhsm_module());
        self.environ(&mut cmd);
        cmd
    }

    fn environ(&self, cmd: &mut Command) {
        cmd.env("SOFTHSM2_CONF", self.conf())
            .env("SEALD_PKCS11_MODULE", softhsm_module())
            .env_remove("SEALD_PIN")
            .env_remove("SEALD_SO_PIN")
            .env_remove("SEALD_NEW_PIN");
    }

    /// Initializes the first free slot as `label` with [`USER_PIN`] / [`SO_PIN`], in process.
    pub fn init_token(&self, module: &Module, label: &str) {
        let slot = module
            .slots()
            .expect("slots")
            .into_iter()
            .find(|s| s.token.as_ref().is_some_and(|t| !t.initialized))
            .expect("a free slot")
            .slot;
        admin::init_token(
            module,
            &TokenSelector::Slot(slot),
            label,
            &so_pin(),
            &user_pin(),
            false,
        )
        .expect("init token");
    }
}

#[cfg(unix)]
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

pub fn user_pin() -> Pin {
    Pin::new(USER_PIN.to_owned()).expect("pin")
}

pub fn so_pin() -> Pin {
    Pin::new(SO_PIN.to_owned()).expect("pin")
}

/// Generates a key on `token` in process and returns its public key.
pub fn keygen(module: &Module, token: &str, label: &str, algorithm: KeyAlgorithm) -> PublicKey {
    admin::generate_key(
        module,
        &TokenSelector::Label(token.to_owned()),
        &user_pin(),
        label,
        algorithm,
    )
    .expect("keygen")
    .public_key
}

pub fn label(key: &str) -> KeySelector {
    KeySelector::Label(key.to_owned())
}

/// Runs a command and returns its output; panics with stderr if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()))
}

/// Runs a command that must succeed; returns stdout as text.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?} {:?} failed ({}):\nstdout: {}\nstderr: {}",
        cmd.get_program(),
        cmd.get_args().collect::<Vec<&OsStr>>(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Independent verification with `openssl`: the public key (DER SPKI), the message, the
/// signature and the openssl options for the algorithm (e.g. PSS padding).
#[derive(Debug)]
pub struct OpensslVerify<'a> {
    pub dir: &'a Path,
    pub spki_der: &'a [u8],
    pub digest: &'a str,
    pub pss: bool,
}

impl OpensslVerify<'_> {
    /// True if `openssl dgst -verify` accepts `signature` over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let key = self.dir.join("verify-key.der");
        let msg = self.dir.join("verify-msg.bin");
        let sig = self.dir.join("verify-sig.bin");
        fs::write(&key, self.spki_der).expect("write key");
        fs::write(&msg, message).expect("write message");
        fs::write(&sig, signature).expect("write signature");
        let mut cmd = Command::new("openssl");
        cmd.arg("dgst")
            .arg(format!("-{}", self.digest))
            .args(["-keyform", "DER", "-verify"])
            .arg(&key)
            .arg("-signature")
            .arg(&sig);
        if self.pss {
            cmd.args([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]);
        }
        cmd.arg(&msg);
        let out = run(&mut cmd);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
    }
}

/// The test PKI under `dir` (root CA, enterprise CA), made by `deploy/pki.sh`.
pub fn pki_init(dir: &Path) {
    run_ok(
        Command::new(workspace_root().join("deploy/pki.sh"))
            .arg("init")
            .arg(dir),
    );
}

/// Issues a seal certificate for the CSR at `req` into `out` with the test PKI in `dir`.
pub fn pki_issue(dir: &Path, req: &Path, out: &Path) {
    run_ok(
        Command::new(workspace_root().join("deploy/pki.sh"))
            .arg("issue")
            .arg(dir)
            .arg(req)
            .arg(out),
    );
}

/// A resident ID number (GB 11643, a valid check character) for someone born on 1990-01-01,
/// numbered `n` (modulo 1000).
pub fn id_number(n: u32) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let first = format!("11010519900101{:03}", n % 1000);
    let sum: u32 = first
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{first}{check}")
}
