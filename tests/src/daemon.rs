//! Fixtures for the daemon tests: a SoftHSM2 token with a seal key and an audit key (both
//! certified by the test PKI), a TLS PKI (`deploy/pki.sh tls`) with client certificates, a
//! `seald.toml`, and the real `seald` binary started on free ports, ready when it prints its
//! `LISTENING` lines.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use seald_pkcs11::admin::{self, KeyAlgorithm};
use seald_pkcs11::{Certificate, TokenSelector};

use crate::pdf::{seal_png, SealKey, TOKEN};
use crate::{binary, label, pki_issue, run_ok, user_pin, workspace_root};

/// A token, PKIs and a configuration for seald.
#[derive(Debug)]
pub struct Setup {
    pub seal: SealKey,
    /// The TLS PKI: tls-ca.pem, server.pem/key, clients NAME.crt/NAME.key, tls-ca.crl.
    pub tls: PathBuf,
    pub data: PathBuf,
    pub config: PathBuf,
    /// The seal certificate followed by its chain (PEM).
    pub chain: PathBuf,
    pub image: PathBuf,
}

/// Issues a client certificate `name` from the TLS CA in `tls` (optionally already expired).
pub fn client_cert(tls: &Path, name: &str, expired: bool) {
    let mut cmd = Command::new(workspace_root().join("deploy/pki.sh"));
    cmd.arg("client").arg(tls).arg(name);
    if expired {
        cmd.arg("expired");
    }
    run_ok(&mut cmd);
}

impl Setup {
    /// Everything for a daemon: `extra` is appended to seald.toml (limits, tsa, …), with
    /// `@ROOT@` replaced by the test root certificate's path and `@PKI@` by the PKI directory.
    pub fn new(extra: &str) -> Setup {
        Setup::with_sessions(extra, 2)
    }

    /// Like [`Setup::new`], with `sessions` token sessions.
    pub fn with_sessions(extra: &str, sessions: usize) -> Setup {
        let seal = SealKey::new(KeyAlgorithm::Rsa2048);
        let dir = seal.dir().to_path_buf();
        let module = &seal.module;
        let token = TokenSelector::Label(TOKEN.to_owned());
        admin::generate_key(module, &token, &user_pin(), "audit", KeyAlgorithm::EcP256)
            .expect("audit key");
        let csr = admin::certificate_request(
            module,
            &token,
            &user_pin(),
            &label("audit"),
            "CN=seald audit log,O=示例科技有限公司,C=CN",
        )
        .expect("audit csr");
        fs::write(dir.join("audit.csr"), csr).expect("csr");
        pki_issue(&seal.pki, &dir.join("audit.csr"), &dir.join("audit.pem"));
        let read = |p: PathBuf| {
            Certificate::read_all(&fs::read(&p).expect("read"), "test").expect("certs")
        };
        let leaf = read(dir.join("audit.pem")).remove(0);
        let chain = read(seal.pki.join("chain.pem"));
        admin::import_certificate(module, &token, &user_pin(), &label("audit"), &leaf, &chain)
            .expect("import audit cert");

        let tls = dir.join("tls");
        run_ok(
            Command::new(workspace_root().join("deploy/pki.sh"))
                .arg("tls")
                .arg(&tls),
        );
        for name in ["admin", "app"] {
            client_cert(&tls, name, false);
        }
        let full_chain = dir.join("seal-chain.pem");
        fs::write(
            &full_chain,
            [
                fs::read(dir.join("seal.pem")).expect("leaf"),
                fs::read(seal.pki.join("chain.pem")).expect("chain"),
            ]
            .concat(),
        )
        .expect("chain file");
        let image = dir.join("seal.png");
        fs::write(&image, seal_png(200)).expect("png");
        // An A4 contract to seal (the quickstart's sample).
        let samples = dir.join("samples");
        fs::create_dir_all(&samples).expect("samples dir");
        run_ok(
            Command::new("python3")
                .arg(workspace_root().join("deploy/demo_files.py"))
                .arg(&samples),
        );
        let pin = seal.hsm.secret_file("user.pin", crate::USER_PIN);
        let data = dir.join("data");
        let config = dir.join("seald.toml");
        fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:0"
plain_listen = "127.0.0.1:0"
certificate = "{tls}/server.pem"
key = "{tls}/server.key"
client_ca = ["{tls}/tls-ca.pem"]
client_crl = ["{tls}/tls-ca.crl"]

[storage]
data_dir = "{data}"

[[token]]
name = "hsm"
module = "{module}"
label = "{TOKEN}"
pin_file = "{pin}"
sessions = {sessions}
reconnect_max_seconds = 1
module_reinit_seconds = 1

[audit]
token = "hsm"
key = "audit"
checkpoint_interval_seconds = 2

[verify]
trust_roots = ["{root}"]

[bootstrap]
admin_certificates = ["{tls}/admin.crt"]
{extra}
"#,
                tls = tls.display(),
                data = data.display(),
                module = crate::softhsm_module().display(),
                pin = pin.display(),
                root = seal.root().display(),
                extra = extra
                    .replace("@ROOT@", &seal.root().display().to_string())
                    .replace("@PKI@", &seal.pki.display().to_string()),
            ),
        )
        .expect("config");
        Setup {
            seal,
            tls,
            data,
            config,
            chain: full_chain,
            image,
        }
    }

    pub fn dir(&self) -> &Path {
        self.seal.dir()
    }

    /// A one-page A4 contract to sign.
    pub fn sample(&self) -> Vec<u8> {
        fs::read(self.dir().join("samples/contract.pdf")).expect("contract.pdf")
    }

    /// Starts seald; returns once it listens.
    pub fn start(&self) -> Daemon {
        self.start_with_env(&[])
    }

    /// Starts seald with extra environment variables; returns once it listens.
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Daemon {
        let log = self.dir().join("seald.log");
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut child = Command::new(binary("seald"))
            .arg("--config")
            .arg(&self.config)
            .env("SOFTHSM2_CONF", self.seal.hsm.conf())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start seald");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut api, mut plain) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while api.is_none() || plain.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(u) = line.strip_prefix("LISTENING https://") {
                        api = Some(format!("https://{u}"));
                    } else if let Some(u) = line.strip_prefix("LISTENING http://") {
                        plain = Some(format!("http://{u}"));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "seald did not start:\n{}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        Daemon {
            child,
            api: api.unwrap_or_default(),
            plain: plain.unwrap_or_default(),
            log,
            tls: self.tls.clone(),
        }
    }

    /// `sealctl` pointed at `daemon` as client `name`.
    pub fn sealctl(&self, daemon: &Daemon, name: &str) -> Command {
        let mut cmd = Command::new(binary("sealctl"));
        cmd.env("SEALD_SERVER", &daemon.api)
            .env("SEALD_CLIENT_CERT", self.tls.join(format!("{name}.crt")))
            .env("SEALD_CLIENT_KEY", self.tls.join(format!("{name}.key")))
            .env("SEALD_CA", self.tls.join("tls-ca.pem"));
        cmd
    }

    /// Registers seal `contract` and application `app` (signer, that seal) through sealctl.
    pub fn register(&self, daemon: &Daemon) {
        run_ok(
            self.sealctl(daemon, "admin")
                .args([
                    "admin",
                    "seal",
                    "register",
                    "--id",
                    "contract",
                    "--name",
                    "合同专用章",
                    "--token",
                    "hsm",
                    "--key",
                    "seal",
                    "--chain",
                ])
                .arg(&self.chain)
                .arg("--image")
                .arg(&self.image),
        );
        run_ok(
            self.sealctl(daemon, "admin")
                .args([
                    "admin", "app", "register", "--id", "erp", "--name", "ERP", "--role", "signer",
                    "--seal", "contract", "--cert",
                ])
                .arg(self.tls.join("app.crt")),
        );
    }

    /// The token's storage directory (SoftHSM2 makes one per token).
    pub fn token_storage(&self) -> PathBuf {
        let mut dirs: Vec<PathBuf> = fs::read_dir(self.seal.hsm.token_dir())
            .expect("token dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs.remove(0)
    }

    /// Runs SQL on the daemon's database (python3's sqlite3, an independent client).
    pub fn sql(&self, statement: &str) -> String {
        run_ok(Command::new("python3").args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nrows = c.execute(sys.argv[2]).fetchall()\nc.commit()\nprint('\\n'.join('|'.join(str(v) for v in r) for r in rows))",
        ])
        .arg(self.data.join("seald.db"))
        .arg(statement))
        .trim()
        .to_owned()
    }
}

/// A running seald.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub api: String,
    pub plain: String,
    pub log: PathBuf,
    tls: PathBuf,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The problem+json `code`.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Daemon {
    /// A keep-alive HTTPS client with client certificate `name` (from the TLS PKI).
    pub fn client(&self, name: &str) -> reqwest::blocking::Client {
        client_for(
            &self.tls,
            &self.tls.join(format!("{name}.crt")),
            &self.tls.join(format!("{name}.key")),
            &self.tls.join("tls-ca.pem"),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        run_ok(
            Command::new("kill")
                .arg(format!("-{name}"))
                .arg(self.child.id().to_string()),
        );
    }

    /// SIGTERM, then waits (at most `timeout`) for the exit.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "seald did not stop within {timeout:?}:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client with `cert`/`key`, trusting `ca` only.
pub fn client_for(_dir: &Path, cert: &Path, key: &Path, ca: &Path) -> reqwest::blocking::Client {
    let mut pem = fs::read(cert).expect("cert");
    pem.push(b'\n');
    pem.extend(fs::read(key).expect("key"));
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&fs::read(ca).expect("ca")).expect("ca pem"),
        )
        .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(4)
        .build()
        .expect("client")
}

/// Sends a request and collects the answer (panics only if no HTTP answer came).
pub fn send(request: reqwest::blocking::RequestBuilder) -> Answer {
    let response = request.send().expect("an HTTP answer");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().expect("body").to_vec(),
    }
}

/// Like [`send`], but a transport failure (handshake refused, connection closed) is `Err`.
pub fn try_send(request: reqwest::blocking::RequestBuilder) -> Result<Answer, String> {
    let response = request.send().map_err(|e| {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why = format!("{why}: {s}");
            source = s.source();
        }
        why
    })?;
    Ok(Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().map_err(|e| e.to_string())?.to_vec(),
    })
}

/// SHA-256 (hex).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Waits until `ready` holds (checked every 50 ms), at most `timeout`; false if it never did.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
