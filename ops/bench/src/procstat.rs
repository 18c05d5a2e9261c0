//! A server process's CPU time and memory, from `/proc`.

/// User + system CPU time of a process's children that it has waited for, in microseconds
/// (`cutime` + `cstime`): how an external load generator's CPU is read once it has ended.
pub fn waited_children_cpu_micros(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unreadable /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cutime: u64 = f.get(13).map_or(Ok(0), |v| v.parse())?;
    let cstime: u64 = f.get(14).map_or(Ok(0), |v| v.parse())?;
    Ok((cutime + cstime) * 1_000_000 / clock_ticks())
}

/// User + system CPU time of a process so far, in microseconds.
pub fn cpu_micros(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unreadable /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based, name = 2).
    let utime: u64 = f.get(11).map_or(Ok(0), |v| v.parse())?;
    let stime: u64 = f.get(12).map_or(Ok(0), |v| v.parse())?;
    Ok((utime + stime) * 1_000_000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// A `/proc/PID/status` memory line (`VmHWM`, `VmRSS`) in MB.
pub fn memory_mb(pid: u32, key: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {key} in /proc/{pid}/status"))?;
    Ok(kb / 1024.0)
}

/// Every process in the tree under `pid` (nginx has workers), `pid` included.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            out.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    out
}

/// CPU microseconds of a whole process tree.
pub fn tree_cpu_micros(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| cpu_micros(p).ok())
        .sum()
}
