//! seald benchmarks against the physical limit and against peers, in one run.
//!
//! - `seald-bench pkcs11`: the token pool against a bare `C_Sign` loop.
//! - `seald-bench pades`: signing a 1-page and a large PDF against `C_Sign`, `sha256sum` + `cp`,
//!   and pyHanko with the same token; peak memory.
//! - `seald-bench daemon`: signing over mTLS through `seald` against `C_Sign` with the same
//!   sessions, and pyHanko.
//! - `seald-bench jobs`: a batch job of 10,000 rows (filled and sealed) against `C_Sign` with
//!   the same sessions, peak memory, and pyHanko.

mod daemon;
mod jobs;
mod pades;
mod pkcs11;
mod util;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let what = if args.is_empty() {
        String::new()
    } else {
        args.remove(0)
    };
    match what.as_str() {
        "pkcs11" => pkcs11::run(args),
        "pades" => pades::run(args),
        "daemon" => daemon::run(args),
        "jobs" => jobs::run(args),
        _ => {
            eprintln!("usage: seald-bench pkcs11|pades|daemon|jobs [options] (see --help of each)");
            std::process::exit(2)
        }
    }
}
