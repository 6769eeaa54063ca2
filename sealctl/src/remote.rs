//! Talking to a running seald over its mTLS API (`--server URL --cert --key --ca`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::Failure;

#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// seald's API, e.g. https://127.0.0.1:8443.
    #[arg(long, env = "SEALD_SERVER", value_name = "URL")]
    server: Option<String>,
    /// This client's certificate (PEM), registered in seald as an application.
    #[arg(long, env = "SEALD_CLIENT_CERT", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "SEALD_CLIENT_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// The CA that issued seald's server certificate (PEM).
    #[arg(long, env = "SEALD_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Seconds to wait for each request.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// The employee this command acts as (sent as Seald-Employee). Governance actions need
    /// one once the enterprise is set up; seald checks that employee's permissions.
    // Its own id: subcommands have positional `employee` arguments.
    #[arg(
        long = "as",
        id = "acting_employee",
        env = "SEALD_EMPLOYEE",
        value_name = "EMPLOYEE",
        global = true
    )]
    employee: Option<String>,
}

/// A connected client.
#[derive(Debug)]
pub struct Remote {
    base: String,
    client: reqwest::blocking::Client,
    employee: Option<String>,
}

impl RemoteArgs {
    /// Whether a server was named (flag or environment).
    pub fn given(&self) -> bool {
        self.server.is_some()
    }

    pub fn connect(&self) -> Result<Remote, Failure> {
        let need = |v: &Option<PathBuf>, flag: &str, env: &str| {
            v.clone().ok_or_else(|| {
                Failure::usage(format!(
                    "{flag} FILE (or ${env}) is required to talk to seald"
                ))
            })
        };
        let server = self.server.clone().ok_or_else(|| {
            Failure::usage("--server URL (or $SEALD_SERVER) is required to talk to seald")
        })?;
        let (cert, key, ca) = (
            need(&self.cert, "--cert", "SEALD_CLIENT_CERT")?,
            need(&self.key, "--key", "SEALD_CLIENT_KEY")?,
            need(&self.ca, "--ca", "SEALD_CA")?,
        );
        let mut identity = Zeroizing::new(crate::read_file(&cert)?);
        identity.push(b'\n');
        identity.extend_from_slice(&Zeroizing::new(crate::read_file(&key)?));
        let identity = reqwest::Identity::from_pem(&identity).map_err(|e| {
            Failure::usage(format!("the client certificate or key is unusable: {e}"))
        })?;
        let ca = reqwest::Certificate::from_pem(&crate::read_file(&ca)?)
            .map_err(|e| Failure::usage(format!("{}: {e}", ca.display())))?;
        let client = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .timeout(Duration::from_secs(self.timeout.max(1)))
            .build()
            .map_err(|e| Failure::failed(format!("cannot set up the HTTPS client: {e}")))?;
        Ok(Remote {
            base: server.trim_end_matches('/').to_owned(),
            client,
            employee: self.employee.clone(),
        })
    }
}

impl Remote {
    fn check(
        &self,
        response: reqwest::Result<reqwest::blocking::Response>,
    ) -> Result<reqwest::blocking::Response, Failure> {
        let response = response.map_err(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            Failure::failed(format!("cannot reach seald at {}: {why}", self.base))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().unwrap_or_default();
        let message = match serde_json::from_str::<Value>(&text) {
            Ok(p) => format!(
                "seald refused ({status}, {}): {}",
                p["code"].as_str().unwrap_or("?"),
                p["detail"].as_str().unwrap_or("")
            ),
            Err(_) => format!("seald answered {status}: {text}"),
        };
        Err(Failure::failed(message))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.employee {
            Some(e) => request.header("Seald-Employee", e),
            None => request,
        }
    }

    pub fn get(&self, path: &str) -> Result<reqwest::blocking::Response, Failure> {
        self.check(self.request(reqwest::Method::GET, path).send())
    }

    /// Sends `body` as JSON with `method` and reads the JSON answer.
    pub fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, Failure> {
        self.check(
            self.request(method, path)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send(),
        )
        .and_then(json)
    }

    /// POSTs `body` as JSON with extra `headers` (a signing password: never in argv or logs).
    pub fn post_json_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Value, Failure> {
        let mut request = self
            .request(reqwest::Method::POST, path)
            .header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.check(request.body(body.to_string()).send())
            .and_then(json)
    }

    /// POSTs a file's bytes with `content_type` and reads the JSON answer.
    pub fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, Failure> {
        self.check(
            self.request(reqwest::Method::POST, path)
                .header("Content-Type", content_type)
                .body(body)
                .send(),
        )
        .and_then(json)
    }

    pub fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.check(self.request(reqwest::Method::DELETE, path).send())
            .and_then(json)
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        json(self.get(path)?)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send_json(reqwest::Method::POST, path, body)
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send_json(reqwest::Method::PUT, path, body)
    }
}

/// Reads a JSON answer.
pub fn json<T: serde::de::DeserializeOwned>(
    response: reqwest::blocking::Response,
) -> Result<T, Failure> {
    serde_json::from_reader(response)
        .map_err(|e| Failure::failed(format!("seald's answer is not the JSON expected: {e}")))
}
