//! Serial ports: opening a device's port, and the little a [`crate::Link`] needs of one.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

/// The speed TKey clients set (the USB CDC-ACM bridge carries the frames whatever it is).
pub const BAUD_RATE: u32 = 62_500;

/// A byte stream to a device with read timeouts.
pub trait Port: Read + Write + Send {
    /// Reads give up (`TimedOut`) after `timeout` without a byte.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
    /// Drops bytes received and not yet read.
    fn discard_input(&mut self) -> io::Result<()>;
}

impl Port for Box<dyn serialport::SerialPort> {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        serialport::SerialPort::set_timeout(self.as_mut(), timeout).map_err(io::Error::from)
    }

    fn discard_input(&mut self) -> io::Result<()> {
        serialport::SerialPort::clear(self.as_ref(), serialport::ClearBuffer::Input)
            .map_err(io::Error::from)
    }
}

impl Port for serialport::TTYPort {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        serialport::SerialPort::set_timeout(self, timeout).map_err(io::Error::from)
    }

    fn discard_input(&mut self) -> io::Result<()> {
        serialport::SerialPort::clear(self, serialport::ClearBuffer::Input).map_err(io::Error::from)
    }
}

/// Opens the serial port at `path` (raw, 8N1, no flow control) for one client at a time.
pub fn open(path: &Path) -> Result<Box<dyn serialport::SerialPort>, crate::Error> {
    let name = path.to_string_lossy();
    serialport::new(name.as_ref(), BAUD_RATE)
        .timeout(Duration::from_millis(500))
        .open()
        .map_err(|e| match e.kind() {
            serialport::ErrorKind::NoDevice => crate::Error::Absent(format!("{name}: {e}")),
            serialport::ErrorKind::Io(io::ErrorKind::NotFound) => {
                crate::Error::Absent(format!("{name}: no such device"))
            }
            _ => crate::Error::Io {
                op: "open",
                source: io::Error::other(format!("{name}: {e}")),
            },
        })
}
