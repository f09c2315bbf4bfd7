//! What each verb of momctl does, through the [`crate::provider::Provider`] seam: the commands
//! never ask which provider runs. They print nothing: each returns what the CLI (`main.rs`)
//! reports, and progress goes to a [`crate::report::Reporter`]. A command that asks the user
//! something in between (`up` shows what it will do, `down` asks before removing) comes in two
//! calls.

pub mod build;
pub mod down;
pub mod init;
pub mod logs;
pub mod plan;
pub mod render;
pub mod status;
pub mod up;
pub mod upgrade;

use std::path::Path;

use crate::config::{self, Settings};
use crate::desired::Desired;
use crate::error::Error;

/// mom.yaml, loaded and checked: everything wrong with it is reported before anything is
/// touched.
pub struct Loaded {
    pub settings: Settings,
    /// The cluster on its provider's engines.
    pub desired: Desired,
}

pub fn load(file: &Path) -> Result<Loaded, Error> {
    let (_, settings) = config::load(file)?;
    let desired = crate::provider::desired(&settings);
    Ok(Loaded { settings, desired })
}
