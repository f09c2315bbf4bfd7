//! Tables from results: every run as one row, then the targets as ratios.
//!
//! `redis-benchmark --csv` output is imported as [`BenchResult`]s with target `redis`, so the
//! report reads one kind of file.

use std::fmt::Write as _;
use std::path::Path;

use super::{BenchResult, Error, Latency, Result};

/// Every `*.json` file of `dir` (each an array of results), in file-name order.
pub fn load_dir(dir: &Path) -> Result<Vec<BenchResult>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let mut part: Vec<BenchResult> =
            serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: {e}", f.display())))?;
        all.append(&mut part);
    }
    Ok(all)
}

/// Parses `redis-benchmark --csv` output: a header line, then one line per test with rps and
/// latencies in ms (no p99.9; redis-benchmark does not print it).
pub fn import_redis_csv(
    csv: &str,
    label: &str,
    concurrency: usize,
    body_bytes: usize,
    requests: u64,
) -> Result<BenchResult> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv(lines.next().ok_or_else(|| Error::Input("empty redis-benchmark CSV".into()))?);
    let row =
        split_csv(lines.next().ok_or_else(|| Error::Input("redis-benchmark CSV has no result row".into()))?);
    let field = |name: &str| -> Result<f64> {
        let i = header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::Input(format!("redis-benchmark CSV has no column {name}")))?;
        row.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Input(format!("redis-benchmark CSV: bad {name}")))
    };
    let rps = field("rps")?;
    Ok(BenchResult {
        target: "redis".into(),
        scenario: label.into(),
        mode: "closed".into(),
        target_rate: None,
        concurrency,
        body_bytes,
        messages_per_request: 1,
        duration_s: if rps > 0.0 { requests as f64 / rps } else { 0.0 },
        requests,
        messages: requests,
        errors: 0,
        first_error: None,
        requests_per_s: rps,
        messages_per_s: rps,
        latency: Latency {
            p50_us: field("p50_latency_ms")? * 1000.0,
            p99_us: field("p99_latency_ms")? * 1000.0,
            p999_us: None,
            max_us: field("max_latency_ms")? * 1000.0,
            mean_us: field("avg_latency_ms")? * 1000.0,
        },
        cpu: Default::default(),
    })
}

/// The arguments of the first line of `redis-cli MONITOR` output whose command is `command`
/// (case-insensitive) and one of whose arguments contains `containing`, unquoted: `1700000000.1 [0 127.0.0.1:5] "evalsha" "ab" "1" "k"` gives
/// `["evalsha", "ab", "1", "k"]`. Used to replay the broker's own script call in redis-benchmark.
pub fn monitor_command(monitor: &str, command: &str, containing: &str) -> Option<Vec<String>> {
    monitor.lines().find_map(|line| {
        let args = unquote_monitor(&line[line.find("] ")? + 2..])?;
        let matches = args.first().is_some_and(|c| c.eq_ignore_ascii_case(command))
            && args.iter().any(|a| a.contains(containing));
        matches.then_some(args)
    })
}

/// Splits MONITOR's quoted arguments, undoing its escapes (`\"`, `\\`, `\n`, `\r`, `\t`, `\xHH`).
fn unquote_monitor(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some('"') => {}
            Some(_) => return None,
        }
        let mut bytes = Vec::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => bytes.push(b'\n'),
                    'r' => bytes.push(b'\r'),
                    't' => bytes.push(b'\t'),
                    'a' => bytes.push(7),
                    'b' => bytes.push(8),
                    'x' => {
                        let hex: String = [chars.next()?, chars.next()?].iter().collect();
                        bytes.push(u8::from_str_radix(&hex, 16).ok()?);
                    }
                    c => bytes.extend_from_slice(c.to_string().as_bytes()),
                },
                c => bytes.extend_from_slice(c.to_string().as_bytes()),
            }
        }
        out.push(String::from_utf8(bytes).ok()?);
    }
}

fn split_csv(line: &str) -> Vec<String> {
    line.split(',').map(|f| f.trim().trim_matches('"').to_string()).collect()
}

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.1}", v)
    }
}

fn mode(r: &BenchResult) -> String {
    match r.target_rate {
        Some(t) => format!("open @ {} req/s", rate(t)),
        None => r.mode.clone(),
    }
}

/// One row per run.
pub fn results_table(results: &[BenchResult]) -> String {
    let mut s = String::from(
        "| target | scenario | mode | conc. | msgs/req | msg/s | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.target,
            r.scenario,
            mode(r),
            r.concurrency,
            r.messages_per_request,
            rate(r.messages_per_s),
            rate(r.requests_per_s),
            ms(r.latency.p50_us),
            ms(r.latency.p99_us),
            r.latency.p999_us.map(ms).unwrap_or_else(|| "–".into()),
            ms(r.latency.max_us),
            r.errors,
        );
    }
    s
}

/// CPU per message of each watched process in closed-loop runs: where the two cores went.
pub fn cpu_table(results: &[BenchResult]) -> String {
    let mut labels: Vec<&str> =
        results.iter().flat_map(|r| r.cpu.seconds.keys().map(String::as_str)).collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.is_empty() {
        return String::new();
    }
    let mut s = String::from("| target | scenario | msg/s | machine busy |");
    for l in &labels {
        let _ = write!(s, " {l} µs/msg |");
    }
    s.push_str(" everything else µs/msg |\n|---|---|---:|---:|");
    s.push_str(&"---:|".repeat(labels.len() + 1));
    s.push('\n');
    for r in results.iter().filter(|r| r.target_rate.is_none() && !r.cpu.seconds.is_empty() && r.messages > 0)
    {
        let per_msg = |secs: f64| secs * 1e6 / r.messages as f64;
        let _ = write!(
            s,
            "| {} | {} | {} | {:.0}% |",
            r.target,
            r.scenario,
            rate(r.messages_per_s),
            r.cpu.machine_busy_pct
        );
        for l in &labels {
            match r.cpu.seconds.get(*l) {
                Some(v) => {
                    let _ = write!(s, " {:.1} |", per_msg(*v));
                }
                None => s.push_str(" – |"),
            }
        }
        let _ = writeln!(s, " {:.1} |", per_msg(r.cpu.other_seconds(r.duration_s)));
    }
    s
}

/// The run that stands for a target and scenario when it was repeated: the highest throughput in
/// closed loop, the lowest p99 in open loop. Interference from other work on a shared machine only
/// ever makes a run slower, so the best of the repeats is the least disturbed one; the same rule
/// applies to every target.
fn find<'a>(results: &'a [BenchResult], target: &str, scenario: &str, open: bool) -> Option<&'a BenchResult> {
    let runs = results
        .iter()
        .filter(|r| r.target == target && r.scenario == scenario && r.target_rate.is_some() == open);
    if open {
        runs.min_by(|a, b| a.latency.p99_us.total_cmp(&b.latency.p99_us))
    } else {
        runs.max_by(|a, b| a.messages_per_s.total_cmp(&b.messages_per_s))
    }
}

fn ratio_row(s: &mut String, what: &str, num: Option<f64>, den: Option<f64>, goal: Option<f64>) {
    let (value, verdict) = match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => {
            let r = n / d;
            let verdict = match goal {
                Some(g) if r >= g => format!("≥ {:.0}%: met", g * 100.0),
                Some(g) => format!("≥ {:.0}%: **not met**", g * 100.0),
                None => "–".into(),
            };
            (format!("{:.1}%", r * 100.0), verdict)
        }
        _ => ("n/a".into(), "not measured".into()),
    };
    let f = |v: Option<f64>| v.map(rate).unwrap_or_else(|| "–".into());
    let _ = writeln!(s, "| {what} | {} | {} | {value} | {verdict} |", f(num), f(den));
}

/// The targets as ratios, plus the other side-by-side ratios.
pub fn targets_table(results: &[BenchResult]) -> String {
    let msg = |t: &str, sc: &str| find(results, t, sc, false).map(|r| r.messages_per_s);
    let mut s = String::from(
        "| ratio | numerator msg/s | denominator msg/s | ratio | goal |\n|---|---:|---:|---:|---|\n",
    );
    ratio_row(
        &mut s,
        "HTTP send / redis-benchmark XADD",
        msg("http", "send"),
        msg("redis", "xadd"),
        Some(0.35),
    );
    ratio_row(
        &mut s,
        "HTTP lifecycle / RabbitMQ lifecycle",
        msg("http", "lifecycle"),
        msg("amqp", "lifecycle"),
        Some(1.0),
    );
    ratio_row(&mut s, "HTTP send / RabbitMQ send", msg("http", "send"), msg("amqp", "send"), None);
    ratio_row(&mut s, "HTTP batch / RabbitMQ batch", msg("http", "batch"), msg("amqp", "batch"), None);
    ratio_row(
        &mut s,
        "HTTP send / broker send script (redis-benchmark EVALSHA)",
        msg("http", "send"),
        msg("redis", "send_script"),
        None,
    );
    ratio_row(&mut s, "broker send script / XADD", msg("redis", "send_script"), msg("redis", "xadd"), None);
    ratio_row(&mut s, "gRPC send / HTTP send", msg("grpc", "send"), msg("http", "send"), None);
    ratio_row(
        &mut s,
        "gRPC lifecycle / HTTP lifecycle",
        msg("grpc", "lifecycle"),
        msg("http", "lifecycle"),
        None,
    );
    let redis_lifecycle = match (msg("redis", "xadd"), msg("redis", "read_ack")) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => Some(1.0 / (1.0 / a + 1.0 / b)),
        _ => None,
    };
    ratio_row(
        &mut s,
        "HTTP lifecycle / Redis lifecycle ceiling (XADD then read+ack)",
        msg("http", "lifecycle"),
        redis_lifecycle,
        None,
    );

    let _ = writeln!(
        s,
        "\n| latency target | rate | p50 ms | p99 ms | p99.9 ms | goal |\n|---|---:|---:|---:|---:|---|"
    );
    for (target, sc) in [
        ("http", "send"),
        ("grpc", "send"),
        ("amqp", "send"),
        ("http", "lifecycle"),
        ("grpc", "lifecycle"),
        ("amqp", "lifecycle"),
    ] {
        if let Some(r) = find(results, target, sc, true) {
            let goal = if target == "http" && sc == "send" {
                if r.latency.p99_us < 2000.0 {
                    "p99 < 2 ms: met"
                } else {
                    "p99 < 2 ms: **not met**"
                }
            } else {
                "–"
            };
            let _ = writeln!(
                s,
                "| {target} {sc} at half its max | {} | {} | {} | {} | {goal} |",
                r.target_rate.map(rate).unwrap_or_default(),
                ms(r.latency.p50_us),
                ms(r.latency.p99_us),
                r.latency.p999_us.map(ms).unwrap_or_else(|| "–".into()),
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_line_is_unquoted() {
        let m = "OK\n1.5 [0 127.0.0.1:1] \"PING\"\n1.6 [0 127.0.0.1:1] \"evalsha\" \"ab\" \"{\\\"b\\\":\\\"x\\\"}\" \"a\\x41\\\\\"\n";
        assert_eq!(
            monitor_command(m, "EVALSHA", "x"),
            Some(vec!["evalsha".into(), "ab".into(), "{\"b\":\"x\"}".into(), "aA\\".into()])
        );
        assert_eq!(monitor_command(m, "xadd", ""), None);
        assert_eq!(monitor_command(m, "evalsha", "nowhere"), None);
    }

    #[test]
    fn redis_csv_is_imported() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"XADD s * b x\",\"100000.00\",\"0.073\",\"0.024\",\"0.055\",\"0.159\",\"0.271\",\"0.647\"\n";
        let r = import_redis_csv(csv, "xadd", 50, 1024, 2000).expect("parses");
        assert_eq!(r.requests_per_s, 100000.0);
        assert_eq!(r.latency.p99_us, 271.0);
    }
}
