//! `mom.yaml` (momctl's only input): parsing (`config::parse`, serde-saphyr) and validation
//! (`Config::settings`). Every rejection is one error naming a field and a line of the file.
//!
//! This target compiles operator/src/config/ itself (`#[path]` below): the production source,
//! without building the rest of momctl (aws-sdk-ec2, bollard, ...) under the fuzzer. The file is
//! self-contained (std, serde, serde-saphyr, serde_path_to_error, ipnet, thiserror); should it ever
//! use other momctl modules, depend on mom-operator here instead.
//!
//! Input: the file's text.

#![no_main]

#[allow(dead_code)]
#[path = "../../operator/src/config/mod.rs"]
mod config;

use libfuzzer_sys::fuzz_target;

fn check_error(e: &config::ConfigError, lines: u64) {
    let field = e.field().expect("a parse or validation error names a field");
    assert!(!field.is_empty());
    let line = e.line().expect("a parse or validation error names a line");
    assert!((1..=lines).contains(&line), "line {line} of a {lines}-line file: {e}");
    let _ = e.to_string();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Lines as YAML counts them: "\r\n", "\r" and "\n" each end one.
    let breaks = text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count();
    let lines = breaks as u64 + 1;
    match config::parse(text, "mom.yaml") {
        Ok(c) => match c.settings("mom.yaml") {
            Ok(s) => {
                assert!((1..=config::MAX_BROKERS).contains(&s.broker_nodes));
                assert!(s.nginx_http_port != 0);
                assert!(s.nginx_grpc_port.is_none_or(|p| p != 0 && p != s.nginx_http_port));
                assert!(!s.cluster.is_empty() && s.cluster.len() <= 32);
                assert!(s.subnet.prefix_len() <= 24);
            }
            Err(e) => check_error(&e, lines),
        },
        Err(e) => check_error(&e, lines),
    }
});
