//! Fixtures for the PAdES tests: a seal key with a certificate on a SoftHSM2 token, the
//! independent validators (qpdf, poppler's pdfsig with an NSS db, pyHanko in its venv), an
//! independent time-stamping authority (`openssl ts`), seal images and page rendering.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use seald_pkcs11::admin::{self, KeyAlgorithm};
use seald_pkcs11::{Certificate, Module, PoolConfig, PoolKey, TokenPool, TokenSelector};
use serde_json::Value;

use crate::{label, pki_init, pki_issue, run, run_ok, user_pin, workspace_root, SoftHsm};

pub const TOKEN: &str = "seal-token";

/// A seal key on a token with its certificate and chain imported, signing through a pool.
#[derive(Debug)]
pub struct SealKey {
    pub hsm: SoftHsm,
    pub module: Module,
    pub pool: TokenPool,
    pub key: PoolKey,
    pub pki: PathBuf,
}

impl SealKey {
    /// A fresh token holding `key_label` (`algorithm`), certified by the test PKI.
    pub fn new(algorithm: KeyAlgorithm) -> Self {
        let hsm = SoftHsm::new();
        let module = hsm.module();
        hsm.init_token(&module, TOKEN);
        let token = TokenSelector::Label(TOKEN.to_owned());
        admin::generate_key(&module, &token, &user_pin(), "seal", algorithm).expect("keygen");
        let csr = admin::certificate_request(
            &module,
            &token,
            &user_pin(),
            &label("seal"),
            "CN=合同专用章,O=示例科技有限公司,C=CN",
        )
        .expect("csr");
        let pki = hsm.path().join("pki");
        pki_init(&pki);
        fs::write(hsm.path().join("seal.csr"), csr).expect("csr file");
        pki_issue(
            &pki,
            &hsm.path().join("seal.csr"),
            &hsm.path().join("seal.pem"),
        );
        let read = |p: PathBuf| {
            Certificate::read_all(&fs::read(&p).expect("read"), "test").expect("certificates")
        };
        let leaf = read(hsm.path().join("seal.pem")).remove(0);
        let chain = read(pki.join("chain.pem"));
        admin::import_certificate(&module, &token, &user_pin(), &label("seal"), &leaf, &chain)
            .expect("import");
        let pool =
            TokenPool::open(&module, TOKEN, user_pin(), PoolConfig::default()).expect("pool");
        let key = pool.key(label("seal"), None).expect("key");
        SealKey {
            hsm,
            module,
            pool,
            key,
            pki,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.pki.join("root.pem")
    }

    pub fn dir(&self) -> &Path {
        self.hsm.path()
    }

    /// The root as DER, for seald-pades' verifier.
    pub fn root_der(&self) -> Vec<Vec<u8>> {
        seald_pades::parse_certificates(&fs::read(self.root()).expect("root")).expect("root cert")
    }
}

/// The Python with pyHanko (a venv made by deploy/test.sh).
pub fn pyhanko_python() -> PathBuf {
    std::env::var_os("SEALD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pyhanko-venv/bin/python"))
}

/// One signature as poppler's pdfsig reports it.
#[derive(Debug, Clone, Default)]
pub struct PdfSig {
    pub field: String,
    pub signer: String,
    pub signed: bool,
    pub valid: bool,
    pub trusted: bool,
    pub whole_document: bool,
    pub digest_mismatch: bool,
}

/// The independent validators, trusting `roots`.
#[derive(Debug)]
pub struct Validators {
    nss: PathBuf,
    roots: Vec<PathBuf>,
}

impl Validators {
    pub fn new(dir: &Path, roots: &[PathBuf]) -> Self {
        // A database of its own each time: `certutil -N` on an existing one asks for its
        // password on the terminal instead of failing.
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nss = dir.join(if n == 0 {
            "nssdb".to_owned()
        } else {
            format!("nssdb-{n}")
        });
        fs::create_dir_all(&nss).expect("nss dir");
        run_ok(
            Command::new("certutil")
                .args(["-N", "--empty-password", "-d"])
                .arg(format!("sql:{}", nss.display())),
        );
        for (i, root) in roots.iter().enumerate() {
            run_ok(
                Command::new("certutil")
                    .args(["-A", "-t", "CT,C,C", "-n"])
                    .arg(format!("root{i}"))
                    .arg("-d")
                    .arg(format!("sql:{}", nss.display()))
                    .arg("-i")
                    .arg(root),
            );
        }
        Validators {
            nss,
            roots: roots.to_vec(),
        }
    }

    /// `qpdf --check`: Ok, or its complaint.
    pub fn qpdf(&self, pdf: &Path) -> Result<(), String> {
        let out = run(Command::new("qpdf").arg("--check").arg(pdf));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() && !text.contains("WARNING") {
            Ok(())
        } else {
            Err(text)
        }
    }

    /// poppler's verdict on every signature field.
    pub fn pdfsig(&self, pdf: &Path) -> Vec<PdfSig> {
        let out = run(Command::new("pdfsig")
            .arg("-nssdir")
            .arg(format!("sql:{}", self.nss.display()))
            .arg(pdf));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut sigs = Vec::new();
        for block in text.split("Signature #").skip(1) {
            let mut s = PdfSig {
                signed: !block.contains("is not signed"),
                ..PdfSig::default()
            };
            for line in block.lines() {
                let line = line.trim();
                if let Some(f) = line.strip_prefix("- Signature Field Name: ") {
                    s.field = f.to_owned();
                }
                if let Some(f) = line.strip_prefix("- Signer full Distinguished Name: ") {
                    s.signer = f.to_owned();
                }
                s.valid |= line == "- Signature Validation: Signature is Valid.";
                s.trusted |= line == "- Certificate Validation: Certificate is Trusted.";
                s.whole_document |= line == "- Total document signed";
                s.digest_mismatch |= line.contains("Digest Mismatch");
            }
            sigs.push(s);
        }
        sigs
    }

    /// pyHanko's judgement of every signature (see tests/support/pyhanko_check.py).
    pub fn pyhanko(&self, pdf: &Path, strict: bool) -> Vec<Value> {
        let mut cmd = Command::new(pyhanko_python());
        cmd.arg(workspace_root().join("tests/support/pyhanko_check.py"))
            .arg(pdf);
        for root in &self.roots {
            cmd.arg("--trust").arg(root);
        }
        if !strict {
            cmd.arg("--no-strict");
        }
        let out = run_ok(&mut cmd);
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("pyHanko output is not JSON ({e}): {out}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Validators {
    /// pyHanko's judgement of every signature of each of `pdfs`, in one process: path →
    /// its list.
    pub fn pyhanko_many(&self, pdfs: &[PathBuf]) -> serde_json::Map<String, Value> {
        let mut all = serde_json::Map::new();
        // Several per process, few enough for any argument list.
        for chunk in pdfs.chunks(200) {
            let mut cmd = Command::new(pyhanko_python());
            cmd.arg(workspace_root().join("tests/support/pyhanko_check.py"));
            cmd.args(chunk);
            if chunk.len() == 1 {
                // One file prints its list; make it a map too.
                cmd.arg(chunk[0].clone());
            }
            for root in &self.roots {
                cmd.arg("--trust").arg(root);
            }
            let out = run_ok(&mut cmd);
            match serde_json::from_str::<Value>(&out) {
                Ok(Value::Object(m)) => all.extend(m),
                other => panic!("pyHanko output is not a JSON object ({other:?}): {out}"),
            }
        }
        all
    }
}

/// Finds a signature by field name in a validator's list.
pub fn by_field<'a>(sigs: &'a [Value], field: &str) -> &'a Value {
    sigs.iter()
        .find(|s| s["field"] == field)
        .unwrap_or_else(|| panic!("no signature '{field}' in {sigs:?}"))
}

/// An independent RFC 3161 TSA: `openssl ts -reply` behind tests/support/tsa_server.py.
#[derive(Debug)]
pub struct Tsa {
    child: Child,
    pub url: String,
    /// Where the TSA notes when each request arrived.
    arrivals: PathBuf,
}

impl Tsa {
    /// Starts a TSA with a certificate from the test PKI in `pki`; returns once it listens.
    pub fn start(pki: &Path) -> Self {
        Tsa::start_on(pki, 0)
    }

    /// Starts a TSA on `port` (0: a free one).
    pub fn start_on(pki: &Path, port: u16) -> Self {
        run_ok(
            Command::new(workspace_root().join("deploy/pki.sh"))
                .arg("tsa")
                .arg(pki),
        );
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let arrivals = pki.join(format!("tsa-arrivals-{n}.log"));
        let _ = fs::remove_file(&arrivals);
        let mut child = Command::new("python3")
            .arg(workspace_root().join("tests/support/tsa_server.py"))
            .arg(pki.join("tsa.cnf"))
            .arg(port.to_string())
            .env("TSA_ARRIVALS", &arrivals)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the TSA");
        let stdout = child.stdout.take().expect("TSA stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("TSA port");
        let port: u16 = line.trim().parse().expect("TSA printed its port");
        Tsa {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            arrivals,
        }
    }

    /// When each request so far arrived (Unix seconds), in order.
    pub fn arrivals(&self) -> Vec<f64> {
        fs::read_to_string(&self.arrivals)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for Tsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A seal image: a red ring and bar on a transparent background, `size`×`size` pixels.
pub fn seal_png(size: u32) -> Vec<u8> {
    let mut rgba = Vec::with_capacity((size * size * 4) as usize);
    let c = size as f64 / 2.0;
    for y in 0..size {
        for x in 0..size {
            let d = ((x as f64 + 0.5 - c).powi(2) + (y as f64 + 0.5 - c).powi(2)).sqrt();
            let ring = d >= c * 0.8 && d <= c * 0.95;
            let bar = (x as f64 - c).abs() < c * 0.4 && (y as f64 - c).abs() < c * 0.08;
            if ring || bar {
                rgba.extend_from_slice(&[220, 20, 30, 255]);
            } else {
                rgba.extend_from_slice(&[0, 0, 0, 0]);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, size, size);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().expect("png header");
        w.write_image_data(&rgba).expect("png data");
    }
    out
}

/// Renders page `page` at 72 dpi (1 px = 1 pt) with poppler and returns the bounding box
/// (left, top, right, bottom, in pixels from the displayed top-left) of the seal's red pixels.
pub fn red_box(pdf: &Path, page: u32, dir: &Path) -> Option<(u32, u32, u32, u32)> {
    let prefix = dir.join(format!("render-{page}"));
    run_ok(
        Command::new("pdftoppm")
            .args([
                "-r",
                "72",
                "-cropbox",
                "-f",
                &page.to_string(),
                "-l",
                &page.to_string(),
                "-singlefile",
            ])
            .arg(pdf)
            .arg(&prefix),
    );
    let ppm = fs::read(prefix.with_extension("ppm")).expect("ppm");
    // Binary PPM: "P6\n<w> <h>\n255\n" then RGB.
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 4 {
        while ppm[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while !ppm[pos].is_ascii_whitespace() {
            pos += 1;
        }
        fields.push(String::from_utf8_lossy(&ppm[start..pos]).into_owned());
    }
    pos += 1;
    let (w, h): (u32, u32) = (fields[1].parse().expect("w"), fields[2].parse().expect("h"));
    let mut found: Option<(u32, u32, u32, u32)> = None;
    for y in 0..h {
        for x in 0..w {
            let i = pos + 3 * (y * w + x) as usize;
            let (r, g, b) = (ppm[i], ppm[i + 1], ppm[i + 2]);
            if r > 150 && g < 100 && b < 100 {
                found = Some(match found {
                    None => (x, y, x, y),
                    Some((l, t, rr, bb)) => (l.min(x), t.min(y), rr.max(x), bb.max(y)),
                });
            }
        }
    }
    found
}
