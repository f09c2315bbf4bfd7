//! The web console (`GET /console/`, issue 24) in a real browser: Debian's `chromium`, headless,
//! driven through `chromedriver` (WebDriver), against a broker on the shared Redis and ZooKeeper.
//! It signs in (and refuses a wrong password), creates a queue, sends to it, sees the counts,
//! peeks without changing them, receives and acks, watches a dead letter arrive and redrives it,
//! tails a topic, shows the admin pages, and shows an ordinary user only what that user may see.
//!
//! Every page is saved as a PNG under the cargo target directory (`console-screenshots/`, not
//! committed); with `MOM_CONSOLE_DOCS=1` the main pages also go to `docs/console/` for README.md.
//! The serving itself (headers, hashed assets) is checked over plain HTTP.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use mom_tests::util::free_port;
use mom_tests::{
    json, start_broker, user_password, wait_until_every, Broker, Cluster, Nginx, ADMIN_PASSWORD, ADMIN_USER,
};

/// How long anything the page shows may take to appear (a loaded 2-core machine; waits end as
/// soon as it does).
const PATIENCE: Duration = Duration::from_secs(30);
/// Between two looks at the page.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// `chromedriver` on a free port, killed with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        // A process group of its own: chromium runs as chromedriver's child, and a test that
        // fails before it closes its session must not leave a browser behind (see `Drop`).
        let child = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromedriver ({e}): apt-get install -y chromium chromium-driver")
            });
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        wait_until_every("chromedriver to answer", PATIENCE, LOOK_EVERY, || async {
            reqwest::get(&status).await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        Driver { child, url }
    }

    async fn browser(&self) -> Browser {
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1280,800", "--hide-scrollbars", "--force-device-scale-factor=1"],
            }
        });
        let caps = caps.as_object().cloned().unwrap_or_default();
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start a chromium session: {e}"))
    }
}

impl Drop for Driver {
    /// Kills chromedriver's whole group (it and the browsers it started), then reaps it.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) has no memory-safety preconditions. Its result is ignored: the
            // group may be gone already, and a drop during a panic must not panic again.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go: `<target dir>/console-screenshots/` (the test binary runs from
/// `<target dir>/debug/deps/`).
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("no test binary path: {e}"));
    let target = exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
    dir
}

/// The browser on one broker's console, with the helpers a user's actions need.
struct Page {
    b: Browser,
    base: String,
    shots: PathBuf,
    docs: Option<PathBuf>,
}

impl Page {
    async fn open(driver: &Driver, base: String) -> Page {
        let docs = std::env::var_os("MOM_CONSOLE_DOCS")
            .map(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console"));
        if let Some(d) = &docs {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("cannot make {}: {e}", d.display()));
        }
        let page = Page { b: driver.browser().await, base, shots: screenshot_dir(), docs };
        page.go("").await;
        page
    }

    /// Goes to `/console/` + `hash` (e.g. `#/queues`).
    async fn go(&self, hash: &str) {
        let url = format!("{}/console/{hash}", self.base);
        self.b.goto(&url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The text of the first element matching `css`, if there is one.
    async fn text(&self, css: &str) -> Option<String> {
        self.b.find(Locator::Css(css)).await.ok()?.text().await.ok()
    }

    /// Waits until `probe` finds what it looks for on the page; on timeout saves the page as
    /// `failed.png` and fails the test with what the page said.
    async fn wait<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            if std::time::Instant::now() > deadline {
                self.shot("failed", false).await;
                let shown = self.text("body").await.unwrap_or_default();
                panic!("timed out after {PATIENCE:?} waiting for {what}; the page shows:\n{shown}");
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Waits until the element matching `css` shows text for which `ok` holds; returns it.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait(what, || async {
            self.text(css).await.filter(|t| ok(t.trim())).map(|t| t.trim().to_string())
        })
        .await
    }

    async fn wait_for(&self, css: &str) {
        self.wait(&format!("{css} to appear"), || async {
            self.b.find(Locator::Css(css)).await.ok().map(|_| ())
        })
        .await
    }

    /// Waits until `n` elements match `css`.
    async fn wait_count(&self, css: &str, n: usize) {
        self.wait(&format!("{n} of {css}"), || async { (self.count(css).await == n).then_some(()) }).await
    }

    async fn count(&self, css: &str) -> usize {
        self.b.find_all(Locator::Css(css)).await.map(|v| v.len()).unwrap_or(0)
    }

    async fn click(&self, css: &str) {
        self.wait_for(css).await;
        let el = self.b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.click().await.unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.wait_for(css).await;
        let el = self.b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.unwrap_or_else(|e| panic!("cannot clear {css}: {e}"));
        el.send_keys(text).await.unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    async fn select(&self, css: &str, value: &str) {
        self.wait_for(&format!("{css} option[value=\"{value}\"]")).await;
        let el = self.b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.select_by_value(value).await.unwrap_or_else(|e| panic!("cannot select {value} in {css}: {e}"));
    }

    /// Saves the page as `name.png` (and into docs/ when asked and `doc` is set).
    async fn shot(&self, name: &str, doc: bool) {
        // From the top of the page, where a user lands (a click scrolls to its element).
        let _ = self.b.execute("window.scrollTo(0, 0)", vec![]).await;
        let png = self.b.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        if let (Some(docs), true) = (&self.docs, doc) {
            let path = docs.join(format!("{name}.png"));
            std::fs::write(&path, &png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    }

    async fn sign_in(&self, user: &str, password: &str) {
        self.type_into("#username", user).await;
        self.type_into("#password", password).await;
        self.click("#sign-in").await;
    }

    async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.wait_for("#username").await;
    }

    /// The number in column `cell` of queue `name`'s row of the queue list.
    async fn wait_queue_cell(&self, name: &str, cell: &str, want: &str) {
        let css = format!("tr[data-queue=\"{name}\"] td.{cell}");
        self.wait_text(&css, &format!("queue {name} to show {cell} {want}"), |t| t == want).await;
    }

    /// What the page's Content-Security-Policy blocked so far (`app.js` records it).
    async fn csp_violations(&self) -> Vec<String> {
        let got = self
            .b
            .execute("return window.momCspViolations || ['no record: app.js did not run']", vec![])
            .await;
        let got = got.unwrap_or_else(|e| panic!("cannot read the page's CSP record: {e}"));
        got.as_array().map(|a| a.iter().map(|v| v.to_string()).collect()).unwrap_or_default()
    }

    async fn close(self) {
        let _ = self.b.close().await;
    }
}

/// `(available, in_flight, delayed)` of a queue through the API.
async fn counts(broker: &Broker, queue: &str) -> (u64, u64, u64) {
    broker.client().queue(queue).stats().await.counts()
}

#[tokio::test]
async fn the_console_runs_a_queue_from_sign_in_to_redrive_in_a_real_browser() {
    let broker = start_broker().await;
    let driver = Driver::start().await;
    let page = Page::open(&driver, broker.url()).await;

    // A wrong password is refused on the page, and nothing is stored.
    page.wait_for("#username").await;
    page.shot("01-sign-in", true).await;
    page.sign_in(ADMIN_USER, "not-the-password").await;
    page.wait_text("#signin-error", "the sign-in error", |t| t.contains("Wrong username or password")).await;
    page.shot("02-sign-in-refused", false).await;

    page.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    page.wait_text("#who", "the signed-in user", |t| t.contains(ADMIN_USER)).await;
    let url = page.b.current_url().await.map(|u| u.to_string()).unwrap_or_default();
    assert!(url.ends_with("/console/#/queues") && !url.contains(ADMIN_PASSWORD), "{url}");
    page.wait_for("table#queues").await;

    // Create the queues in the browser: a dead-letter queue, and `orders` whose messages go
    // there on their second receive.
    page.click("#create-queue-box summary").await;
    page.type_into("#new-queue-name", "orders-dlq").await;
    page.click("#create-queue-submit").await;
    page.wait_for("tr[data-queue=\"orders-dlq\"]").await;
    page.type_into("#new-queue-name", "orders").await;
    page.type_into("#q-visibility_timeout_s", "1").await;
    page.type_into("#q-max_receives", "1").await;
    page.select("#q-dead_letter_queue", "orders-dlq").await;
    page.click("#create-queue-submit").await;
    page.wait_for("tr[data-queue=\"orders\"]").await;
    let created = broker.client().queue("orders").get().await.expect_status(200);
    assert_eq!(created.json["max_receives"], 1, "{created}");
    assert_eq!(created.json["dead_letter_queue"], "orders-dlq", "{created}");

    // Send three messages from the queue's page.
    page.click("tr[data-queue=\"orders\"] a.qname").await;
    page.wait_text("#queue-name", "the queue page", |t| t == "orders").await;
    for (i, body) in ["first order", "second order", "third order"].iter().enumerate() {
        page.type_into("#send-body", body).await;
        if i == 0 {
            page.type_into("#send-attributes", "region=eu").await;
        }
        page.click("#send").await;
        page.wait_text("#stat-available", &format!("{} available", i + 1), |t| t == (i + 1).to_string())
            .await;
    }
    assert_eq!(counts(&broker, "orders").await, (3, 0, 0));

    // The list shows them.
    page.go("#/queues").await;
    page.wait_queue_cell("orders", "available", "3").await;
    page.wait_queue_cell("orders", "in_flight", "0").await;
    page.shot("03-queues", true).await;

    // Peek shows all three, and nothing changes.
    page.click("tr[data-queue=\"orders\"] a.qname").await;
    page.click("#peek").await;
    page.wait_count("#peeked tr.message", 3).await;
    let shown = page.text("#peeked").await.unwrap_or_default();
    assert!(
        shown.contains("first order") && shown.contains("region=eu") && shown.contains("third order"),
        "{shown}"
    );
    page.wait_text("#stat-available", "3 still available", |t| t == "3").await;
    assert_eq!(counts(&broker, "orders").await, (3, 0, 0), "peeking changed the queue");
    page.shot("04-queue-peek", true).await;

    // Receive one and ack it.
    page.click("#receive").await;
    page.wait_text("#received-table tr.message td.body", "the received message", |t| t == "first order")
        .await;
    page.click("#received-table button.ack").await;
    page.wait_text("#received-table .acked", "the ack", |t| t == "acked").await;
    page.wait_text("#stat-available", "2 available", |t| t == "2").await;
    assert_eq!(counts(&broker, "orders").await, (2, 0, 0), "the acked message is gone");

    // Messages received more than max_receives (1) times move to the dead-letter queue: a
    // consumer receives the two left, lets their visibility (1 s) run out and receives again.
    let orders = broker.client().queue("orders");
    assert_eq!(orders.receive(10).await.len(), 2);
    wait_until_every("both to be dead-lettered", PATIENCE, Duration::from_millis(250), || async {
        orders.receive_with(json!({ "max": 10, "wait_s": 1 })).await;
        (counts(&broker, "orders").await == (0, 0, 0) && counts(&broker, "orders-dlq").await == (2, 0, 0))
            .then_some(())
    })
    .await;
    page.go("#/queues").await;
    page.wait_queue_cell("orders-dlq", "available", "2").await;
    page.wait_queue_cell("orders", "available", "0").await;
    page.click("tr[data-queue=\"orders\"] a.dlq").await;
    page.wait_text("#queue-name", "the dead-letter queue's page", |t| t == "orders-dlq").await;
    page.click("#peek").await;
    page.wait_count("#peeked tr.message", 2).await;
    let dead = page.text("#peeked").await.unwrap_or_default();
    assert!(dead.contains("mom.source_queue=orders") && dead.contains("third order"), "{dead}");
    page.shot("05-dead-letters", true).await;
    page.click("#redrive").await;
    page.wait_text("#redrive-result", "the redrive's count", |t| t == "moved 2").await;
    page.wait_text("#stat-available", "the dead-letter queue emptied", |t| t == "0").await;
    assert_eq!(counts(&broker, "orders").await, (2, 0, 0), "redrive moved both back");

    // Edit one attribute: the others stay as they were.
    page.go("#/queues/orders").await;
    page.click("#queue-config details summary").await;
    page.type_into("#q-visibility_timeout_s", "45").await;
    page.click("#edit-queue button[type=submit]").await;
    let orders_now = broker.client().queue("orders");
    let edited = page
        .wait("the new visibility timeout", || async {
            let got = orders_now.get().await;
            (got.json["visibility_timeout_s"] == 45).then_some(got)
        })
        .await;
    assert_eq!(edited.json["max_receives"], 1, "{edited}");
    assert_eq!(edited.json["dead_letter_queue"], "orders-dlq", "{edited}");

    // Purge from the list, after confirming in the page.
    page.go("#/queues").await;
    page.click("tr[data-queue=\"orders\"] button.purge").await;
    page.click("#confirm-yes").await;
    page.wait_queue_cell("orders", "available", "0").await;
    assert_eq!(counts(&broker, "orders").await, (0, 0, 0));

    // A FIFO queue takes a group with each message.
    broker
        .client()
        .put("/v1/queues/steps", json!({ "fifo": true, "content_based_dedup": true }))
        .await
        .expect_status(201);
    page.go("#/queues/steps").await;
    page.wait_text("#queue-name", "the FIFO queue's page", |t| t == "steps").await;
    page.type_into("#send-body", "step one").await;
    page.type_into("#send-group", "g1").await;
    page.click("#send").await;
    page.wait_text("#stat-available", "the FIFO message", |t| t == "1").await;
    let got = broker.client().queue("steps").receive_resp(json!({ "max": 1 })).await.expect_status(200);
    assert_eq!(got.json["messages"][0]["group"], "g1", "{got}");
    assert_eq!(got.json["messages"][0]["body"], "step one", "{got}");

    // A topic: publish in the page and see it in the live tail, then stop it.
    let admin = broker.client();
    admin.put("/v1/topics/events", json!({})).await.expect_status(201);
    admin
        .put("/v1/topics/events/subscriptions/audit", json!({ "filter": { "kind": "audit" } }))
        .await
        .expect_status(201);
    admin.put("/v1/topics/events/subscriptions/all", json!({})).await.expect_status(201);
    page.go("#/topics").await;
    page.wait_for("tr[data-topic=\"events\"]").await;
    page.go("#/topics/events").await;
    page.wait_for("tr[data-subscription=\"all\"] button.tail").await;
    page.click("tr[data-subscription=\"all\"] button.tail").await;
    page.wait_text("#tail-state", "the tail to connect", |t| t == "live").await;
    page.type_into("#publish-body", "hello from the console").await;
    page.click("#publish").await;
    page.wait_text("#tail-lines li .body", "the tailed message", |t| t == "hello from the console").await;
    page.wait_text("tr[data-subscription=\"audit\"] td.lag", "the audit lag", |t| t == "0").await;
    page.shot("06-topic", true).await;
    page.click("#tail-stop").await;
    page.wait_text("#tail-state", "the tail to stop", |t| t == "stopped").await;

    // Admin: users and the cluster with its leader.
    page.go("#/admin").await;
    page.wait_for(&format!("#users tr[data-user=\"{ADMIN_USER}\"]")).await;
    page.wait_text(&format!("tr[data-node=\"{}\"] .leader", broker.node_id()), "the leader", |t| {
        t == "leader"
    })
    .await;
    page.shot("07-admin", true).await;

    // Users: create one, give it an access key (its secret shown once), reset its password,
    // delete it after confirming.
    page.click("#create-user-box summary").await;
    page.type_into("#create-user input[name=username]", "carol").await;
    page.type_into("#create-user input[name=password]", &user_password("carol")).await;
    page.click("#create-user button[type=submit]").await;
    page.click("tr[data-user=\"carol\"] button.keys").await;
    page.click("#create-key").await;
    let secret = page.wait_text("#new-key-secret", "the new key's secret", |t| !t.is_empty()).await;
    let key_id = page.wait_text("#new-key-id", "the new key's id", |t| !t.is_empty()).await;
    let keys = broker.client().get("/v1/users/carol/access-keys").await.expect_status(200);
    assert_eq!(keys.json["access_keys"][0]["access_key_id"], key_id.as_str(), "{keys}");
    assert!(!keys.text.contains(&secret), "the secret is never listed again");
    page.click("tr[data-user=\"carol\"] button.reset").await;
    page.type_into("#reset-password input[name=password]", "a-brand-new-password").await;
    page.click("#reset-password button[type=submit]").await;
    // The form goes once the broker answered 204; then the new password signs in.
    page.wait_count("#reset-password", 0).await;
    broker.login_resp("carol", "a-brand-new-password").await.expect_status(200);
    page.click("tr[data-user=\"carol\"] button.delete").await;
    page.click("#confirm-yes").await;
    page.wait_count("tr[data-user=\"carol\"]", 0).await;
    broker.client().get("/v1/users").await.expect_status(200).json["users"]
        .as_array()
        .filter(|users| users.iter().all(|u| u["username"] != "carol"))
        .unwrap_or_else(|| panic!("carol is still a user"));

    // An ordinary user does not see another user's restricted queue.
    let alice = broker.add_user("alice", "user").await;
    alice.put("/v1/queues/alice-private", json!({ "access": "restricted" })).await.expect_status(201);
    broker.add_user("bob", "user").await;
    page.sign_out().await;
    page.sign_in("bob", &user_password("bob")).await;
    page.wait_text("#who", "bob signed in", |t| t == "bob").await;
    page.wait_for("tr[data-queue=\"orders\"]").await;
    assert_eq!(page.count("tr[data-queue=\"alice-private\"]").await, 0, "bob sees alice's private queue");
    assert_eq!(page.count("nav a[href=\"#/admin\"]").await, 0, "bob sees the admin page");

    // Nothing the pages did was blocked by the policy (no inline script or style, no other origin).
    assert_eq!(page.csp_violations().await, Vec::<String>::new());

    // At phone width the list still fits (it scrolls sideways inside its box).
    page.b.set_window_size(390, 844).await.unwrap_or_else(|e| panic!("cannot resize: {e}"));
    page.wait_for("tr[data-queue=\"orders\"]").await;
    page.shot("08-phone-queues", true).await;

    // Bob deleted: his token stops working, and the page's next call signs him out.
    broker.client().delete("/v1/users/bob").await.expect_status(204);
    page.wait_text("#signin-error", "the sign-out on 401", |t| t.contains("session ended")).await;
    page.wait_for("#username").await;
    page.close().await;
}

#[tokio::test]
async fn through_nginx_in_front_of_two_brokers_the_console_signs_in_and_tails_a_topic() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.start_broker().await, cluster.start_broker().await);
    let nginx = Nginx::start(&[&a, &b]).await;
    let admin = a.client();
    admin.put("/v1/queues/jobs", json!({})).await.expect_status(201);
    admin.put("/v1/topics/news", json!({})).await.expect_status(201);
    admin.put("/v1/topics/news/subscriptions/reader", json!({})).await.expect_status(201);
    let driver = Driver::start().await;
    let page = Page::open(&driver, nginx.url()).await;
    page.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    page.wait_for("tr[data-queue=\"jobs\"]").await;
    // The live tail's stream goes through NGINX's streaming location, with the token in a header.
    page.go("#/topics/news").await;
    page.click("tr[data-subscription=\"reader\"] button.tail").await;
    for i in 0..3 {
        b.client()
            .post("/v1/topics/news/messages", json!({ "body": format!("news {i}") }))
            .await
            .expect_status(201);
    }
    page.wait_count("#tail-lines li", 3).await;
    page.click("#tail-stop").await;
    // Both brokers answer the page; the admin view lists both nodes.
    page.go("#/admin").await;
    page.wait_for(&format!("tr[data-node=\"{}\"]", a.node_id())).await;
    page.wait_for(&format!("tr[data-node=\"{}\"]", b.node_id())).await;
    page.close().await;
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy_and_hashed_immutable_assets() {
    let broker = start_broker().await;
    let http = reqwest::Client::new();
    let index = http
        .get(format!("{}/console/", broker.url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /console/: {e}"));
    assert_eq!(index.status(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    assert_eq!(header(&index, "cache-control"), "no-cache");
    let etag = header(&index, "etag");
    let again = http
        .get(format!("{}/console/", broker.url()))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /console/ again: {e}"));
    assert_eq!(again.status(), 304, "the same page revalidates without a body");
    let csp = header(&index, "content-security-policy");
    for directive in
        ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    let html = index.text().await.unwrap_or_default();
    let script = html
        .split('"')
        .find(|s| s.starts_with("/console/assets/") && s.ends_with("/app.js"))
        .unwrap_or_else(|| panic!("no hashed app.js in {html}"))
        .to_string();
    let asset = http.get(format!("{}{script}", broker.url())).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(asset.status(), 200);
    assert!(header(&asset, "content-type").starts_with("text/javascript"));
    assert!(header(&asset, "cache-control").contains("immutable"), "{:?}", asset.headers());
    // Another bundle's URL (an older page) still gets this broker's file, but uncached.
    let other = script.replace("/assets/", "/assets/0");
    let stale = http.get(format!("{}{other}", broker.url())).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stale.status(), 200);
    assert_eq!(header(&stale, "cache-control"), "no-cache");
    let missing = http
        .get(format!("{}/console/assets/x/nothing.js", broker.url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing.status(), 404);
}
