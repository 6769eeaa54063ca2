//! Where PINs come from: a file, an environment variable, or a no-echo prompt on the terminal.
//! Never from an argument value (argv is visible to every user of the machine).

use std::fs;
use std::path::Path;

use seald_pkcs11::Pin;
use zeroize::Zeroizing;

use crate::Failure;

/// One PIN's sources, tried in order: file, environment variable, terminal prompt.
pub struct PinSource<'a> {
    /// What the PIN is, for prompts and messages ("user PIN", "SO PIN", "new user PIN").
    pub what: &'a str,
    pub file: Option<&'a Path>,
    pub env: &'a str,
    pub file_flag: &'a str,
}

impl PinSource<'_> {
    /// Reads the PIN. `confirm` asks twice on a terminal (for a PIN being set).
    pub fn read(&self, confirm: bool) -> Result<Pin, Failure> {
        if let Some(path) = self.file {
            return read_file(path, self.what);
        }
        if let Ok(value) = std::env::var(self.env) {
            return Pin::new(value)
                .map_err(|_| Failure::usage(format!("{} in {} is empty", self.what, self.env)));
        }
        let no_terminal = |e: std::io::Error| {
            Failure::usage(format!(
                "no {what} given and none can be asked for ({e}): pass {flag} FILE or set {env}",
                what = self.what,
                flag = self.file_flag,
                env = self.env
            ))
        };
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("{}: ", capitalize(self.what)))
                .map_err(no_terminal)?,
        );
        let pin = Pin::new(first.to_string())
            .map_err(|_| Failure::usage(format!("the {} is empty", self.what)))?;
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password(format!("{} again: ", capitalize(self.what)))
                    .map_err(no_terminal)?,
            );
            let again = Pin::new(again.to_string())
                .map_err(|_| Failure::usage(format!("the {} is empty", self.what)))?;
            if !pin.same_as(&again) {
                return Err(Failure::usage(format!("the two {}s differ", self.what)));
            }
        }
        Ok(pin)
    }
}

fn read_file(path: &Path, what: &str) -> Result<Pin, Failure> {
    warn_if_readable_by_others(path, what);
    Pin::from_file(path).map_err(|why| Failure::usage(format!("the {what} file: {why}")))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "sealctl: warning: the {what} file {} can be read by other users; chmod 600 it",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path, _: &str) {}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
