//! Helpers shared by momctl's integration tests.
#![allow(dead_code)]

pub mod api;
pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Says loudly that the running test is skipped because of `why` (something this machine lacks:
/// Docker, an image, a tool, the simulated hosts), so a local run does not pass it unnoticed; in
/// CI (`CI` set, as `.ci/run` sets it) the same lack fails the test instead. The banner is
/// written to the process's stderr itself, not through `eprintln!`, which the test harness
/// captures and shows only for failing tests. Call once per test, then return.
pub fn skip(why: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("this test").to_string();
    assert!(std::env::var_os("CI").is_none(), "{test} cannot run in CI: {why}");
    let rule = "=".repeat(78);
    let banner = format!(
        "\n{rule}\nSKIPPED: {test}: {why}\n(it passes without having run; with CI set it fails instead)\n{rule}\n"
    );
    let _ = std::io::stderr().lock().write_all(banner.as_bytes());
}

/// The repository's root (operator/..).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh directory under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("momctl-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `momctl ARGS` in `dir`, with extra environment.
pub fn momctl(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_momctl"));
    cmd.current_dir(dir).args(args).env_remove("MOMCTL_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run momctl")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
