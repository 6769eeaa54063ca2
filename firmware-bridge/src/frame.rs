//! The framing protocol of the Tillitis TKey, which every device here speaks: a one-byte
//! header (frame id, endpoint, response status, data length class) and exactly 1, 4, 32 or 128
//! data bytes, the first of which is the command or response code. A response echoes the
//! command's frame id and endpoint.
//!
//! [`Link`] is the host side of one connection: it sends a command, reads the one response
//! with timeouts, checks it, and after anything unexpected (garbage, a dropped byte, a wrong
//! frame id) drains the line before the next command, so one bad frame does not misalign the
//! rest.

use std::io;
use std::time::{Duration, Instant};

use crate::port::Port;
use crate::Error;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Reserved (the interface FPGA of early designs).
    Reserved = 0,
    /// The hardware of the application FPGA (unused).
    Hardware = 1,
    /// The firmware (boot loader) in ROM.
    Firmware = 2,
    /// The device application loaded by the host.
    App = 3,
}

impl Endpoint {
    fn from_bits(b: u8) -> Endpoint {
        match b & 3 {
            0 => Endpoint::Reserved,
            1 => Endpoint::Hardware,
            2 => Endpoint::Firmware,
            _ => Endpoint::App,
        }
    }
}

/// How many data bytes follow the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    L1,
    L4,
    L32,
    L128,
}

impl Len {
    pub fn bytes(self) -> usize {
        match self {
            Len::L1 => 1,
            Len::L4 => 4,
            Len::L32 => 32,
            Len::L128 => 128,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Len::L1 => 0,
            Len::L4 => 1,
            Len::L32 => 2,
            Len::L128 => 3,
        }
    }

    fn from_bits(b: u8) -> Len {
        match b & 3 {
            0 => Len::L1,
            1 => Len::L4,
            2 => Len::L32,
            _ => Len::L128,
        }
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 0–3, chosen by the host and echoed by the device.
    pub id: u8,
    pub endpoint: Endpoint,
    /// In a response: the device refused (NOK). Always false in a command.
    pub nok: bool,
    pub len: Len,
}

impl Header {
    pub fn encode(self) -> u8 {
        ((self.id & 3) << 5)
            | ((self.endpoint as u8) << 3)
            | (u8::from(self.nok) << 2)
            | self.len.bits()
    }

    /// Decodes a header byte; bit 7 (reserved) must be 0.
    pub fn decode(b: u8) -> Result<Header, Error> {
        if b & 0x80 != 0 {
            return Err(Error::BadHeader(b));
        }
        Ok(Header {
            id: (b >> 5) & 3,
            endpoint: Endpoint::from_bits(b >> 3),
            nok: b & 0x04 != 0,
            len: Len::from_bits(b),
        })
    }
}

/// A whole frame: its header and exactly `header.len` data bytes, the code first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub data: Vec<u8>,
}

impl Frame {
    /// A frame carrying `code` then `payload`, zero-padded to `len`.
    pub fn new(header: Header, code: u8, payload: &[u8]) -> Frame {
        let mut data = vec![0u8; header.len.bytes()];
        data[0] = code;
        let n = payload.len().min(data.len() - 1);
        data[1..1 + n].copy_from_slice(&payload[..n]);
        Frame { header, data }
    }

    pub fn code(&self) -> u8 {
        self.data[0]
    }

    /// The bytes after the code.
    pub fn payload(&self) -> &[u8] {
        &self.data[1..]
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.data.len());
        out.push(self.header.encode());
        out.extend_from_slice(&self.data);
        out
    }
}

/// What a command expects back.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub code: u8,
    pub len: Len,
    /// How long the device may take to start answering (a touch wait is long).
    pub within: Duration,
    /// What the host waits for, named in a timeout error.
    pub waiting_for: &'static str,
    /// The device answers only after a person touches it: no answer in time is
    /// [`Error::TouchTimeout`].
    pub touch: bool,
}

/// The host side of a connection to a device.
pub struct Link<P: Port> {
    port: P,
    next_id: u8,
    /// Something unexpected was read: drain before the next command.
    dirty: bool,
    /// The id of a command whose answer did not come in time (a touch the host stopped waiting
    /// for): the device may still send it, and it is then skipped.
    abandoned: Option<u8>,
    /// How long the rest of a frame may take once its header came.
    pub byte_timeout: Duration,
}

impl<P: Port> std::fmt::Debug for Link<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("next_id", &self.next_id)
            .field("dirty", &self.dirty)
            .finish()
    }
}

/// A read that ends the stream: the device closed its end (unplugged).
fn gone() -> Error {
    Error::Io {
        op: "read",
        source: io::Error::new(io::ErrorKind::UnexpectedEof, "the device went away"),
    }
}

fn io_error(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { op, source }
}

impl<P: Port> Link<P> {
    pub fn new(port: P) -> Link<P> {
        Link {
            port,
            next_id: 0,
            dirty: false,
            abandoned: None,
            byte_timeout: Duration::from_millis(500),
        }
    }

    /// Sends `code` + `payload` to `endpoint` in a frame of `len`, and reads and checks the
    /// response. A NOK response is [`Error::Nok`].
    pub fn exchange(
        &mut self,
        endpoint: Endpoint,
        len: Len,
        code: u8,
        payload: &[u8],
        expect: Expect,
    ) -> Result<Frame, Error> {
        if self.dirty {
            self.resync()?;
        }
        let id = self.next_id;
        self.next_id = (self.next_id + 1) & 3;
        let frame = Frame::new(
            Header {
                id,
                endpoint,
                nok: false,
                len,
            },
            code,
            payload,
        );
        self.write_all(&frame.to_bytes())?;
        let result = self.read_response(id, endpoint, expect);
        match &result {
            Ok(_) => self.abandoned = None,
            Err(Error::Timeout { .. } | Error::TouchTimeout { .. }) => self.abandoned = Some(id),
            Err(_) => {}
        }
        if result.is_err() {
            self.dirty = true;
        }
        result
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        // A short write is finished; a write that makes no progress is the device gone.
        while !bytes.is_empty() {
            match self.port.write(bytes) {
                Ok(0) => {
                    return Err(Error::Io {
                        op: "write",
                        source: io::Error::new(
                            io::ErrorKind::WriteZero,
                            "the device took no bytes",
                        ),
                    })
                }
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(Error::Timeout {
                        waiting_for: "the device to take a command",
                        after: self.byte_timeout,
                    })
                }
                Err(e) => return Err(io_error("write")(e)),
            }
        }
        self.port.flush().map_err(io_error("flush"))
    }

    /// Reads exactly `buf.len()` bytes, the first within `first`, the others within the byte
    /// timeout each.
    fn read_exact(
        &mut self,
        buf: &mut [u8],
        first: Duration,
        waiting_for: &'static str,
    ) -> Result<(), Error> {
        let mut got = 0;
        let mut wait = first;
        while got < buf.len() {
            self.port
                .set_read_timeout(wait)
                .map_err(io_error("set a timeout"))?;
            match self.port.read(&mut buf[got..]) {
                Ok(0) => return Err(gone()),
                Ok(n) => {
                    got += n;
                    wait = self.byte_timeout;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    return Err(if got == 0 {
                        Error::Timeout {
                            waiting_for,
                            after: wait,
                        }
                    } else {
                        Error::ShortFrame {
                            expected: buf.len(),
                            got,
                        }
                    });
                }
                Err(e) => return Err(io_error("read")(e)),
            }
        }
        Ok(())
    }

    fn read_response(
        &mut self,
        id: u8,
        endpoint: Endpoint,
        expect: Expect,
    ) -> Result<Frame, Error> {
        let deadline = Instant::now() + expect.within;
        let (header, data) = loop {
            let mut first = [0u8; 1];
            let left = deadline.saturating_duration_since(Instant::now());
            self.read_exact(&mut first, left, expect.waiting_for)
                .map_err(|e| match e {
                    Error::Timeout { .. } if expect.touch => Error::TouchTimeout {
                        after: expect.within,
                    },
                    e => e,
                })?;
            let header = Header::decode(first[0])?;
            let mut data = vec![0u8; header.len.bytes()];
            self.read_exact(&mut data, self.byte_timeout, "the rest of a frame")?;
            // The late answer to a command the host gave up on: not this one's.
            if header.id != id && Some(header.id) == self.abandoned {
                self.abandoned = None;
                continue;
            }
            break (header, data);
        };
        if header.id != id {
            return Err(Error::FrameId {
                sent: id,
                got: header.id,
            });
        }
        if header.endpoint != endpoint {
            return Err(Error::Protocol(format!(
                "a response from endpoint {:?} to a command for {endpoint:?}",
                header.endpoint
            )));
        }
        if header.nok {
            return Err(Error::Nok { endpoint });
        }
        if header.len != expect.len {
            return Err(Error::Protocol(format!(
                "response code {:#04x} in {} data bytes, expected {}",
                data[0],
                header.len.bytes(),
                expect.len.bytes()
            )));
        }
        if data[0] != expect.code {
            return Err(Error::UnexpectedResponse {
                expected: expect.code,
                got: data[0],
            });
        }
        Ok(Frame { header, data })
    }

    /// Drains whatever the device still sends: stray bytes of a broken frame, garbage. Ends after
    /// 50 ms of quiet, or after a second (a device that never stops talking is broken).
    pub fn resync(&mut self) -> Result<(), Error> {
        let quiet = Duration::from_millis(50);
        let deadline = Instant::now() + Duration::from_secs(1);
        self.port
            .discard_input()
            .map_err(io_error("discard input"))?;
        let mut sink = [0u8; 256];
        loop {
            self.port
                .set_read_timeout(quiet)
                .map_err(io_error("set a timeout"))?;
            match self.port.read(&mut sink) {
                Ok(0) => return Err(gone()),
                Ok(_) if Instant::now() < deadline => {}
                Ok(_) => {
                    return Err(Error::Protocol(
                        "the device does not stop sending".to_owned(),
                    ))
                }
                Err(e)
                    if e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    self.dirty = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("read")(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_encode_as_the_documentation_shows() {
        let h = |id, endpoint, nok, len| {
            Header {
                id,
                endpoint,
                nok,
                len,
            }
            .encode()
        };
        assert_eq!(h(0, Endpoint::Firmware, false, Len::L128), 0x13);
        assert_eq!(h(0, Endpoint::App, false, Len::L32), 0x1a);
        assert_eq!(h(0, Endpoint::Firmware, true, Len::L1), 0x14);
        assert_eq!(h(0, Endpoint::App, false, Len::L128), 0x1b);
        assert_eq!(h(2, Endpoint::Firmware, false, Len::L1), 0x50);
        assert_eq!(h(2, Endpoint::App, false, Len::L1), 0x58);
        for b in 0u8..0x80 {
            assert_eq!(Header::decode(b).expect("valid").encode(), b);
        }
        assert!(matches!(Header::decode(0x93), Err(Error::BadHeader(0x93))));
    }

    /// A port that answers from a script: what each write gets back, and silence when a
    /// script entry is None (a read times out).
    /// A port that answers from a script: each whole command frame written gets the next
    /// reply (None: silence, so a read times out). It moves at most `chunk` bytes per read or
    /// write, as a slow serial line may.
    struct Scripted {
        replies: std::collections::VecDeque<Option<Vec<u8>>>,
        pending: Vec<u8>,
        written: Vec<u8>,
        chunk: usize,
    }

    impl Scripted {
        fn new(replies: Vec<Option<Vec<u8>>>, chunk: usize) -> Scripted {
            Scripted {
                replies: replies.into(),
                pending: Vec::new(),
                written: Vec::new(),
                chunk,
            }
        }
    }

    impl io::Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pending.is_empty() {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            let n = buf.len().min(self.pending.len()).min(self.chunk);
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    impl io::Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk);
            self.written.extend_from_slice(&buf[..n]);
            if let Some(&first) = self.written.first() {
                let whole = 1 + Header::decode(first).map_or(0, |h| h.len.bytes());
                if self.written.len() >= whole {
                    self.written.drain(..whole);
                    if let Some(Some(reply)) = self.replies.pop_front() {
                        self.pending.extend(reply);
                    }
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Port for Scripted {
        fn set_read_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
        fn discard_input(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn frames_written_and_read_a_byte_at_a_time_arrive_whole() {
        let reply = Frame::new(
            Header {
                id: 0,
                endpoint: Endpoint::App,
                nok: false,
                len: Len::L128,
            },
            0x02,
            &[7; 127],
        )
        .to_bytes();
        let mut link = Link::new(Scripted::new(vec![Some(reply)], 1));
        let f = link
            .exchange(
                Endpoint::App,
                Len::L128,
                0x01,
                &[1; 127],
                Expect {
                    code: 0x02,
                    len: Len::L128,
                    within: Duration::from_millis(10),
                    waiting_for: "an answer",
                    touch: false,
                },
            )
            .expect("a whole frame each way");
        assert_eq!(f.payload(), &[7; 127][..]);
    }

    #[test]
    fn the_late_answer_to_an_abandoned_command_is_skipped() {
        let answer = |id: u8, code: u8| {
            Frame::new(
                Header {
                    id,
                    endpoint: Endpoint::App,
                    nok: false,
                    len: Len::L4,
                },
                code,
                &[0],
            )
            .to_bytes()
        };
        // Command 0 gets no answer in time; its answer then comes before command 1's.
        let late_then_right = [answer(0, 0x04), answer(1, 0x06)].concat();
        let mut link = Link::new(Scripted::new(vec![None, Some(late_then_right)], usize::MAX));
        let expect = |code| Expect {
            code,
            len: Len::L4,
            within: Duration::from_millis(10),
            waiting_for: "an answer",
            touch: false,
        };
        assert!(matches!(
            link.exchange(Endpoint::App, Len::L1, 0x03, &[], expect(0x04)),
            Err(Error::Timeout { .. })
        ));
        let f = link
            .exchange(Endpoint::App, Len::L1, 0x05, &[], expect(0x06))
            .expect("the right answer");
        assert_eq!((f.header.id, f.code()), (1, 0x06));
        // Any other id is still an error.
        let mut link = Link::new(Scripted::new(vec![Some(answer(3, 0x04))], usize::MAX));
        assert!(matches!(
            link.exchange(Endpoint::App, Len::L1, 0x03, &[], expect(0x04)),
            Err(Error::FrameId { sent: 0, got: 3 })
        ));
    }

    #[test]
    fn frames_are_padded_to_their_class() {
        let f = Frame::new(
            Header {
                id: 2,
                endpoint: Endpoint::App,
                nok: false,
                len: Len::L32,
            },
            0x03,
            &7u32.to_le_bytes(),
        );
        let bytes = f.to_bytes();
        assert_eq!(bytes.len(), 33);
        assert_eq!(&bytes[..6], &[0x5a, 0x03, 7, 0, 0, 0]);
        assert!(bytes[6..].iter().all(|&b| b == 0));
    }
}
