//! Processes on Linux, through `/proc`: the resident memory of a process tree
//! (a multi-process Python server counts all its workers) and stopping one.

use std::process::Child;
use std::time::{Duration, Instant};

/// The children of `pid`, from every process's parent in `/proc/*/stat`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| parent(candidate) == Some(pid))
        .collect()
}

fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// The fields of `/proc/<pid>/stat` after the command name (state, parent, ...).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().map(String::from).collect())
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        all.extend(children(all[i]));
        i += 1;
    }
    all
}

/// `VmRSS` of `pid`, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resident memory of `pid` and all its descendants.
pub fn tree_rss_bytes(pid: u32) -> u64 {
    descendants(pid).into_iter().map(rss_bytes).sum()
}

/// SIGTERM to the process and its descendants, then SIGKILL to whatever is
/// left after a grace period.
pub fn terminate_tree(child: &mut Child) {
    let tree = descendants(child.id());
    signal(&tree, "TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) && tree[1..].iter().all(|&p| !alive(p)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&tree, "KILL");
    let _ = child.wait();
}

/// Running, or at least not yet a zombie waiting for its parent.
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|state| state != "Z"))
}

fn signal(pids: &[u32], name: &str) {
    let mut kill = std::process::Command::new("kill");
    kill.arg(format!("-{name}"));
    for pid in pids {
        kill.arg(pid.to_string());
    }
    let _ = kill
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}
