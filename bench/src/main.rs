//! seald benchmarks against the physical limit, in one run.
//!
//! `seald-bench pkcs11`: `C_Sign` throughput through seald's token pool against a bare loop over
//! `cryptoki` on the same SoftHSM2 token, with 1 and 2 sessions, for RSA-2048 and P-256. Runs
//! alternate (bare, pool, bare, pool, …) and the median of each is reported, so both see the
//! same machine conditions.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use seald_pkcs11::admin::{self, KeyAlgorithm};
use seald_pkcs11::{KeySelector, Module, Pin, PoolConfig, TokenPool, TokenSelector};

const TOKEN: &str = "bench";
const PIN: &str = "bench-pin-1";
const MESSAGE: [u8; 128] = [0x5a; 128];

struct Options {
    module: PathBuf,
    seconds: f64,
    rounds: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: seald-bench pkcs11 [--module PATH] [--seconds S] [--rounds N]\n\
         Measures C_Sign/s through seald's pool against a bare cryptoki loop on a fresh SoftHSM2 token."
    );
    std::process::exit(2)
}

fn parse() -> Options {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("pkcs11") {
        usage();
    }
    let mut options = Options {
        module: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        seconds: 3.0,
        rounds: 3,
    };
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--module" => options.module = PathBuf::from(value),
            "--seconds" => options.seconds = value.parse().unwrap_or_else(|_| usage()),
            "--rounds" => options.rounds = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    options
}

/// Runs `work` on `threads` threads for `duration`; returns operations per second.
fn measure<F>(threads: usize, duration: Duration, work: F) -> f64
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
    let began = Instant::now();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let total: u64 = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .sum();
    total as f64 / began.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let options = parse();
    let dir = std::env::temp_dir().join(format!("seald-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tokens")).expect("temp dir");
    std::fs::write(
        dir.join("softhsm2.conf"),
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .expect("softhsm2.conf");
    std::env::set_var("SOFTHSM2_CONF", dir.join("softhsm2.conf"));

    let module = Module::load(&options.module).expect("load module");
    let pin = Pin::new(PIN.to_owned()).expect("pin");
    let free = module
        .slots()
        .expect("slots")
        .into_iter()
        .find(|s| s.token.as_ref().is_some_and(|t| !t.initialized))
        .expect("free slot");
    admin::init_token(
        &module,
        &TokenSelector::Slot(free.slot),
        TOKEN,
        &Pin::new("bench-so-1".to_owned()).expect("pin"),
        &pin,
        false,
    )
    .expect("init token");
    let token = TokenSelector::Label(TOKEN.to_owned());
    admin::generate_key(&module, &token, &pin, "rsa", KeyAlgorithm::Rsa2048).expect("rsa key");
    admin::generate_key(&module, &token, &pin, "p256", KeyAlgorithm::EcP256).expect("ec key");

    // The bare loop: cryptoki on the same (already initialized) library.
    let raw = Pkcs11::new(&options.module).expect("cryptoki");
    let _ = raw.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = raw
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            raw.get_token_info(*s)
                .map(|t| t.label() == TOKEN)
                .unwrap_or(false)
        })
        .expect("bench token");
    let anchor = raw.open_ro_session(slot).expect("anchor");
    let _ = anchor.login(UserType::User, Some(&AuthPin::from(PIN)));
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(MESSAGE).to_vec()
    };

    let duration = Duration::from_secs_f64(options.seconds);
    println!("| key | sessions | bare cryptoki (sign/s) | seald pool (sign/s) | pool / bare |");
    println!("|---|---|---|---|---|");
    for (label, key_name) in [
        ("rsa", "RSA-2048 PKCS#1 v1.5 SHA-256"),
        ("p256", "P-256 ECDSA SHA-256"),
    ] {
        for sessions in [1usize, 2] {
            let pool = TokenPool::open(
                &module,
                TOKEN,
                pin.clone(),
                PoolConfig {
                    max_sessions: sessions,
                    ..PoolConfig::default()
                },
            )
            .expect("pool");
            let key = pool
                .key(KeySelector::Label(label.to_owned()), None)
                .expect("pool key");
            let (mut bare, mut pooled) = (Vec::new(), Vec::new());
            let run_bare = || {
                measure(sessions, duration, |_| {
                    let session = raw.open_ro_session(slot).expect("session");
                    let handle = session
                        .find_objects(&[
                            Attribute::Class(ObjectClass::PRIVATE_KEY),
                            Attribute::Label(label.as_bytes().to_vec()),
                        ])
                        .expect("find")[0];
                    let rsa = label == "rsa";
                    // SoftHSM2 offers only raw ECDSA: the bare loop signs a digest.
                    let input = if rsa {
                        MESSAGE.to_vec()
                    } else {
                        digest.clone()
                    };
                    Box::new(move || {
                        let mechanism = if rsa {
                            Mechanism::Sha256RsaPkcs
                        } else {
                            Mechanism::Ecdsa
                        };
                        session.sign(&mechanism, handle, &input).expect("C_Sign");
                    })
                })
            };
            let run_pool = || {
                measure(sessions, duration, |_| {
                    let key = key.clone();
                    Box::new(move || {
                        key.sign_blocking(&MESSAGE).expect("pool sign");
                    })
                })
            };
            for round in 0..options.rounds {
                // Alternate which goes first, so neither always runs on a warmer machine.
                if round % 2 == 0 {
                    bare.push(run_bare());
                    pooled.push(run_pool());
                } else {
                    pooled.push(run_pool());
                    bare.push(run_bare());
                }
            }
            let (b, p) = (median(bare), median(pooled));
            println!(
                "| {key_name} | {sessions} | {b:.0} | {p:.0} | {:.1} % |",
                100.0 * p / b
            );
        }
    }
    drop(anchor);
    let _ = std::fs::remove_dir_all(&dir);
}
