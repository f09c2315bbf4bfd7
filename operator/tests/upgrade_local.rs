//! Rolling upgrades end to end on the local Docker engine, under load: `momctl up` 3 brokers;
//! a second image of the same broker binary; `mom-bench verify` (tests/) loads the
//! cluster through NGINX — sends with `dedup_id`, receives and acks, well over 300 requests/s —
//! while `momctl upgrade` replaces every broker, a bad image (one that exits at once) stops at
//! the first broker and leaves the others serving, and `momctl rollback` returns to the first
//! image. No request may fail and no acknowledged send may be lost; duplicates are reported.
//! Beside it a keep-alive client that never resends anything (12 connections kept for the whole
//! run, 360 sends/s, as Python's `http.client` would) must see no failed request and no
//! connection closed: an upgrade reloads no NGINX (issue 23, point 1).
//! `status` shows each broker's image and version; `plan` finds an upgraded cluster converged.
//!
//! Needs Docker and the images (see e2e_local.rs); skips outside CI when they are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptions};
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

use common::cluster::{docker_or_skip, ok, run, runtime, Down, Unique, BROKER_IMAGE, PASSWORD};
use common::{momctl, text, TempDir};

const NEXT_IMAGE: &str = "mom-broker:e2e-next";
const BAD_IMAGE: &str = "mom-broker:e2e-bad";
const BAD_LINE: &str = "mom-e2e-bad: this image never serves";
/// Cycles (send, receive, ack) per second: about 3 requests each.
const CYCLES_PER_S: &str = "150";
const MIN_REQUESTS_PER_S: f64 = 300.0;
/// The load generator's workers, each on its own keep-alive connection.
const CONCURRENCY: u64 = 24;

/// The target directory cargo put this test in (`<target>/<profile>/deps/…`).
fn target_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent()?.parent()?.parent().map(Path::to_path_buf)
}

/// The load generator (`tests/src/bin/mom-bench.rs`) as a release build, like the broker in the
/// image (.ci/images.sh): a debug build of it spends much of this machine's 2 cores, which the
/// brokers, NGINX and Redis share. `cargo build` is a no-op when .ci/images.sh already built it.
fn mom_bench() -> PathBuf {
    let target = target_dir().expect("the test's target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "mom-tests", "--bin", "mom-bench"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(common::repo_root())
        .status()
        .expect("cargo build mom-bench");
    assert!(status.success(), "building mom-bench");
    target.join("release").join("mom-bench")
}

/// Builds `tag` from the broker image (`FROM mom-broker:0.1.0` plus `lines`) through the Docker
/// API: the same broker binary under another image id, or, with another entrypoint, a bad image.
async fn build_from_broker(docker: &Docker, tag: &str, lines: &str) {
    let dockerfile = format!("FROM {BROKER_IMAGE}\nLABEL mom.e2e-image={tag}\n{lines}");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).expect("tar");
    let context = tar.into_inner().expect("tar");
    let options = BuildImageOptionsBuilder::default().t(tag).dockerfile("Dockerfile").rm(true).build();
    let mut stream =
        Box::pin(docker.build_image(options, None, Some(bollard::body_full(Bytes::from(context)))));
    while let Some(item) = stream.next().await {
        let info = item.unwrap_or_else(|e| panic!("build {tag}: {e}"));
        assert!(info.error_detail.is_none(), "build {tag}: {info:?}");
    }
}

/// The load generator, stopped (and killed, if need be) whatever happens to the test.
struct Load {
    child: Child,
    stop_file: PathBuf,
    verdict: PathBuf,
    started: Instant,
}

impl Load {
    fn start(dir: &Path, base: &str) -> Load {
        let stop_file = dir.join("stop-load");
        let verdict = dir.join("verdict.json");
        let child = Command::new(mom_bench())
            .args(["verify", "--url", base, "--user", "admin", "--queue", "upgrade-load"])
            .args([
                "--rate",
                CYCLES_PER_S,
                "--concurrency",
                &*CONCURRENCY.to_string(),
                "--max-duration",
                "600",
            ])
            .arg("--stop-file")
            .arg(&stop_file)
            .arg("--json")
            .arg(&verdict)
            .env("MOM_BENCH_PASSWORD", PASSWORD)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mom-bench verify");
        Load { child, stop_file, verdict, started: Instant::now() }
    }

    /// Seconds since the load started, and the wall-clock time in ms (as mom-bench reports
    /// failures).
    fn at(&self) -> String {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("{:.1} s (unix ms {unix_ms})", self.started.elapsed().as_secs_f64())
    }

    /// Stops sending, waits for the drain, returns the verdict.
    fn finish(&mut self) -> Value {
        std::fs::write(&self.stop_file, b"stop").expect("stop file");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for mom-bench") {
                eprintln!("mom-bench verify exited: {status}");
                break;
            }
            assert!(Instant::now() < deadline, "mom-bench verify did not finish");
            std::thread::sleep(Duration::from_millis(200));
        }
        let text = std::fs::read_to_string(&self.verdict).expect("verdict.json");
        serde_json::from_str(&text).expect("verdict json")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The keep-alive client that never retries (issue 23): `KEEPALIVE_WORKERS` workers, each on one
/// HTTP/1.1 connection to NGINX that it keeps for the whole run, sending (POST, a unique body
/// each) at a fixed pace. Nothing is ever sent again: a request that meets a closed connection,
/// an error or an answer other than 201 is a failure, and a connection NGINX closes (or says
/// `Connection: close` on) is counted before the worker opens another one.
const KEEPALIVE_WORKERS: usize = 12;
/// Sends per second of the whole client (a worker that fell behind catches up).
const KEEPALIVE_RATE: u64 = 360;
const KEEPALIVE_QUEUE: &str = "upgrade-keepalive";

#[derive(Default)]
struct KeepAliveTally {
    requests: u64,
    acknowledged: Vec<String>,
    failures: Vec<String>,
    /// Connections NGINX ended with `Connection: close` (no request failed).
    closes: Vec<String>,
    closed_connections: u64,
}

/// One HTTP/1.1 connection; no retry, no pool.
struct RawConn {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
}

/// An answer: status, whether the server ends the connection, body.
struct RawAnswer {
    status: u16,
    close: bool,
    body: Vec<u8>,
}

impl RawConn {
    async fn open(addr: &str) -> std::io::Result<RawConn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawConn { stream: tokio::io::BufReader::new(stream) })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &str,
    ) -> std::io::Result<RawAnswer> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: mom\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(body.as_bytes());
        self.stream.get_mut().write_all(&out).await?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before an answer"));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut close) = (None, false);
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed in the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
            if name == "content-length" {
                length = value.parse::<usize>().ok();
            } else if name == "connection" && value == "close" {
                close = true;
            } else if name == "transfer-encoding" {
                return Err(std::io::Error::other(format!("unexpected transfer-encoding {value}")));
            }
        }
        let mut body = vec![0; length.unwrap_or(0)];
        self.stream.read_exact(&mut body).await?;
        Ok(RawAnswer { status, close, body })
    }
}

/// The keep-alive client, running on its own threads until `stop`.
struct KeepAlive {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(KeepAliveTally, f64)>>,
    addr: String,
    token: String,
}

impl KeepAlive {
    fn start(base: &str) -> KeepAlive {
        let addr = base.trim_start_matches("http://").to_string();
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let token = rt.block_on(async {
            let mut conn = RawConn::open(&addr).await.expect("connect to NGINX");
            let login = serde_json::json!({ "username": "admin", "password": PASSWORD }).to_string();
            let answer = conn.request("POST", "/v1/auth/token", None, &login).await.expect("login");
            assert_eq!(answer.status, 200, "login: {}", String::from_utf8_lossy(&answer.body));
            let token: Value = serde_json::from_slice(&answer.body).expect("token json");
            let token = token["access_token"].as_str().expect("access_token").to_string();
            let answer = conn
                .request("PUT", &format!("/v1/queues/{KEEPALIVE_QUEUE}"), Some(&token), "{}")
                .await
                .expect("create queue");
            assert!(
                answer.status < 300,
                "create queue: {} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
            token
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (stop, addr, token) = (stop.clone(), addr.clone(), token.clone());
            std::thread::spawn(move || {
                rt.block_on(async move {
                    let started = Instant::now();
                    let workers: Vec<_> = (0..KEEPALIVE_WORKERS)
                        .map(|w| tokio::spawn(keepalive_worker(w, addr.clone(), token.clone(), stop.clone())))
                        .collect();
                    let mut tally = KeepAliveTally::default();
                    for worker in workers {
                        let t = worker.await.expect("keep-alive worker");
                        tally.requests += t.requests;
                        tally.acknowledged.extend(t.acknowledged);
                        tally.failures.extend(t.failures);
                        tally.closes.extend(t.closes);
                        tally.closed_connections += t.closed_connections;
                    }
                    (tally, started.elapsed().as_secs_f64())
                })
            })
        };
        KeepAlive { stop, thread: Some(thread), addr, token }
    }

    fn finish(&mut self) -> (KeepAliveTally, f64) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().expect("running").join().expect("keep-alive client")
    }

    /// Which acknowledged sends cannot be received from the queue (receives until it is empty).
    fn lost(&self, acknowledged: &[String]) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let mut conn = RawConn::open(&self.addr).await.expect("connect");
            let mut seen = std::collections::HashSet::new();
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut empty = 0;
            while empty < 2 && Instant::now() < deadline {
                let path = format!("/v1/queues/{KEEPALIVE_QUEUE}/receive");
                let answer =
                    match conn.request("POST", &path, Some(&self.token), r#"{"max":10,"wait_s":0}"#).await {
                        Ok(a) => a,
                        Err(_) => {
                            conn = RawConn::open(&self.addr).await.expect("reconnect");
                            continue;
                        }
                    };
                assert_eq!(answer.status, 200, "receive: {}", String::from_utf8_lossy(&answer.body));
                let got: Value = serde_json::from_slice(&answer.body).expect("receive json");
                let messages = got["messages"].as_array().cloned().unwrap_or_default();
                if messages.is_empty() {
                    empty += 1;
                }
                for m in messages {
                    if let Some(body) = m["body"].as_str() {
                        seen.insert(body.to_string());
                    }
                }
                if answer.close {
                    conn = RawConn::open(&self.addr).await.expect("reconnect");
                }
            }
            acknowledged.iter().filter(|id| !seen.contains(*id)).cloned().collect()
        })
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn keepalive_worker(
    worker: usize,
    addr: String,
    token: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> KeepAliveTally {
    let mut tally = KeepAliveTally::default();
    let every = Duration::from_secs_f64(KEEPALIVE_WORKERS as f64 / KEEPALIVE_RATE as f64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let path = format!("/v1/queues/{KEEPALIVE_QUEUE}/messages");
    let mut conn: Option<RawConn> = None;
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        tick.tick().await;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match RawConn::open(&addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tally.failures.push(format!("worker {worker}: connect: {e} at {}", unix_ms()));
                    continue;
                }
            },
        };
        n += 1;
        let id = format!("ka-{worker}-{n}");
        let body = serde_json::json!({ "body": id }).to_string();
        tally.requests += 1;
        match c.request("POST", &path, Some(&token), &body).await {
            Ok(answer) => {
                if answer.status == 201 {
                    tally.acknowledged.push(id.clone());
                } else {
                    tally.failures.push(format!(
                        "worker {worker}: {id}: {} {} at {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body),
                        unix_ms()
                    ));
                }
                if answer.close {
                    tally.closes.push(format!(
                        "worker {worker}: after {id}: NGINX closes the connection (Connection: close) at {}",
                        unix_ms()
                    ));
                    tally.closed_connections += 1;
                    conn = None;
                }
            }
            Err(e) => {
                // Python's http.client raises RemoteDisconnected here; nothing is resent.
                tally.failures.push(format!("worker {worker}: {id}: {e} at {}", unix_ms()));
                tally.closed_connections += 1;
                conn = None;
            }
        }
    }
    tally
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// Every broker container of `status --output json`: (service, image, generation, version).
fn brokers(dir: &Path) -> Vec<(String, String, u64, Option<String>)> {
    let status: Value = serde_json::from_str(&ok(dir, &["status", "--output", "json"])).expect("status json");
    status["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|c| c["role"] == "broker")
        .map(|c| {
            assert_eq!(c["state"], "running", "{c}");
            (
                c["service"].as_str().unwrap_or_default().to_string(),
                c["image"].as_str().unwrap_or_default().to_string(),
                c["generation"].as_u64().unwrap_or(0),
                c["version"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// NGINX's error log lines (warn and worse) and the access log lines of 5xx answers.
async fn nginx_problems(docker: &Docker, cluster: &str) -> Vec<String> {
    let options = bollard::query_parameters::LogsOptionsBuilder::default().stdout(true).stderr(true).build();
    let mut logs = Box::pin(docker.logs(&format!("mom-{cluster}-nginx"), Some(options)));
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.push_str(&chunk.to_string());
    }
    text.lines()
        .filter(|l| {
            ["[warn]", "[error]", "[crit]", "[alert]", "[emerg]"].iter().any(|level| l.contains(level))
                || l.contains("\" 50")
        })
        .map(str::to_string)
        .collect()
}

fn assert_all_on(dir: &Path, image: &str, generation: u64) {
    let brokers = brokers(dir);
    assert_eq!(brokers.len(), 3, "{brokers:?}");
    for (service, img, gen, version) in &brokers {
        assert_eq!(img, image, "{service}: {brokers:?}");
        assert_eq!(*gen, generation, "{service}: {brokers:?}");
        assert!(version.is_some(), "{service} reports no version: {brokers:?}");
    }
}

#[test]
fn rolling_upgrade_bad_image_and_rollback_under_load() {
    let rt = runtime();
    let Some(docker) = docker_or_skip(&rt) else {
        return;
    };
    let unique = Unique::new("upg");
    let dir = TempDir::new("upgrade");
    dir.write("mom.yaml", &unique.yaml(3));
    let _down = Down(dir.path());
    ok(dir.path(), &["up"]);

    // A second image of the same broker binary (derived from mom-broker:0.1.0 rather than
    // `momctl build` from the target directory, whose binary may be newer than the image's), and
    // an image whose command exits at once.
    rt.block_on(async {
        build_from_broker(&docker, NEXT_IMAGE, "").await;
        let bad = format!("ENTRYPOINT [\"/bin/sh\", \"-c\", \"echo '{BAD_LINE}' >&2; exit 3\"]\nCMD []\n");
        build_from_broker(&docker, BAD_IMAGE, &bad).await;
    });

    let mut load = Load::start(dir.path(), &unique.base());
    let mut keepalive = KeepAlive::start(&unique.base());
    std::thread::sleep(Duration::from_secs(4));

    // 1. Every broker to the next image, one at a time.
    let t = load.at();
    let out = run(dir.path(), &["upgrade", "--broker-image", NEXT_IMAGE, "--output", "json"]);
    eprintln!("upgrade: load time {t} .. {}", load.at());
    assert!(out.status.success(), "upgrade failed");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("upgrade json");
    assert_eq!(summary["ok"], true, "{summary}");
    let upgraded = summary["brokers"].as_array().expect("brokers");
    assert_eq!(upgraded.len(), 3, "{summary}");
    assert!(upgraded.iter().all(|b| b["outcome"] == "upgraded"
        && b["to_image"] == NEXT_IMAGE
        && b["from_image"] == BROKER_IMAGE
        && b["total_s"].as_f64().is_some()));
    assert!(text(&out.stderr).contains("wait until"), "progress per step");
    assert_all_on(dir.path(), NEXT_IMAGE, 1);
    // Upgraded is converged: mom.yaml still names the first image, and nothing is to be done.
    assert_eq!(run(dir.path(), &["plan"]).status.code(), Some(0));
    assert!(ok(dir.path(), &["upgrade", "--broker-image", NEXT_IMAGE]).contains("nothing to do"));

    // 2. A bad image stops at the first broker; the others keep serving the next image.
    let t = load.at();
    let out = run(dir.path(), &["upgrade", "--broker-image", BAD_IMAGE]);
    eprintln!("bad upgrade: load time {t} .. {}", load.at());
    assert_eq!(out.status.code(), Some(1), "a bad image fails the upgrade");
    let stderr = text(&out.stderr);
    assert!(stderr.contains(BAD_LINE), "its last log lines: {stderr}");
    assert!(stderr.contains("broker-1"), "stopped at the first broker: {stderr}");
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("broker-2: create"), "went past the first broker");
    assert_all_on(dir.path(), NEXT_IMAGE, 1);
    assert_eq!(run(dir.path(), &["plan"]).status.code(), Some(0));

    // 3. Rollback: back to the first image, the same way.
    let t = load.at();
    let out = run(dir.path(), &["rollback"]);
    eprintln!("rollback: load time {t} .. {}", load.at());
    assert!(out.status.success(), "rollback failed");
    assert!(text(&out.stdout).contains("broker-3 upgraded"), "progress per broker");
    assert_all_on(dir.path(), BROKER_IMAGE, 2);
    assert_eq!(run(dir.path(), &["plan"]).status.code(), Some(0));

    std::thread::sleep(Duration::from_secs(2));
    let (tally, took) = keepalive.finish();
    let verdict = load.finish();
    eprintln!("load verdict: {verdict:#}");
    let nginx_problems = rt.block_on(nginx_problems(&docker, &unique.cluster));
    eprintln!(
        "NGINX error log and 5xx access lines ({}):\n{}",
        nginx_problems.len(),
        nginx_problems.join("\n")
    );
    let duplicates = verdict["duplicates"].as_u64().unwrap_or(0);
    eprintln!("duplicates delivered during the upgrades: {duplicates}");
    let retries = verdict["stale_connection_retries"].as_u64().unwrap_or(0);
    eprintln!("stale_connection_retries (resent once after the client-side keep-alive race): {retries}");
    // The keep-alive client that never retries: no failure, no connection closed, nothing lost,
    // across the upgrade, the bad image and the rollback (no NGINX reload: the upstream slots of
    // both generations are in NGINX's configuration from `up` on).
    let ka_rps = tally.requests as f64 / took;
    let lost = keepalive.lost(&tally.acknowledged);
    eprintln!(
        "keep-alive client (no retry, {KEEPALIVE_WORKERS} connections): {} requests in {took:.1} s ({ka_rps:.0}/s), \
         {} acknowledged, {} failed, {} connections closed, {} acknowledged lost",
        tally.requests,
        tally.acknowledged.len(),
        tally.failures.len(),
        tally.closed_connections,
        lost.len()
    );
    for f in tally.failures.iter().take(50) {
        eprintln!("  keep-alive failure: {f}");
    }
    // NGINX no longer reloads, so no client connection is closed under mom-bench either: its
    // resends after the keep-alive race stay at zero.
    assert_eq!(retries, 0, "stale-connection resends: {:#}", verdict["stale_connection_retry_log"]);
    assert!(ka_rps >= MIN_REQUESTS_PER_S, "keep-alive client only {ka_rps:.0} requests/s");
    // Gapless (issue 23): an old broker turns new handshakes away, serves every connection the
    // kernel completed, and only then closes its listener (listen.rs, `ConnectionLimit::close`),
    // so NGINX never meets a reset on a request it sent and passes every turned-away connection
    // on to another broker. No request may fail and no connection of the client may close.
    assert_eq!(tally.closed_connections, 0, "connections to NGINX closed: {:?}", tally.closes);
    assert!(
        tally.failures.is_empty(),
        "{} keep-alive requests failed: {:?}",
        tally.failures.len(),
        tally.failures
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged keep-alive sends lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    let rps = verdict["requests_per_s"].as_f64().unwrap_or(0.0);
    assert!(rps >= MIN_REQUESTS_PER_S, "load was only {rps:.0} requests/s");
    // The load generator: nothing may fail either.
    let failed = verdict["failed"].as_u64().unwrap_or(u64::MAX);
    assert_eq!(failed, 0, "failed requests: {:#}", verdict["failures"]);
    assert_eq!(verdict["lost"], 0, "acknowledged sends lost: {:#}", verdict["lost_ids"]);
    assert!(verdict["sent_acknowledged"].as_u64().unwrap_or(0) > 1000, "{verdict}");

    ok(dir.path(), &["down", "--yes"]);
    let _ = momctl(dir.path(), &["status"], &[]);
    // The test's own images (best effort: another run may be using them).
    rt.block_on(async {
        for image in [BAD_IMAGE, NEXT_IMAGE] {
            let _ = docker.remove_image(image, None::<RemoveImageOptions>, None).await;
        }
    });
}
