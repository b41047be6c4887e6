//! Opening the responder's packet sockets: `AF_PACKET`/`SOCK_RAW`, filtered in the kernel
//! ([`filter`](super::filter)), bound to one interface and one EtherType, driven by pnet.
//!
//! The socket is created with protocol 0 (it receives nothing), gets its filter, and only
//! then is bound by pnet to the interface and EtherType, so no unfiltered frame of another
//! interface or type is ever queued on it. No `unsafe`: socket2 attaches the filter and pnet
//! takes the descriptor.

use std::io;
use std::os::fd::IntoRawFd;
use std::time::Duration;

use pnet::datalink::{
    self, Channel, ChannelType, DataLinkReceiver, DataLinkSender, NetworkInterface,
};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use super::filter::{self, Insn};
use crate::packet::EtherType;

/// How long a receive waits before the thread checks whether it should stop.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// Which frames a socket carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Arp,
    Ndp,
}

impl Kind {
    fn ethertype(self) -> u16 {
        match self {
            Kind::Arp => EtherType::ARP,
            Kind::Ndp => EtherType::IPV6,
        }
    }

    fn program(self) -> &'static [Insn] {
        match self {
            Kind::Arp => &filter::ARP,
            Kind::Ndp => &filter::NDP,
        }
    }
}

pub type Sender = Box<dyn DataLinkSender>;
pub type Receiver = Box<dyn DataLinkReceiver>;

/// Opens a filtered channel of `kind` on `interface`. Needs CAP_NET_RAW.
pub fn open(interface: &NetworkInterface, kind: Kind) -> io::Result<(Sender, Receiver)> {
    let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
    let program: Vec<SockFilter> = kind
        .program()
        .iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
    socket.attach_filter(&program)?;
    let config = datalink::Config {
        read_timeout: Some(READ_TIMEOUT),
        write_timeout: Some(WRITE_TIMEOUT),
        // pnet binds the descriptor with this protocol, which is what selects the EtherType.
        channel_type: ChannelType::Layer3(kind.ethertype()),
        promiscuous: false,
        socket_fd: Some(socket.into_raw_fd()),
        ..datalink::Config::default()
    };
    match datalink::channel(interface, config)? {
        Channel::Ethernet(tx, rx) => Ok((tx, rx)),
        _ => Err(io::Error::other("pnet returned a non-Ethernet channel")),
    }
}

/// The interface called `name`, if the node has it.
pub fn find_interface(name: &str) -> Option<NetworkInterface> {
    datalink::interfaces().into_iter().find(|i| i.name == name)
}

/// The name of the interface that holds `ip`.
pub fn interface_holding(ip: std::net::IpAddr) -> Option<String> {
    datalink::interfaces()
        .into_iter()
        .find(|i| i.ips.iter().any(|net| net.ip() == ip))
        .map(|i| i.name)
}
