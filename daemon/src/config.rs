//! `seald.toml`: what the daemon listens on, whom it trusts, where its tokens, data and
//! time-stamp authorities are, and its limits. deploy/seald.example.toml documents every key.
//! A bad file is refused at start with the key named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration problem, naming the key (`server.certificate`) it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenConfig>,
    /// Serial signing devices (docs/firmware-bridge.md); seals name them like tokens.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
    pub audit: AuditConfig,
    pub tsa: Option<TsaConfig>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub verify: VerifyConfig,
    #[serde(default)]
    pub bootstrap: Bootstrap,
    #[serde(default)]
    pub signing_password: SigningPasswordConfig,
    #[serde(default)]
    pub batch_sign: BatchSignConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
}

/// Batch jobs: the font template fields are filled with, and their bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// A TrueType font (or collection) with the CJK glyphs the values need.
    pub font: PathBuf,
    /// The face in a collection.
    pub font_index: u32,
    /// Rows per job, at most.
    pub max_rows: u64,
    /// Rows under way at once (filled, sealed, written or being recorded); at most the seal
    /// token's sessions sign at a time.
    pub concurrency: usize,
    /// A finished job (completed, canceled, stopped, failed) is deleted, with its outputs,
    /// this long after its last change; its audit records stay.
    pub keep_finished_seconds: u64,
    /// While no time-stamp authority answers (B-T), the job waits this long between tries.
    pub tsa_retry_seconds: u64,
    /// The key job webhooks' bodies are signed with (HMAC-SHA256); jobs with a webhook need
    /// it.
    pub webhook_secret_file: Option<PathBuf>,
}

impl JobsConfig {
    pub fn tsa_retry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.tsa_retry_seconds)
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            font: PathBuf::from("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
            font_index: 0,
            max_rows: 100_000,
            concurrency: 24,
            keep_finished_seconds: 30 * 86_400,
            tsa_retry_seconds: 5,
            webhook_secret_file: None,
        }
    }
}

/// The lockout of employees' signing passwords.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningPasswordConfig {
    /// Wrong tries in a row that lock a signing password.
    pub max_failures: u32,
    /// How long it stays locked.
    pub lockout_seconds: i64,
}

impl Default for SigningPasswordConfig {
    fn default() -> Self {
        let rules = seald_policy::password::PasswordRules::default();
        SigningPasswordConfig {
            max_failures: rules.max_failures,
            lockout_seconds: rules.lockout_seconds,
        }
    }
}

/// The bounds of a batch-sign confirmation (one signing password for many signatures).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSignConfig {
    /// The most signatures one confirmation allows.
    pub max_count: u32,
    /// The longest a confirmation lives.
    pub max_lifetime_seconds: i64,
}

impl Default for BatchSignConfig {
    fn default() -> Self {
        let b = seald_policy::batch::BatchBounds::default();
        BatchSignConfig {
            max_count: b.max_count,
            max_lifetime_seconds: b.max_lifetime_seconds,
        }
    }
}

impl BatchSignConfig {
    pub fn bounds(&self) -> seald_policy::batch::BatchBounds {
        seald_policy::batch::BatchBounds {
            max_count: self.max_count,
            max_lifetime_seconds: self.max_lifetime_seconds,
        }
    }
}

impl SigningPasswordConfig {
    pub fn rules(&self) -> seald_policy::password::PasswordRules {
        seald_policy::password::PasswordRules {
            max_failures: self.max_failures,
            lockout_seconds: self.lockout_seconds,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// The mTLS API listener.
    pub listen: SocketAddr,
    /// PEM: the server certificate, then its chain.
    pub certificate: PathBuf,
    /// PEM: the server's private key.
    pub key: PathBuf,
    /// PEM bundles of the CAs whose client certificates are accepted (reloaded on SIGHUP).
    pub client_ca: Vec<PathBuf>,
    /// PEM or DER CRLs of those CAs (reloaded on SIGHUP).
    #[serde(default)]
    pub client_crl: Vec<PathBuf>,
    /// A plain HTTP listener for /healthz, /readyz and /metrics; loopback addresses only.
    pub plain_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Holds the SQLite database, the spool and kept responses.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// How seals refer to this token.
    pub name: String,
    /// The PKCS#11 module (.so).
    pub module: PathBuf,
    /// The token's label.
    pub label: String,
    /// A file holding the user PIN (mode 0600).
    pub pin_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub pin_env: Option<String>,
    /// Sessions signing at once on this token.
    #[serde(default = "default_sessions")]
    pub sessions: usize,
    /// How long a request waits for a free session before 503 `token_busy`.
    #[serde(default = "default_acquire_timeout")]
    pub acquire_timeout_seconds: u64,
    /// Longest pause between reconnection attempts while the token is gone.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_seconds: u64,
    /// While the token is absent, re-initialize its PKCS#11 module at most this often.
    #[serde(default = "default_module_reinit")]
    pub module_reinit_seconds: u64,
}

/// A serial signing device holding a seal key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// How seals refer to this device (a seal's `token`).
    pub name: String,
    /// `p256` (the seal-appliance profile) or `ed25519` (a TKey with its signer app).
    pub profile: String,
    /// Its port: `/dev/ttyACM0`, a `/dev/serial/by-id/…` link…
    pub path: Option<PathBuf>,
    /// Or its USB identity, `VID:PID` in hex (a TKey is `1207:8887`)…
    pub usb: Option<String>,
    /// …and, to tell several apart, its USB serial number.
    pub serial: Option<String>,
    /// The app loaded when the device is in firmware mode (a TKey's signer binary).
    pub app: Option<PathBuf>,
    /// A file holding the passphrase whose BLAKE2s digest the TKey mixes into the app's key
    /// (mode 0600, owned by seald).
    pub uss_file: Option<PathBuf>,
    /// How long a signature waits for the touch.
    #[serde(default = "default_touch_timeout")]
    pub touch_timeout_seconds: u64,
    /// How long a signature waits for the device's operation before it.
    #[serde(default = "default_device_busy")]
    pub busy_timeout_seconds: u64,
}

impl DeviceConfig {
    /// What the firmware bridge needs (reads the app binary).
    pub fn bridge(&self, i: usize) -> Result<seald_firmware_bridge::DeviceConfig, ConfigError> {
        let key = |k: &str| format!("device[{i}].{k}");
        let profile = seald_firmware_bridge::Profile::parse(&self.profile)
            .ok_or_else(|| ConfigError::new(key("profile"), "p256 or ed25519"))?;
        let selector = match (&self.path, &self.usb) {
            (Some(p), None) => {
                if self.serial.is_some() {
                    return Err(ConfigError::new(key("serial"), "goes with usb, not path"));
                }
                seald_firmware_bridge::Selector::Path(p.clone())
            }
            (None, Some(u)) => seald_firmware_bridge::Selector::Usb(
                seald_firmware_bridge::UsbId::parse(u, self.serial.clone()).ok_or_else(|| {
                    ConfigError::new(
                        key("usb"),
                        format!("'{u}' is not VID:PID in hex, e.g. 1207:8887"),
                    )
                })?,
            ),
            _ => {
                return Err(ConfigError::new(
                    key("path"),
                    "give exactly one of path and usb",
                ))
            }
        };
        let mut c = seald_firmware_bridge::DeviceConfig::new(self.name.clone(), selector, profile);
        if let Some(app) = &self.app {
            c.app =
                Some(std::fs::read(app).map_err(|e| {
                    ConfigError::new(key("app"), format!("{}: {e}", app.display()))
                })?);
        }
        if let Some(f) = &self.uss_file {
            c.uss = Some(
                seald_firmware_bridge::uss_from_file(f)
                    .map_err(|e| ConfigError::new(key("uss_file"), e.to_string()))?,
            );
        }
        for (k, v) in [
            ("touch_timeout_seconds", self.touch_timeout_seconds),
            ("busy_timeout_seconds", self.busy_timeout_seconds),
        ] {
            if !(1..=600).contains(&v) {
                return Err(ConfigError::new(key(k), "must be 1 to 600"));
            }
        }
        c.touch_timeout = Duration::from_secs(self.touch_timeout_seconds);
        c.busy_timeout = Duration::from_secs(self.busy_timeout_seconds);
        Ok(c)
    }
}

fn default_touch_timeout() -> u64 {
    35
}

fn default_device_busy() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The token (a `[[token]]` name) holding the audit key.
    pub token: String,
    /// The audit key's label; its certificate must be on the token.
    pub key: String,
    /// How often the chain head is signed (also on shutdown).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Level {
    #[default]
    #[serde(rename = "b-b")]
    BB,
    #[serde(rename = "b-t")]
    BT,
}

/// One of `[tsa] urls`: a URL, or a URL with its own rate budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TsaUrl {
    Url(String),
    Paced(PacedTsa),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacedTsa {
    pub url: String,
    pub rate_per_second: Option<f64>,
    pub burst: Option<u32>,
}

impl TsaUrl {
    pub fn url(&self) -> &str {
        match self {
            TsaUrl::Url(u) => u,
            TsaUrl::Paced(p) => &p.url,
        }
    }
}

impl TsaConfig {
    /// The TSAs in order, each with its rate budget (its own, else `[tsa]`'s).
    pub fn authorities(&self) -> Result<Vec<seald_tsa_client::Authority>, ConfigError> {
        self.urls
            .iter()
            .map(|u| {
                let (rate, burst) = match u {
                    TsaUrl::Url(_) => (self.rate_per_second, self.burst),
                    TsaUrl::Paced(p) => (
                        p.rate_per_second.or(self.rate_per_second),
                        p.burst.or(self.burst),
                    ),
                };
                let budget = match (rate, burst) {
                    (None, None) => None,
                    (None, Some(_)) => {
                        return Err(ConfigError::new(
                            "tsa.burst",
                            format!("{}: a burst needs a rate_per_second", u.url()),
                        ))
                    }
                    (Some(r), b) => Some(
                        seald_tsa_client::Budget::new(r, b.unwrap_or(1)).map_err(|e| {
                            ConfigError::new("tsa.rate_per_second", format!("{}: {e}", u.url()))
                        })?,
                    ),
                };
                Ok(seald_tsa_client::Authority {
                    url: u.url().to_owned(),
                    budget,
                })
            })
            .collect()
    }
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "b-b" => Some(Level::BB),
            "b-t" => Some(Level::BT),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsaConfig {
    /// Tried in order, failing over to the next: URLs, or tables with a URL and its own rate
    /// budget (`{ url = "…", rate_per_second = 20, burst = 5 }`).
    pub urls: Vec<TsaUrl>,
    /// PEM roots a TSA certificate must chain to.
    pub roots: Vec<PathBuf>,
    #[serde(default = "default_tsa_timeout")]
    pub timeout_seconds: u64,
    /// Each TSA's rate budget unless its entry gives its own (default: none, asked as often
    /// as signatures need).
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Requests a TSA may get at once within its budget (default 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// How long a signature waits at most for room in some TSA's budget.
    #[serde(default = "default_tsa_wait")]
    pub max_wait_seconds: u64,
    /// How long a TSA that failed is asked only after the others.
    #[serde(default = "default_tsa_wait")]
    pub rest_seconds: u64,
    /// The level when a request does not say.
    #[serde(default)]
    pub default_level: Level,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (a PDF), in MiB.
    pub max_body_mib: u64,
    /// A request that takes longer gets 503 `timeout`.
    pub request_timeout_seconds: u64,
    /// Sign requests waiting for a token session; beyond, 503 with Retry-After.
    pub queue_depth: usize,
    /// How long an Idempotency-Key's response is kept.
    pub idempotency_hours: u64,
    /// PDFs up to this size (KiB) are held in memory instead of a spool file, within...
    pub memory_body_kib: u64,
    /// ...this budget for all requests together (MiB); beyond, bodies go to the spool.
    pub memory_budget_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_mib: 200,
            request_timeout_seconds: 120,
            queue_depth: 64,
            idempotency_hours: 24,
            memory_body_kib: 256,
            memory_budget_mib: 32,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// PEM roots `POST /v1/verify` trusts for signers.
    #[serde(default)]
    pub trust_roots: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Client certificates (PEM) registered at start as applications with the admin role, so
    /// that a fresh installation can be administered at all.
    #[serde(default)]
    pub admin_certificates: Vec<PathBuf>,
}

fn default_sessions() -> usize {
    4
}

fn default_acquire_timeout() -> u64 {
    5
}

fn default_reconnect_max() -> u64 {
    30
}

fn default_module_reinit() -> u64 {
    60
}

fn default_checkpoint_interval() -> u64 {
    300
}

fn default_tsa_timeout() -> u64 {
    10
}

fn default_tsa_wait() -> u64 {
    30
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks a configuration; relative paths are taken from `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // toml's message names the key and shows the line.
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string().trim_end()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve(base);
        config.check()?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.certificate);
        fix(&mut self.server.key);
        self.server.client_ca.iter_mut().for_each(fix);
        self.server.client_crl.iter_mut().for_each(fix);
        fix(&mut self.storage.data_dir);
        for d in &mut self.devices {
            if let Some(p) = &mut d.path {
                fix(p);
            }
            if let Some(p) = &mut d.app {
                fix(p);
            }
            if let Some(p) = &mut d.uss_file {
                fix(p);
            }
        }
        for t in &mut self.tokens {
            fix(&mut t.module);
            if let Some(p) = &mut t.pin_file {
                fix(p);
            }
        }
        if let Some(tsa) = &mut self.tsa {
            tsa.roots.iter_mut().for_each(fix);
        }
        fix(&mut self.jobs.font);
        if let Some(p) = &mut self.jobs.webhook_secret_file {
            fix(p);
        }
        self.verify.trust_roots.iter_mut().for_each(fix);
        self.bootstrap.admin_certificates.iter_mut().for_each(fix);
    }

    fn check(&self) -> Result<(), ConfigError> {
        let readable = |key: &str, p: &Path| -> Result<(), ConfigError> {
            std::fs::metadata(p)
                .map(|_| ())
                .map_err(|e| ConfigError::new(key, format!("{}: {e}", p.display())))
        };
        readable("server.certificate", &self.server.certificate)?;
        readable("server.key", &self.server.key)?;
        if self.server.client_ca.is_empty() {
            return Err(ConfigError::new(
                "server.client_ca",
                "at least one client CA bundle is required (clients authenticate with certificates)",
            ));
        }
        for p in &self.server.client_ca {
            readable("server.client_ca", p)?;
        }
        for p in &self.server.client_crl {
            readable("server.client_crl", p)?;
        }
        if let Some(plain) = self.server.plain_listen {
            if !plain.ip().is_loopback() {
                return Err(ConfigError::new(
                    "server.plain_listen",
                    format!("{plain} is not a loopback address; the plain listener has no authentication"),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let key = |k: &str| format!("token[{i}].{k}");
            if !names.insert(t.name.as_str()) {
                return Err(ConfigError::new(
                    key("name"),
                    format!("two tokens are named '{}'", t.name),
                ));
            }
            readable(&key("module"), &t.module)?;
            match (&t.pin_file, &t.pin_env) {
                (Some(f), None) => readable(&key("pin_file"), f)?,
                (None, Some(_)) => {}
                _ => {
                    return Err(ConfigError::new(
                        key("pin_file"),
                        "give exactly one of pin_file and pin_env",
                    ))
                }
            }
            if t.sessions == 0 || t.sessions > 256 {
                return Err(ConfigError::new(key("sessions"), "must be 1 to 256"));
            }
            for (name, v) in [
                ("acquire_timeout_seconds", t.acquire_timeout_seconds),
                ("reconnect_max_seconds", t.reconnect_max_seconds),
                ("module_reinit_seconds", t.module_reinit_seconds),
            ] {
                if v == 0 {
                    return Err(ConfigError::new(key(name), "must be at least 1"));
                }
            }
        }
        for (i, d) in self.devices.iter().enumerate() {
            if !names.insert(d.name.as_str()) {
                return Err(ConfigError::new(
                    format!("device[{i}].name"),
                    format!("'{}' names a token or another device already", d.name),
                ));
            }
            d.bridge(i)?;
        }
        if !self.tokens.iter().any(|t| t.name == self.audit.token) {
            return Err(ConfigError::new(
                "audit.token",
                format!("no [[token]] is named '{}'", self.audit.token),
            ));
        }
        if self.audit.checkpoint_interval_seconds == 0 {
            return Err(ConfigError::new(
                "audit.checkpoint_interval_seconds",
                "must be at least 1",
            ));
        }
        if let Some(tsa) = &self.tsa {
            if tsa.urls.is_empty() {
                return Err(ConfigError::new("tsa.urls", "list at least one TSA URL"));
            }
            for u in tsa.urls.iter().map(TsaUrl::url) {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(ConfigError::new(
                        "tsa.urls",
                        format!("'{u}' is not an http:// or https:// URL"),
                    ));
                }
            }
            if tsa.roots.is_empty() {
                return Err(ConfigError::new(
                    "tsa.roots",
                    "list the roots TSA certificates must chain to",
                ));
            }
            for p in &tsa.roots {
                readable("tsa.roots", p)?;
            }
            if tsa.timeout_seconds == 0 {
                return Err(ConfigError::new(
                    "tsa.timeout_seconds",
                    "must be at least 1",
                ));
            }
            if tsa.max_wait_seconds > 3600 {
                return Err(ConfigError::new(
                    "tsa.max_wait_seconds",
                    "must be at most 3600",
                ));
            }
            if tsa.rest_seconds > 3600 {
                return Err(ConfigError::new("tsa.rest_seconds", "must be at most 3600"));
            }
            tsa.authorities()?;
        }
        let l = &self.limits;
        if l.max_body_mib == 0 || l.max_body_mib > 4096 {
            return Err(ConfigError::new("limits.max_body_mib", "must be 1 to 4096"));
        }
        if l.request_timeout_seconds == 0 {
            return Err(ConfigError::new(
                "limits.request_timeout_seconds",
                "must be at least 1",
            ));
        }
        if l.memory_body_kib > 64 << 10 {
            return Err(ConfigError::new(
                "limits.memory_body_kib",
                "must be at most 65536 (64 MiB)",
            ));
        }
        if l.memory_budget_mib > 4096 {
            return Err(ConfigError::new(
                "limits.memory_budget_mib",
                "must be at most 4096",
            ));
        }
        if l.queue_depth == 0 {
            return Err(ConfigError::new("limits.queue_depth", "must be at least 1"));
        }
        let p = &self.signing_password;
        if !(1..=100).contains(&p.max_failures) {
            return Err(ConfigError::new(
                "signing_password.max_failures",
                "must be 1 to 100",
            ));
        }
        if !(1..=7 * 24 * 3600).contains(&p.lockout_seconds) {
            return Err(ConfigError::new(
                "signing_password.lockout_seconds",
                "must be 1 second to 7 days",
            ));
        }
        if !(1..=1_000_000).contains(&self.jobs.max_rows) {
            return Err(ConfigError::new("jobs.max_rows", "must be 1 to 1000000"));
        }
        if !(1..=256).contains(&self.jobs.concurrency) {
            return Err(ConfigError::new("jobs.concurrency", "must be 1 to 256"));
        }
        if !(1..=10 * 366 * 86_400).contains(&self.jobs.keep_finished_seconds) {
            return Err(ConfigError::new(
                "jobs.keep_finished_seconds",
                "must be 1 second to 10 years",
            ));
        }
        if let Some(p) = &self.jobs.webhook_secret_file {
            readable("jobs.webhook_secret_file", p)?;
        }
        if !(1..=3600).contains(&self.jobs.tsa_retry_seconds) {
            return Err(ConfigError::new(
                "jobs.tsa_retry_seconds",
                "must be 1 to 3600",
            ));
        }
        let b = &self.batch_sign;
        if !(1..=100_000).contains(&b.max_count) {
            return Err(ConfigError::new(
                "batch_sign.max_count",
                "must be 1 to 100000",
            ));
        }
        if !(1..=7 * 24 * 3600).contains(&b.max_lifetime_seconds) {
            return Err(ConfigError::new(
                "batch_sign.max_lifetime_seconds",
                "must be 1 second to 7 days",
            ));
        }
        for p in &self.verify.trust_roots {
            readable("verify.trust_roots", p)?;
        }
        for p in &self.bootstrap.admin_certificates {
            readable("bootstrap.admin_certificates", p)?;
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.request_timeout_seconds)
    }

    pub fn max_body(&self) -> u64 {
        self.limits.max_body_mib << 20
    }

    pub fn database_path(&self) -> PathBuf {
        self.storage.data_dir.join("seald.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "x").expect("write");
        p
    }

    fn base(dir: &Path) -> String {
        for f in ["server.crt", "server.key", "ca.crt", "lib.so", "pin"] {
            write(dir, f);
        }
        r#"
[server]
listen = "127.0.0.1:8443"
certificate = "server.crt"
key = "server.key"
client_ca = ["ca.crt"]

[storage]
data_dir = "data"

[[token]]
name = "hsm"
module = "lib.so"
label = "seals"
pin_file = "pin"

[audit]
token = "hsm"
key = "audit"
"#
        .to_owned()
    }

    #[test]
    fn a_minimal_file_loads_with_defaults_and_relative_paths() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("seald.toml");
        let config = Config::parse(&base(dir.path()), &path).expect("config");
        assert_eq!(config.limits.max_body_mib, 200);
        assert_eq!(config.tokens[0].sessions, 4);
        assert_eq!(config.storage.data_dir, dir.path().join("data"));
        assert!(config.tsa.is_none());
    }

    #[test]
    fn the_example_configuration_uses_only_real_keys() {
        // Unknown keys are refused, so every key the example documents exists.
        let text = include_str!("../../deploy/seald.example.toml");
        let config: Config = toml::from_str(text).expect("deploy/seald.example.toml");
        assert_eq!(config.tokens.len(), 1);
        assert!(config.tsa.is_some() && config.server.plain_listen.is_some());
        // Its TSAs: the first with its own budget, the second with [tsa]'s.
        let budgets: Vec<(f64, u32)> = config
            .tsa
            .as_ref()
            .map(|t| t.authorities().expect("budgets"))
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.budget.map(|b| (b.per_second(), b.burst())))
            .collect();
        assert_eq!(budgets, [(20.0, 5), (10.0, 1)]);
        let defaults = Limits::default();
        assert_eq!(config.limits.max_body_mib, defaults.max_body_mib);
        assert_eq!(config.limits.queue_depth, defaults.queue_depth);
    }

    #[test]
    fn mistakes_name_their_key() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("seald.toml");
        let good = base(dir.path());
        let cases = [
            (good.replace("lib.so", "missing.so"), "token[0].module"),
            (
                good.replace("key = \"audit\"", "key = \"audit\"\nbogus = 1"),
                "bogus",
            ),
            (
                good.replace("token = \"hsm\"", "token = \"other\""),
                "audit.token",
            ),
            (
                good.replace("[storage]", "plain_listen = \"0.0.0.0:9090\"\n[storage]"),
                "server.plain_listen",
            ),
            (
                good.replace("client_ca = [\"ca.crt\"]", "client_ca = []"),
                "server.client_ca",
            ),
            (
                good.clone() + "[limits]\nqueue_depth = 0\n",
                "limits.queue_depth",
            ),
            (
                good.clone() + "[tsa]\nurls = [\"ftp://x\"]\nroots = [\"ca.crt\"]\n",
                "tsa.urls",
            ),
            (
                good.clone()
                    + "[tsa]\nurls = [{ url = \"http://x/\", rate_per_second = 0 }]\nroots = [\"ca.crt\"]\n",
                "tsa.rate_per_second",
            ),
            (
                good.clone() + "[tsa]\nurls = [\"http://x/\"]\nburst = 3\nroots = [\"ca.crt\"]\n",
                "tsa.burst",
            ),
            (
                good.clone()
                    + "[tsa]\nurls = [{ url = \"http://x/\", rate = 1 }]\nroots = [\"ca.crt\"]\n",
                "urls",
            ),
            (
                good.replace("listen = \"127.0.0.1:8443\"", "listen = \"nowhere\""),
                "listen",
            ),
            (
                good.clone() + "[[device]]\nname = \"hsm\"\nprofile = \"p256\"\npath = \"/dev/ttyACM0\"\n",
                "device[0].name",
            ),
            (
                good.clone() + "[[device]]\nname = \"d\"\nprofile = \"rsa\"\npath = \"/dev/ttyACM0\"\n",
                "device[0].profile",
            ),
            (
                good.clone()
                    + "[[device]]\nname = \"d\"\nprofile = \"p256\"\npath = \"/dev/x\"\nusb = \"1207:8887\"\n",
                "device[0].path",
            ),
            (
                good.clone() + "[[device]]\nname = \"d\"\nprofile = \"p256\"\nusb = \"tkey\"\n",
                "device[0].usb",
            ),
            (
                good.clone()
                    + "[[device]]\nname = \"d\"\nprofile = \"ed25519\"\nusb = \"1207:8887\"\napp = \"missing.bin\"\n",
                "device[0].app",
            ),
            (
                good.clone()
                    + "[[device]]\nname = \"d\"\nprofile = \"ed25519\"\nusb = \"1207:8887\"\nuss_file = \"missing.uss\"\n",
                "device[0].uss_file",
            ),
            (
                good.clone()
                    + "[[device]]\nname = \"d\"\nprofile = \"p256\"\npath = \"/dev/x\"\ntouch_timeout_seconds = 0\n",
                "device[0].touch_timeout_seconds",
            ),
        ];
        for (text, key) in cases {
            let err = Config::parse(&text, &path).expect_err(key);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }
}
