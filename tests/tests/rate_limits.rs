//! Rate limits: per user across the cluster (token bucket, 429 `rate_limited` with `Retry-After`),
//! and failed logins per username and per client address (`X-Forwarded-For` believed only from
//! `MOM_TRUSTED_PROXIES`).

use std::time::{Duration, Instant};

use futures::future::join_all;
use mom_tests::{user_password, wait_until, Broker, Client, Cluster, Resp, ADMIN_PASSWORD, ADMIN_USER};

/// A cheap route any user may call.
const PROBE: &str = "/v1/cluster";

/// Failed logins allowed per username and per client address in a minute.
const FAILED_LOGINS: usize = 10;

/// Starts a broker of `cluster` limiting each user to `rps` requests a second with `burst`.
async fn limited_broker(cluster: &Cluster, rps: u32, burst: u32) -> Broker {
    cluster
        .broker()
        .env("MOM_RATE_LIMIT_RPS", rps.to_string())
        .env("MOM_RATE_LIMIT_BURST", burst.to_string())
        .start()
        .await
}

/// The seconds of `Retry-After` of a 429 `rate_limited` answer, at least 1.
#[track_caller]
fn retry_after(resp: &Resp) -> u64 {
    let resp = resp.clone().expect_error(429, "rate_limited");
    let value = resp.header("retry-after").unwrap_or_else(|| panic!("429 without Retry-After: {resp}"));
    let secs: u64 = value
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After {value:?} is not a number of seconds ({e}): {resp}"));
    assert!(secs >= 1, "Retry-After {secs} in {resp}");
    secs
}

#[tokio::test]
async fn a_burst_past_the_limit_gets_429_with_retry_after_and_other_users_are_unaffected() {
    let broker = limited_broker(&Cluster::new(), 20, 20).await;
    let bob = broker.add_user("bob", "user").await;

    let start = Instant::now();
    let answers = join_all((0..60).map(|_| bob.get(PROBE))).await;
    let elapsed = start.elapsed();
    let admitted = answers.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Resp> = answers.iter().filter(|r| r.status != 200).collect();
    eprintln!("{admitted} of 60 admitted in {elapsed:?}, {} limited", limited.len());
    let budget = 20.0 + 20.0 * elapsed.as_secs_f64();
    assert!(admitted >= 20, "only {admitted} admitted: the burst is 20");
    assert!(
        (admitted as f64) <= budget * 1.1 + 1.0,
        "{admitted} admitted in {elapsed:?}: over the budget of {budget:.1}"
    );
    assert!(!limited.is_empty(), "60 requests at once were all admitted");
    let mut wait = 1;
    for resp in limited {
        wait = wait.max(retry_after(resp));
    }

    // Per user: the admin is not held back by bob's bucket, and logging in is not limited.
    broker.client().get(PROBE).await.expect_status(200);
    broker.token_for("bob", &user_password("bob")).await;

    // Bob is admitted again once Retry-After has passed.
    wait_until("bob to be admitted again after Retry-After", Duration::from_secs(wait + 2), || async {
        (bob.get(PROBE).await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_rate_of_zero_disables_the_limit() {
    let broker = limited_broker(&Cluster::new(), 0, 1).await;
    let bob = broker.add_user("bob", "user").await;
    let answers = join_all((0..100).map(|_| bob.get(PROBE))).await;
    for resp in answers {
        resp.expect_status(200);
    }
}

/// Sends requests as one user through every node, on `loops_per_node` connections each, for
/// `duration`; returns (admitted, limited, time from the first request to the last answer).
async fn hammer(clients: &[Client], loops_per_node: usize, duration: Duration) -> (usize, usize, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let loops = clients.iter().flat_map(|client| {
        (0..loops_per_node).map(move |_| {
            let client = client.clone();
            tokio::spawn(async move {
                let (mut ok, mut limited) = (0, 0);
                while Instant::now() < deadline {
                    let resp = client.get(PROBE).await;
                    match resp.status {
                        200 => ok += 1,
                        429 => {
                            retry_after(&resp);
                            limited += 1;
                        }
                        _ => panic!("unexpected answer {resp}"),
                    }
                }
                (ok, limited, Instant::now())
            })
        })
    });
    let mut totals = (0, 0, start);
    for done in join_all(loops).await {
        let (ok, limited, end) = done.expect("request loop");
        totals = (totals.0 + ok, totals.1 + limited, totals.2.max(end));
    }
    (totals.0, totals.1, totals.2 - start)
}

/// Two nodes share each user's budget: over a run of ~2 s, the cluster admits at most
/// `rps * time + burst`, with 10 % slack.
async fn assert_cluster_budget(rps: u32, burst: u32) {
    let cluster = Cluster::new();
    let a = limited_broker(&cluster, rps, burst).await;
    let b = limited_broker(&cluster, rps, burst).await;
    a.add_user("bob", "user").await;
    // Wait for bob to reach B through the admin, so bob's own bucket stays full.
    wait_until("bob to be known on B", Duration::from_millis(1250), || async {
        (b.login_resp("bob", &user_password("bob")).await.status == 200).then_some(())
    })
    .await;
    let token = a.token_for("bob", &user_password("bob")).await;
    let clients = [a.client_with_token(&token), b.client_with_token(&token)];

    let (admitted, limited, elapsed) = hammer(&clients, 3, Duration::from_secs(2)).await;
    let secs = elapsed.as_secs_f64();
    let budget = f64::from(rps) * secs + f64::from(burst);
    eprintln!(
        "rps {rps} burst {burst}: {admitted} admitted, {limited} limited in {elapsed:?} \
         (budget {budget:.0}, {:.0} requests/s offered)",
        (admitted + limited) as f64 / secs
    );
    assert!(limited > 0, "no request was limited: the test did not reach the limit");
    assert!(
        admitted as f64 <= budget * 1.1,
        "the cluster admitted {admitted} in {elapsed:?}: over {budget:.0} + 10 %"
    );
    // Not a limit that starves: the cluster admits a fair share of the budget.
    assert!(
        admitted as f64 >= budget * 0.5,
        "the cluster admitted only {admitted} in {elapsed:?} of a budget of {budget:.0}"
    );
}

#[tokio::test]
async fn two_nodes_together_stay_within_one_users_budget() {
    assert_cluster_budget(20, 20).await;
}

#[tokio::test]
async fn two_nodes_together_stay_within_one_users_budget_at_a_higher_rate() {
    assert_cluster_budget(100, 50).await;
}

// --- failed logins --------------------------------------------------------------------------

/// An anonymous client of `broker` whose requests say they were forwarded for `address`.
fn forwarded_for(broker: &Broker, address: &str) -> Client {
    broker.anonymous_client().with_header("x-forwarded-for", address)
}

async fn login(client: &Client, username: &str, password: &str) -> Resp {
    client.post("/v1/auth/token", mom_tests::json!({ "username": username, "password": password })).await
}

/// A broker of a fresh cluster that believes `X-Forwarded-For` from 127.0.0.1.
async fn behind_a_trusted_proxy() -> Broker {
    Cluster::new().broker().env("MOM_TRUSTED_PROXIES", "127.0.0.1/32").start().await
}

#[tokio::test]
async fn the_11th_failed_login_for_one_username_within_a_minute_gets_429() {
    // Each attempt from its own address, so only the per-username limit can apply.
    let broker = behind_a_trusted_proxy().await;
    broker.add_user("bob", "user").await;
    broker.add_user("carol", "user").await;
    for i in 0..FAILED_LOGINS {
        let client = forwarded_for(&broker, &format!("10.1.0.{i}"));
        login(&client, "bob", "not-bobs-password").await.expect_error(401, "unauthenticated");
    }
    let client = forwarded_for(&broker, "10.1.1.1");
    let resp = login(&client, "bob", "not-bobs-password").await;
    assert!(retry_after(&resp) <= 60, "{resp}");
    // Locked for now even with the right password: otherwise guessing could go on, telling a
    // right guess (200) from a wrong one (429).
    let client = forwarded_for(&broker, "10.1.1.2");
    retry_after(&login(&client, "bob", &user_password("bob")).await);
    // Other usernames are not affected.
    let client = forwarded_for(&broker, "10.1.1.3");
    login(&client, "carol", &user_password("carol")).await.expect_status(200);
}

#[tokio::test]
async fn the_11th_failed_login_from_one_forwarded_address_gets_429() {
    let broker = behind_a_trusted_proxy().await;
    broker.add_user("bob", "user").await;
    let attacker = forwarded_for(&broker, "10.2.0.1");
    for i in 0..FAILED_LOGINS {
        login(&attacker, &format!("user-{i}"), "a-wrong-password").await.expect_error(401, "unauthenticated");
    }
    retry_after(&login(&attacker, "user-10", "a-wrong-password").await);
    retry_after(&login(&attacker, "bob", &user_password("bob")).await);
    // The proxy appends the address it saw; what the client put before it does not help.
    let spoofing = forwarded_for(&broker, "203.0.113.7, 10.2.0.1");
    retry_after(&login(&spoofing, "user-11", "a-wrong-password").await);
    // Another address is not affected.
    let other = forwarded_for(&broker, "10.2.0.2");
    login(&other, "bob", &user_password("bob")).await.expect_status(200);
    login(&other, "user-12", "a-wrong-password").await.expect_error(401, "unauthenticated");
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No MOM_TRUSTED_PROXIES: every attempt comes from the peer, 127.0.0.1, whatever it claims.
    let broker = Cluster::new().start_broker().await;
    for i in 0..FAILED_LOGINS {
        let client = forwarded_for(&broker, &format!("10.3.0.{i}"));
        login(&client, &format!("user-{i}"), "a-wrong-password").await.expect_error(401, "unauthenticated");
    }
    let client = forwarded_for(&broker, "10.3.1.1");
    retry_after(&login(&client, "user-10", "a-wrong-password").await);
    retry_after(&login(&broker.anonymous_client(), ADMIN_USER, ADMIN_PASSWORD).await);
}

#[tokio::test]
async fn concurrent_failed_logins_cannot_get_past_the_limit() {
    let broker = behind_a_trusted_proxy().await;
    broker.add_user("bob", "user").await;
    let count = |answers: &[Resp]| {
        let failed = answers.iter().filter(|r| r.status == 401).count();
        for resp in answers.iter().filter(|r| r.status != 401) {
            retry_after(resp);
        }
        failed
    };

    // 30 guesses at once for one username, each from its own address.
    let clients: Vec<Client> = (0..30).map(|i| forwarded_for(&broker, &format!("10.4.0.{i}"))).collect();
    let answers = join_all(clients.iter().map(|c| login(c, "bob", "a-wrong-password"))).await;
    let evaluated = count(&answers);
    assert!(
        evaluated <= FAILED_LOGINS,
        "{evaluated} of 30 concurrent wrong passwords for one username were checked (401), \
         at most {FAILED_LOGINS} may be"
    );

    // 30 guesses at once from one address, each for its own username.
    let attacker = forwarded_for(&broker, "10.4.1.1");
    let names: Vec<String> = (0..30).map(|i| format!("user-{i}")).collect();
    let answers = join_all(names.iter().map(|n| login(&attacker, n, "a-wrong-password"))).await;
    let evaluated = count(&answers);
    assert!(
        evaluated <= FAILED_LOGINS,
        "{evaluated} of 30 concurrent failed logins from one address were checked (401), \
         at most {FAILED_LOGINS} may be"
    );
}

#[tokio::test]
async fn failed_logins_are_counted_across_nodes() {
    // Two nodes of one cluster: a guesser spreading its attempts over both still meets one limit.
    let cluster = Cluster::new();
    let a = cluster.broker().env("MOM_TRUSTED_PROXIES", "127.0.0.1/32").start().await;
    let b = cluster.broker().env("MOM_TRUSTED_PROXIES", "127.0.0.1/32").start().await;
    a.add_user("dave", "user").await;
    wait_until("dave to be known on B", Duration::from_secs(5), || async {
        (login(&b.anonymous_client(), "dave", &user_password("dave")).await.status == 200).then_some(())
    })
    .await;
    for i in 0..FAILED_LOGINS {
        let node = if i % 2 == 0 { &a } else { &b };
        let client = forwarded_for(node, &format!("10.2.0.{i}"));
        login(&client, "dave", "not-daves-password").await.expect_error(401, "unauthenticated");
    }
    // The 11th, on either node, is refused: the count lives in Redis, not in a node.
    for node in [&a, &b] {
        let resp = login(&forwarded_for(node, "10.2.1.1"), "dave", "not-daves-password").await;
        assert!(retry_after(&resp) <= 60, "{resp}");
    }
}
