//! RFC 3161 over HTTP for B-T signatures (`sealctl sign --level b-t` and the daemon): each TSA
//! URL in order, a timeout each, failing over to the next; every response is checked by
//! seald-pades before it is used.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use seald_pades::{TimestampRequest, Timestamper};
use seald_signer::HashAlgorithm;

/// Time-stamps from a list of TSAs.
#[derive(Debug)]
pub struct HttpTimestamper {
    urls: Vec<String>,
    roots: Vec<Vec<u8>>,
    client: reqwest::blocking::Client,
}

impl HttpTimestamper {
    pub fn new(urls: Vec<String>, roots: Vec<Vec<u8>>, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(HttpTimestamper {
            urls,
            roots,
            client,
        })
    }

    /// Whether some TSA accepts a TCP connection within `timeout` (for readiness checks; no
    /// time-stamp is asked for). Blocking. The error lists why each one failed.
    pub fn probe(&self, timeout: Duration) -> Result<(), String> {
        use std::net::{TcpStream, ToSocketAddrs};
        let mut failures = Vec::new();
        for url in &self.urls {
            let parsed = match reqwest::Url::parse(url) {
                Ok(u) => u,
                Err(e) => {
                    failures.push(format!("{url}: {e}"));
                    continue;
                }
            };
            let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default())
            else {
                failures.push(format!("{url}: no host"));
                continue;
            };
            let addrs = match (host, port).to_socket_addrs() {
                Ok(a) => a.collect::<Vec<_>>(),
                Err(e) => {
                    failures.push(format!("{url}: {e}"));
                    continue;
                }
            };
            match addrs
                .iter()
                .map(|a| TcpStream::connect_timeout(a, timeout))
                .find(Result::is_ok)
            {
                Some(_) => return Ok(()),
                None => failures.push(format!("{url}: cannot connect")),
            }
        }
        Err(failures.join("; "))
    }

    fn ask(&self, url: &str, request: &TimestampRequest) -> Result<Vec<u8>, String> {
        let response = self
            .client
            .post(url)
            .header("Content-Type", "application/timestamp-query")
            .body(request.der().to_vec())
            .send()
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        // A time-stamp response is a few kilobytes; refuse anything absurd.
        let body = response.bytes().map_err(|e| describe(&e))?;
        if body.len() > 1 << 20 {
            return Err("the response is larger than 1 MiB".to_owned());
        }
        request
            .accept(&body, &self.roots)
            .map_err(|e| e.to_string())
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    }
}

fn nonce() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

impl Timestamper for HttpTimestamper {
    fn timestamp(&self, hash: HashAlgorithm, digest: &[u8]) -> seald_pades::Result<Vec<u8>> {
        let request = TimestampRequest::new(hash, digest, nonce())?;
        let mut failures = Vec::new();
        for url in &self.urls {
            match self.ask(url, &request) {
                Ok(token) => return Ok(token),
                Err(why) => {
                    tracing::warn!(%url, %why, "time-stamp authority failed; trying the next");
                    failures.push(format!("{url}: {why}"));
                }
            }
        }
        Err(seald_pades::Error::Timestamp(format!(
            "no time-stamp authority answered usefully ({})",
            failures.join("; ")
        )))
    }
}
