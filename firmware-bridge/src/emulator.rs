//! A signing device on a pseudo-terminal, for tests and rehearsals: the TKey firmware (name and
//! version, device id, loading an app and reporting its BLAKE2s digest), then the Ed25519 signer
//! app or seald's P-256 seal-appliance app. Keys derive deterministically from a seed the way a
//! TKey derives its compound device identifier (BLAKE2s of the secret, the app's digest and the
//! user-supplied secret), so the same seed and app give the same key every time.
//!
//! Fault modes act on the next command: a dropped byte, a wrong frame id, NOK, garbage before
//! the answer, no answer at all (stall), or the device unplugged. A touch can come at once,
//! after a while, or never.

use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blake2::{Blake2s256, Digest};
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use serialport::{SerialPort, TTYPort};

use crate::frame::{Endpoint, Frame, Header, Len};
use crate::proto::{fw, p256 as p256_app, signer, STATUS_BAD, STATUS_OK, STATUS_TOUCH_TIMEOUT};
use crate::Profile;

/// When the user touches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// As soon as it asks.
    Immediately,
    /// After a while.
    After(Duration),
    /// Never: the device gives up after its own touch timeout.
    Never,
}

/// A fault for the next command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The answer's last byte is lost.
    DropByte,
    /// The answer carries another frame id.
    WrongFrameId,
    /// The device answers NOK instead (and does nothing).
    Nok,
    /// Bytes that are no frame come before the answer.
    Garbage,
    /// No answer at all.
    Stall,
    /// The device is unplugged while the command is under way.
    Unplug,
}

/// How the emulated device behaves.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub profile: Profile,
    /// The device secret keys derive from.
    pub seed: [u8; 32],
    /// Start in firmware mode (the host loads an app, as with a TKey), else with the app running.
    pub start_in_firmware: bool,
    pub touch: Touch,
    /// How long the app waits for a touch before it answers that none came.
    pub touch_timeout: Duration,
    /// A symbolic link kept pointing at the current pseudo-terminal (it changes on a replug).
    pub link: Option<PathBuf>,
}

impl EmulatorConfig {
    pub fn new(profile: Profile, seed: [u8; 32]) -> EmulatorConfig {
        EmulatorConfig {
            profile,
            seed,
            start_in_firmware: profile == Profile::Ed25519,
            touch: Touch::Immediately,
            touch_timeout: Duration::from_secs(30),
            link: None,
        }
    }
}

#[derive(Debug, Default)]
struct Control {
    faults: Vec<Fault>,
    touch: Option<Touch>,
    /// Frames received, as (endpoint, code), for tests.
    seen: Vec<(u8, u8)>,
}

/// A running emulated device.
#[derive(Debug)]
pub struct Emulator {
    config: EmulatorConfig,
    control: Arc<Mutex<Control>>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Emulator {
    /// Plugs the device in: a new pseudo-terminal served by a thread.
    pub fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let mut e = Emulator {
            config,
            control: Arc::new(Mutex::new(Control::default())),
            running: None,
        };
        e.plug()?;
        Ok(e)
    }

    fn plug(&mut self) -> io::Result<()> {
        let (master, slave) = TTYPort::pair().map_err(io::Error::from)?;
        // Not inherited by processes started later (a daemon under test, say): an unplug must
        // close the terminal for good.
        for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(io::Error::from)?;
        }
        let pts = PathBuf::from(
            slave
                .name()
                .ok_or_else(|| io::Error::other("the pseudo-terminal has no name"))?,
        );
        let path = match &self.config.link {
            Some(link) => {
                let tmp = link.with_extension("new");
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(&pts, &tmp)?;
                std::fs::rename(&tmp, link)?;
                link.clone()
            }
            None => pts,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut device = Machine::new(&self.config, self.control.clone());
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("device-emulator".to_owned())
            .spawn(move || device.serve(master, slave, &thread_stop))?;
        self.running = Some(Running {
            path,
            stop,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Where a host opens the device.
    pub fn path(&self) -> &Path {
        self.running
            .as_ref()
            .map_or_else(|| Path::new("/nonexistent"), |r| r.path.as_path())
    }

    /// The next command meets `fault`.
    pub fn inject(&self, fault: Fault) {
        lock(&self.control).faults.push(fault);
    }

    pub fn set_touch(&self, touch: Touch) {
        lock(&self.control).touch = Some(touch);
    }

    /// The (endpoint, code) of every frame received so far.
    pub fn seen(&self) -> Vec<(u8, u8)> {
        lock(&self.control).seen.clone()
    }

    /// Unplugs the device now: its pseudo-terminal closes (and its link, if any, dangles).
    pub fn unplug(&mut self) {
        if let Some(mut r) = self.running.take() {
            r.stop.store(true, Ordering::SeqCst);
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Plugs it in again: a new pseudo-terminal, in the state a power-up gives.
    pub fn replug(&mut self) -> io::Result<()> {
        self.unplug();
        self.plug()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.unplug();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Firmware,
    Loading {
        size: usize,
    },
    App,
    /// A protocol violation: like the real device, it answers nothing more until unplugged.
    Halted,
}

/// What the device does with frames.
struct Machine {
    profile: Profile,
    seed: [u8; 32],
    touch: Touch,
    touch_timeout: Duration,
    control: Arc<Mutex<Control>>,
    state: State,
    app: Vec<u8>,
    uss: Option<[u8; 32]>,
    key_seed: [u8; 32],
    /// The Ed25519 signer's message being loaded: its size and bytes so far.
    message: Option<(usize, Vec<u8>)>,
}

/// What to send back.
enum Answer {
    Frame(Frame),
    Nothing,
}

impl Machine {
    fn new(config: &EmulatorConfig, control: Arc<Mutex<Control>>) -> Machine {
        let mut m = Machine {
            profile: config.profile,
            seed: config.seed,
            touch: config.touch,
            touch_timeout: config.touch_timeout,
            control,
            state: if config.start_in_firmware {
                State::Firmware
            } else {
                State::App
            },
            app: Vec::new(),
            uss: None,
            key_seed: [0; 32],
            message: None,
        };
        m.derive_key();
        m
    }

    /// Like a TKey's CDI: BLAKE2s(device secret ‖ app digest ‖ user-supplied secret).
    fn derive_key(&mut self) {
        let mut h = Blake2s256::new();
        h.update(self.seed);
        h.update(Blake2s256::digest(&self.app));
        if let Some(uss) = &self.uss {
            h.update(uss);
        }
        self.key_seed = h.finalize().into();
    }

    fn ed25519(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.key_seed)
    }

    fn p256(&self) -> p256::ecdsa::SigningKey {
        // A seed outside the scalar range (probability ~2^-32) is hashed again.
        let mut s = self.key_seed;
        loop {
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&s) {
                return k;
            }
            s = Blake2s256::digest(s).into();
        }
    }

    fn serve(&mut self, mut master: TTYPort, _slave: TTYPort, stop: &AtomicBool) {
        // The slave end stays open here, so the master reads nothing but the host's bytes
        // (and no EIO) between the host's opens.
        let _ = master.set_timeout(Duration::from_millis(50));
        while !stop.load(Ordering::SeqCst) {
            let mut first = [0u8; 1];
            match master.read(&mut first) {
                Ok(1) => {}
                Ok(_) => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    continue
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
            let Ok(header) = Header::decode(first[0]) else {
                self.state = State::Halted;
                continue;
            };
            let mut data = vec![0u8; header.len.bytes()];
            if read_full(&mut master, &mut data, stop).is_err() {
                continue;
            }
            let frame = Frame { header, data };
            let fault = {
                let mut c = lock(&self.control);
                c.seen.push((header.endpoint as u8, frame.code()));
                if let Some(t) = c.touch.take() {
                    self.touch = t;
                }
                (!c.faults.is_empty()).then(|| c.faults.remove(0))
            };
            match fault {
                Some(Fault::Unplug) => return,
                Some(Fault::Stall) => continue,
                Some(Fault::Nok) => {
                    let nok = Frame::new(
                        Header {
                            nok: true,
                            len: Len::L1,
                            ..header
                        },
                        0,
                        &[],
                    );
                    let _ = master.write_all(&nok.to_bytes());
                    continue;
                }
                _ => {}
            }
            let answer = if header.nok {
                // A command never has the status bit set: the device halts.
                self.state = State::Halted;
                Answer::Nothing
            } else {
                self.handle(&frame, stop)
            };
            let Answer::Frame(mut reply) = answer else {
                continue;
            };
            let mut bytes = match fault {
                Some(Fault::WrongFrameId) => {
                    reply.header.id = (reply.header.id + 1) & 3;
                    reply.to_bytes()
                }
                _ => reply.to_bytes(),
            };
            if fault == Some(Fault::DropByte) {
                bytes.pop();
            }
            if fault == Some(Fault::Garbage) {
                let _ = master.write_all(&[0xff, 0x80, 0x13, 0x00, 0x42]);
            }
            let _ = master.write_all(&bytes);
        }
    }

    fn reply(header: Header, len: Len, code: u8, payload: &[u8]) -> Answer {
        Answer::Frame(Frame::new(
            Header {
                id: header.id,
                endpoint: header.endpoint,
                nok: false,
                len,
            },
            code,
            payload,
        ))
    }

    fn halt(&mut self) -> Answer {
        self.state = State::Halted;
        Answer::Nothing
    }

    fn handle(&mut self, f: &Frame, stop: &AtomicBool) -> Answer {
        let h = f.header;
        match (self.state, h.endpoint) {
            (State::Halted, _) => Answer::Nothing,
            (State::Firmware, Endpoint::Firmware) => self.firmware(f),
            (State::Loading { size }, Endpoint::Firmware) => self.loading(f, size),
            // An app answers a firmware probe with NOK and goes on.
            (State::App, Endpoint::Firmware) => Answer::Frame(Frame::new(
                Header {
                    nok: true,
                    len: Len::L1,
                    ..h
                },
                0,
                &[],
            )),
            (State::App, Endpoint::App) => match self.profile {
                Profile::Ed25519 => self.signer(f, stop),
                Profile::P256 => self.p256_app(f, stop),
            },
            _ => self.halt(),
        }
    }

    fn firmware(&mut self, f: &Frame) -> Answer {
        let h = f.header;
        match (f.code(), h.len) {
            (fw::CMD_NAME_VERSION, Len::L1) => {
                let p = name_version(fw::NAME0, fw::NAME1, 5);
                Self::reply(h, Len::L32, fw::RSP_NAME_VERSION, &p)
            }
            (fw::CMD_GET_UDI, Len::L1) => {
                let serial =
                    u32::from_le_bytes([self.seed[0], self.seed[1], self.seed[2], self.seed[3]]);
                let word0: u32 = (0x1337 << 12) | (2 << 6) | 5;
                let mut p = vec![STATUS_OK];
                p.extend_from_slice(&word0.to_le_bytes());
                p.extend_from_slice(&serial.to_le_bytes());
                Self::reply(h, Len::L32, fw::RSP_GET_UDI, &p)
            }
            (fw::CMD_LOAD_APP, Len::L128) => {
                let p = f.payload();
                let size = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
                if size == 0 || size > fw::APP_MAX_SIZE {
                    return Self::reply(h, Len::L4, fw::RSP_LOAD_APP, &[STATUS_BAD]);
                }
                self.uss = (p[4] != 0).then(|| {
                    let mut u = [0u8; 32];
                    u.copy_from_slice(&p[5..37]);
                    u
                });
                self.app.clear();
                self.state = State::Loading { size };
                Self::reply(h, Len::L4, fw::RSP_LOAD_APP, &[STATUS_OK])
            }
            _ => self.halt(),
        }
    }

    fn loading(&mut self, f: &Frame, size: usize) -> Answer {
        let h = f.header;
        if f.code() != fw::CMD_LOAD_APP_DATA || h.len != Len::L128 {
            return self.halt();
        }
        let n = (size - self.app.len()).min(127);
        self.app.extend_from_slice(&f.payload()[..n]);
        if self.app.len() < size {
            return Self::reply(h, Len::L4, fw::RSP_LOAD_APP_DATA, &[STATUS_OK]);
        }
        let digest = Blake2s256::digest(&self.app);
        self.derive_key();
        self.state = State::App;
        let mut p = vec![STATUS_OK];
        p.extend_from_slice(&digest);
        Self::reply(h, Len::L128, fw::RSP_LOAD_APP_DATA_READY, &p)
    }

    /// Waits for the touch; whether it came.
    fn wait_for_touch(&self, stop: &AtomicBool) -> bool {
        let wait = match self.touch {
            Touch::Immediately => return true,
            Touch::After(d) if d <= self.touch_timeout => (d, true),
            Touch::After(_) | Touch::Never => (self.touch_timeout, false),
        };
        let until = Instant::now() + wait.0;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        wait.1
    }

    fn signer(&mut self, f: &Frame, stop: &AtomicBool) -> Answer {
        let h = f.header;
        match (f.code(), h.len, self.message.take()) {
            (signer::CMD_GET_NAMEVERSION, Len::L1, None) => {
                let p = name_version(signer::NAME0, signer::NAME1, 3);
                Self::reply(h, Len::L32, signer::RSP_GET_NAMEVERSION, &p)
            }
            (signer::CMD_GET_PUBKEY, Len::L1, None) => Self::reply(
                h,
                Len::L128,
                signer::RSP_GET_PUBKEY,
                self.ed25519().verifying_key().as_bytes(),
            ),
            (signer::CMD_SET_SIZE, Len::L32, None) => {
                let p = f.payload();
                let size = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
                if size == 0 || size > signer::MAX_MESSAGE {
                    self.state = State::Halted;
                    return Self::reply(h, Len::L4, signer::RSP_SET_SIZE, &[STATUS_BAD]);
                }
                self.message = Some((size, Vec::with_capacity(size)));
                Self::reply(h, Len::L4, signer::RSP_SET_SIZE, &[STATUS_OK])
            }
            (signer::CMD_LOAD_DATA, Len::L128, Some((size, mut m))) if m.len() < size => {
                let n = (size - m.len()).min(127);
                m.extend_from_slice(&f.payload()[..n]);
                self.message = Some((size, m));
                Self::reply(h, Len::L4, signer::RSP_LOAD_DATA, &[STATUS_OK])
            }
            (signer::CMD_GET_SIG, Len::L1, Some((size, m))) if m.len() == size => {
                if !self.wait_for_touch(stop) {
                    return Self::reply(h, Len::L128, signer::RSP_GET_SIG, &[STATUS_BAD]);
                }
                let sig = self.ed25519().sign(&m);
                let mut p = vec![STATUS_OK];
                p.extend_from_slice(&sig.to_bytes());
                Self::reply(h, Len::L128, signer::RSP_GET_SIG, &p)
            }
            _ => self.halt(),
        }
    }

    fn p256_app(&mut self, f: &Frame, stop: &AtomicBool) -> Answer {
        let h = f.header;
        match (f.code(), h.len) {
            (p256_app::CMD_GET_NAMEVERSION, Len::L1) => {
                let p = name_version(p256_app::NAME0, p256_app::NAME1, 1);
                Self::reply(h, Len::L32, p256_app::RSP_GET_NAMEVERSION, &p)
            }
            (p256_app::CMD_GET_PUBKEY, Len::L1) => {
                let point = self.p256().verifying_key().to_encoded_point(false);
                let mut p = vec![STATUS_OK];
                p.extend_from_slice(&point.as_bytes()[1..]);
                Self::reply(h, Len::L128, p256_app::RSP_GET_PUBKEY, &p)
            }
            (p256_app::CMD_SIGN_DIGEST, Len::L128) => {
                if !self.wait_for_touch(stop) {
                    return Self::reply(
                        h,
                        Len::L128,
                        p256_app::RSP_SIGN_DIGEST,
                        &[STATUS_TOUCH_TIMEOUT],
                    );
                }
                let sig: Result<p256::ecdsa::Signature, _> =
                    self.p256().sign_prehash(&f.payload()[..32]);
                match sig {
                    Ok(sig) => {
                        let mut p = vec![STATUS_OK];
                        p.extend_from_slice(&sig.to_bytes());
                        Self::reply(h, Len::L128, p256_app::RSP_SIGN_DIGEST, &p)
                    }
                    Err(_) => Self::reply(h, Len::L128, p256_app::RSP_SIGN_DIGEST, &[STATUS_BAD]),
                }
            }
            // Anything else: NOK, and the app goes on (the profile's rule, unlike the signer's).
            _ => Answer::Frame(Frame::new(
                Header {
                    nok: true,
                    len: Len::L1,
                    ..h
                },
                0,
                &[],
            )),
        }
    }
}

/// A name-and-version answer: name0, name1, version (little-endian).
fn name_version(name0: &[u8; 4], name1: &[u8; 4], version: u32) -> Vec<u8> {
    [&name0[..], &name1[..], &version.to_le_bytes()[..]].concat()
}

fn read_full(port: &mut TTYPort, buf: &mut [u8], stop: &AtomicBool) -> io::Result<()> {
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(1);
    while got < buf.len() {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        match port.read(&mut buf[got..]) {
            Ok(n) => got += n,
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
