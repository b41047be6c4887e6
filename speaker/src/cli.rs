//! The command line: every flag of `ironlb-speaker`, each with an environment fallback.
//!
//! This is the one list of flags; the lab and the Helm chart pass these. [`Args::settings`]
//! validates them into the configurations of the other modules, with a typed error per
//! problem.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ironlb_crds::annotations::IpMode;
use ironlb_crds::class::{ClassFilter, DEFAULT_LB_CLASS};
use ironlb_crds::names::NameError;
use ironlb_crds::runtime::duration::parse_duration;
use ironlb_crds::runtime::telemetry::LogFormat;

use crate::forwarding::{MarkBit, MarkBitError};
use crate::health::{HealthzUrl, HealthzUrlError};
use crate::membership::{self, MembershipArgs};
use crate::state::StateConfig;

/// ironlb-speaker announces the external IPs of LoadBalancer Services on layer 2: one node
/// per IP answers ARP/NDP for it and forwards its traffic to the Service's NodePorts.
///
/// Run it on every node (a DaemonSet with hostNetwork, NET_RAW and NET_ADMIN). The Kubernetes
/// connection comes from KUBECONFIG (or ~/.kube/config), else from the in-cluster service
/// account.
#[derive(Clone, Debug, Parser)]
#[command(name = "ironlb-speaker", version)]
pub struct Args {
    /// This node's name, as its Node object is called (the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,

    /// Namespace of the IPAddressPools, L2Advertisements and ServiceL2Statuses.
    #[arg(long, env = "IRONLB_NAMESPACE", default_value = "ironlb-system")]
    pub namespace: String,

    /// The loadBalancerClass this speaker handles.
    #[arg(long, env = "IRONLB_LB_CLASS", default_value = DEFAULT_LB_CLASS)]
    pub lb_class: String,

    /// Leave Services without a loadBalancerClass alone (by default they are handled).
    #[arg(long, env = "IRONLB_IGNORE_UNCLASSED")]
    pub ignore_unclassed: bool,

    /// How addresses whose Service status carries no ipMode are handled (older API servers):
    /// Proxy forwards to NodePorts, VIP only announces. Same rule as the controller's flag.
    #[arg(long, env = "IRONLB_IP_MODE", default_value = "Proxy", value_parser = parse_ip_mode)]
    pub ip_mode: IpMode,

    /// Address of the admin endpoint: /metrics, /healthz, /readyz.
    #[arg(long, env = "IRONLB_ADMIN_ADDR", default_value = "0.0.0.0:7473")]
    pub admin_addr: SocketAddr,

    #[command(flatten)]
    pub membership: MembershipArgs,

    /// The bit of the packet and conntrack marks that forwarding borrows (one bit, as hex or
    /// decimal); it must be free in both marks on the node.
    #[arg(long, env = "IRONLB_FORWARD_MARK", default_value = "0x2000")]
    pub forward_mark: String,

    /// How long forwarding rules outlive the announcement of an address (after a loss and at
    /// shutdown), for packets from clients that still have this node's MAC in their cache.
    #[arg(long, env = "IRONLB_FORWARD_DRAIN", default_value = "2s", value_parser = parse_duration)]
    pub forward_drain: Duration,

    /// This node's kube-proxy health endpoint. While it fails, this speaker leaves membership
    /// so that other nodes announce its addresses. Empty disables the check (no kube-proxy).
    #[arg(
        long,
        env = "IRONLB_KUBE_PROXY_HEALTHZ",
        default_value = "http://127.0.0.1:10256/healthz"
    )]
    pub kube_proxy_healthz: String,

    /// Log filter, in RUST_LOG syntax (info, debug, ironlb_speaker=debug,kube=warn).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,

    /// Log line format.
    #[arg(long, env = "IRONLB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn parse_ip_mode(text: &str) -> Result<IpMode, String> {
    text.parse::<IpMode>().map_err(|e| e.to_string())
}

/// A flag that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--node-name {name:?}: {source}")]
    BadNodeName { name: String, source: NameError },
    #[error("--lb-class {class:?}: {source}")]
    BadClass { class: String, source: NameError },
    #[error("--namespace {namespace:?}: {source}")]
    BadNamespace {
        namespace: String,
        source: NameError,
    },
    #[error("--forward-mark: {0}")]
    BadMark(#[from] MarkBitError),
    #[error("--kube-proxy-healthz: {0}")]
    BadHealthz(#[from] HealthzUrlError),
    #[error("{0}")]
    Membership(#[from] membership::Error),
}

/// The validated configuration of every part.
#[derive(Clone, Debug)]
pub struct Settings {
    pub state: StateConfig,
    pub namespace: String,
    pub admin_addr: SocketAddr,
    pub membership: MembershipArgs,
    pub forward_mark: MarkBit,
    pub forward_drain: Duration,
    /// `None`: kube-proxy is not checked.
    pub kube_proxy_healthz: Option<HealthzUrl>,
}

impl Args {
    /// Validates the flags, including the membership configuration and key file, so that a
    /// mistake stops the speaker at start rather than when it first joins.
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        ironlb_crds::names::check_dns1123_subdomain(&self.node_name).map_err(|source| {
            SettingsError::BadNodeName {
                name: self.node_name.clone(),
                source,
            }
        })?;
        let class = ClassFilter::new(&self.lb_class, self.ignore_unclassed).map_err(|source| {
            SettingsError::BadClass {
                class: self.lb_class.clone(),
                source,
            }
        })?;
        ironlb_crds::names::check_dns1123_label(&self.namespace).map_err(|source| {
            SettingsError::BadNamespace {
                namespace: self.namespace.clone(),
                source,
            }
        })?;
        let forward_mark: MarkBit = self.forward_mark.parse()?;
        let kube_proxy_healthz = if self.kube_proxy_healthz.trim().is_empty() {
            None
        } else {
            Some(self.kube_proxy_healthz.parse()?)
        };
        self.membership.config()?;
        self.membership.load_key()?;
        Ok(Settings {
            state: StateConfig {
                node: self.node_name.clone(),
                class,
                default_ip_mode: self.ip_mode,
            },
            namespace: self.namespace.clone(),
            admin_addr: self.admin_addr,
            membership: self.membership.clone(),
            forward_mark,
            forward_drain: self.forward_drain,
            kube_proxy_healthz,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::io::Write;
    use std::path::PathBuf;

    /// A key file for the duration of a test.
    struct KeyFile(PathBuf);

    impl KeyFile {
        fn new(tag: &str, contents: &[u8]) -> KeyFile {
            let path = std::env::temp_dir()
                .join(format!("ironlb-speaker-cli-{tag}-{}", std::process::id()));
            std::fs::File::create(&path)
                .unwrap()
                .write_all(contents)
                .unwrap();
            KeyFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for KeyFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ironlb-speaker").chain(args.iter().copied()))
    }

    #[test]
    fn the_flag_list_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let key = KeyFile::new("defaults", b"a-long-enough-shared-key");
        let args = parse(&["--node-name", "node1", "--membership-key-file", key.path()]).unwrap();
        let s = args.settings().unwrap();
        assert_eq!(s.state.node, "node1");
        assert_eq!(s.namespace, "ironlb-system");
        assert_eq!(s.admin_addr, "0.0.0.0:7473".parse().unwrap());
        assert_eq!(s.state.class.class(), DEFAULT_LB_CLASS);
        assert!(s.state.class.accepts_class(None));
        assert_eq!(s.state.default_ip_mode, IpMode::Proxy);
        assert_eq!(s.forward_mark, MarkBit::DEFAULT);
        assert_eq!(s.forward_drain, Duration::from_secs(2));
        assert_eq!(
            s.kube_proxy_healthz.unwrap().to_string(),
            "http://127.0.0.1:10256/healthz"
        );
        assert_eq!(s.membership.port, 7946);
        assert_eq!(args.log_format, LogFormat::Text);
    }

    #[test]
    fn every_flag_is_read() {
        let key = KeyFile::new("every", b"a-long-enough-shared-key");
        let args = parse(&[
            "--node-name=worker-7",
            "--namespace=lb",
            "--lb-class=example.com/lb",
            "--ignore-unclassed",
            "--ip-mode=VIP",
            "--admin-addr=127.0.0.1:9000",
            "--membership-key-file",
            key.path(),
            "--membership-port=7000",
            "--forward-mark=0x400000",
            "--forward-drain=500ms",
            "--kube-proxy-healthz=http://[::1]:10256/healthz",
            "--log-level=debug",
            "--log-format=json",
        ])
        .unwrap();
        let s = args.settings().unwrap();
        assert_eq!(s.state.node, "worker-7");
        assert_eq!(s.namespace, "lb");
        assert!(!s.state.class.accepts_class(None));
        assert!(s.state.class.accepts_class(Some("example.com/lb")));
        assert_eq!(s.state.default_ip_mode, IpMode::Vip);
        assert_eq!(s.admin_addr.port(), 9000);
        assert_eq!(s.membership.port, 7000);
        assert_eq!(s.forward_mark.value(), 0x40_0000);
        assert_eq!(s.forward_drain, Duration::from_millis(500));
        assert_eq!(s.kube_proxy_healthz.unwrap().port(), 10256);
        assert_eq!(args.log_level, "debug");
        assert_eq!(args.log_format, LogFormat::Json);

        let off = parse(&[
            "--node-name=n",
            "--membership-key-file",
            key.path(),
            "--kube-proxy-healthz=",
        ])
        .unwrap();
        assert!(off.settings().unwrap().kube_proxy_healthz.is_none());
    }

    #[test]
    fn malformed_flags_are_refused_with_a_reason() {
        let key = KeyFile::new("bad", b"a-long-enough-shared-key");
        let k = key.path();
        for bad in [
            &["--membership-key-file", k][..],
            &["--node-name=n", "--membership-key-file", k, "--ip-mode=vip"],
            &[
                "--node-name=n",
                "--membership-key-file",
                k,
                "--admin-addr=x",
            ],
            &[
                "--node-name=n",
                "--membership-key-file",
                k,
                "--forward-drain=soon",
            ],
            &["--node-name=n"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let settings = |extra: &[&str]| {
            let mut args = vec!["--membership-key-file", k];
            args.extend_from_slice(extra);
            if !extra.iter().any(|a| a.starts_with("--node-name")) {
                args.push("--node-name=node1");
            }
            parse(&args).unwrap().settings().unwrap_err()
        };
        assert!(matches!(
            settings(&["--node-name=Node_1"]),
            SettingsError::BadNodeName { .. }
        ));
        assert!(matches!(
            settings(&["--lb-class=not a class"]),
            SettingsError::BadClass { .. }
        ));
        assert!(matches!(
            settings(&["--namespace=Bad_NS"]),
            SettingsError::BadNamespace { .. }
        ));
        assert!(matches!(
            settings(&["--forward-mark=0x3000"]),
            SettingsError::BadMark(_)
        ));
        assert!(matches!(
            settings(&["--kube-proxy-healthz=https://127.0.0.1:10256/healthz"]),
            SettingsError::BadHealthz(_)
        ));
        assert!(matches!(
            settings(&["--membership-ack-timeout-ms=90"]),
            SettingsError::Membership(_)
        ));
        let short = KeyFile::new("short", b"tiny");
        let err = parse(&["--node-name=n", "--membership-key-file", short.path()])
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(matches!(err, SettingsError::Membership(_)), "{err}");
        assert!(err.to_string().contains("key"), "{err}");
    }

    #[test]
    fn help_names_every_default_and_variable() {
        let help = Args::command().render_long_help().to_string();
        for needle in [
            "NODE_NAME",
            "IRONLB_NAMESPACE",
            "ironlb-system",
            "ironlb.io/ironlb",
            "0.0.0.0:7473",
            "0x2000",
            "http://127.0.0.1:10256/healthz",
            "IRONLB_MEMBERSHIP_KEY_FILE",
            "--membership-probe-interval-ms",
            "[default: 2s]",
            "RUST_LOG",
        ] {
            assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
        }
    }
}
