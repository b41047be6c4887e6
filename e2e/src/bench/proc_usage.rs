//! A process's resource use as the kernel reports it: resident set size (`VmRSS`) and its peak
//! (`VmHWM`) from `/proc/<pid>/status`, and CPU time from `/proc/<pid>/stat`. The parsers are
//! pure and tested; [`read_memory`] and [`read_cpu`] open the files.

use std::path::PathBuf;
use std::time::Duration;

/// The unit of the CPU times in `/proc/<pid>/stat`: `USER_HZ`, which the kernel fixes at 100
/// for every architecture it exports to userspace (`sysconf(_SC_CLK_TCK)`).
const USER_HZ: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ProcUsageError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no {field} line in /proc/<pid>/status (a kernel thread, or a zombie)")]
    MissingField { field: &'static str },
    #[error("{field} is {value:?}, not `<number> kB`")]
    BadField { field: &'static str, value: String },
    #[error("malformed /proc/<pid>/stat: {0}")]
    BadStat(String),
}

/// Resident memory of one process, in KiB (the kernel's "kB" are KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

impl Memory {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// Reads the memory of `pid` now.
pub fn read_memory(pid: u32) -> Result<Memory, ProcUsageError> {
    parse_status(&read_proc(pid, "status")?)
}

/// Reads the CPU time (user + system) `pid` has used so far.
pub fn read_cpu(pid: u32) -> Result<Duration, ProcUsageError> {
    parse_stat_cpu(&read_proc(pid, "stat")?)
}

fn read_proc(pid: u32, file: &str) -> Result<String, ProcUsageError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::read_to_string(&path).map_err(|source| ProcUsageError::Read { path, source })
}

/// `utime + stime` from the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted after the
/// last `)`.
pub fn parse_stat_cpu(text: &str) -> Result<Duration, ProcUsageError> {
    let bad = |what: &str| ProcUsageError::BadStat(what.to_string());
    let (_, after_comm) = text.rsplit_once(')').ok_or_else(|| bad("no `(comm)`"))?;
    // After the name: state (field 3), ..., utime (field 14), stime (field 15).
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |index: usize, name: &str| -> Result<u64, ProcUsageError> {
        fields
            .get(index)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad(&format!("{name} is missing or not a number")))
    };
    let total = ticks(11, "utime")?.saturating_add(ticks(12, "stime")?);
    Ok(Duration::from_millis(total.saturating_mul(1000 / USER_HZ)))
}

/// Extracts `VmRSS` and `VmHWM` from the text of `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> Result<Memory, ProcUsageError> {
    Ok(Memory {
        rss_kib: field_kib(text, "VmRSS")?,
        peak_rss_kib: field_kib(text, "VmHWM")?,
    })
}

fn field_kib(text: &str, field: &'static str) -> Result<u64, ProcUsageError> {
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .ok_or(ProcUsageError::MissingField { field })?;
    let bad = || ProcUsageError::BadField {
        field,
        value: value.trim().to_string(),
    };
    let mut words = value.split_whitespace();
    let number = words.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
    match (words.next(), words.next()) {
        (Some("kB"), None) => Ok(number),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tironlb-controll\nState:\tS (sleeping)\nVmPeak:\t  812345 kB\n\
                          VmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\nRssAnon:\t   20000 kB\nThreads:\t3\n";

    #[test]
    fn reads_rss_and_its_peak() {
        let m = parse_status(STATUS).unwrap();
        assert_eq!(
            m,
            Memory {
                rss_kib: 30720,
                peak_rss_kib: 40960
            }
        );
        assert_eq!(m.rss_mib(), 30.0);
        assert_eq!(m.peak_rss_mib(), 40.0);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let m = read_memory(std::process::id()).unwrap();
        assert!(m.rss_kib > 0 && m.peak_rss_kib >= m.rss_kib, "{m:?}");
    }

    #[test]
    fn a_missing_process_is_a_read_error() {
        // Above the kernel's pid_max ceiling (2^22), so never a live pid.
        let err = read_memory(u32::MAX).unwrap_err();
        assert!(matches!(err, ProcUsageError::Read { .. }), "{err}");
    }

    #[test]
    fn kernel_threads_have_no_rss_line() {
        let err = parse_status("Name:\tkthreadd\nState:\tS (sleeping)\n").unwrap_err();
        assert!(
            matches!(err, ProcUsageError::MissingField { field: "VmRSS" }),
            "{err}"
        );
    }

    #[test]
    fn malformed_values_are_named() {
        for bad in [
            "VmRSS:\tlots kB\nVmHWM:\t1 kB",
            "VmRSS:\t12 MB\nVmHWM:\t1 kB",
            "VmRSS:\t12\nVmHWM:\t1 kB",
            "VmRSS:\t12 kB extra\nVmHWM:\t1 kB",
            "VmRSS:\t-12 kB\nVmHWM:\t1 kB",
            "VmRSS:\nVmHWM:\t1 kB",
        ] {
            let err = parse_status(bad).unwrap_err();
            assert!(
                matches!(err, ProcUsageError::BadField { field: "VmRSS", .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn a_longer_field_name_is_not_mistaken_for_rss() {
        let err = parse_status("VmRSSx:\t1 kB\nVmHWM:\t1 kB").unwrap_err();
        assert!(
            matches!(err, ProcUsageError::MissingField { field: "VmRSS" }),
            "{err}"
        );
    }

    #[test]
    fn cpu_time_counts_after_the_last_parenthesis() {
        // comm "(a) b)" holds a space and parentheses; utime 250 and stime 50 ticks.
        let stat = "4242 ((a) b)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 3 0 \
                    1000 800000000 7500 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat).unwrap(), Duration::from_millis(3000));
    }

    #[test]
    fn this_process_cpu_time_never_goes_back() {
        let before = read_cpu(std::process::id()).unwrap();
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a ^ b.wrapping_mul(31));
        std::hint::black_box(spin);
        assert!(read_cpu(std::process::id()).unwrap() >= before);
    }

    #[test]
    fn malformed_stat_lines_are_errors() {
        for bad in [
            "",
            "4242 no-parens S 1",
            "4242 (x) S 1 2 3",
            "4242 (x) S 1 4242 4242 0 -1 4194560 900 0 0 0 many 50 0",
            "4242 (x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 -5 0",
        ] {
            let err = parse_stat_cpu(bad).unwrap_err();
            assert!(matches!(err, ProcUsageError::BadStat(_)), "{bad:?}: {err}");
        }
    }
}
