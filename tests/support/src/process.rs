//! A real `coffeebuddy-local` (or any function binary) as a child process:
//! started with exactly the environment given, its port read from its
//! `listening` log line, stopped with SIGTERM or killed with SIGKILL, its
//! resident memory read from `/proc`.
//!
//! For tests and tools that must see what an operator sees: a process that
//! dies mid-call and starts again on the same database.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running CoffeeBuddy process. Killed (SIGKILL) on drop if still running.
#[derive(Debug)]
pub struct AppProcess {
    child: Child,
    /// Where it serves: `http://127.0.0.1:PORT`.
    pub base: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl AppProcess {
    /// Starts `binary` with exactly `env` (nothing inherited but `PATH`;
    /// `PORT=0` and JSON logs are added unless given) and waits up to 60 s
    /// for its `listening` line (without blocking the runtime: a Slack
    /// fake on it keeps answering).
    pub async fn start(binary: &Path, env: &[(&str, String)]) -> std::io::Result<Self> {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let port = listening_port(&lines.lock().unwrap_or_else(|e| e.into_inner()));
            if let Some(port) = port {
                return Ok(Self {
                    child,
                    base: format!("http://127.0.0.1:{port}"),
                    lines,
                });
            }
            if let Some(status) = child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "{} exited ({status}) before listening:\n{}",
                    binary.display(),
                    lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(std::io::Error::other(format!(
                    "{} did not listen within 60 s",
                    binary.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it is still running (it never exited by itself).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far (stdout and stderr).
    pub fn logs(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The log lines so far parsed as JSON (others skipped).
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Resident memory now, in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// Peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// SIGKILL: the process dies at once, mid-whatever, as an OOM kill or
    /// a node failure would do it. Waits until it is gone.
    pub fn kill_hard(&mut self) -> std::io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    /// SIGTERM, then waits up to `timeout` for the exit (SIGKILL after).
    /// Blocks the thread while it waits.
    pub fn terminate(&mut self, timeout: Duration) -> std::io::Result<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                return self.child.wait();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The port in a `listening` log line's `addr`.
fn listening_port(lines: &[String]) -> Option<u16> {
    lines.iter().find_map(|line| {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        if json["message"] != "listening" {
            return None;
        }
        json["addr"].as_str()?.rsplit(':').next()?.parse().ok()
    })
}

/// A `/proc/<pid>/status` field in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A binary next to the running executable's directory or its parent (a
/// test binary lives in `target/<profile>/deps/`, tools in
/// `target/<profile>/`).
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(name), dir.parent()?.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}
