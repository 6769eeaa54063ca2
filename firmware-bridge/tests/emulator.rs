//! The host side against the emulator on a pseudo-terminal pair: every command of both
//! profiles, every fault mode (a typed error each, within a bounded time, and the next command
//! works), one operation at a time, and reconnecting after an unplug.

use std::sync::Arc;
use std::time::{Duration, Instant};

use p256::ecdsa::signature::Verifier as _;
use seald_firmware_bridge::emulator::{Emulator, EmulatorConfig, Fault, Touch};
use seald_firmware_bridge::{
    commands, port, Device, DeviceConfig, Error, Link, Mode, Profile, PublicKey, Selector, Status,
};

const SEED: [u8; 32] = [7; 32];
/// A stand-in for the TKey signer's binary (the emulator runs its own signer whatever it is).
fn app() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn emulator(profile: Profile, seed: [u8; 32], dir: &tempfile::TempDir) -> Emulator {
    let mut c = EmulatorConfig::new(profile, seed);
    c.link = Some(dir.path().join("device"));
    Emulator::start(c).expect("emulator")
}

fn device(profile: Profile, e: &Emulator) -> Device {
    let mut c = DeviceConfig::new("seal-device", Selector::Path(e.path().to_owned()), profile);
    c.app = Some(app());
    c.touch_timeout = Duration::from_secs(3);
    c.busy_timeout = Duration::from_secs(10);
    Device::new(c)
}

fn verify_p256(key: &PublicKey, message: &[u8], der: &[u8]) -> bool {
    let PublicKey::P256(_) = key else {
        return false;
    };
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key.spki_bytes()).expect("key");
    let sig = p256::ecdsa::DerSignature::from_bytes(der).expect("DER");
    vk.verify(message, &sig).is_ok()
}

#[test]
fn the_firmware_loads_the_signer_app_with_its_digest_and_the_signer_signs_after_a_touch() {
    let dir = tempfile::tempdir().expect("dir");
    let e = emulator(Profile::Ed25519, SEED, &dir);
    let mut link = Link::new(port::open(e.path()).expect("open"));
    let Mode::Firmware(nv) = commands::probe(&mut link).expect("probe") else {
        panic!("firmware mode expected")
    };
    assert_eq!((nv.name().as_str(), nv.version), ("tk1 mkdf", 5));
    let udi = commands::udi(&mut link).expect("udi");
    assert_eq!(udi.vendor, 0x1337);
    // Too large an app is refused by the host before anything is sent.
    let big = vec![0u8; 0x20001];
    assert!(matches!(
        commands::load_app(&mut link, &big, None),
        Err(Error::InvalidInput(_))
    ));
    let digest = commands::load_app(&mut link, &app(), None).expect("load");
    assert_eq!(
        digest,
        <[u8; 32]>::from(<blake2::Blake2s256 as blake2::Digest>::digest(app()))
    );
    // Now the app runs: it answers the firmware probe with NOK.
    assert_eq!(commands::probe(&mut link).expect("probe"), Mode::App);
    let nv = commands::app_name_version(&mut link).expect("name");
    assert_eq!((nv.name().as_str(), nv.version), ("tk1 sign", 3));
    let pk = commands::ed25519_public_key(&mut link).expect("pubkey");
    // A message over several 127-byte chunks.
    let message: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let sig = commands::ed25519_sign(&mut link, &message, Duration::from_secs(3)).expect("sign");
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).expect("key");
    vk.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig))
        .expect("the signature verifies");
    assert!(matches!(
        commands::ed25519_sign(&mut link, &vec![0; 4097], Duration::from_secs(1)),
        Err(Error::InvalidInput(_))
    ));
    // The key depends on the device secret and the app, and on nothing else.
    drop(link);
    let dir2 = tempfile::tempdir().expect("dir");
    let e2 = emulator(Profile::Ed25519, SEED, &dir2);
    let same = device(Profile::Ed25519, &e2);
    assert_eq!(same.public_key().expect("key"), PublicKey::Ed25519(pk));
    let dir3 = tempfile::tempdir().expect("dir");
    let e3 = emulator(Profile::Ed25519, [8; 32], &dir3);
    let other = device(Profile::Ed25519, &e3);
    assert_ne!(other.public_key().expect("key"), PublicKey::Ed25519(pk));
}

#[test]
fn a_user_supplied_secret_gives_another_key_and_the_same_one_each_time() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("uss");
    std::fs::write(&file, "correct horse battery staple\n").expect("uss");
    let uss = seald_firmware_bridge::uss_from_file(&file).expect("uss");
    assert_eq!(
        *uss,
        *seald_firmware_bridge::uss_from_passphrase(b"correct horse battery staple"),
        "the trailing newline is not part of the passphrase"
    );
    std::fs::write(&file, "\n").expect("uss");
    assert!(seald_firmware_bridge::uss_from_file(&file).is_err());
    let key_with = |uss: Option<zeroize::Zeroizing<[u8; 32]>>| {
        let dir = tempfile::tempdir().expect("dir");
        let e = emulator(Profile::Ed25519, SEED, &dir);
        let mut c = DeviceConfig::new("d", Selector::Path(e.path().to_owned()), Profile::Ed25519);
        c.app = Some(app());
        c.uss = uss;
        Device::new(c).public_key().expect("key")
    };
    let plain = key_with(None);
    let secret = key_with(Some(seald_firmware_bridge::uss_from_passphrase(b"s3cret")));
    assert_ne!(plain, secret);
    assert_eq!(
        secret,
        key_with(Some(seald_firmware_bridge::uss_from_passphrase(b"s3cret")))
    );
    // Neither the secret nor the app's bytes are printed.
    let mut shown = DeviceConfig::new("d", Selector::Path(file), Profile::Ed25519);
    let secret_uss = seald_firmware_bridge::uss_from_passphrase(b"s3cret");
    let secret_hex = hex::encode(*secret_uss);
    shown.uss = Some(secret_uss);
    shown.app = Some(app());
    let text = format!("{shown:?}");
    assert!(
        !text.contains(&secret_hex) && !text.contains("[0, 7, 14"),
        "{text}"
    );
}

#[test]
fn a_p256_device_signs_sha256_digests_that_verify_and_reports_its_status() {
    let dir = tempfile::tempdir().expect("dir");
    let e = emulator(Profile::P256, SEED, &dir);
    let d = Arc::new(device(Profile::P256, &e));
    assert_eq!(d.status(), Status::Absent, "not connected before first use");
    assert_eq!(d.check(), Status::Ready);
    let info = d.info().expect("info");
    assert_eq!(
        (info.app.name().as_str(), info.loaded_app),
        ("sealp256", false)
    );
    let key = d.public_key().expect("key");
    let der = d.sign(b"signed attributes", Some(&key)).expect("sign");
    assert!(verify_p256(&key, b"signed attributes", &der));
    // Another key expected: nothing is signed.
    let other = PublicKey::P256([1; 64]);
    assert!(matches!(
        d.sign(b"x", Some(&other)),
        Err(Error::KeyMismatch)
    ));
    // While it waits for the touch, it says so.
    e.set_touch(Touch::After(Duration::from_millis(800)));
    let signer = {
        let d = d.clone();
        std::thread::spawn(move || d.sign(b"touch me", None))
    };
    let waiting = wait_until(Duration::from_secs(3), || {
        d.status() == Status::WaitingForTouch
    });
    assert!(waiting, "status {:?}", d.status());
    let der = signer
        .join()
        .expect("thread")
        .expect("signed after the touch");
    assert!(verify_p256(&key, b"touch me", &der));
    assert_eq!(d.status(), Status::Ready);
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ok()
}

#[test]
fn every_fault_is_a_typed_error_in_bounded_time_and_the_next_command_works() {
    let dir = tempfile::tempdir().expect("dir");
    let e = emulator(Profile::P256, SEED, &dir);
    let d = device(Profile::P256, &e);
    let key = d.public_key().expect("key");
    type Check = fn(&Error) -> bool;
    let cases: [(Fault, Check); 5] = [
        (Fault::DropByte, |e| {
            matches!(
                e,
                Error::ShortFrame {
                    expected: 128,
                    got: 127
                }
            )
        }),
        (Fault::WrongFrameId, |e| matches!(e, Error::FrameId { .. })),
        (Fault::Nok, |e| matches!(e, Error::Nok { .. })),
        (Fault::Garbage, |e| matches!(e, Error::BadHeader(0xff))),
        (Fault::Stall, |e| matches!(e, Error::TouchTimeout { .. })),
    ];
    for (fault, expected) in cases {
        e.inject(fault);
        let started = Instant::now();
        let err = d.sign(b"m", Some(&key)).expect_err("the fault shows");
        assert!(expected(&err), "{fault:?}: {err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{fault:?} took {:?}",
            started.elapsed()
        );
        // The line is drained and the device is still connected: the next signature works.
        let der = d
            .sign(b"after", Some(&key))
            .unwrap_or_else(|e| panic!("after {fault:?}: {e}"));
        assert!(verify_p256(&key, b"after", &der));
        assert_eq!(d.status(), Status::Ready);
    }
    // A stall on a command with a short answer time is a plain timeout. (One client at a
    // time: the device's connection goes first.)
    drop(d);
    let mut link = Link::new(port::open(e.path()).expect("open"));
    e.inject(Fault::Stall);
    let started = Instant::now();
    assert!(matches!(
        commands::app_name_version(&mut link),
        Err(Error::Timeout { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(commands::app_name_version(&mut link).is_ok());
}

#[test]
fn no_touch_is_reported_as_such_whether_the_device_or_the_host_gives_up_first() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = EmulatorConfig::new(Profile::Ed25519, SEED);
    c.link = Some(dir.path().join("device"));
    c.touch = Touch::Never;
    c.touch_timeout = Duration::from_secs(1);
    let e = Emulator::start(c).expect("emulator");
    let d = device(Profile::Ed25519, &e);
    // The device gives up after 1 s and says so (status BAD).
    let started = Instant::now();
    assert!(matches!(
        d.sign(b"m", None),
        Err(Error::TouchTimeout { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
    // The host gives up first (3 s) when the device would wait 10 s.
    let dir = tempfile::tempdir().expect("dir");
    let mut c = EmulatorConfig::new(Profile::P256, SEED);
    c.link = Some(dir.path().join("device"));
    c.touch = Touch::Never;
    c.touch_timeout = Duration::from_secs(10);
    let e = Emulator::start(c).expect("emulator");
    let d = device(Profile::P256, &e);
    let started = Instant::now();
    assert!(matches!(
        d.sign(b"m", None),
        Err(Error::TouchTimeout { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn one_operation_at_a_time_and_a_caller_that_cannot_wait_is_told_busy() {
    let dir = tempfile::tempdir().expect("dir");
    let e = emulator(Profile::P256, SEED, &dir);
    let mut c = DeviceConfig::new("d", Selector::Path(e.path().to_owned()), Profile::P256);
    c.busy_timeout = Duration::from_millis(200);
    let d = Arc::new(Device::new(c));
    d.check();
    e.set_touch(Touch::After(Duration::from_millis(1000)));
    let first = {
        let d = d.clone();
        std::thread::spawn(move || d.sign(b"first", None))
    };
    assert!(wait_until(Duration::from_secs(2), || d.status()
        == Status::WaitingForTouch));
    assert!(matches!(d.sign(b"second", None), Err(Error::Busy)));
    assert!(first.join().expect("thread").is_ok());
    // Waiting long enough, callers take turns: every signature comes, one after the other.
    drop(d);
    e.set_touch(Touch::After(Duration::from_millis(100)));
    let patient = Arc::new(device(Profile::P256, &e));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let d = patient.clone();
            std::thread::spawn(move || d.sign(format!("m{i}").as_bytes(), None))
        })
        .collect();
    for t in threads {
        assert!(t.join().expect("thread").is_ok());
    }
}

#[test]
fn an_unplugged_device_is_absent_and_reconnects_when_it_comes_back() {
    let dir = tempfile::tempdir().expect("dir");
    let mut e = emulator(Profile::Ed25519, SEED, &dir);
    let d = device(Profile::Ed25519, &e);
    let key = d.public_key().expect("key");
    assert!(
        d.info().expect("info").loaded_app,
        "the host loaded the app"
    );
    // Unplugged in the middle of a signature.
    e.inject(Fault::Unplug);
    let err = d.sign(b"m", Some(&key)).expect_err("unplugged");
    assert!(err.is_disconnect(), "{err:?}");
    assert_eq!(d.status(), Status::Absent);
    e.unplug();
    assert!(matches!(d.sign(b"m", Some(&key)), Err(Error::Absent(_))));
    assert_eq!(d.check(), Status::Absent);
    // Back (a new terminal, in firmware mode as after a power-up): the host loads the app again
    // and the key is the same.
    e.replug().expect("replug");
    // Readiness checks look for it again (at most every 2 s) and find it.
    assert!(wait_until(Duration::from_secs(5), || d.check() == Status::Ready));
    let sig = d
        .sign(b"again", Some(&key))
        .expect("signed after the reconnect");
    let PublicKey::Ed25519(pk) = key else {
        panic!()
    };
    ed25519_dalek::VerifyingKey::from_bytes(&pk)
        .expect("key")
        .verify_strict(
            b"again",
            &ed25519_dalek::Signature::from_bytes(&sig.try_into().expect("64")),
        )
        .expect("verifies");
    // Unplugged while idle: a readiness check notices, without a signature failing first.
    e.unplug();
    assert!(wait_until(Duration::from_secs(5), || d.check() == Status::Absent));
}

#[test]
fn a_device_running_another_app_or_needing_an_app_it_was_not_given_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let e = emulator(Profile::P256, SEED, &dir);
    let wrong = device(Profile::Ed25519, &e);
    assert!(matches!(wrong.public_key(), Err(Error::WrongApp { .. })));
    let dir = tempfile::tempdir().expect("dir");
    let e = emulator(Profile::Ed25519, SEED, &dir);
    let c = DeviceConfig::new("d", Selector::Path(e.path().to_owned()), Profile::Ed25519);
    assert!(matches!(Device::new(c).public_key(), Err(Error::NoApp)));
    let nothing = DeviceConfig::new(
        "d",
        Selector::Path(dir.path().join("absent")),
        Profile::P256,
    );
    assert!(matches!(
        Device::new(nothing).public_key(),
        Err(Error::Absent(_))
    ));
}

#[test]
fn the_emulator_binary_serves_a_host_and_takes_commands() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().expect("dir");
    let link = dir.path().join("tkey");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_seald-device-emulator"))
        .args(["--profile", "p256", "--seed", &hex::encode(SEED), "--link"])
        .arg(&link)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("emulator");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("path");
    assert_eq!(line.trim(), link.display().to_string());
    line.clear();
    out.read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "READY");
    let d = Device::new(DeviceConfig::new(
        "d",
        Selector::Path(link.clone()),
        Profile::P256,
    ));
    let key = d.public_key().expect("key");
    // The same seed gives the library emulator's key.
    let dir2 = tempfile::tempdir().expect("dir");
    let e2 = emulator(Profile::P256, SEED, &dir2);
    let lib = device(Profile::P256, &e2);
    assert_eq!(lib.public_key().expect("key"), key);
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "fault nok").expect("command");
    line.clear();
    out.read_line(&mut line).expect("answer");
    assert_eq!(line.trim(), "OK");
    assert!(matches!(d.sign(b"m", None), Err(Error::Nok { .. })));
    assert!(d.sign(b"m", None).is_ok());
    writeln!(stdin, "quit").expect("quit");
    assert!(child.wait().expect("exit").success());
}

#[test]
fn unplugged_while_it_waits_for_a_touch_the_next_signature_sees_it_gone() {
    let dir = tempfile::tempdir().expect("dir");
    let mut e = emulator(Profile::P256, SEED, &dir);
    let mut c = DeviceConfig::new("d", Selector::Path(e.path().to_owned()), Profile::P256);
    c.touch_timeout = Duration::from_secs(1);
    let d = Device::new(c);
    e.set_touch(Touch::Never);
    assert!(matches!(
        d.sign(b"m", None),
        Err(Error::TouchTimeout { .. })
    ));
    e.set_touch(Touch::Immediately);
    e.unplug();
    let err = d.sign(b"m", None).expect_err("gone");
    assert!(err.is_disconnect(), "{err:?}");
    assert_eq!(d.status(), Status::Absent);
}
