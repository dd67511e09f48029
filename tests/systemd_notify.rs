//! The systemd notifications of `sipc run` (`Type=notify`, the unit in
//! examples/systemd/sipc.service): the test plays systemd, listening on a
//! Unix datagram socket named in `$NOTIFY_SOCKET`. It expects `READY=1`
//! with the proxy's pid once it serves, `RELOADING=1` (with
//! `MONOTONIC_USEC`) and `READY=1` around a good reload and around a
//! broken one (the old config keeps serving), and `STOPPING=1` on SIGTERM.
//! Bounded: every wait is 10 s at most.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Reaper, free_udp_port, terminate};

fn next(sock: &UnixDatagram, what: &str) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no {what} notification: {e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn reload(control: &std::path::Path) -> bool {
    Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["reload", "--control"])
        .arg(control)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn sipc_tells_systemd_when_it_is_ready_reloads_and_stops() {
    let dir = std::env::temp_dir().join(format!("sipc-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let notify_path = dir.join("notify.sock");
    let systemd = UnixDatagram::bind(&notify_path).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let route = dir.join("svc.route");
    let good = format!(
        "listen udp 127.0.0.1:{};\nrequest_route {{\n    reply(404, \"Not Here\");\n}}\n",
        free_udp_port()
    );
    std::fs::write(&route, &good).unwrap();
    let control = dir.join("control.sock");
    let mut proxy = Reaper(
        Command::new(env!("CARGO_BIN_EXE_sipc"))
            .arg("run")
            .arg(&route)
            .args(["--no-watch", "--control"])
            .arg(&control)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let ready = next(&systemd, "READY");
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={}", proxy.0.id())), "{ready}");
    assert!(ready.contains("STATUS=generation 1 serving"), "{ready}");
    // Ready means serving: the control socket answers at once.
    assert!(reload(&control), "a good reload");
    let reloading = next(&systemd, "RELOADING");
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
    let usec: u64 = reloading.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..].parse().unwrap();
    assert!(usec > 0);
    let again = next(&systemd, "READY after the reload");
    assert!(again.starts_with("READY=1\n") && again.contains("generation 2 serving"), "{again}");

    // A broken edit: reloading, then ready again with the old config.
    std::fs::write(&route, good.replace("reply(404", "reply(\"404\"")).unwrap();
    assert!(!reload(&control), "the broken config is refused");
    assert!(next(&systemd, "RELOADING").starts_with("RELOADING=1\n"));
    let kept = next(&systemd, "READY after the failed reload");
    assert!(kept.contains("generation 2 serving; the last reload failed"), "{kept}");

    terminate(&mut proxy);
    let stopping = next(&systemd, "STOPPING");
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
    let _ = std::fs::remove_dir_all(&dir);
}
