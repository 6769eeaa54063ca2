//! seald-device-emulator: a signing device on a pseudo-terminal (both profiles), for
//! rehearsals and tests. It prints the path hosts open, then `READY`, and takes commands on
//! standard input, a line each:
//!   fault drop-byte|wrong-frame-id|nok|garbage|stall|unplug   the next command meets it
//!   touch now|never|after:MS                                  when the next touch comes
//!   unplug | replug                                           the device goes, and comes back
//!   quit

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use seald_firmware_bridge::emulator::{Emulator, EmulatorConfig, Fault, Touch};
use seald_firmware_bridge::Profile;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A signing device (TKey framing) on a pseudo-terminal"
)]
struct Args {
    /// ed25519 (the TKey signer app) or p256 (seald's seal-appliance app).
    #[arg(long, default_value = "p256")]
    profile: String,
    /// The device secret, 64 hex digits: the same seed (and app) gives the same key.
    #[arg(long)]
    seed: String,
    /// A symbolic link kept pointing at the current pseudo-terminal.
    #[arg(long)]
    link: Option<PathBuf>,
    /// Start in firmware mode (the host loads the app) — the default for ed25519.
    #[arg(long, conflicts_with = "app_running")]
    firmware: bool,
    /// Start with the app running — the default for p256.
    #[arg(long)]
    app_running: bool,
    /// now, never, or after:MILLISECONDS.
    #[arg(long, default_value = "now")]
    touch: String,
    /// Seconds the app waits for a touch.
    #[arg(long, default_value_t = 30)]
    touch_timeout: u64,
}

fn touch(s: &str) -> Option<Touch> {
    match s {
        "now" => Some(Touch::Immediately),
        "never" => Some(Touch::Never),
        _ => s
            .strip_prefix("after:")
            .and_then(|ms| ms.parse().ok())
            .map(|ms| Touch::After(Duration::from_millis(ms))),
    }
}

fn fault(s: &str) -> Option<Fault> {
    Some(match s {
        "drop-byte" => Fault::DropByte,
        "wrong-frame-id" => Fault::WrongFrameId,
        "nok" => Fault::Nok,
        "garbage" => Fault::Garbage,
        "stall" => Fault::Stall,
        "unplug" => Fault::Unplug,
        _ => return None,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(profile) = Profile::parse(&args.profile) else {
        eprintln!("seald-device-emulator: --profile is ed25519 or p256");
        return ExitCode::from(2);
    };
    let mut seed = [0u8; 32];
    match hex::decode(args.seed.trim()) {
        Ok(b) if b.len() == 32 => seed.copy_from_slice(&b),
        _ => {
            eprintln!("seald-device-emulator: --seed is 64 hex digits");
            return ExitCode::from(2);
        }
    }
    let mut config = EmulatorConfig::new(profile, seed);
    config.link = args.link;
    if args.firmware {
        config.start_in_firmware = true;
    }
    if args.app_running {
        config.start_in_firmware = false;
    }
    config.touch_timeout = Duration::from_secs(args.touch_timeout);
    let Some(t) = touch(&args.touch) else {
        eprintln!("seald-device-emulator: --touch is now, never or after:MS");
        return ExitCode::from(2);
    };
    config.touch = t;
    let mut emulator = match Emulator::start(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("seald-device-emulator: cannot open a pseudo-terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", emulator.path().display());
    println!("READY");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let ok = match words.as_slice() {
            ["fault", f] => fault(f).map(|f| emulator.inject(f)).is_some(),
            ["touch", t] => touch(t).map(|t| emulator.set_touch(t)).is_some(),
            ["unplug"] => {
                emulator.unplug();
                true
            }
            ["replug"] => match emulator.replug() {
                Ok(()) => {
                    println!("{}", emulator.path().display());
                    true
                }
                Err(e) => {
                    eprintln!("seald-device-emulator: {e}");
                    false
                }
            },
            ["quit"] => break,
            [] => true,
            _ => false,
        };
        println!("{}", if ok { "OK" } else { "ERROR" });
    }
    ExitCode::SUCCESS
}
