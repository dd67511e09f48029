//! Hot reload end to end: a proxy serving a config file from a temp
//! directory, with the file watcher on, edited the ways editors save; and
//! the transaction guarantee (a transaction runs the failure route of the
//! program it started with).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipc::proxy::Transport;
use sipc::proxy::server::{ServerHandle, start};
use sipc::reload::Reloader;
use sipc::sema::Options;
use sipc::sip::Message;
use support::*;

/// The tests count live programs (a process-wide number): one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("sipc-reload-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Served {
    proxy: ServerHandle,
    reloader: Arc<Reloader>,
    px: std::net::SocketAddr,
}

/// Serves the config at `path` with the file watcher running.
async fn serve(path: &Path) -> Served {
    let built = sipc::reload::build(path, &Options::default()).expect("the first config builds");
    let mut config =
        sipc::cli::run::server_config_in(&built.checked, path.parent().unwrap()).unwrap();
    // The config names a port; the test serves on an ephemeral one.
    for l in &mut config.listens {
        l.addr.set_port(0);
    }
    let proxy = start(config, built.program.clone()).await.unwrap();
    built.program.set_local(proxy.core.local.clone());
    let reloader = Reloader::new(path, Options::default(), Arc::clone(&proxy.core), &built, None);
    sipc::reload::watch::spawn(Arc::clone(&reloader)).unwrap();
    let px = proxy.addr(Transport::Udp).unwrap();
    Served { proxy, reloader, px }
}

fn replying(reason: &str) -> String {
    format!("listen udp 127.0.0.1:5999;\nrequest_route {{\n    reply(200, \"{reason}\");\n}}\n")
}

/// The reason phrase the proxy answers an OPTIONS with.
async fn ask(ua: &UdpUa, px: std::net::SocketAddr, n: u32) -> Option<String> {
    let call = format!("ask-{n}-{}", ua.addr.port());
    ua.send(px, &request("OPTIONS", "sip:x@example.com", &ua.via(&format!("q{n}")), &call, ""))
        .await;
    let (m, _) = ua.recv_within(Duration::from_millis(500)).await?;
    m.reason().map(str::to_owned)
}

/// Waits (bounded) until the proxy answers with `reason`; returns how long.
async fn until_answer(ua: &UdpUa, px: std::net::SocketAddr, reason: &str) -> Duration {
    let started = Instant::now();
    for n in 0.. {
        if ask(ua, px, n).await.as_deref() == Some(reason) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never answered `{reason}`");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unreachable!()
}

/// Waits until `n` reloads were attempted, then a little longer to see that
/// no more come.
async fn settle(r: &Reloader, n: u64) -> (u64, u64) {
    let started = Instant::now();
    while r.counts().0 < n && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.counts()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_save_keeps_the_old_routes_and_the_next_good_one_loads() {
    let _serial = SERIAL.lock().await;
    let dir = TempDir::new("broken");
    let path = dir.0.join("proxy.route");
    std::fs::write(&path, replying("Gen One")).unwrap();
    let s = serve(&path).await;
    let ua = UdpUa::bind().await;
    assert_eq!(ask(&ua, s.px, 0).await.as_deref(), Some("Gen One"));

    std::fs::write(&path, "listen udp 127.0.0.1:5999;\nrequest_route {\n    reply(200, \"x\")\n")
        .unwrap();
    let (reloads, failures) = settle(&s.reloader, 1).await;
    assert_eq!((reloads, failures), (1, 1));
    let status = s.reloader.status();
    assert!(status.contains("generation: 1"), "{status}");
    assert!(status.contains("E01"), "the diagnostics are kept: {status}");
    assert!(status.contains("proxy.route:"), "with file and line: {status}");
    assert_eq!(ask(&ua, s.px, 1).await.as_deref(), Some("Gen One"), "old routes serve");

    std::fs::write(&path, replying("Gen Two")).unwrap();
    let waited = until_answer(&ua, s.px, "Gen Two").await;
    assert!(waited < Duration::from_secs(1), "new routes after {waited:?}");
    assert_eq!(s.reloader.generation(), 2);
    s.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_of_saving_is_one_reload() {
    let _serial = SERIAL.lock().await;
    let dir = TempDir::new("saves");
    let path = dir.0.join("main.route");
    let inc = dir.0.join("reason.route");
    std::fs::write(&inc, "const REASON = \"Included One\";\n").unwrap();
    let main = |extra: &str| {
        format!(
            "include \"reason.route\";\nlisten udp 127.0.0.1:5999;\nrequest_route {{\n    {extra}reply(200, REASON);\n}}\n"
        )
    };
    std::fs::write(&path, main("")).unwrap();
    let s = serve(&path).await;
    let ua = UdpUa::bind().await;
    assert_eq!(ask(&ua, s.px, 0).await.as_deref(), Some("Included One"));

    // vim: write a new file, rename it over the original.
    let tmp = dir.0.join("main.route.swp-new");
    std::fs::write(&tmp, main("log(info, \"vim\");\n    ")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(settle(&s.reloader, 1).await, (1, 0), "rename save");

    // VS Code: truncate, then write in place.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        f.flush().unwrap();
        f.write_all(main("log(info, \"code\");\n    ").as_bytes()).unwrap();
    }
    assert_eq!(settle(&s.reloader, 2).await, (2, 0), "truncate-and-write save");

    // A change in the included file.
    std::fs::write(&inc, "const REASON = \"Included Two\";\n").unwrap();
    assert_eq!(settle(&s.reloader, 3).await, (3, 0), "include save");
    assert_eq!(ask(&ua, s.px, 1).await.as_deref(), Some("Included Two"));

    // Files next to the config that it does not read do not reload it.
    std::fs::write(dir.0.join("notes.txt"), "unrelated").unwrap();
    assert_eq!(settle(&s.reloader, 3).await, (3, 0), "unrelated file");
    assert_eq!(s.reloader.generation(), 4);
    s.proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_listen_is_refused_with_a_diagnostic() {
    let _serial = SERIAL.lock().await;
    let dir = TempDir::new("listen");
    let path = dir.0.join("proxy.route");
    std::fs::write(&path, replying("Before")).unwrap();
    let s = serve(&path).await;
    std::fs::write(
        &path,
        replying("After").replace("listen udp 127.0.0.1:5999;", "listen udp 127.0.0.2:5999;"),
    )
    .unwrap();
    assert_eq!(settle(&s.reloader, 1).await, (1, 1));
    assert!(s.reloader.status().contains("need a restart"), "{}", s.reloader.status());
    let ua = UdpUa::bind().await;
    assert_eq!(ask(&ua, s.px, 0).await.as_deref(), Some("Before"));
    s.proxy.stop(Duration::from_secs(1)).await;
}

const FAILOVER: &str = r#"
listen udp 127.0.0.1:5999;
module tm { t1 = 50ms; }
request_route {
    on_failure(again);
    $du = "sip:FIRST";
    relay();
}
failure_route again {
    append_hf("X-Generation: MARK\r\n");
    $du = "sip:SECOND";
    relay();
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_runs_the_failure_route_of_the_program_it_started_with() {
    let _serial = SERIAL.lock().await;
    let dir = TempDir::new("txn");
    let (uac, first, second) = (UdpUa::bind().await, UdpUa::bind().await, UdpUa::bind().await);
    let config = |mark: &str| {
        FAILOVER
            .replace("FIRST", &first.addr.to_string())
            .replace("SECOND", &second.addr.to_string())
            .replace("MARK", mark)
    };
    let path = dir.0.join("failover.route");
    std::fs::write(&path, config("old")).unwrap();
    let s = serve(&path).await;
    let before = sipc::codegen::Program::live();

    uac.send(s.px, &request("INVITE", "sip:b@example.com", &uac.via("t1"), "txn-reload", "")).await;
    let (inv, from) = first.recv().await.expect("INVITE at the first UAS");
    // The config changes while the INVITE is pending.
    std::fs::write(&path, config("new")).unwrap();
    let started = Instant::now();
    while s.reloader.generation() < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "no reload");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sipc::codegen::Program::live(), before + 1, "both generations alive");
    first.send(from, &response_to(&inv, 486, "Busy Here")).await;
    let second_inv = loop {
        let (m, _) = second.recv().await.expect("INVITE at the second UAS");
        if m.method_str() == Some("INVITE") {
            break m;
        }
    };
    let mark = second_inv.headers_named("X-Generation").next().map(|h| second_inv.value_of(h));
    assert_eq!(mark, Some("old"), "the old program's failure route ran");
    second.send(s.px, &response_to(&second_inv, 200, "OK")).await;
    let ok: Message = loop {
        let (m, _) = uac.recv().await.expect("the 200");
        if m.status() == Some(200) {
            break m;
        }
    };
    assert_eq!(ok.cseq().unwrap().unwrap().method, "INVITE");
    // Once the transaction is over, the old program is freed.
    let started = Instant::now();
    while sipc::codegen::Program::live() > before || s.proxy.core.transactions() > 0 {
        assert!(started.elapsed() < Duration::from_secs(8), "the old program was not freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.proxy.stop(Duration::from_secs(1)).await;
}
