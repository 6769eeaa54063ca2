//! PINs: zeroized on drop, never printed.

use std::fmt;

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A token PIN. Its memory is wiped on drop; `Debug` shows no digits.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Takes ownership of `secret` (which is wiped when the `Pin` is dropped).
    /// A trailing line break (as left by `echo` into a PIN file) is removed.
    pub fn new(secret: String) -> Result<Self> {
        let mut secret = Zeroizing::new(secret);
        while secret.ends_with('\n') || secret.ends_with('\r') {
            secret.pop();
        }
        if secret.is_empty() {
            return Err(Error::PinEmpty);
        }
        Ok(Pin(secret))
    }

    /// Reads a PIN file (one line; a trailing line break is ignored). The error says what is
    /// wrong with the file, never what is in it.
    pub fn from_file(path: &std::path::Path) -> std::result::Result<Self, String> {
        let bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        );
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
        Pin::new(text.to_owned()).map_err(|_| format!("{} is empty", path.display()))
    }

    /// Number of characters, for length checks against the token's limits.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty PIN cannot be constructed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether two PINs are equal (for "type it again" prompts), without exposing either.
    pub fn same_as(&self, other: &Pin) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The form cryptoki takes; it is zeroized on drop too.
    pub(crate) fn to_auth_pin(&self) -> AuthPin {
        AuthPin::from(self.0.as_str())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_pin() {
        let pin = Pin::new("918273\n".to_owned()).expect("pin");
        let shown = format!("{pin:?} {:?}", Some(&pin));
        assert!(!shown.contains("918273"), "{shown}");
        assert_eq!(pin.len(), 6);
    }

    #[test]
    fn trailing_newlines_are_trimmed_and_empty_is_refused() {
        let pin = Pin::new("1234\r\n".to_owned()).expect("pin");
        assert!(pin.same_as(&Pin::new("1234".to_owned()).expect("pin")));
        assert!(!pin.same_as(&Pin::new("12345".to_owned()).expect("pin")));
        assert!(matches!(Pin::new("\n".to_owned()), Err(Error::PinEmpty)));
    }
}
