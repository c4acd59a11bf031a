//! End to end through the running local runtime over HTTP: the journey, the
//! overselling race, failure isolation with the DLQ and redrive, duplicate
//! deliveries (scenarios shared with the AWS path, see e2e_aws.rs) and crash
//! safety under SIGKILL. Each test starts the real binary on a free port
//! with its own data folder.

mod common;
mod scenarios;

use common::{Runtime, quiet};
use serde_json::json;
use storefront_store::EventLog;

fn data() -> tempfile::TempDir {
    tempfile::tempdir().expect("data dir")
}

fn store(rt: &Runtime) -> storefront_store::sqlite::SqliteStore {
    storefront_store::sqlite::SqliteStore::open(rt.data.join("events.db")).expect("open events.db")
}

/// The shopper journey over HTTP: products, two shoppers, confirmations, payment, shipment, delivery,
/// a cancellation that releases stock; then stats, event history, notifications, audit and `verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey() {
    let dir = data();
    scenarios::journey(&Runtime::start(dir.path())).await;
}

/// 50 shoppers check out the last 10 units at once: exactly 10 confirmed, 40 rejected, none left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overselling_race_over_http() {
    let dir = data();
    scenarios::overselling_race(&Runtime::start(dir.path())).await;
}

/// A failing handler retries, lands in its DLQ after maxReceiveCount, leaves the others unaffected,
/// and `dlq redrive` after the fault is removed heals it with no duplicate effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_isolation_dlq_and_redrive() {
    let dir = data();
    scenarios::failure_isolation_dlq_and_redrive(&Runtime::start(dir.path())).await;
}

/// Every event delivered twice to every handler changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries() {
    let dir = data();
    scenarios::duplicate_deliveries(&Runtime::start(dir.path())).await;
}

/// SIGKILL in the middle of a load (40 shoppers, up to 10 checkouts each), then a restart on the
/// same data: every accepted command's events are stored once and every handler processed every
/// event once in effect (nothing lost, nothing doubled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safety_under_sigkill() {
    let dir = data();
    let rt = Runtime::start(dir.path());
    let c = rt.client();
    let admin = rt.token("root", true);
    c.ok("POST", "/products", Some(&admin), Some(json!({"sku": "MUG", "name": "Mug", "priceCents": 100, "currency": "EUR", "stock": 1000}))).await;
    // 40 shoppers each add and check out, concurrently; the runtime is killed while they run.
    let tokens: Vec<String> = (0..40).map(|i| rt.token(&format!("k{i}"), false)).collect();
    let load = tokens.iter().map(|t| {
        let (c, t) = (c.clone(), t.clone());
        async move {
            let mut accepted = Vec::new();
            for _ in 0..10 {
                match c
                    .try_send(
                        "POST",
                        "/cart/items",
                        Some(&t),
                        Some(json!({"sku": "MUG", "quantity": 1})),
                    )
                    .await
                {
                    Some((200, _)) => {}
                    _ => break,
                }
                match c.try_send("POST", "/cart/checkout", Some(&t), None).await {
                    Some((201, body)) => {
                        accepted.push(body["orderId"].as_str().unwrap_or("").to_owned())
                    }
                    _ => break,
                }
            }
            accepted
        }
    });
    let killer = async {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let pid = rt.child.id();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    };
    let started = std::time::Instant::now();
    let (results, ()) = tokio::join!(futures::future::join_all(load), killer);
    eprintln!("load done after {:?}", started.elapsed());
    let accepted: Vec<String> = results.into_iter().flatten().collect();
    assert!(
        !accepted.is_empty(),
        "some commands were accepted before the kill"
    );
    assert!(
        accepted.len() < 400,
        "the kill cut the load short ({} of 400 checkouts accepted)",
        accepted.len()
    );
    drop(rt);

    let rt = Runtime::start(dir.path());
    eprintln!("restarted after {:?}", started.elapsed());
    let c = rt.client();
    quiet(&c).await;
    eprintln!("quiet after {:?}", started.elapsed());
    let s = store(&rt);
    let log: Vec<storefront_domain::EventEnvelope> = s
        .read_after(0, 1_000_000)
        .await
        .expect("log")
        .into_iter()
        .map(|l| l.envelope)
        .collect();
    // Stored once: no event id twice, and every accepted checkout has exactly one order.created.
    let ids: std::collections::HashSet<&str> = log.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), log.len());
    for id in &accepted {
        let created = log
            .iter()
            .filter(|e| e.stream_id == format!("order#{id}") && e.event_type == "order.created")
            .count();
        assert_eq!(created, 1, "accepted order {id} stored once");
    }
    // Processed once in effect: every order confirmed exactly once, stock reserved exactly once per order.
    let orders: Vec<&str> = log
        .iter()
        .filter(|e| e.event_type == "order.created")
        .map(|e| e.stream_id.as_str())
        .collect();
    let admin = rt.token("root", true);
    for o in &orders {
        let confirmations = log
            .iter()
            .filter(|e| e.stream_id == *o && e.event_type == "order.confirmed")
            .count();
        assert_eq!(confirmations, 1, "{o} confirmed once");
    }
    let reservations = log
        .iter()
        .filter(|e| e.event_type == "inventory.stock.reserved")
        .count();
    assert_eq!(reservations, orders.len());
    let mug = c.ok("GET", "/products/MUG", None, None).await;
    assert_eq!(mug["reserved"].as_u64(), Some(orders.len() as u64));
    // Every event audited once, and the analytics agree.
    let (ok, out) = rt.cli(&["verify"]);
    assert!(ok, "{out}");
    let audited: u64 = storefront_audit::verify_all(&s)
        .await
        .expect("chain")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(audited, log.len() as u64);
    let stats = c.ok("GET", "/admin/stats", Some(&admin), None).await;
    assert_eq!(stats["checkouts"].as_u64(), Some(orders.len() as u64));
    eprintln!(
        "{} commands accepted before the kill; {} orders, {} events after restart",
        accepted.len(),
        orders.len(),
        log.len()
    );
}

/// A publish that keeps failing until the stream mapping gives up (the local
/// bus's fault switch) leaves a description on PublisherDLQ and no effect;
/// `storefront republish` then puts the event through to every consumer,
/// once (one welcome email, one profile), and a repeat finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_given_up_on_is_republished() {
    let dir = data();
    let rt = Runtime::start(dir.path());
    let c = rt.client();
    let zoe = rt.token("zoe", false);
    c.ok("PUT", "/_local/faults/publisher", None, None).await;
    c.ok(
        "POST",
        "/users",
        Some(&zoe),
        Some(json!({"email": "zoe@example.com", "name": "Zoe"})),
    )
    .await;
    let queues =
        storefront::local::queues::Queues::open(&rt.data.join("queues.db")).expect("queues");
    common::eventually(60, "a description on PublisherDLQ", || async {
        (queues.depth("PublisherDLQ").ok()? == 1).then_some(())
    })
    .await;
    c.ok("DELETE", "/_local/faults/publisher", None, None).await;
    quiet(&c).await;
    let outbox = || async {
        rt.stores()
            .state
            .query(storefront_store::keys::OUTBOX)
            .await
            .expect("outbox")
            .len()
    };
    assert_eq!(outbox().await, 0, "nothing was delivered");
    let (status, _) = c.send("GET", "/users/me", Some(&zoe), None).await;
    assert_eq!(status, 200, "the API reads the aggregate, not the view");

    let (ok, out) = rt.cli(&["republish"]);
    assert!(ok && out.contains("1 events republished"), "{out}");
    quiet(&c).await;
    assert_eq!(queues.depth("PublisherDLQ").expect("depth"), 0);
    assert_eq!(outbox().await, 1, "one welcome email");
    let (pk, sk) = storefront_store::keys::user_view("zoe");
    let profile = rt.stores().state.get(&pk, sk).await.expect("get");
    assert!(profile.is_some(), "the user handler built the profile view");

    let (ok, out) = rt.cli(&["republish"]);
    assert!(ok && out.contains("0 events republished"), "{out}");
    quiet(&c).await;
    assert_eq!(outbox().await, 1, "still one");
}

/// A second runtime on a data folder in use refuses to start, naming the
/// folder and the first runtime's pid; once the first is killed (SIGKILL:
/// the OS drops its lock), a runtime starts there again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_runtime_per_data_folder() {
    let dir = data();
    let first = Runtime::start(dir.path());
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_storefront"))
        .args(["dev", "--port", "0", "--data"])
        .arg(dir.path())
        .arg("--template")
        .arg(common::template())
        .output()
        .expect("run a second runtime");
    assert!(!second.status.success(), "the second runtime started");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&dir.path().display().to_string())
            && stderr.contains(&format!("pid {}", first.child.id())),
        "{stderr}"
    );
    let pid = first.child.id();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    drop(first);
    let again = Runtime::start(dir.path());
    let c = again.client();
    assert_eq!(c.ok("GET", "/health", None, None).await["status"], "ok");
}

/// The `/_local` tooling answers an admin's dev token only, and no browser
/// page (a request with `Origin` or a cross-site `Sec-Fetch-Site`), however
/// it is signed; a runtime told to listen beyond loopback says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_tooling_needs_an_admin_and_no_browser() {
    let dir = data();
    let rt = Runtime::start(dir.path());
    let admin = rt.token("root", true);
    let shopper = rt.token("alice", false);
    let http = reqwest::Client::new();
    let rewind = |token: Option<&str>, header: Option<(&str, &str)>| {
        let mut r = http.post(format!("{}/_local/feed/rewind", rt.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some((k, v)) = header {
            r = r.header(k, v);
        }
        r.send()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.expect("response").status().as_u16();
    assert_eq!(status(rewind(None, None).await), 401);
    assert_eq!(status(rewind(Some("not.a.token"), None).await), 401);
    assert_eq!(status(rewind(Some(&shopper), None).await), 403);
    assert_eq!(
        status(rewind(Some(&admin), Some(("origin", "http://evil.example"))).await),
        403
    );
    assert_eq!(
        status(rewind(Some(&admin), Some(("sec-fetch-site", "cross-site"))).await),
        403
    );
    assert_eq!(status(rewind(Some(&admin), None).await), 200);
    let queues = http
        .get(format!("{}/_local/queues", rt.base))
        .bearer_auth(&admin)
        .send()
        .await;
    assert_eq!(status(queues), 200);

    let wide = tempfile::tempdir().expect("dir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_storefront"))
        .args(["dev", "--host", "0.0.0.0", "--port", "0", "--data"])
        .arg(wide.path())
        .arg("--template")
        .arg(common::template())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).expect("a line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.contains("warning: listening on 0.0.0.0, not on loopback"),
        "{first}"
    );
}

/// A power loss that rolls the event log back behind the feed's cursor
/// (the log's last transactions never reached the disk; the cursor's did):
/// at the next start the cursor is brought back to the log's end, so the
/// event that takes a position the cursor had passed is still published and
/// reaches its handlers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_ahead_of_the_log_is_rewound_at_start() {
    let dir = data();
    {
        let rt = Runtime::start(dir.path());
        let c = rt.client();
        let admin = rt.token("root", true);
        for sku in ["MUG", "TEE", "CAP"] {
            c.ok(
                "POST",
                "/products",
                Some(&admin),
                Some(json!({"sku": sku, "name": sku, "priceCents": 100, "currency": "EUR", "stock": 5})),
            )
            .await;
        }
        quiet(&c).await;
    }
    // The power loss: the last two events and AUTOINCREMENT's memory of them
    // are gone; the cursor in queues.db says they were published.
    let events = rusqlite::Connection::open(dir.path().join("events.db")).expect("events.db");
    let last: i64 = events
        .query_row("SELECT MAX(position) FROM events", [], |r| r.get(0))
        .expect("max");
    events
        .execute("DELETE FROM events WHERE position > ?1", [last - 2])
        .expect("lose two events");
    events
        .execute(
            "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'events'",
            [last - 2],
        )
        .expect("and their sequence");
    drop(events);
    let queues =
        storefront::local::queues::Queues::open(&dir.path().join("queues.db")).expect("queues.db");
    assert_eq!(
        queues
            .cursor(storefront::local::feed::FEED_CURSOR)
            .expect("cursor"),
        last as u64
    );
    drop(queues);

    let rt = Runtime::start(dir.path());
    let c = rt.client();
    let admin = rt.token("root", true);
    c.ok(
        "POST",
        "/products",
        Some(&admin),
        Some(
            json!({"sku": "HAT", "name": "Hat", "priceCents": 100, "currency": "EUR", "stock": 5}),
        ),
    )
    .await;
    let logged = store(&rt).read_after(0, 1000).await.expect("log");
    let hat = logged
        .iter()
        .find(|l| l.envelope.stream_id == "product#HAT")
        .expect("the new event");
    assert!(
        hat.position <= last as u64,
        "the new event took a position the cursor had passed ({} <= {last})",
        hat.position
    );
    let (pk, sk) = storefront_store::keys::audit_seen(&hat.envelope.event_id);
    let stores = rt.stores();
    common::eventually(30, "the new event audited", || async {
        stores.state.get(&pk, sk).await.ok().flatten().map(|_| ())
    })
    .await;
}
