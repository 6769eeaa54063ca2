//! `seald-bench pkcs11`: `C_Sign` throughput through seald's token pool against a bare loop over
//! `cryptoki` on the same SoftHSM2 token, with 1 and 2 sessions, for RSA-2048 and P-256. Runs
//! alternate (bare, pool, bare, pool, …) and the median of each is reported, so both see the
//! same machine conditions.

use std::path::PathBuf;
use std::time::Duration;

use cryptoki::mechanism::Mechanism;
use seald_pkcs11::admin::{self, KeyAlgorithm};
use seald_pkcs11::{KeySelector, Module, Pin, PoolConfig, TokenPool, TokenSelector};

use crate::util::{measure, median, BareToken, Rate};

const TOKEN: &str = "bench";
const PIN: &str = "bench-pin-1";
const MESSAGE: [u8; 128] = [0x5a; 128];

struct Options {
    module: PathBuf,
    seconds: f64,
    rounds: usize,
    /// The budget: the pool may cost at most this share of the bare rate.
    max_overhead: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: seald-bench pkcs11 [--module PATH] [--seconds S] [--rounds N] [--max-overhead PCT]\n\
         Measures C_Sign/s through seald's pool against a bare cryptoki loop on a fresh SoftHSM2\n\
         token; exits 1 if the pool costs more than PCT (default 5) % of the bare rate."
    );
    std::process::exit(2)
}

fn parse(args: Vec<String>) -> Options {
    let mut args = args.into_iter();
    let mut options = Options {
        module: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        seconds: 3.0,
        rounds: 5,
        max_overhead: 5.0,
    };
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--module" => options.module = PathBuf::from(value),
            "--seconds" => options.seconds = value.parse().unwrap_or_else(|_| usage()),
            "--rounds" => options.rounds = value.parse().unwrap_or_else(|_| usage()),
            "--max-overhead" => options.max_overhead = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    options
}

pub fn run(args: Vec<String>) {
    let options = parse(args);
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
    let (bare_token, _anchor) = BareToken::open(&options.module, TOKEN, PIN);
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(MESSAGE).to_vec()
    };

    let duration = Duration::from_secs_f64(options.seconds);
    let mut over_budget = Vec::new();
    println!(
        "| key | sessions | bare cryptoki (sign/s, median) | seald pool (sign/s, median) | pool / bare (median of paired rounds) | CPU µs per signature, bare / pool |"
    );
    println!("|---|---|---|---|---|---|");
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
                    let (session, handle) = bare_token.session_with_key(label);
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
            let cpu = |rates: &[Rate]| {
                median(
                    rates
                        .iter()
                        .map(|r| r.cpu_per_op.as_secs_f64() * 1e6)
                        .collect(),
                )
            };
            let (b, p) = (
                median(bare.iter().map(|r| r.per_second).collect()),
                median(pooled.iter().map(|r| r.per_second).collect()),
            );
            // Each round's pool run is compared with the bare run next to it in time, which
            // cancels slow drifts of the machine; the median of those ratios is the verdict.
            let ratio = median(
                bare.iter()
                    .zip(&pooled)
                    .map(|(b, p)| p.per_second / b.per_second)
                    .collect(),
            );
            println!(
                "| {key_name} | {sessions} | {b:.0} | {p:.0} | {:.1} % | {:.0} / {:.0} |",
                100.0 * ratio,
                cpu(&bare),
                cpu(&pooled)
            );
            if 100.0 * (1.0 - ratio) > options.max_overhead {
                over_budget.push(format!("{key_name}, {sessions} session(s)"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if over_budget.is_empty() {
        println!(
            "\nwithin budget: the pool costs less than {} % of the bare rate everywhere",
            options.max_overhead
        );
    } else {
        println!(
            "\nOVER BUDGET (> {} %): {}",
            options.max_overhead,
            over_budget.join("; ")
        );
        std::process::exit(1);
    }
}
