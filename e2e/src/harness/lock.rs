//! Lab tests run one at a time, across test threads and test binaries: a lab is heavy on a
//! two-core machine, and tests that count processes or namespaces must not see another's.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use super::HarnessError;

/// Held for the life of a lab [`super::Cluster`].
#[derive(Debug)]
pub struct LabLock {
    _file: File,
}

pub fn lock_path() -> PathBuf {
    std::env::temp_dir().join("ironlb-lab-tests.lock")
}

impl LabLock {
    /// Blocks until no other lab test holds the lock.
    pub fn acquire() -> Result<Self, HarnessError> {
        let path = lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| HarnessError::Io(format!("opening {}: {e}", path.display())))?;
        file.lock()
            .map_err(|e| HarnessError::Io(format!("locking {}: {e}", path.display())))?;
        Ok(LabLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let first = LabLock::acquire().unwrap();
        let got_it = Arc::new(AtomicBool::new(false));
        let flag = got_it.clone();
        let t = std::thread::spawn(move || {
            let _second = LabLock::acquire().unwrap();
            flag.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!got_it.load(Ordering::SeqCst), "the lock is exclusive");
        drop(first);
        t.join().unwrap();
        assert!(got_it.load(Ordering::SeqCst));
    }
}
