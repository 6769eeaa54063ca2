//! Finding a device's serial port: a fixed path, or a USB device by vendor and product id and
//! optionally its serial number (read from sysfs, so no libudev is needed).

use std::path::PathBuf;

use crate::Error;

/// A USB device's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbId {
    pub vid: u16,
    pub pid: u16,
    /// The USB serial number; any device of that vendor and product when not given.
    pub serial: Option<String>,
}

impl UsbId {
    /// `VID:PID` in hex (`1207:8887`), with an optional serial number.
    pub fn parse(vid_pid: &str, serial: Option<String>) -> Option<UsbId> {
        let hex = |h: &str| u16::from_str_radix(h.trim(), 16).ok();
        let (vid, pid) = vid_pid.split_once(':')?;
        Some(UsbId {
            vid: hex(vid)?,
            pid: hex(pid)?,
            serial,
        })
    }

    /// The Tillitis TKey (its USB-to-serial bridge).
    pub fn tkey() -> UsbId {
        UsbId {
            vid: 0x1207,
            pid: 0x8887,
            serial: None,
        }
    }

    /// Whether this is a TKey's identity (whatever its serial number).
    pub fn is_tkey(&self) -> bool {
        let t = UsbId::tkey();
        (self.vid, self.pid) == (t.vid, t.pid)
    }
}

/// How a device's port is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A path: `/dev/ttyACM0`, a udev `/dev/serial/by-id/…` link, an emulator's link.
    Path(PathBuf),
    /// The first USB serial port of that identity.
    Usb(UsbId),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Path(p) => write!(f, "{}", p.display()),
            Selector::Usb(u) => {
                write!(f, "usb {:04x}:{:04x}", u.vid, u.pid)?;
                if let Some(s) = &u.serial {
                    write!(f, " serial {s}")?;
                }
                Ok(())
            }
        }
    }
}

/// A serial port present now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// Its USB identity, when it is a USB device.
    pub usb: Option<UsbId>,
    pub product: Option<String>,
}

fn found(info: serialport::SerialPortInfo) -> Found {
    match info.port_type {
        serialport::SerialPortType::UsbPort(u) => Found {
            path: PathBuf::from(info.port_name),
            usb: Some(UsbId {
                vid: u.vid,
                pid: u.pid,
                serial: u.serial_number,
            }),
            product: u.product,
        },
        _ => Found {
            path: PathBuf::from(info.port_name),
            usb: None,
            product: None,
        },
    }
}

/// The ports of `ports` that are the USB device `id`.
fn matching(ports: Vec<serialport::SerialPortInfo>, id: &UsbId) -> Vec<Found> {
    let mut out: Vec<Found> = ports
        .into_iter()
        .map(found)
        .filter(|f| {
            f.usb.as_ref().is_some_and(|u| {
                u.vid == id.vid && u.pid == id.pid && (id.serial.is_none() || u.serial == id.serial)
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The ports `selector` names that are present now.
pub fn find(selector: &Selector) -> Result<Vec<Found>, Error> {
    match selector {
        Selector::Path(p) => Ok(if p.exists() {
            vec![Found {
                path: p.clone(),
                usb: None,
                product: None,
            }]
        } else {
            Vec::new()
        }),
        Selector::Usb(id) => Ok(matching(ports()?, id)),
    }
}

fn ports() -> Result<Vec<serialport::SerialPortInfo>, Error> {
    serialport::available_ports().map_err(|e| Error::Io {
        op: "list serial ports",
        source: std::io::Error::other(e.to_string()),
    })
}

/// Every USB serial port present now (for `sealctl device list`).
pub fn usb_ports() -> Result<Vec<Found>, Error> {
    let mut out: Vec<Found> = ports()?
        .into_iter()
        .map(found)
        .filter(|f| f.usb.is_some())
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serialport::{SerialPortInfo, SerialPortType, UsbPortInfo};

    fn usb(name: &str, vid: u16, pid: u16, serial: Option<&str>) -> SerialPortInfo {
        SerialPortInfo {
            port_name: name.to_owned(),
            port_type: SerialPortType::UsbPort(UsbPortInfo {
                vid,
                pid,
                serial_number: serial.map(str::to_owned),
                manufacturer: Some("Tillitis".to_owned()),
                product: Some("MTA1-USB-V1".to_owned()),
            }),
        }
    }

    #[test]
    fn usb_devices_are_matched_by_ids_and_serial_number() {
        let ports = || {
            vec![
                usb("/dev/ttyACM1", 0x1207, 0x8887, Some("B")),
                usb("/dev/ttyACM0", 0x1207, 0x8887, Some("A")),
                usb("/dev/ttyUSB0", 0x0403, 0x6001, Some("A")),
                SerialPortInfo {
                    port_name: "/dev/ttyS0".to_owned(),
                    port_type: SerialPortType::PciPort,
                },
            ]
        };
        let paths = |found: Vec<Found>| -> Vec<String> {
            found.iter().map(|f| f.path.display().to_string()).collect()
        };
        assert_eq!(
            paths(matching(ports(), &UsbId::tkey())),
            ["/dev/ttyACM0", "/dev/ttyACM1"]
        );
        let b = UsbId {
            serial: Some("B".to_owned()),
            ..UsbId::tkey()
        };
        assert_eq!(paths(matching(ports(), &b)), ["/dev/ttyACM1"]);
        let c = UsbId {
            serial: Some("C".to_owned()),
            ..UsbId::tkey()
        };
        assert!(matching(ports(), &c).is_empty());
        assert_eq!(UsbId::parse("1207:8887", None), Some(UsbId::tkey()));
        assert_eq!(UsbId::parse("1207", None), None);
        assert_eq!(UsbId::parse("xyz:1", None), None);
    }
}
