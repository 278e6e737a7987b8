//! The [`Channel`] trait every protocol in pibench talks through, and its two transports.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

/// Errors of the channel layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The peer closed the connection.
    #[error("peer disconnected during {context}")]
    Disconnected {
        /// Phase and layer in which it happened.
        context: String,
    },
    /// The peer sent nothing (or, for a write, read nothing) within the time-out.
    #[error("peer stalled: no progress for {timeout:?} during {context}")]
    Timeout {
        /// The time-out that expired.
        timeout: Duration,
        /// Phase and layer in which it happened.
        context: String,
    },
    /// An emulated link is too slow for the time-out: its delay or bandwidth would make this
    /// party wait longer than the time-out for the next chunk (or to push its own out). Not the
    /// peer's fault: the link and the time-out do not fit together.
    #[error("time-out of {timeout:?} during {detail}; use a longer --timeout or a faster link")]
    LinkTimeout {
        /// The time-out that expired.
        timeout: Duration,
        /// Phase and layer, the link, what it delays and by how much.
        detail: String,
    },
    /// The peer sent something that does not parse.
    #[error("protocol error during {context}: {message}")]
    Protocol {
        /// Phase and layer in which it happened.
        context: String,
        /// What was wrong.
        message: String,
    },
    /// Any other I/O failure.
    #[error("i/o error during {context}: {source}")]
    Io {
        /// Phase and layer in which it happened.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The phase of a private inference, for accounting.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Setup before either phase: handshake, base OTs.
    Setup,
    /// Input-independent preprocessing.
    Offline,
    /// Work that needs the client's input.
    Online,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Setup => "setup",
            Phase::Offline => "offline",
            Phase::Online => "online",
        })
    }
}

/// Where in the protocol the channel is: a phase and optionally a layer.
///
/// Every transport keeps one so that its errors can say where they happened; [`Scope::set`] reuses
/// the layer string's allocation, so moving from layer to layer costs no allocation once the
/// longest name has been seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    phase: Phase,
    layer: Option<String>,
}

impl Scope {
    /// The scope at connection time: the setup phase, no layer.
    pub fn new() -> Self {
        Scope {
            phase: Phase::Setup,
            layer: None,
        }
    }

    /// Move to `phase` and `layer`.
    pub fn set(&mut self, phase: Phase, layer: Option<&str>) {
        self.phase = phase;
        match (layer, &mut self.layer) {
            (None, slot) => *slot = None,
            (Some(l), Some(cur)) => {
                cur.clear();
                cur.push_str(l);
            }
            (Some(l), slot) => *slot = Some(l.to_owned()),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current layer, if any.
    pub fn layer(&self) -> Option<&str> {
        self.layer.as_deref()
    }

    /// The scope as an error context, e.g. `online phase, layer relu3`.
    pub fn context(&self) -> String {
        self.to_string()
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.layer {
            Some(l) => write!(f, "{} phase, layer {l}", self.phase),
            None => write!(f, "{} phase", self.phase),
        }
    }
}

/// A reliable, ordered, bidirectional byte stream to the other party.
///
/// Sends may be buffered until [`Channel::flush`] or the next [`Channel::recv`]; implementations
/// must flush before blocking on a receive so that two parties cannot deadlock on buffered data.
pub trait Channel: Send {
    /// Queue `bytes` for the peer.
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError>;
    /// Fill `buf` exactly with the peer's next bytes.
    fn recv(&mut self, buf: &mut [u8]) -> Result<(), NetError>;
    /// Push queued bytes to the peer.
    fn flush(&mut self) -> Result<(), NetError>;
    /// Attribute the traffic that follows to `phase` and, if given, `layer` (for accounting and
    /// for error messages). Transports that do not count ignore it.
    fn set_scope(&mut self, phase: Phase, layer: Option<&str>) {
        let _ = (phase, layer);
    }
}

/// Typed helpers over any [`Channel`].
pub trait ChannelExt: Channel {
    /// Send a `u64` little-endian.
    fn send_u64(&mut self, v: u64) -> Result<(), NetError> {
        self.send(&v.to_le_bytes())
    }
    /// Receive a `u64` little-endian.
    fn recv_u64(&mut self) -> Result<u64, NetError> {
        let mut b = [0u8; 8];
        self.recv(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Send a slice of `u64`s little-endian.
    fn send_u64s(&mut self, vs: &[u64]) -> Result<(), NetError> {
        let mut buf = [0u8; 8 * 512];
        for chunk in vs.chunks(512) {
            for (i, v) in chunk.iter().enumerate() {
                buf[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
            }
            self.send(&buf[..8 * chunk.len()])?;
        }
        Ok(())
    }
    /// Receive exactly `out.len()` `u64`s.
    fn recv_u64s(&mut self, out: &mut [u64]) -> Result<(), NetError> {
        let mut buf = [0u8; 8 * 512];
        for chunk in out.chunks_mut(512) {
            self.recv(&mut buf[..8 * chunk.len()])?;
            for (i, v) in chunk.iter_mut().enumerate() {
                *v = u64::from_le_bytes(buf[8 * i..8 * i + 8].try_into().expect("8 bytes"));
            }
        }
        Ok(())
    }
}

impl<C: Channel + ?Sized> ChannelExt for C {}

impl<C: Channel + ?Sized> Channel for Box<C> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        (**self).send(bytes)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        (**self).recv(buf)
    }
    fn flush(&mut self) -> Result<(), NetError> {
        (**self).flush()
    }
    fn set_scope(&mut self, phase: Phase, layer: Option<&str>) {
        (**self).set_scope(phase, layer)
    }
}

/// The default time-out of a receive.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Receives of at least this many bytes beyond what is buffered bypass the read buffer.
const DIRECT_READ: usize = 64 << 10;

/// A TCP connection with buffered writes and read and write time-outs.
pub struct TcpChannel {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    timeout: Duration,
    scope: Scope,
}

impl TcpChannel {
    /// Wrap a connected stream; every receive fails after `timeout` without data, and every
    /// write after `timeout` without progress (a peer that stops reading cannot hang us either).
    pub fn new(stream: TcpStream, timeout: Duration) -> std::io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let reader = BufReader::with_capacity(1 << 20, stream.try_clone()?);
        let writer = BufWriter::with_capacity(1 << 20, stream);
        Ok(TcpChannel {
            reader,
            writer,
            timeout,
            scope: Scope::new(),
        })
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.writer.get_ref().peer_addr()
    }

    /// The time-out of every receive and write.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn map_err(&self, e: std::io::Error) -> NetError {
        use std::io::ErrorKind::*;
        match e.kind() {
            WouldBlock | TimedOut => NetError::Timeout {
                timeout: self.timeout,
                context: self.scope.context(),
            },
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe | WriteZero => {
                NetError::Disconnected {
                    context: self.scope.context(),
                }
            }
            _ => NetError::Io {
                context: self.scope.context(),
                source: e,
            },
        }
    }
}

impl std::fmt::Debug for TcpChannel {
    // Buffered bytes may be labels or shares: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpChannel")
            .field("peer", &self.peer_addr().ok())
            .field("timeout", &self.timeout)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Channel for TcpChannel {
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.writer.write_all(bytes).map_err(|e| self.map_err(e))
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        if !self.writer.buffer().is_empty() {
            self.flush()?;
        }
        // A large receive takes what is buffered, then reads the rest straight into `buf`:
        // going through the buffer would copy every byte of tables a second time.
        let buffered = self.reader.buffer().len();
        if buf.len() - buffered.min(buf.len()) < DIRECT_READ {
            return self.reader.read_exact(buf).map_err(|e| self.map_err(e));
        }
        let (head, rest) = buf.split_at_mut(buffered);
        head.copy_from_slice(self.reader.buffer());
        self.reader.consume(buffered);
        self.reader
            .get_mut()
            .read_exact(rest)
            .map_err(|e| self.map_err(e))
    }
    fn flush(&mut self) -> Result<(), NetError> {
        self.writer.flush().map_err(|e| self.map_err(e))
    }
    fn set_scope(&mut self, phase: Phase, layer: Option<&str>) {
        self.scope.set(phase, layer);
    }
}

/// The next message of an in-process queue, or the channel error a peer that stalls
/// (`Timeout`) or is gone (`Disconnected`) must give, naming `scope`.
pub(crate) fn recv_queue<T>(
    rx: &mpsc::Receiver<T>,
    timeout: Duration,
    scope: &Scope,
) -> Result<T, NetError> {
    rx.recv_timeout(timeout).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => NetError::Timeout {
            timeout,
            context: scope.context(),
        },
        mpsc::RecvTimeoutError::Disconnected => NetError::Disconnected {
            context: scope.context(),
        },
    })
}

/// Fill `buf` from a stream of chunks, the way the in-process channels receive: the unread rest
/// of the current chunk is `inbuf[*inpos..]`, and `next` gives the following chunk, taking the
/// used one back (to recycle or drop).
pub(crate) fn read_chunks(
    buf: &mut [u8],
    inbuf: &mut Vec<u8>,
    inpos: &mut usize,
    mut next: impl FnMut(Vec<u8>) -> Result<Vec<u8>, NetError>,
) -> Result<(), NetError> {
    let mut filled = 0;
    while filled < buf.len() {
        if *inpos == inbuf.len() {
            // Consistent (empty) even when `next` fails.
            let used = std::mem::take(inbuf);
            *inpos = 0;
            *inbuf = next(used)?;
        }
        let n = (buf.len() - filled).min(inbuf.len() - *inpos);
        buf[filled..filled + n].copy_from_slice(&inbuf[*inpos..*inpos + n]);
        filled += n;
        *inpos += n;
    }
    Ok(())
}

/// One end of an in-memory channel (a pair of queues), for tests and single-process runs.
pub struct MemChannel {
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Vec<u8>>,
    /// Consumed receive buffers go back to the peer, which refills them: no allocation (and no
    /// page faults) per message once the pool is warm.
    recycle_tx: mpsc::Sender<Vec<u8>>,
    pool_rx: mpsc::Receiver<Vec<u8>>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    inpos: usize,
    timeout: Duration,
    scope: Scope,
}

/// Two connected in-memory channel ends.
pub fn mem_pair(timeout: Duration) -> (MemChannel, MemChannel) {
    let (tx_a, rx_b) = mpsc::channel();
    let (tx_b, rx_a) = mpsc::channel();
    let (recycle_a, pool_b) = mpsc::channel();
    let (recycle_b, pool_a) = mpsc::channel();
    let mk = |tx, rx, recycle_tx, pool_rx| MemChannel {
        tx,
        rx,
        recycle_tx,
        pool_rx,
        out: Vec::new(),
        inbuf: Vec::new(),
        inpos: 0,
        timeout,
        scope: Scope::new(),
    };
    (
        mk(tx_a, rx_a, recycle_a, pool_a),
        mk(tx_b, rx_b, recycle_b, pool_b),
    )
}

const MEM_CHUNK: usize = 1 << 20;

impl std::fmt::Debug for MemChannel {
    // Buffered bytes may be labels or shares: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemChannel")
            .field("timeout", &self.timeout)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Channel for MemChannel {
    fn send(&mut self, mut bytes: &[u8]) -> Result<(), NetError> {
        while !bytes.is_empty() {
            if self.out.capacity() == 0 {
                self.out = self
                    .pool_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(MEM_CHUNK));
                self.out.clear();
            }
            let n = bytes
                .len()
                .min(MEM_CHUNK.saturating_sub(self.out.len()).max(1));
            self.out.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.out.len() >= MEM_CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        if !self.out.is_empty() {
            self.flush()?;
        }
        read_chunks(buf, &mut self.inbuf, &mut self.inpos, |used| {
            let fresh = recv_queue(&self.rx, self.timeout, &self.scope)?;
            if used.capacity() >= MEM_CHUNK {
                // The peer may be gone; then the buffer is simply freed.
                let _ = self.recycle_tx.send(used);
            }
            Ok(fresh)
        })
    }
    fn flush(&mut self) -> Result<(), NetError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.out);
        self.tx.send(data).map_err(|_| NetError::Disconnected {
            context: self.scope.context(),
        })
    }
    fn set_scope(&mut self, phase: Phase, layer: Option<&str>) {
        self.scope.set(phase, layer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_pair_round_trip_and_timeout() {
        let (mut a, mut b) = mem_pair(Duration::from_millis(200));
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 5];
            b.recv(&mut buf).unwrap();
            b.send_u64(u64::from(buf[4])).unwrap();
            b.flush().unwrap();
            b
        });
        a.send(b"hello").unwrap();
        a.flush().unwrap();
        assert_eq!(a.recv_u64().unwrap(), u64::from(b'o'));
        let _b = t.join().unwrap();
        let mut buf = [0u8; 1];
        assert!(matches!(a.recv(&mut buf), Err(NetError::Timeout { .. })));
    }

    #[test]
    fn mem_peer_dropping_mid_message_is_disconnected_with_scope() {
        let (mut a, b) = mem_pair(Duration::from_secs(10));
        let t = std::thread::spawn(move || {
            let mut b = b;
            b.send(&[1, 2, 3, 4]).unwrap(); // half of a u64
            b.flush().unwrap();
        });
        t.join().unwrap();
        a.set_scope(Phase::Online, Some("relu3"));
        let e = a.recv_u64().unwrap_err();
        assert!(matches!(e, NetError::Disconnected { .. }), "{e}");
        assert!(e.to_string().contains("online phase, layer relu3"), "{e}");
        // Sending to a vanished peer is a disconnect too, not a panic.
        a.send(&[0u8; 8]).unwrap();
        assert!(matches!(a.flush(), Err(NetError::Disconnected { .. })));
    }

    #[test]
    fn mem_silent_peer_times_out_with_scope() {
        let (mut a, b) = mem_pair(Duration::from_millis(50));
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let mut b = b;
            b.send(&[9u8; 3]).unwrap();
            b.flush().unwrap();
            // Alive but silent until the other side has given up.
            let _ = done_rx.recv();
        });
        a.set_scope(Phase::Offline, None);
        let e = a.recv_u64().unwrap_err();
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("offline phase"), "{e}");
    }

    #[test]
    fn scope_display_and_reuse() {
        let mut s = Scope::new();
        assert_eq!(s.to_string(), "setup phase");
        s.set(Phase::Online, Some("layer4.1.relu2"));
        assert_eq!(s.to_string(), "online phase, layer layer4.1.relu2");
        s.set(Phase::Online, Some("fc"));
        assert_eq!((s.phase(), s.layer()), (Phase::Online, Some("fc")));
        s.set(Phase::Offline, None);
        assert_eq!(s.layer(), None);
    }
}
