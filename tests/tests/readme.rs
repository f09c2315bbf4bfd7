//! README.md's examples, run as a reader would: every code block marked
//! `<!-- runs in tests/tests/readme.rs -->`, in order, in one bash session (Python blocks through
//! `python3` at their place, so what the shell exported reaches them), against a broker of this
//! test. Only the address and the admin's password are replaced by this broker's.

use std::path::Path;
use std::time::Duration;

use mom_tests::{start_broker, ADMIN_PASSWORD, ADMIN_USER};

const MARKER: &str = "<!-- runs in tests/tests/readme.rs -->";

/// The marked blocks of `readme`, each with its language (`sh` or `python`).
fn marked_blocks(readme: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARKER {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        let lang = fence.trim().strip_prefix("```").unwrap_or_else(|| panic!("no code block after {MARKER}"));
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push((lang.to_string(), body.join("\n")));
    }
    blocks
}

/// One bash script running the blocks in order.
fn script(blocks: &[(String, String)]) -> String {
    let mut script = String::new();
    for (i, (lang, body)) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '=== block {i} ({lang})'\n"));
        match lang.as_str() {
            "sh" | "bash" => script.push_str(body),
            "python" => script.push_str(&format!("python3 - <<'README_PY'\n{body}\nREADME_PY")),
            other => panic!("README block {i}: no runner for ```{other}"),
        }
        script.push('\n');
    }
    script
}

#[tokio::test]
async fn the_readme_examples_run_verbatim_in_order() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("README.md");
    let blocks = marked_blocks(&readme);
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(langs, ["sh", "sh", "python"], "the marked README blocks changed; update this test's checks");
    let text = script(&blocks);
    assert!(text.contains("127.0.0.1:8080") && text.contains("pick-a-long-password"), "{text}");
    assert!(text.contains("\"username\":\"admin\""), "the examples log in as admin: {text}");

    let broker = start_broker().await;
    let text = text
        .replace("127.0.0.1:8080", broker.listen())
        .replace("pick-a-long-password", ADMIN_PASSWORD)
        .replace("\"username\":\"admin\"", &format!("\"username\":\"{ADMIN_USER}\""));
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&text)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the README examples ran over 2 minutes")
        .expect("bash runs (curl and jq from .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    // What a reader sees at each step.
    for expected in [
        "\"name\":\"orders\"",           // the queue, created
        "{\"results\":[{\"ok\":true}]}", // the ack of the receipt jq extracted
        "\"name\":\"events\"",           // the topic
        "\"body\":\"hi\"",               // the SSE stream delivered the publish
        "\"username\":\"alice\"",        // the user the SDK part uses
        "hello {'kind': {",              // boto3 received it with its attribute
    ] {
        assert!(stdout.contains(expected), "the README examples did not show {expected}\n{report}");
    }
    assert!(!stdout.contains("\"error\""), "a README example answered an error\n{report}");
    assert!(!report.contains("Traceback"), "the Python example failed\n{report}");
}
