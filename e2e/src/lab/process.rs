//! Starting, finding and ending the lab's long-running processes.
//!
//! Each process is started with `ip netns exec NS PROGRAM ...` (which execs, so the pid we get
//! is the program's own), in its own process group, with stdin closed and stdout/stderr
//! appended to its log file. Pids are checked against `/proc/PID/cmdline` before they are
//! signalled, so a recycled pid is never hit.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::{Error, Result};

/// What it takes to start one process in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch<'a> {
    pub netns: &'a str,
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub log: &'a Path,
}

/// Starts the process detached from us and returns its pid.
pub fn spawn(launch: &Launch<'_>) -> Result<u32> {
    if !launch.program.is_file() {
        return Err(Error::MissingBinary(launch.program.to_path_buf()));
    }
    if let Some(parent) = launch.log.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.log)
            .map_err(|e| Error::io(format!("opening {}", launch.log.display()), e))
    };
    let child = Command::new("ip")
        .args(["netns", "exec", launch.netns])
        .arg(launch.program)
        .args(launch.args)
        .envs(launch.env)
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        // Its own group: a Ctrl-C meant for `lab` does not reach it, and we can signal the
        // whole group later.
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(format!("starting {}", launch.program.display()), e))?;
    // The child is reaped by init once `lab` exits; until then `is_running` treats a zombie
    // as gone.
    Ok(child.id())
}

fn pid(raw: u32) -> Option<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw)
}

/// The process state letter from `/proc/PID/stat` (`R`, `S`, `Z`, ...).
fn state(raw: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{raw}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; the state follows it.
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// The program a pid runs, as the first word of its command line.
fn program_of(raw: u32) -> Option<PathBuf> {
    let cmdline = fs::read(format!("/proc/{raw}/cmdline")).ok()?;
    let first = cmdline.split(|b| *b == 0).next()?;
    Some(PathBuf::from(String::from_utf8_lossy(first).into_owned()))
}

/// Whether `raw` is a live (non-zombie) process running `program`. Right after `spawn` the
/// pid may still be our own fork, or `ip netns exec` about to exec the program, or between
/// the two; that counts.
pub fn is_running(raw: u32, program: &Path) -> bool {
    match state(raw) {
        None | Some('Z') | Some('X') => false,
        Some(_) => program_of(raw).is_some_and(|p| {
            let me = std::env::current_exe().ok();
            // Empty while the kernel is in the middle of exec.
            p.as_os_str().is_empty()
                || p == program
                || p.file_name() == program.file_name()
                || p.file_name().is_some_and(|n| n == "ip")
                || me.is_some_and(|me| p == me)
        }),
    }
}

/// Sends a signal to the process group led by `raw` and to the process itself.
pub fn signal(raw: u32, sig: Signal) {
    if let Some(p) = pid(raw) {
        // Errors mean it is gone already, which is what we want.
        let _ = rustix::process::kill_process_group(p, sig);
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Whether any of the pids is still a live process.
fn any_alive(pids: &[u32]) -> bool {
    pids.iter()
        .any(|p| !matches!(state(*p), None | Some('Z') | Some('X')))
}

/// Waits until none of the pids is alive; returns whether that happened before the timeout.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !any_alive(pids) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then SIGKILL for whatever did not exit within `grace`.
pub fn terminate(pids: &[u32], grace: Duration) {
    for p in pids {
        signal(*p, Signal::TERM);
    }
    if !wait_gone(pids, grace) {
        kill(pids);
    }
}

/// SIGKILL and wait (briefly) for the kernel to finish them.
pub fn kill(pids: &[u32]) {
    for p in pids {
        signal(*p, Signal::KILL);
    }
    wait_gone(pids, Duration::from_secs(5));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_itself_running_and_a_bogus_pid_not() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap();
        assert!(is_running(me, &exe));
        // Our own binary counts: a freshly forked child has not exec'd yet.
        assert!(is_running(me, Path::new("/usr/bin/some-other-program")));
        assert!(!is_running(u32::MAX, &exe));
        assert!(matches!(state(me), Some(c) if c != 'Z'));
    }

    #[test]
    fn terminate_ends_a_child_and_its_group() {
        let mut child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let raw = child.id();
        terminate(&[raw], Duration::from_secs(5));
        // Our own child stays a zombie until waited for: that counts as gone.
        assert!(!is_running(raw, Path::new("/usr/bin/sleep")));
        assert!(wait_gone(&[raw], Duration::from_millis(10)));
        assert!(!child.wait().unwrap().success(), "it was killed");
    }

    #[test]
    fn spawn_refuses_a_missing_binary() {
        let env = BTreeMap::new();
        let err = spawn(&Launch {
            netns: "does-not-matter",
            program: Path::new("/nonexistent/lab-thing"),
            args: &[],
            env: &env,
            log: Path::new("/tmp/never-written.log"),
        })
        .unwrap_err();
        assert!(matches!(err, Error::MissingBinary(_)));
    }
}
