//! The token pool against a real SoftHSM2 token: every signature algorithm (verified by
//! openssl), the raw-mechanism fallbacks, many threads at once, recovery after the token's
//! sessions, login or storage disappear, a re-initialized token, wrong PINs.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use seald_pkcs11::admin::KeyAlgorithm;
use seald_pkcs11::{
    Error, KeySelector, MechanismType, Module, Pin, PoolConfig, PoolHealth, TokenPool,
};
use seald_signer::{EcCurve, HashAlgorithm, SignErrorKind, SignatureAlgorithm, Signer};
use seald_tests::{keygen, label, user_pin, OpensslVerify, SoftHsm};

const TOKEN: &str = "seal-token";

fn fast_retry() -> PoolConfig {
    PoolConfig {
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        module_reinit_interval: Duration::from_millis(100),
        ..PoolConfig::default()
    }
}

fn setup() -> (SoftHsm, Module) {
    let hsm = SoftHsm::new();
    let module = hsm.module();
    hsm.init_token(&module, TOKEN);
    (hsm, module)
}

fn openssl_verifies(
    hsm: &SoftHsm,
    key: &seald_pkcs11::PoolKey,
    message: &[u8],
    sig: &[u8],
) -> bool {
    let spki = key.public_key().to_spki_der().expect("spki");
    let algorithm = key.algorithm();
    OpensslVerify {
        dir: hsm.path(),
        spki_der: &spki,
        digest: algorithm.hash().name(),
        pss: matches!(algorithm, SignatureAlgorithm::RsaPss { .. }),
    }
    .verifies(message, sig)
}

#[test]
fn every_algorithm_signs_and_openssl_verifies() {
    let (hsm, module) = setup();
    keygen(&module, TOKEN, "rsa", KeyAlgorithm::Rsa2048);
    keygen(&module, TOKEN, "p256", KeyAlgorithm::EcP256);
    keygen(&module, TOKEN, "p384", KeyAlgorithm::EcP384);
    let pool = TokenPool::open(&module, TOKEN, user_pin(), PoolConfig::default()).expect("pool");

    use HashAlgorithm::*;
    let cases = [
        ("rsa", SignatureAlgorithm::RsaPkcs1v15 { hash: Sha256 }),
        ("rsa", SignatureAlgorithm::RsaPkcs1v15 { hash: Sha384 }),
        ("rsa", SignatureAlgorithm::RsaPkcs1v15 { hash: Sha512 }),
        ("rsa", SignatureAlgorithm::RsaPss { hash: Sha256 }),
        ("rsa", SignatureAlgorithm::RsaPss { hash: Sha512 }),
        (
            "p256",
            SignatureAlgorithm::Ecdsa {
                curve: EcCurve::P256,
                hash: Sha256,
            },
        ),
        (
            "p384",
            SignatureAlgorithm::Ecdsa {
                curve: EcCurve::P384,
                hash: Sha384,
            },
        ),
    ];
    for (key_label, algorithm) in cases {
        let key = pool.key(label(key_label), Some(algorithm)).expect("key");
        let message = format!("seal this with {algorithm}");
        let signature = Signer::sign(&key, message.as_bytes()).expect("sign");
        assert!(
            openssl_verifies(&hsm, &key, message.as_bytes(), &signature),
            "openssl rejects {algorithm}"
        );
        assert!(
            !openssl_verifies(&hsm, &key, b"another message", &signature),
            "openssl accepts {algorithm} over the wrong message"
        );
    }

    // A key cannot be asked for an algorithm of another key type.
    let err = pool
        .key(
            label("p256"),
            Some(SignatureAlgorithm::RsaPss { hash: Sha256 }),
        )
        .expect_err("EC key with RSA-PSS");
    assert!(matches!(err, Error::KeyUnusable { .. }), "{err}");
    let err = pool
        .key(
            label("p256"),
            Some(SignatureAlgorithm::Ecdsa {
                curve: EcCurve::P384,
                hash: Sha384,
            }),
        )
        .expect_err("P-256 key as P-384");
    assert!(matches!(err, Error::KeyUnusable { .. }), "{err}");
    let err = pool.key(label("missing"), None).expect_err("no such key");
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err}");
}

#[test]
fn raw_mechanisms_are_used_when_the_combined_ones_are_disabled() {
    let (hsm, module) = setup();
    keygen(&module, TOKEN, "rsa", KeyAlgorithm::Rsa3072);
    let config = PoolConfig {
        disabled_mechanisms: vec![
            MechanismType::SHA256_RSA_PKCS,
            MechanismType::SHA384_RSA_PKCS,
            MechanismType::SHA256_RSA_PKCS_PSS,
        ],
        ..PoolConfig::default()
    };
    let pool = TokenPool::open(&module, TOKEN, user_pin(), config).expect("pool");
    for algorithm in [
        SignatureAlgorithm::RsaPkcs1v15 {
            hash: HashAlgorithm::Sha256,
        },
        SignatureAlgorithm::RsaPkcs1v15 {
            hash: HashAlgorithm::Sha384,
        },
        SignatureAlgorithm::RsaPss {
            hash: HashAlgorithm::Sha256,
        },
    ] {
        let key = pool.key(label("rsa"), Some(algorithm)).expect("key");
        let signature = key.sign_blocking(b"raw path").expect("sign");
        assert!(
            openssl_verifies(&hsm, &key, b"raw path", &signature),
            "{algorithm}"
        );
    }
    // PKCS#1 v1.5 is deterministic: the raw path must give the very bytes the combined one does.
    let combined =
        TokenPool::open(&module, TOKEN, user_pin(), PoolConfig::default()).expect("pool");
    let alg = SignatureAlgorithm::RsaPkcs1v15 {
        hash: HashAlgorithm::Sha256,
    };
    let a = pool
        .key(label("rsa"), Some(alg))
        .expect("key")
        .sign_blocking(b"same")
        .expect("raw");
    let b = combined
        .key(label("rsa"), Some(alg))
        .expect("key")
        .sign_blocking(b"same")
        .expect("combined");
    assert_eq!(a, b);

    // With both the combined and the raw mechanism disabled there is nothing to sign with.
    let none = PoolConfig {
        disabled_mechanisms: vec![MechanismType::SHA256_RSA_PKCS, MechanismType::RSA_PKCS],
        ..PoolConfig::default()
    };
    let pool = TokenPool::open(&module, TOKEN, user_pin(), none).expect("pool");
    let err = pool.key(label("rsa"), Some(alg)).expect_err("no mechanism");
    assert!(
        matches!(err, Error::MechanismUnsupported { disabled: true, .. }),
        "{err}"
    );
}

#[test]
fn many_threads_sign_at_once_within_the_session_bound() {
    let (hsm, module) = setup();
    keygen(&module, TOKEN, "rsa", KeyAlgorithm::Rsa2048);
    keygen(&module, TOKEN, "p256", KeyAlgorithm::EcP256);
    let config = PoolConfig {
        max_sessions: 3,
        acquire_timeout: Duration::from_secs(30),
        ..PoolConfig::default()
    };
    let pool = TokenPool::open(&module, TOKEN, user_pin(), config).expect("pool");
    let rsa = pool.key(label("rsa"), None).expect("rsa key");
    let ec = pool.key(label("p256"), None).expect("ec key");

    let done = Arc::new(AtomicBool::new(false));
    let most_in_use = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (pool, done, most) = (pool.clone(), done.clone(), most_in_use.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let status = pool.status();
                most.fetch_max(status.sessions_in_use, Ordering::Relaxed);
                assert!(status.sessions_open <= 3, "{status:?}");
                thread::yield_now();
            }
        })
    };
    const THREADS: usize = 12;
    const EACH: usize = 150;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (rsa, ec) = (rsa.clone(), ec.clone());
            thread::spawn(move || {
                let mut rsa_sigs = Vec::new();
                for i in 0..EACH {
                    let message = format!("message {}", i % 4);
                    if (t + i) % 3 == 0 {
                        ec.sign_blocking(message.as_bytes())
                            .expect("ecdsa under load");
                    } else {
                        let sig = rsa
                            .sign_blocking(message.as_bytes())
                            .expect("rsa under load");
                        rsa_sigs.push((i % 4, sig));
                    }
                }
                rsa_sigs
            })
        })
        .collect();
    let mut by_message: Vec<Option<Vec<u8>>> = vec![None; 4];
    let mut count = 0;
    for worker in workers {
        for (m, sig) in worker.join().expect("worker panicked") {
            count += 1;
            // PKCS#1 v1.5 is deterministic: every signature of one message must be identical.
            match &by_message[m] {
                Some(first) => assert_eq!(first, &sig, "signature {m} differs under concurrency"),
                None => by_message[m] = Some(sig),
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    for (m, sig) in by_message.iter().enumerate() {
        let sig = sig.as_ref().expect("each message signed");
        assert!(openssl_verifies(
            &hsm,
            &rsa,
            format!("message {m}").as_bytes(),
            sig
        ));
    }
    let status = pool.status();
    assert_eq!(status.signatures as usize, THREADS * EACH, "{status:?}");
    assert_eq!(status.failures, 0);
    assert!(count > 0);
    assert!(
        most_in_use.load(Ordering::Relaxed) >= 2,
        "the pool never used two sessions at once"
    );
    assert!(status.sessions_open <= 3);
}

#[test]
fn signing_recovers_transparently_when_the_login_is_lost() {
    let (hsm, module) = setup();
    keygen(&module, TOKEN, "rsa", KeyAlgorithm::Rsa2048);
    let pool = TokenPool::open(&module, TOKEN, user_pin(), fast_retry()).expect("pool");
    let key = pool.key(label("rsa"), None).expect("key");
    key.sign_blocking(b"before").expect("sign before");

    // Another part of the process logs the token out: every session loses its login.
    let raw = cryptoki::context::Pkcs11::new(seald_tests::softhsm_module()).expect("module");
    let slot = raw
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            raw.get_token_info(*s)
                .map(|t| t.label() == TOKEN)
                .unwrap_or(false)
        })
        .expect("token slot");
    let session = raw.open_ro_session(slot).expect("session");
    session.logout().expect("logout");
    drop(session);

    // The next signature reconnects and retries once, invisibly to the caller.
    let sig = key.sign_blocking(b"after").expect("sign after logout");
    assert!(openssl_verifies(&hsm, &key, b"after", &sig));
    let status = pool.status();
    assert_eq!(status.health, PoolHealth::Ready);
    assert!(status.reconnections >= 1, "{status:?}");
}

/// Finds the one token directory SoftHSM2 made.
fn token_storage(hsm: &SoftHsm) -> std::path::PathBuf {
    let mut dirs: Vec<_> = fs::read_dir(hsm.token_dir())
        .expect("token dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.remove(0)
}

#[test]
fn pool_fails_fast_while_the_token_is_gone_and_recovers_by_itself() {
    let (hsm, module) = setup();
    keygen(&module, TOKEN, "rsa", KeyAlgorithm::Rsa2048);
    let pool = TokenPool::open(&module, TOKEN, user_pin(), fast_retry()).expect("pool");
    let key = pool.key(label("rsa"), None).expect("key");
    key.sign_blocking(b"before").expect("sign before");

    // The token's storage disappears under the live pool (an HSM restart, a pulled UKey).
    let storage = token_storage(&hsm);
    let parked = hsm.path().join("parked-token");
    fs::rename(&storage, &parked).expect("remove token storage");

    let err = key.sign_blocking(b"while gone").expect_err("token is gone");
    assert!(matches!(err, Error::TokenUnavailable { .. }), "{err}");
    let as_signer = Signer::sign(&key, b"while gone").expect_err("still gone");
    assert_eq!(as_signer.kind(), SignErrorKind::Unavailable);
    assert!(matches!(
        pool.status().health,
        PoolHealth::Unavailable { .. }
    ));
    assert!(
        !pool.wait_ready(Duration::from_millis(300)),
        "ready without a token"
    );

    // The token comes back: the background reconnection finds it without any request.
    fs::rename(&parked, &storage).expect("restore token storage");
    assert!(
        pool.wait_ready(Duration::from_secs(30)),
        "{:?}",
        pool.status()
    );
    let sig = key.sign_blocking(b"after").expect("sign after recovery");
    assert!(openssl_verifies(&hsm, &key, b"after", &sig));
    let status = pool.status();
    assert!(
        status.reconnections >= 1 && status.failures >= 2,
        "{status:?}"
    );
}

#[test]
fn a_reinitialized_token_is_picked_up_and_a_changed_key_is_refused() {
    let (hsm, module) = setup();
    let first_key = keygen(&module, TOKEN, "seal", KeyAlgorithm::EcP256);
    let pool = TokenPool::open(&module, TOKEN, user_pin(), fast_retry()).expect("pool");
    let old = pool.key(label("seal"), None).expect("key");
    old.sign_blocking(b"before").expect("sign before");

    // Another program re-initializes the token and makes a new key under the same label.
    let pin = hsm.secret_file("pin", seald_tests::USER_PIN);
    let so = hsm.secret_file("so", seald_tests::SO_PIN);
    seald_tests::run_ok(
        hsm.sealctl()
            .args([
                "token", "init", "--reinit", "--yes", "--label", TOKEN, "--token", TOKEN,
            ])
            .arg("--so-pin-file")
            .arg(&so)
            .arg("--pin-file")
            .arg(&pin),
    );
    seald_tests::run_ok(
        hsm.sealctl()
            .args([
                "token",
                "--token",
                TOKEN,
                "keygen",
                "--key",
                "seal",
                "--algorithm",
                "ec-p256",
            ])
            .arg("--pin-file")
            .arg(&pin),
    );

    // The old seal key must not sign with a different key than its certificate names.
    let err = old.sign_blocking(b"after").expect_err("key changed");
    match &err {
        Error::KeyUnusable { reason, .. } => assert!(reason.contains("changed"), "{err}"),
        other => panic!("expected KeyUnusable, got {other}"),
    }
    // The pool itself recovered: loading the seal again signs with the new key.
    let new = pool.key(label("seal"), None).expect("reload key");
    assert_ne!(*new.public_key(), first_key);
    let sig = new.sign_blocking(b"after").expect("sign with new key");
    assert!(openssl_verifies(&hsm, &new, b"after", &sig));
    assert_eq!(pool.status().health, PoolHealth::Ready);
}

#[test]
fn wrong_pin_and_missing_token_are_clear_errors() {
    let (_hsm, module) = setup();
    let wrong = Pin::new("000000".to_owned()).expect("pin");
    let err = TokenPool::open(&module, TOKEN, wrong, fast_retry()).expect_err("wrong PIN");
    assert!(matches!(err, Error::PinIncorrect { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("user PIN was rejected by token 'seal-token'"),
        "{text}"
    );
    assert!(
        !text.contains("000000") && !text.contains(seald_tests::USER_PIN),
        "{text}"
    );

    let err = TokenPool::open(&module, "no-such-token", user_pin(), fast_retry())
        .expect_err("missing token");
    match &err {
        Error::TokenNotFound {
            label,
            available,
            unreadable,
        } => {
            assert!(unreadable.is_empty());
            assert_eq!(label, "no-such-token");
            assert_eq!(available, &vec!["'seal-token'".to_owned()]);
        }
        other => panic!("expected TokenNotFound, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_sign_on_blocking_threads() {
    let (hsm, module) = setup();
    keygen(&module, TOKEN, "rsa", KeyAlgorithm::Rsa2048);
    let pool = TokenPool::open(&module, TOKEN, user_pin(), PoolConfig::default()).expect("pool");
    let key = pool.key(label("rsa"), None).expect("key");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let key = key.clone();
            tokio::spawn(async move { key.sign_async(format!("async {i}").into_bytes()).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let sig = task.await.expect("task").expect("sign");
        assert!(openssl_verifies(
            &hsm,
            &key,
            format!("async {i}").as_bytes(),
            &sig
        ));
    }
    let id_key = pool
        .key(KeySelector::Id(key.id().to_vec()), None)
        .expect("key by id");
    assert_eq!(id_key.label(), "rsa");
}

#[test]
fn the_certificate_chain_is_read_from_the_token() {
    let (hsm, module) = setup();
    keygen(&module, TOKEN, "seal", KeyAlgorithm::Rsa2048);
    let token = seald_pkcs11::TokenSelector::Label(TOKEN.into());
    let csr = seald_pkcs11::admin::certificate_request(
        &module,
        &token,
        &user_pin(),
        &label("seal"),
        "CN=Contract Seal,O=Example,C=CN",
    )
    .expect("csr");
    let pki = hsm.path().join("pki");
    seald_tests::pki_init(&pki);
    fs::write(hsm.path().join("seal.csr"), csr).expect("csr file");
    seald_tests::pki_issue(
        &pki,
        &hsm.path().join("seal.csr"),
        &hsm.path().join("seal.pem"),
    );
    let read = |path: std::path::PathBuf| {
        seald_pkcs11::Certificate::read_all(&fs::read(&path).expect("read"), "test")
            .expect("certificates")
    };
    let leaf = read(hsm.path().join("seal.pem")).remove(0);
    let chain = read(pki.join("chain.pem"));
    seald_pkcs11::admin::import_certificate(
        &module,
        &token,
        &user_pin(),
        &label("seal"),
        &leaf,
        &chain,
    )
    .expect("import");

    let pool = TokenPool::open(&module, TOKEN, user_pin(), PoolConfig::default()).expect("pool");
    let key = pool.key(label("seal"), None).expect("key");
    let got = key.certificate_chain();
    assert_eq!(got.len(), 3, "leaf, enterprise CA, root");
    assert_eq!(got[0], leaf.der());
    assert_eq!(got[1], chain[0].der());
    assert_eq!(got[2], chain[1].der());
    // The leaf's key is the token key the pool signs with.
    assert_eq!(&leaf.public_key().expect("leaf key"), key.public_key());
}

#[test]
fn a_request_that_finds_every_session_busy_gets_pool_busy() {
    let (_hsm, module) = setup();
    keygen(&module, TOKEN, "rsa", KeyAlgorithm::Rsa3072);
    let config = PoolConfig {
        max_sessions: 1,
        acquire_timeout: Duration::ZERO,
        ..PoolConfig::default()
    };
    let pool = TokenPool::open(&module, TOKEN, user_pin(), config).expect("pool");
    let key = pool.key(label("rsa"), None).expect("key");
    // Two threads, one session, no waiting: whoever finds the session taken is told so at
    // once; nothing else may fail.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let key = key.clone();
            thread::spawn(move || {
                let (mut ok, mut busy) = (0, 0);
                for _ in 0..60 {
                    match key.sign_blocking(b"busy?") {
                        Ok(_) => ok += 1,
                        Err(Error::PoolBusy { sessions: 1, .. }) => busy += 1,
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for worker in workers {
        let (o, b) = worker.join().expect("worker");
        ok += o;
        busy += b;
    }
    assert!(ok > 0 && busy > 0, "ok {ok}, busy {busy}");
    assert_eq!(pool.status().sessions_open, 1);
    // Through the Signer seam it is a Busy error (HTTP 503 for the daemon).
    let busy = seald_signer::SignError::from(Error::PoolBusy {
        token: TOKEN.into(),
        sessions: 1,
        waited: Duration::ZERO,
    });
    assert_eq!(busy.kind(), SignErrorKind::Busy);
}

#[test]
fn an_absent_token_does_not_keep_disturbing_other_tokens_on_the_module() {
    let (hsm, module) = setup();
    keygen(&module, TOKEN, "seal", KeyAlgorithm::EcP256);
    // Which storage directory is TOKEN's: the only one so far.
    let storage = token_storage(&hsm);
    hsm.init_token(&module, "other-token");
    seald_tests::keygen(&module, "other-token", "seal", KeyAlgorithm::EcP256);
    let config = PoolConfig {
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(10),
        module_reinit_interval: Duration::from_secs(3600),
        ..PoolConfig::default()
    };
    let gone = TokenPool::open(&module, TOKEN, user_pin(), config.clone()).expect("pool");
    let stays = TokenPool::open(&module, "other-token", user_pin(), config).expect("pool");
    let gone_key = gone.key(label("seal"), None).expect("key");
    let stays_key = stays.key(label("seal"), None).expect("key");
    gone_key.sign_blocking(b"before").expect("sign");
    stays_key.sign_blocking(b"before").expect("sign");

    fs::rename(&storage, hsm.path().join("parked")).expect("remove token storage");
    let err = gone_key.sign_blocking(b"gone").expect_err("token gone");
    assert!(matches!(err, Error::TokenUnavailable { .. }), "{err}");
    // That one re-initialization (the module reported an unreadable token) cost the other
    // pool its sessions: it reconnects once, invisibly.
    stays_key
        .sign_blocking(b"after the re-initialization")
        .expect("other token signs");
    let baseline = stays.status().reconnections;
    assert!(baseline <= 1, "{:?}", stays.status());

    // Let the absent token's pool retry many times...
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match gone.status().health {
            PoolHealth::Unavailable { attempts, .. } if attempts >= 10 => break,
            PoolHealth::Unavailable { .. } => {}
            other => panic!("unexpected health {other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "no retries happened");
        thread::sleep(Duration::from_millis(5));
    }
    // ...without re-initializing the module again: the other pool keeps its sessions.
    for _ in 0..20 {
        stays_key
            .sign_blocking(b"undisturbed")
            .expect("other token signs");
    }
    assert_eq!(
        stays.status().reconnections,
        baseline,
        "{:?}",
        stays.status()
    );
}

/// `sign_async` hands the token call to a blocking thread: on a single-threaded runtime, other
/// tasks keep running while a signature is made.
#[tokio::test(flavor = "current_thread")]
async fn signing_never_blocks_the_async_reactor() {
    let (_hsm, module) = setup();
    keygen(&module, TOKEN, "rsa", KeyAlgorithm::Rsa3072);
    let pool = TokenPool::open(&module, TOKEN, user_pin(), PoolConfig::default()).expect("pool");
    let key = pool.key(label("rsa"), None).expect("key");
    let mut ticks = 0u64;
    let ticker = async {
        loop {
            ticks += 1;
            tokio::task::yield_now().await;
        }
    };
    tokio::select! {
        biased;
        _ = ticker => unreachable!("the ticker never ends"),
        signature = key.sign_async(b"do not block".to_vec()) => {
            signature.expect("sign");
        }
    }
    // An RSA-3072 signature takes milliseconds; a blocked reactor would have ticked once.
    assert!(
        ticks > 10,
        "the reactor ticked only {ticks} times while signing"
    );
}
