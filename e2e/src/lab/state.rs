//! Machine-wide lab state under `/run/ironlb-lab`: which slots are taken, and the directory of
//! the last `lab up` (the default `--dir` of later commands).
//!
//! A slot is taken while any namespace or root link of its lab id exists, or while a lab
//! directory claims it. Slot choice happens under a machine-wide lock so that two `lab up`s
//! cannot pick the same one.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use super::netns;
use super::plan::{self, MAX_SLOTS, lab_id};
use super::topology;
use super::{Error, Result};

const STATE_DIR: &str = "/run/ironlb-lab";
pub const DIR_ENV: &str = "IRONLB_LAB_DIR";

fn state_dir() -> Result<PathBuf> {
    let dir = PathBuf::from(STATE_DIR);
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {STATE_DIR}"), e))?;
    Ok(dir)
}

/// Holds the machine-wide lab lock until dropped.
pub fn lock_machine() -> Result<File> {
    let path = state_dir()?.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    file.lock()
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
    Ok(file)
}

fn claim_path(slot: u8) -> Result<PathBuf> {
    Ok(state_dir()?.join(format!("slot-{slot}")))
}

/// The directory that claims a slot, if that claim is still backed by a topology.
fn claimant(slot: u8) -> Result<Option<PathBuf>> {
    let Ok(text) = fs::read_to_string(claim_path(slot)?) else {
        return Ok(None);
    };
    let dir = PathBuf::from(text.trim());
    Ok(match topology::read(&dir) {
        Ok(Some(t)) if t.plan.slot == slot => Some(dir),
        _ => None,
    })
}

/// Whether anything of the slot's lab exists or is claimed.
pub fn slot_in_use(slot: u8) -> Result<bool> {
    let id = lab_id(slot);
    Ok(!netns::lab_namespaces(&id)?.is_empty()
        || netns::root_link_exists(&format!("{id}-mgmt"))
        || claimant(slot)?.is_some())
}

/// Picks the lowest free slot and claims it for `dir`. Call with [`lock_machine`] held.
pub fn claim_free_slot(dir: &Path) -> Result<u8> {
    for slot in 0..MAX_SLOTS {
        if !slot_in_use(slot)? {
            let path = claim_path(slot)?;
            fs::write(&path, dir.display().to_string())
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            return Ok(slot);
        }
    }
    Err(Error::NoFreeSlot)
}

/// Drops the claim if it is this directory's.
pub fn release_slot(slot: u8, dir: &Path) -> Result<()> {
    let path = claim_path(slot)?;
    if fs::read_to_string(&path).is_ok_and(|t| Path::new(t.trim()) == dir) {
        fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    Ok(())
}

pub fn remember_last_dir(dir: &Path) -> Result<()> {
    let path = state_dir()?.join("last-dir");
    fs::write(&path, dir.display().to_string())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn last_dir() -> Option<PathBuf> {
    let text = fs::read_to_string(Path::new(STATE_DIR).join("last-dir")).ok()?;
    let dir = PathBuf::from(text.trim());
    dir.is_dir().then_some(dir)
}

/// `--dir`, else `$IRONLB_LAB_DIR`, else the directory of the last `lab up`.
pub fn resolve_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let chosen = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(DIR_ENV).map(PathBuf::from))
        .or_else(last_dir)
        .ok_or(Error::NoDir)?;
    absolute(&chosen)
}

/// Absolute, so that records stay valid whatever the caller's working directory.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io(format!("resolving {}", path.display()), e))
}

/// Every lab id with something left on this machine (for `lab down --all`).
pub fn labs_present() -> Result<Vec<(u8, Option<PathBuf>)>> {
    let mut out = Vec::new();
    for slot in 0..MAX_SLOTS {
        if slot_in_use(slot)? {
            out.push((slot, claimant(slot)?));
        }
    }
    Ok(out)
}

/// The plan's id for a slot; re-exported here for callers that only hold a slot.
pub fn id_of(slot: u8) -> String {
    plan::lab_id(slot)
}
