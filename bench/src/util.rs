//! Measuring helpers shared by the benchmarks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// CPU time (user + system) this process has used, from /proc/self/stat.
pub fn cpu_time() -> Duration {
    cpu_time_of("self")
}

/// CPU time (user + system) of process `pid` ("self" for this one), from /proc/PID/stat.
pub fn cpu_time_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces, inside parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    let clock_ticks = 100; // sysconf(_SC_CLK_TCK) on Linux
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / clock_ticks as f64)
}

pub struct Rate {
    pub per_second: f64,
    pub cpu_per_op: Duration,
}

/// Runs `work` on `threads` threads for `duration`; returns the rate and the CPU time per
/// operation.
pub fn measure<F>(threads: usize, duration: Duration, work: F) -> Rate
where
    F: Fn(usize) -> Box<dyn FnMut() + Send> + Sync,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mut op = work(t);
            let (stop, start) = (stop.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op();
                    n += 1;
                }
                n
            })
        })
        .collect();
    start.wait();
    let (began, cpu_began) = (Instant::now(), cpu_time());
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let total: u64 = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .sum();
    Rate {
        per_second: total as f64 / began.elapsed().as_secs_f64(),
        cpu_per_op: (cpu_time() - cpu_began) / total.max(1) as u32,
    }
}

/// The median; of an even count, the mean of the two middle values.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 0 {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    } else {
        values[n / 2]
    }
}

/// The bare token: `cryptoki` on the same (already initialized) library, for the `C_Sign`
/// loops seald is compared with.
pub struct BareToken {
    pub raw: cryptoki::context::Pkcs11,
    pub slot: cryptoki::slot::Slot,
}

impl BareToken {
    /// Finds the token labelled `label` and logs in. Keep the returned session open while
    /// signing: closing a token's last session logs it out.
    pub fn open(
        module: &std::path::Path,
        label: &str,
        pin: &str,
    ) -> (BareToken, cryptoki::session::Session) {
        use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
        let raw = Pkcs11::new(module).expect("cryptoki");
        let _ = raw.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        let slot = raw
            .get_slots_with_initialized_token()
            .expect("slots")
            .into_iter()
            .find(|s| {
                raw.get_token_info(*s)
                    .map(|t| t.label() == label)
                    .unwrap_or(false)
            })
            .expect("the bench token");
        let anchor = raw.open_ro_session(slot).expect("anchor session");
        let _ = anchor.login(
            cryptoki::session::UserType::User,
            Some(&cryptoki::types::AuthPin::from(pin)),
        );
        (BareToken { raw, slot }, anchor)
    }

    /// A new session and the handle of the private key labelled `key` in it.
    pub fn session_with_key(
        &self,
        key: &str,
    ) -> (cryptoki::session::Session, cryptoki::object::ObjectHandle) {
        use cryptoki::object::{Attribute, ObjectClass};
        let session = self.raw.open_ro_session(self.slot).expect("session");
        let handle = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(key.as_bytes().to_vec()),
            ])
            .expect("find the key")[0];
        (session, handle)
    }
}

/// Peak resident memory of `pid` since its last reset (`clear_refs` 5), in KiB (VmHWM).
pub fn peak_rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Whether a throughput budget against bare `C_Sign` is judged with `sessions` sessions of an
/// in-process software token. Only while the bare loop leaves a core free: once bare
/// `C_Sign` alone keeps every core busy, the token's "rate" is the whole machine, and any
/// cycle spent on TLS, PDF work or the audit log comes off it whatever seald does. On a
/// hardware token `C_Sign` runs off the host's cores and the one-session figure is the one
/// that says how much seald adds.
pub fn judged(sessions: usize) -> bool {
    // A host whose cores cannot be counted is judged rather than excused.
    match std::thread::available_parallelism() {
        Ok(cores) => sessions < cores.get(),
        Err(_) => true,
    }
}

/// Why a figure with `sessions` sessions is reported but not judged.
pub fn not_judged(sessions: usize) -> String {
    format!(
        "{sessions} session(s): reported, not judged: bare C_Sign with {sessions} session(s) keeps all {} cores of this host busy by itself (SoftHSM2 signs on the host's CPU)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}
