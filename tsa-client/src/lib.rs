//! RFC 3161 over HTTP for B-T signatures (`sealctl sign --level b-t` and the daemon): TSAs in
//! order of preference, each within its rate budget (see [`Budget`]), a timeout each, failing
//! over to the next; a TSA that failed rests for a while behind the others. Every response is
//! checked by seald-pades before it is used.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use seald_pades::{TimestampRequest, Timestamper};
use seald_signer::HashAlgorithm;

mod pace;

pub use pace::Budget;
use pace::Pacer;

/// A time-stamp authority: its URL and, if it has one, its rate budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Authority {
    pub url: String,
    pub budget: Option<Budget>,
}

impl Authority {
    /// A TSA asked as often as needed.
    pub fn unpaced(url: impl Into<String>) -> Authority {
        Authority {
            url: url.into(),
            budget: None,
        }
    }
}

#[derive(Debug)]
struct Tsa {
    url: String,
    pacer: Option<Pacer>,
    /// After a failure: until when it is asked only once the others have failed.
    resting_until: Mutex<Option<Instant>>,
    answered: AtomicU64,
    failed: AtomicU64,
    /// Microseconds requests waited for a slot in its budget.
    waited_us: AtomicU64,
}

/// What a TSA has done so far (for metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct TsaStats {
    pub url: String,
    /// Time-stamps it gave.
    pub answered: u64,
    /// Requests it failed (no answer, an error, a response that did not check out).
    pub failed: u64,
    /// Seconds requests waited for room in its rate budget.
    pub waited_seconds: f64,
    /// Asked only after the others for now, after a failure.
    pub resting: bool,
}

impl Tsa {
    fn resting(&self, now: Instant) -> bool {
        self.resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| t > now)
    }

    fn set_resting(&self, until: Option<Instant>) {
        *self
            .resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = until;
    }

    fn wait(&self, now: Instant) -> Duration {
        self.pacer.as_ref().map_or(Duration::ZERO, |p| p.wait(now))
    }

    fn reserve(&self, now: Instant, max_wait: Duration) -> Option<Duration> {
        match &self.pacer {
            Some(p) => p.reserve(now, max_wait),
            None => Some(Duration::ZERO),
        }
    }
}

/// Time-stamps from a list of TSAs.
#[derive(Debug)]
pub struct HttpTimestamper {
    tsas: Vec<Tsa>,
    roots: Vec<Vec<u8>>,
    client: reqwest::blocking::Client,
    max_wait: Duration,
    rest: Duration,
}

impl HttpTimestamper {
    /// Asks `authorities` in this order of preference, trusting TSA certificates that chain
    /// to `roots`, waiting `timeout` at most for each answer.
    pub fn new(
        authorities: Vec<Authority>,
        roots: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(HttpTimestamper {
            tsas: authorities
                .into_iter()
                .map(|a| Tsa {
                    url: a.url,
                    pacer: a.budget.map(Pacer::new),
                    resting_until: Mutex::new(None),
                    answered: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    waited_us: AtomicU64::new(0),
                })
                .collect(),
            roots,
            client,
            max_wait: Duration::from_secs(30),
            rest: Duration::from_secs(30),
        })
    }

    /// Each TSA's counts so far, in order of preference.
    pub fn stats(&self) -> Vec<TsaStats> {
        let now = Instant::now();
        self.tsas
            .iter()
            .map(|t| TsaStats {
                url: t.url.clone(),
                answered: t.answered.load(Ordering::Relaxed),
                failed: t.failed.load(Ordering::Relaxed),
                waited_seconds: t.waited_us.load(Ordering::Relaxed) as f64 / 1e6,
                resting: t.resting(now),
            })
            .collect()
    }

    /// A request waits at most `max_wait` for a slot in some TSA's budget (default 30 s);
    /// a TSA that failed is asked after the others for `rest` (default 30 s).
    pub fn with_limits(mut self, max_wait: Duration, rest: Duration) -> Self {
        self.max_wait = max_wait;
        self.rest = rest;
        self
    }

    /// The next TSA to ask among those not `tried`, and how long to wait for its slot: healthy
    /// ones before resting ones; within each, the first (in order of preference) that is
    /// within its budget now, else the one whose slot comes soonest (within `max_wait`).
    fn pick(&self, tried: &[bool], now: Instant) -> Option<(usize, Duration)> {
        for resting in [false, true] {
            // `min_by_key` keeps the first of equal waits: the most preferred with room now.
            let soonest = (0..self.tsas.len())
                .filter(|&i| !tried[i] && self.tsas[i].resting(now) == resting)
                .min_by_key(|&i| self.tsas[i].wait(now));
            if let Some(i) = soonest {
                if let Some(wait) = self.tsas[i].reserve(now, self.max_wait) {
                    return Some((i, wait));
                }
            }
        }
        None
    }

    /// Whether some TSA accepts a TCP connection within `timeout` (for readiness checks; no
    /// time-stamp is asked for). Blocking. The error lists why each one failed.
    pub fn probe(&self, timeout: Duration) -> Result<(), String> {
        use std::net::{TcpStream, ToSocketAddrs};
        let mut failures = Vec::new();
        for url in self.tsas.iter().map(|t| &t.url) {
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
        let mut tried = vec![false; self.tsas.len()];
        while let Some((i, wait)) = self.pick(&tried, Instant::now()) {
            tried[i] = true;
            let tsa = &self.tsas[i];
            if !wait.is_zero() {
                tsa.waited_us
                    .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
                std::thread::sleep(wait);
            }
            match self.ask(&tsa.url, &request) {
                Ok(token) => {
                    tsa.answered.fetch_add(1, Ordering::Relaxed);
                    tsa.set_resting(None);
                    return Ok(token);
                }
                Err(why) => {
                    tracing::warn!(url = %tsa.url, %why, rest_seconds = self.rest.as_secs(),
                        "time-stamp authority failed; trying the next, and this one after the others for a while");
                    tsa.failed.fetch_add(1, Ordering::Relaxed);
                    tsa.set_resting(Some(Instant::now() + self.rest));
                    failures.push(format!("{}: {why}", tsa.url));
                }
            }
        }
        let untried = tried.iter().filter(|t| !**t).count();
        if untried > 0 {
            failures.push(format!(
                "{untried} more had no room in their rate budget within {} s",
                self.max_wait.as_secs()
            ));
        }
        Err(seald_pades::Error::Timestamp(format!(
            "no time-stamp authority answered usefully ({})",
            failures.join("; ")
        )))
    }
}
