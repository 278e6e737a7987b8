//! Opening TCP channels: a server that accepts one peer within a time-out, a client that keeps
//! retrying until the server is up or the time-out expires.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::channel::{NetError, TcpChannel};

/// How long to wait between two polls of a non-blocking accept, or two connection attempts.
const POLL: Duration = Duration::from_millis(20);

fn io_err(context: String, source: std::io::Error) -> NetError {
    NetError::Io { context, source }
}

fn resolve<A: ToSocketAddrs>(addr: A) -> Result<Vec<SocketAddr>, NetError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| io_err("resolving the address".into(), e))?
        .collect();
    if addrs.is_empty() {
        return Err(io_err(
            "resolving the address".into(),
            std::io::Error::new(ErrorKind::NotFound, "the address resolves to nothing"),
        ));
    }
    Ok(addrs)
}

/// A bound TCP socket waiting for one peer.
///
/// Binding and accepting are separate so that a caller (or a test) can bind port 0 and learn the
/// port before the peer connects.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Bind `addr` (e.g. `0.0.0.0:7000`, or port 0 for any free port).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> Result<Listener, NetError> {
        let addrs = resolve(addr)?;
        let listener = TcpListener::bind(&addrs[..])
            .map_err(|e| io_err(format!("binding {}", addrs[0]), e))?;
        Ok(Listener { listener })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.listener
            .local_addr()
            .map_err(|e| io_err("reading the bound address".into(), e))
    }

    /// Accept one peer, waiting at most `accept_timeout`; the channel's receives and writes
    /// time out after `io_timeout`.
    pub fn accept(
        &self,
        accept_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<TcpChannel, NetError> {
        let here = self.local_addr()?;
        let context = || format!("waiting for a peer on {here}");
        // Non-blocking accept polled until the deadline: std has no accept with a time-out.
        self.listener
            .set_nonblocking(true)
            .map_err(|e| io_err(context(), e))?;
        let deadline = deadline_after(accept_timeout);
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    let left =
                        deadline.map_or(POLL, |d| d.saturating_duration_since(Instant::now()));
                    if left.is_zero() {
                        return Err(NetError::Timeout {
                            timeout: accept_timeout,
                            context: context(),
                        });
                    }
                    std::thread::sleep(POLL.min(left));
                }
                // A peer that connected and vanished before we accepted it: wait for another.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(io_err(context(), e)),
            }
        };
        // The accepted socket may inherit non-blocking mode on some platforms.
        stream
            .set_nonblocking(false)
            .map_err(|e| io_err(context(), e))?;
        TcpChannel::new(stream, io_timeout).map_err(|e| io_err(context(), e))
    }
}

/// While alive, answers every further peer of a [`Listener`] with a "server busy" hello and
/// closes the connection, so that a second client is told at once instead of waiting for a
/// time-out. Dropping it stops the answering thread.
#[derive(Debug)]
pub struct TurnAway {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Turn away every peer that connects from now on until the returned guard is dropped
    /// (a server busy with the client it accepted).
    pub fn turn_away(self) -> TurnAway {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Already non-blocking from `accept`; set again for a listener never accepted on.
            let _ = self.listener.set_nonblocking(true);
            while !flag.load(Ordering::Relaxed) {
                match self.listener.accept() {
                    Ok((s, _)) => refuse_busy(s),
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        });
        TurnAway {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TurnAway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Send the busy hello, close our side and drain what the peer sent until it closes too (a
/// close with unread data would make the kernel reset the connection, and the peer could lose
/// the hello). Bounded by a short time-out: a peer that never closes cannot hold the thread.
fn refuse_busy(mut s: TcpStream) {
    use std::io::{Read, Write};
    let t = Some(Duration::from_secs(2));
    if s.set_nonblocking(false).is_err()
        || s.set_read_timeout(t).is_err()
        || s.set_write_timeout(t).is_err()
    {
        return;
    }
    if s.write_all(&super::handshake::busy_hello()).is_err()
        || s.shutdown(std::net::Shutdown::Write).is_err()
    {
        return;
    }
    let mut sink = [0u8; 256];
    let mut total = 0usize;
    while let Ok(n) = s.read(&mut sink) {
        total += n;
        if n == 0 || total > 1 << 16 {
            break;
        }
    }
}

/// Listen on `addr` and accept one peer within `timeout`; the channel's receives and writes also
/// time out after `timeout`.
pub fn listen<A: ToSocketAddrs>(addr: A, timeout: Duration) -> Result<TcpChannel, NetError> {
    Listener::bind(addr)?.accept(timeout, timeout)
}

/// Connect to `addr`, retrying refused or failed attempts until `timeout` has passed (so a
/// client started before its server still connects); the channel's receives and writes also
/// time out after `timeout`.
pub fn connect<A: ToSocketAddrs>(addr: A, timeout: Duration) -> Result<TcpChannel, NetError> {
    connect_with(addr, timeout, timeout)
}

/// [`connect`] with separate time-outs for establishing the connection and for its I/O.
pub fn connect_with<A: ToSocketAddrs>(
    addr: A,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> Result<TcpChannel, NetError> {
    let addrs = resolve(addr)?;
    let context =
        |last: &std::io::Error| format!("connecting to {} (last error: {last})", addrs[0]);
    let deadline = deadline_after(connect_timeout);
    loop {
        let mut last = None;
        for a in &addrs {
            let left = deadline
                .map_or(POLL, |d| d.saturating_duration_since(Instant::now()))
                .max(POLL);
            match TcpStream::connect_timeout(a, left) {
                Ok(s) => {
                    return TcpChannel::new(s, io_timeout)
                        .map_err(|e| io_err(format!("configuring the connection to {a}"), e))
                }
                Err(e) => last = Some(e),
            }
        }
        let last = last.expect("at least one address");
        let left = deadline.map_or(POLL, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Err(NetError::Timeout {
                timeout: connect_timeout,
                context: context(&last),
            });
        }
        std::thread::sleep(POLL.min(left));
    }
}

/// The instant `timeout` from now, or `None` when that lies beyond what `Instant` can represent
/// (a time-out of centuries means "never"): `Instant + Duration` would panic there.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::channel::{Channel, ChannelExt, Phase};
    use crate::net::handshake::{handshake, Fingerprint, Role};
    use crate::net::meter::Metered;

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn client_started_before_server_still_connects() {
        let port = free_port();
        let client = std::thread::spawn(move || {
            let mut ch = connect(("127.0.0.1", port), Duration::from_secs(10)).unwrap();
            handshake(&mut ch, Role::Client, 1, &Fingerprint::of(b"m")).unwrap();
            ch.send_u64(42).unwrap();
            ch.flush().unwrap();
            ch.recv_u64().unwrap()
        });
        // Let the client meet a refused connection first.
        std::thread::sleep(Duration::from_millis(100));
        let mut ch = listen(("127.0.0.1", port), Duration::from_secs(10)).unwrap();
        handshake(&mut ch, Role::Server, 1, &Fingerprint::of(b"m")).unwrap();
        assert_eq!(ch.recv_u64().unwrap(), 42);
        ch.send_u64(43).unwrap();
        ch.flush().unwrap();
        assert_eq!(client.join().unwrap(), 43);
    }

    #[test]
    fn time_outs_too_long_for_the_clock_mean_never_and_do_not_panic() {
        // `Instant + Duration::MAX` overflows: accept and connect must treat it as no deadline.
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || l.accept(Duration::MAX, Duration::MAX).map(|_| ()));
        let ch = connect_with(addr, Duration::MAX, Duration::MAX).unwrap();
        t.join().unwrap().unwrap();
        assert_eq!(ch.timeout(), Duration::MAX);
    }

    #[test]
    fn a_busy_listener_turns_further_peers_away() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let guard = l.turn_away();
        let mut ch = connect(addr, Duration::from_secs(10)).unwrap();
        let e = handshake(&mut ch, Role::Client, 1, &Fingerprint::of(b"m")).unwrap_err();
        assert!(matches!(e, crate::net::HandshakeError::ServerBusy), "{e}");
        drop(guard);
    }

    #[test]
    fn accept_times_out_without_a_peer() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let e = l
            .accept(Duration::from_millis(60), Duration::from_secs(1))
            .unwrap_err();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("waiting for a peer"), "{e}");
    }

    #[test]
    fn connect_times_out_without_a_server() {
        let port = free_port();
        let e = connect(("127.0.0.1", port), Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("connecting to 127.0.0.1"), "{e}");
    }

    #[test]
    fn bad_address_is_a_clear_error() {
        let e = connect("not an address", Duration::from_millis(10)).unwrap_err();
        assert!(e.to_string().contains("resolving"), "{e}");
    }

    /// A server and a client over loopback; `peer` runs on the server side.
    fn tcp_pair<F>(io_timeout: Duration, peer: F) -> (TcpChannel, std::thread::JoinHandle<()>)
    where
        F: FnOnce(TcpChannel) + Send + 'static,
    {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            peer(l.accept(Duration::from_secs(10), io_timeout).unwrap());
        });
        (connect(addr, io_timeout).unwrap(), t)
    }

    /// Receives of every size, from a byte to several read buffers, some served partly from
    /// what is buffered and some read straight into the caller's buffer, deliver the stream
    /// in order.
    #[test]
    fn receives_of_every_size_deliver_the_stream_in_order() {
        let sizes = [
            1usize,
            7,
            70_000,
            3,
            65_536,
            65_535,
            2_500_000,
            1,
            1 << 20,
            65_537,
            9,
        ];
        let total: usize = sizes.iter().sum();
        let stream: Vec<u8> = (0..total).map(|i| (i * 31 + i / 251) as u8).collect();
        let sent = stream.clone();
        let (mut ch, t) = tcp_pair(Duration::from_secs(10), move |mut p| {
            // Writes cut differently from the reads, so reads find partial buffers.
            for piece in sent.chunks(40_000) {
                p.send(piece).unwrap();
                p.flush().unwrap();
            }
        });
        let mut got = Vec::with_capacity(total);
        for &n in &sizes {
            let mut buf = vec![0u8; n];
            ch.recv(&mut buf).unwrap();
            got.extend_from_slice(&buf);
        }
        t.join().unwrap();
        assert!(got == stream, "the received stream differs");
    }

    #[test]
    fn peer_closing_mid_message_is_disconnected_with_scope() {
        let (mut ch, t) = tcp_pair(Duration::from_secs(10), |mut p| {
            p.send(&[1, 2, 3, 4]).unwrap(); // half of a u64
            p.flush().unwrap();
            // Dropping closes the socket, as the kernel does when the process is killed.
        });
        ch.set_scope(Phase::Online, Some("relu5"));
        let e = ch.recv_u64().unwrap_err();
        t.join().unwrap();
        assert!(matches!(e, NetError::Disconnected { .. }), "{e}");
        assert!(e.to_string().contains("online phase, layer relu5"), "{e}");
    }

    #[test]
    fn peer_reset_with_unread_data_is_disconnected_with_scope() {
        let (mut ch, t) = tcp_pair(Duration::from_secs(10), |mut p| {
            // Read a little, then close with most of the message unread: Linux answers with a
            // reset rather than an orderly close, as for a killed process.
            let mut b = [0u8; 1];
            p.recv(&mut b).unwrap();
        });
        ch.set_scope(Phase::Offline, Some("gc3"));
        let chunk = vec![0u8; 1 << 20];
        // The failure may surface on a write (broken pipe) or on the read (reset): both are a
        // disconnect.
        let mut attempt = || -> Result<u64, NetError> {
            for _ in 0..4 {
                ch.send(&chunk)?;
            }
            ch.flush()?;
            ch.recv_u64()
        };
        let e = attempt().unwrap_err();
        t.join().unwrap();
        assert!(matches!(e, NetError::Disconnected { .. }), "{e}");
        assert!(e.to_string().contains("offline phase, layer gc3"), "{e}");
    }

    #[test]
    fn silent_tcp_peer_times_out_with_scope() {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (ch, t) = tcp_pair(Duration::from_millis(100), move |_p| {
            // Stay connected but silent until the other side has given up.
            let _ = done_rx.recv();
        });
        let mut ch = Metered::new(ch);
        ch.set_scope(Phase::Online, Some("fc"));
        let e = ch.recv_u64().unwrap_err();
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("online phase, layer fc"), "{e}");
    }

    #[test]
    fn writing_to_a_peer_that_never_reads_times_out() {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (mut ch, t) = tcp_pair(Duration::from_millis(200), move |_p| {
            let _ = done_rx.recv();
        });
        ch.set_scope(Phase::Offline, Some("tables"));
        // Far more than loopback socket buffers hold.
        let chunk = vec![0u8; 1 << 20];
        let mut result = Ok(());
        for _ in 0..256 {
            result = ch.send(&chunk);
            if result.is_err() {
                break;
            }
        }
        done_tx.send(()).unwrap();
        t.join().unwrap();
        let e = result.unwrap_err();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("offline phase, layer tables"), "{e}");
    }

    /// Streams 2 GiB through `Metered<TcpChannel>` over loopback, and the same through a bare
    /// `TcpStream` as a baseline, and prints both rates.
    /// `cargo test --release --lib net::tcp -- --ignored --nocapture`
    #[test]
    #[ignore = "throughput sanity check; prints a figure"]
    fn loopback_throughput() {
        use std::io::{Read, Write};
        const TOTAL: usize = 2 << 30;
        const PIECE: usize = 1 << 16;

        // Baseline: plain sockets, 64 KiB writes and reads.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; PIECE];
            let mut left = TOTAL;
            while left > 0 {
                let n = s.read(&mut buf[..left.min(PIECE)]).unwrap();
                assert!(n > 0);
                left -= n;
            }
            s.write_all(&[1]).unwrap();
        });
        let mut s = TcpStream::connect(addr).unwrap();
        let buf = vec![7u8; PIECE];
        let start = Instant::now();
        for _ in 0..TOTAL / PIECE {
            s.write_all(&buf).unwrap();
        }
        s.read_exact(&mut [0u8; 1]).unwrap();
        let raw = TOTAL as f64 / start.elapsed().as_secs_f64() / 1e9;
        t.join().unwrap();

        let (ch, t) = tcp_pair(Duration::from_secs(30), |p| {
            let mut p = Metered::new(p);
            let mut buf = vec![0u8; PIECE];
            for _ in 0..TOTAL / PIECE {
                p.recv(&mut buf).unwrap();
            }
            p.send_u64(1).unwrap();
            p.flush().unwrap();
        });
        let mut ch = Metered::new(ch);
        let start = Instant::now();
        for _ in 0..TOTAL / PIECE {
            ch.send(&buf).unwrap();
        }
        ch.recv_u64().unwrap();
        let metered = TOTAL as f64 / start.elapsed().as_secs_f64() / 1e9;
        t.join().unwrap();
        assert_eq!(ch.stats().total.bytes_sent, TOTAL as u64);
        println!(
            "loopback, {TOTAL} bytes in 64 KiB pieces: Metered<TcpChannel> {metered:.2} GB/s, \
             bare TcpStream {raw:.2} GB/s"
        );
    }
}
