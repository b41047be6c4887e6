//! The command line: every flag of `ironlb-controller`, each with an environment fallback.
//!
//! This is the one list of flags; the lab and the Helm chart pass these. [`Args::settings`]
//! validates them into the configurations of the other modules, with a typed error per
//! problem.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ironlb_crds::annotations::IpMode;
use ironlb_crds::class::{ClassFilter, DEFAULT_LB_CLASS};
use ironlb_crds::names::NameError;

use crate::brain::BrainConfig;
use crate::leader::LeaseConfig;
use crate::telemetry::LogFormat;
use crate::writer::{Backoff, WriterConfig};

/// `--ip-mode` values, spelled as Kubernetes spells `ipMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IpModeArg {
    #[value(name = "Proxy")]
    Proxy,
    #[value(name = "VIP")]
    Vip,
}

impl From<IpModeArg> for IpMode {
    fn from(arg: IpModeArg) -> IpMode {
        match arg {
            IpModeArg::Proxy => IpMode::Proxy,
            IpModeArg::Vip => IpMode::Vip,
        }
    }
}

/// ironlb-controller assigns external IPs from IPAddressPools to Services of type LoadBalancer.
///
/// The Kubernetes connection comes from KUBECONFIG (or ~/.kube/config), else from the
/// in-cluster service account.
#[derive(Clone, Debug, Parser)]
#[command(name = "ironlb-controller", version)]
pub struct Args {
    /// Namespace of the IPAddressPools and of the leader Lease.
    #[arg(long, env = "IRONLB_NAMESPACE", default_value = "ironlb-system")]
    pub namespace: String,

    /// The loadBalancerClass this controller handles.
    #[arg(long, env = "IRONLB_LB_CLASS", default_value = DEFAULT_LB_CLASS)]
    pub lb_class: String,

    /// Leave Services without a loadBalancerClass alone (by default they are handled).
    #[arg(
        long,
        env = "IRONLB_IGNORE_UNCLASSED",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub ignore_unclassed: bool,

    /// The ipMode written to Service status unless the Service's ironlb.io/ip-mode annotation
    /// says otherwise (Services with allocateLoadBalancerNodePorts=false get VIP).
    #[arg(long, env = "IRONLB_IP_MODE", value_enum, default_value = "Proxy")]
    pub ip_mode: IpModeArg,

    /// Address of the admin endpoint: /metrics, /healthz, /readyz.
    #[arg(long, env = "IRONLB_ADMIN_ADDR", default_value = "0.0.0.0:7472")]
    pub admin_addr: SocketAddr,

    /// Name of the leader-election Lease.
    #[arg(long, env = "IRONLB_LEASE_NAME", default_value = "ironlb-controller")]
    pub lease_name: String,

    /// How long a Lease holder is trusted without renewal; a standby takes over after this.
    #[arg(long, env = "IRONLB_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// A leader that cannot renew for this long stops leading. Must be below the lease
    /// duration.
    #[arg(long, env = "IRONLB_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_deadline: Duration,

    /// How often the Lease is renewed, and how often a standby checks it.
    #[arg(long, env = "IRONLB_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub lease_retry_period: Duration,

    // Written as `help` rather than a doc comment: rustdoc reads the angle brackets as HTML.
    #[arg(
        long,
        env = "POD_NAME",
        help = "This replica's identity in the Lease [default: <hostname>_<pid>]"
    )]
    pub identity: Option<String>,

    /// Log filter, in RUST_LOG syntax (info, debug, ironlb_controller=debug,kube=warn).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,

    /// Log line format.
    #[arg(long, env = "IRONLB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Service status writes in flight at most. Annotation and pool status writes get a
    /// quarter of this on top, and Events another quarter.
    #[arg(long, env = "IRONLB_WRITE_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub write_concurrency: u16,

    /// Minimum time between two status writes of one IPAddressPool (bursts are coalesced).
    #[arg(long, env = "IRONLB_POOL_STATUS_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub pool_status_interval: Duration,
}

/// A flag combination that cannot work.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("--lb-class {class:?}: {source}")]
    BadClass { class: String, source: NameError },
    #[error("--namespace {namespace:?}: {source}")]
    BadNamespace {
        namespace: String,
        source: NameError,
    },
    #[error(
        "--lease-renew-deadline ({renew:?}) must be shorter than --lease-duration ({duration:?}), or a standby could take over while the leader still writes"
    )]
    RenewDeadlineTooLong { renew: Duration, duration: Duration },
    #[error(
        "--lease-retry-period ({retry:?}) must be shorter than --lease-renew-deadline ({renew:?})"
    )]
    RetryPeriodTooLong { retry: Duration, renew: Duration },
    #[error("--lease-duration must be at least 1s (the Lease counts whole seconds)")]
    LeaseTooShort,
    #[error("--identity must not be empty")]
    EmptyIdentity,
}

/// The validated configuration of every part.
#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace: String,
    pub admin_addr: SocketAddr,
    pub lease: LeaseConfig,
    pub brain: BrainConfig,
    pub writer: WriterConfig,
}

impl Args {
    /// Validates the flags. `hostname` supplies the default identity.
    pub fn settings(&self, hostname: &str) -> Result<Settings, SettingsError> {
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
        if self.lease_duration < Duration::from_secs(1) {
            return Err(SettingsError::LeaseTooShort);
        }
        if self.lease_renew_deadline >= self.lease_duration {
            return Err(SettingsError::RenewDeadlineTooLong {
                renew: self.lease_renew_deadline,
                duration: self.lease_duration,
            });
        }
        if self.lease_retry_period >= self.lease_renew_deadline {
            return Err(SettingsError::RetryPeriodTooLong {
                retry: self.lease_retry_period,
                renew: self.lease_renew_deadline,
            });
        }
        let identity = match &self.identity {
            Some(id) if id.trim().is_empty() => return Err(SettingsError::EmptyIdentity),
            Some(id) => id.clone(),
            // The pid keeps two replicas on one host (the lab) from sharing an identity, which
            // would let both believe they hold the Lease.
            None => format!("{hostname}_{}", std::process::id()),
        };
        Ok(Settings {
            namespace: self.namespace.clone(),
            admin_addr: self.admin_addr,
            lease: LeaseConfig {
                name: self.lease_name.clone(),
                namespace: self.namespace.clone(),
                identity: identity.clone(),
                lease_duration: self.lease_duration,
                renew_deadline: self.lease_renew_deadline,
                retry_period: self.lease_retry_period,
            },
            brain: BrainConfig {
                class,
                default_ip_mode: self.ip_mode.into(),
                ip_mode_supported: true,
            },
            writer: WriterConfig {
                concurrency: usize::from(self.write_concurrency),
                background_concurrency: usize::from(self.write_concurrency / 4).max(1),
                event_concurrency: usize::from(self.write_concurrency / 4).max(1),
                pool_status_interval: self.pool_status_interval,
                backoff: Backoff::default(),
                instance: identity,
                ..WriterConfig::default()
            },
        })
    }
}

// Shared with the speaker, so every duration flag reads the same way.
pub use ironlb_crds::runtime::duration::{BadDuration, parse_duration};

/// The host's name, for the default identity.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "ironlb-controller".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ironlb-controller").chain(args.iter().copied()))
    }

    #[test]
    fn the_flag_list_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        // Env fallbacks could leak in from the test environment; these are unlikely to be set.
        let args = parse(&[]).unwrap();
        let s = args.settings("node-1").unwrap();
        assert_eq!(s.namespace, "ironlb-system");
        assert_eq!(s.admin_addr, "0.0.0.0:7472".parse().unwrap());
        assert_eq!(s.lease.name, "ironlb-controller");
        assert_eq!(s.lease.lease_duration, Duration::from_secs(15));
        assert_eq!(s.lease.renew_deadline, Duration::from_secs(10));
        assert_eq!(s.lease.retry_period, Duration::from_secs(2));
        assert!(s.lease.identity.starts_with("node-1_"));
        assert_eq!(s.brain.class.class(), DEFAULT_LB_CLASS);
        assert!(s.brain.class.accepts_class(None));
        assert_eq!(s.brain.default_ip_mode, IpMode::Proxy);
        assert_eq!(s.writer.concurrency, 32);
        assert_eq!(s.writer.pool_status_interval, Duration::from_secs(1));
        assert_eq!(args.log_format, LogFormat::Text);
    }

    #[test]
    fn every_flag_is_read() {
        let args = parse(&[
            "--namespace",
            "lb",
            "--lb-class",
            "example.com/lb",
            "--ignore-unclassed",
            "--ip-mode",
            "VIP",
            "--admin-addr",
            "127.0.0.1:9000",
            "--lease-name",
            "l",
            "--lease-duration",
            "4s",
            "--lease-renew-deadline",
            "3s",
            "--lease-retry-period",
            "500ms",
            "--identity",
            "pod-a",
            "--log-level",
            "debug",
            "--log-format",
            "json",
            "--write-concurrency",
            "8",
            "--pool-status-interval",
            "250ms",
        ])
        .unwrap();
        let s = args.settings("ignored").unwrap();
        assert_eq!(s.namespace, "lb");
        assert_eq!(s.lease.namespace, "lb");
        assert!(!s.brain.class.accepts_class(None));
        assert!(s.brain.class.accepts_class(Some("example.com/lb")));
        assert_eq!(s.brain.default_ip_mode, IpMode::Vip);
        assert_eq!(s.admin_addr.port(), 9000);
        assert_eq!(s.lease.identity, "pod-a");
        assert_eq!(s.writer.instance, "pod-a");
        assert_eq!(s.lease.retry_period, Duration::from_millis(500));
        assert_eq!(s.writer.concurrency, 8);
        assert_eq!(s.writer.background_concurrency, 2);
        assert_eq!(s.writer.event_concurrency, 2);
        assert_eq!(s.writer.pool_status_interval, Duration::from_millis(250));
        assert_eq!(args.log_level, "debug");
        assert_eq!(args.log_format, LogFormat::Json);
    }

    #[test]
    fn malformed_flags_are_refused_with_a_reason() {
        for bad in [
            &["--ip-mode", "vip"][..],
            &["--admin-addr", "nowhere"],
            &["--lease-duration", "soon"],
            &["--write-concurrency", "0"],
            &["--log-format", "xml"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let settings = |args: &[&str]| parse(args).unwrap().settings("h").unwrap_err();
        assert!(matches!(
            settings(&["--lb-class", "not a class"]),
            SettingsError::BadClass { .. }
        ));
        assert!(matches!(
            settings(&["--namespace", "Bad_NS"]),
            SettingsError::BadNamespace { .. }
        ));
        assert!(matches!(
            settings(&["--lease-duration", "5s"]),
            SettingsError::RenewDeadlineTooLong { .. }
        ));
        assert!(matches!(
            settings(&["--lease-retry-period", "10s"]),
            SettingsError::RetryPeriodTooLong { .. }
        ));
        assert_eq!(
            settings(&["--lease-duration", "500ms"]),
            SettingsError::LeaseTooShort
        );
        assert_eq!(settings(&["--identity", " "]), SettingsError::EmptyIdentity);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in [
            "",
            "s",
            "1.5s",
            "-1s",
            "10 parsecs",
            "99999999999999999999s",
            "5d",
        ] {
            assert_eq!(parse_duration(bad), Err(BadDuration(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn help_names_every_default() {
        let help = Args::command().render_long_help().to_string();
        for needle in [
            "ironlb-system",
            "ironlb.io/ironlb",
            "0.0.0.0:7472",
            "15s",
            "10s",
            "2s",
            "<hostname>_<pid>",
            "IRONLB_NAMESPACE",
            "POD_NAME",
            "RUST_LOG",
            "[default: 32]",
        ] {
            assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
        }
    }
}
