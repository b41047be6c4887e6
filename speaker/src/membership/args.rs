//! Command-line flags (and environment variables) for membership; `#[command(flatten)]` them into
//! the speaker's arguments.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::config::Config;
use super::driver::Settings;
use super::key::Key;
use super::{Error, Result};

#[derive(Debug, Clone, clap::Args)]
pub struct MembershipArgs {
    /// UDP port for membership traffic between speakers, on the node IP.
    #[arg(
        long = "membership-port",
        env = "IRONLB_MEMBERSHIP_PORT",
        default_value_t = 7946
    )]
    pub port: u16,

    /// File holding the shared membership key (mounted from a Secret; at least 16 bytes).
    #[arg(long = "membership-key-file", env = "IRONLB_MEMBERSHIP_KEY_FILE")]
    pub key_file: PathBuf,

    /// How often each speaker probes the speakers it monitors, in milliseconds.
    #[arg(
        long = "membership-probe-interval-ms",
        env = "IRONLB_MEMBERSHIP_PROBE_INTERVAL_MS",
        default_value_t = 100
    )]
    pub probe_interval_ms: u64,

    /// Wait for a direct ack before probing indirectly, in milliseconds.
    #[arg(
        long = "membership-ack-timeout-ms",
        env = "IRONLB_MEMBERSHIP_ACK_TIMEOUT_MS",
        default_value_t = 40
    )]
    pub ack_timeout_ms: u64,

    /// Further wait for a direct or indirect ack before suspecting, in milliseconds.
    #[arg(
        long = "membership-indirect-timeout-ms",
        env = "IRONLB_MEMBERSHIP_INDIRECT_TIMEOUT_MS",
        default_value_t = 60
    )]
    pub indirect_timeout_ms: u64,

    /// Time a suspected speaker has to refute before it is declared dead, in milliseconds.
    #[arg(
        long = "membership-suspicion-timeout-ms",
        env = "IRONLB_MEMBERSHIP_SUSPICION_TIMEOUT_MS",
        default_value_t = 250
    )]
    pub suspicion_timeout_ms: u64,

    /// How many speakers monitor each speaker.
    #[arg(
        long = "membership-monitors",
        env = "IRONLB_MEMBERSHIP_MONITORS",
        default_value_t = 3
    )]
    pub monitors: usize,

    /// How many speakers are asked to probe indirectly after a missed ack.
    #[arg(
        long = "membership-indirect-probes",
        env = "IRONLB_MEMBERSHIP_INDIRECT_PROBES",
        default_value_t = 3
    )]
    pub indirect_probes: usize,

    /// How often dead or departed speakers are probed for a comeback, in milliseconds.
    #[arg(
        long = "membership-rejoin-interval-ms",
        env = "IRONLB_MEMBERSHIP_REJOIN_INTERVAL_MS",
        default_value_t = 1000
    )]
    pub rejoin_interval_ms: u64,
}

impl MembershipArgs {
    /// The validated protocol configuration.
    pub fn config(&self) -> Result<Config> {
        let config = Config {
            probe_interval: Duration::from_millis(self.probe_interval_ms),
            ack_timeout: Duration::from_millis(self.ack_timeout_ms),
            indirect_timeout: Duration::from_millis(self.indirect_timeout_ms),
            suspicion_timeout: Duration::from_millis(self.suspicion_timeout_ms),
            monitors: self.monitors,
            indirect_probes: self.indirect_probes,
            rejoin_interval: Duration::from_millis(self.rejoin_interval_ms),
            ..Config::default()
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads the key file.
    pub fn load_key(&self) -> Result<Key> {
        let contents = std::fs::read(&self.key_file).map_err(|source| Error::KeyFile {
            path: self.key_file.clone(),
            source,
        })?;
        Ok(Key::from_file_contents(&contents)?)
    }

    /// Driver settings for the node `node_name` whose IP is `node_ip`.
    pub fn settings(&self, node_name: &str, node_ip: IpAddr) -> Result<Settings> {
        Ok(Settings {
            node_name: node_name.to_owned(),
            bind: SocketAddr::new(node_ip, self.port),
            key: self.load_key()?,
            config: self.config()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        membership: MembershipArgs,
    }

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("speaker").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_give_the_default_config() {
        let cli = parse(&["--membership-key-file", "/k"]).unwrap();
        assert_eq!(cli.membership.config().unwrap(), Config::default());
        assert_eq!(cli.membership.port, 7946);
    }

    #[test]
    fn flags_tune_the_timers() {
        let cli = parse(&[
            "--membership-key-file=/k",
            "--membership-probe-interval-ms=200",
            "--membership-ack-timeout-ms=50",
            "--membership-indirect-timeout-ms=100",
            "--membership-suspicion-timeout-ms=500",
            "--membership-monitors=2",
        ])
        .unwrap();
        let c = cli.membership.config().unwrap();
        assert_eq!(c.detection_bound(), Duration::from_millis(850));
        assert_eq!(c.monitors, 2);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&[]).is_err(), "the key file is required");
        assert!(
            parse(&[
                "--membership-key-file=/k",
                "--membership-probe-interval-ms=fast"
            ])
            .is_err()
        );
        let cli = parse(&["--membership-key-file=/k", "--membership-ack-timeout-ms=90"]).unwrap();
        assert!(matches!(cli.membership.config(), Err(Error::Config(_))));
        let cli = parse(&[
            "--membership-key-file=/k",
            "--membership-suspicion-timeout-ms=0",
        ])
        .unwrap();
        assert!(matches!(cli.membership.config(), Err(Error::Config(_))));
    }

    #[test]
    fn key_file_errors_are_typed() {
        let cli = parse(&["--membership-key-file=/nonexistent/ironlb/key"]).unwrap();
        assert!(matches!(
            cli.membership.load_key(),
            Err(Error::KeyFile { .. })
        ));

        let dir =
            std::env::temp_dir().join(format!("ironlb-membership-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::File::create(&short)
            .unwrap()
            .write_all(b"tiny\n")
            .unwrap();
        let good = dir.join("good");
        std::fs::File::create(&good)
            .unwrap()
            .write_all(b"a-long-enough-shared-key\n")
            .unwrap();
        let args =
            |p: &std::path::Path| parse(&["--membership-key-file", p.to_str().unwrap()]).unwrap();
        assert!(matches!(
            args(&short).membership.load_key(),
            Err(Error::Key(_))
        ));
        let settings = args(&good)
            .membership
            .settings("node-1", "192.0.2.1".parse().unwrap())
            .unwrap();
        assert_eq!(settings.bind, "192.0.2.1:7946".parse().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
