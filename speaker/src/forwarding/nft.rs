//! Programming the kernel: [`NftBackend`], the two operations the runtime needs, and
//! [`NetlinkNft`], which sends encoded batches on a `NETLINK_NETFILTER` socket.
//!
//! No `nft` binary is involved. The socket belongs to the network namespace of the thread that
//! opened it, for its whole life.
//!
//! Calls block for at most the configured timeout (default 5 s); the kernel answers a batch
//! synchronously while it is being sent, so in practice a call returns in microseconds to a few
//! milliseconds. From async code, call it via `spawn_blocking` or accept the short block.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use rustix::net::sockopt;

use super::netlink_msg::{Batch, MessageRole, encode_remove, encode_replace};
use super::reply::{Reply, ReplyError, parse_replies};
use super::ruleset::Ruleset;

/// The operations the forwarding runtime performs on the kernel; a fake implements it in tests.
pub trait NftBackend {
    /// Atomically replaces table `ruleset.table` (family inet) with `ruleset`. On error the
    /// kernel's previous table is left as it was, except after [`NftError::is_outcome_unknown`]
    /// errors.
    fn replace(&mut self, ruleset: &Ruleset) -> Result<(), NftError>;

    /// Removes table `table` (family inet); succeeds when it does not exist.
    fn remove(&mut self, table: &str) -> Result<(), NftError>;
}

/// One message of a batch that the kernel refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageFailure {
    pub seq: u32,
    pub role: MessageRole,
    /// The message in words, e.g. `rule 2 of chain vip_198.51.100.10_tcp_80: counter ...`.
    pub what: String,
    /// The positive errno the kernel returned.
    pub errno: i32,
    /// The kernel's extended-ACK text, when it sent one.
    pub kernel_message: Option<String>,
}

impl fmt::Display for MessageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.what,
            io::Error::from_raw_os_error(self.errno)
        )?;
        if let Some(message) = &self.kernel_message {
            write!(f, " ({message})")?;
        }
        Ok(())
    }
}

fn join_failures(failures: &[MessageFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("netlink socket: {op} failed: {source}")]
    Socket {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("sent {sent} of {len} bytes of the nftables batch")]
    ShortSend { sent: usize, len: usize },
    #[error("the kernel rejected the nftables transaction, nothing was changed: {}", join_failures(.failures))]
    Rejected { failures: Vec<MessageFailure> },
    #[error(
        "no complete answer from the kernel within {0:?}; the transaction's outcome is unknown"
    )]
    Timeout(Duration),
    #[error(
        "kernel replies were dropped (socket receive buffer full); the transaction's outcome is unknown"
    )]
    RepliesLost,
    #[error("malformed netlink reply: {0}")]
    Reply(#[from] ReplyError),
}

impl NftError {
    /// True when the kernel may or may not have applied the transaction.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(
            self,
            NftError::Timeout(_) | NftError::RepliesLost | NftError::Reply(_)
        )
    }

    /// The errno of the first refused message, if the kernel refused one.
    pub fn first_errno(&self) -> Option<i32> {
        match self {
            NftError::Rejected { failures } => failures.first().map(|f| f.errno),
            _ => None,
        }
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const RECV_BUFFER: usize = 64 * 1024;
/// Room for many error replies if a large batch fails everywhere.
const SOCKET_RCVBUF: usize = 4 * 1024 * 1024;

/// nf_tables over a `NETLINK_NETFILTER` socket.
pub struct NetlinkNft {
    socket: Socket,
    next_seq: u32,
    timeout: Duration,
}

impl fmt::Debug for NetlinkNft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetlinkNft")
            .field("next_seq", &self.next_seq)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn socket_err(op: &'static str) -> impl FnOnce(io::Error) -> NftError {
    move |source| NftError::Socket { op, source }
}

impl NetlinkNft {
    /// Opens a socket in the calling thread's network namespace. Needs CAP_NET_ADMIN to
    /// change anything (the kernel answers EPERM otherwise).
    pub fn open() -> Result<Self, NftError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(socket_err("socket"))?;
        socket.bind_auto().map_err(socket_err("bind"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(socket_err("connect"))?;
        // Extended ACKs carry the kernel's reason text; capped ACKs do not echo our messages.
        // Both are optional, so an old kernel refusing them is not an error.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        if sockopt::set_socket_recv_buffer_size_force(&socket, SOCKET_RCVBUF).is_err() {
            let _ = sockopt::set_socket_recv_buffer_size(&socket, SOCKET_RCVBUF);
        }
        // Start from a time-derived number so replies meant for a previous socket in this
        // process can never be mistaken for ours.
        let next_seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        Ok(NetlinkNft {
            socket,
            next_seq,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long to wait for the kernel's answer to one batch.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Encodes a batch numbered from the next free sequence number and reserves its numbers.
    fn number(&mut self, encode: impl FnOnce(u32) -> Batch) -> Batch {
        let batch = encode(self.next_seq);
        self.next_seq = self
            .next_seq
            .wrapping_add(u32::try_from(batch.messages.len()).unwrap_or(u32::MAX));
        batch
    }

    fn ensure_send_buffer(&self, len: usize) -> Result<(), NftError> {
        // Netlink refuses a datagram larger than the send buffer (minus a little overhead).
        let needed = len + 4096;
        let current = sockopt::socket_send_buffer_size(&self.socket).unwrap_or(0);
        if current >= needed {
            return Ok(());
        }
        sockopt::set_socket_send_buffer_size_force(&self.socket, needed)
            .or_else(|_| sockopt::set_socket_send_buffer_size(&self.socket, needed))
            .map_err(|e| socket_err("setsockopt(SO_SNDBUF)")(e.into()))
    }

    /// Sends a batch and collects the kernel's verdict on it.
    fn transact(
        &mut self,
        batch: &Batch,
        ruleset: Option<&Ruleset>,
        table: &str,
    ) -> Result<(), NftError> {
        self.ensure_send_buffer(batch.bytes.len())?;
        let sent = self
            .socket
            .send(&batch.bytes, 0)
            .map_err(socket_err("send"))?;
        if sent != batch.bytes.len() {
            return Err(NftError::ShortSend {
                sent,
                len: batch.bytes.len(),
            });
        }
        let deadline = Instant::now() + self.timeout;
        let mut failures = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUFFER);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(NftError::Timeout(self.timeout));
            }
            sockopt::set_socket_timeout(&self.socket, sockopt::Timeout::Recv, Some(remaining))
                .map_err(|e| socket_err("setsockopt(SO_RCVTIMEO)")(e.into()))?;
            buf.clear();
            match self.socket.recv(&mut buf, 0) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(NftError::Timeout(self.timeout));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) => {
                    return Err(NftError::RepliesLost);
                }
                Err(e) => return Err(socket_err("recv")(e)),
            }
            let mut finished = false;
            for reply in parse_replies(&buf)? {
                let (seq, error) = match reply {
                    Reply::Ack { seq } => (seq, None),
                    Reply::Error {
                        seq,
                        errno,
                        message,
                    } => (seq, Some((errno, message))),
                    Reply::Other { .. } => continue,
                };
                // Replies to an earlier batch that timed out carry other sequence numbers.
                let Some(role) = batch.role_of(seq) else {
                    continue;
                };
                if let Some((errno, kernel_message)) = error {
                    failures.push(MessageFailure {
                        seq,
                        role,
                        what: role.describe(table, ruleset),
                        errno,
                        kernel_message,
                    });
                }
                // The ACKed last message, or an error on the batch as a whole, ends the answer.
                if seq == batch.acked_seq() || seq == batch.begin_seq() {
                    finished = true;
                }
            }
            if finished {
                return if failures.is_empty() {
                    Ok(())
                } else {
                    Err(NftError::Rejected { failures })
                };
            }
        }
    }
}

impl NftBackend for NetlinkNft {
    fn replace(&mut self, ruleset: &Ruleset) -> Result<(), NftError> {
        let batch = self.number(|first| encode_replace(ruleset, first));
        self.transact(&batch, Some(ruleset), &ruleset.table)
    }

    fn remove(&mut self, table: &str) -> Result<(), NftError> {
        let batch = self.number(|first| encode_remove(table, first));
        self.transact(&batch, None, table)
    }
}
