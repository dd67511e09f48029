//! Media through rtpengine, end to end: `sipc run examples/nat-rtpengine.route`
//! with a real rtpengine (Debian `rtpengine-daemon`) on the example's ng
//! socket, 127.0.0.1:22222, and SIPp on both sides: a UAC at 5070 calling
//! a user who is not registered, so the call goes to the example's media
//! server at 127.0.0.1:5080, a SIPp UAS there.
//!
//! - a call with RTP: the UAS's INVITE carries rtpengine's `c=`/`m=`, the
//!   UAC's 200 too; SIPp plays two seconds of G.711 to the address in the
//!   200 (rtpengine's), the UAS echoes it (`-rtp_echo`), and rtpengine's
//!   own final packet counts show packets on both legs; after the BYE
//!   rtpengine holds no session;
//! - a 486 and a CANCEL: rtpengine saw the offer and holds no session after;
//! - faults, with a fake rtpengine on the socket answering an error,
//!   garbage or nothing: the new call is refused 503 (the example's
//!   decision), the proxy's log names the Call-ID and the reason; a call
//!   without SDP or with a body that is not SDP is relayed unchanged;
//! - failover: with two rtpengines, the one serving a call is killed
//!   mid-call and the call's next offer (a re-INVITE) goes to the other.
//!
//! The tests bind the example's fixed ports (5060, 5080, 22222), so they
//! run one at a time. Without SIPp or rtpengine they say so loudly and
//! pass; under `CI=true` they fail.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sipc::sip::Message;

mod support;
use support::rtpengine::{Rtpengine, have_rtpengine};
use support::{Reaper, have_sipp};

static PORTS: Mutex<()> = Mutex::new(());

const PROXY: &str = "127.0.0.1:5060";
const NG: &str = "127.0.0.1:22222";
/// rtpengine's media ports in these tests.
const MEDIA: (u16, u16) = (30_000, 30_099);
const MEDIA_B: (u16, u16) = (30_100, 30_199);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scenario(name: &str) -> PathBuf {
    root().join("tests/data/sipp").join(name)
}

fn tools_present() -> bool {
    if !have_sipp() {
        let msg = "SIPp is not installed (apt-get install sip-tester): the media tests did NOT run";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("\n*** {msg} ***\n");
        return false;
    }
    have_rtpengine()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipc-media-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `sipc run CONFIG`, its log in `log`; waits until it answers OPTIONS.
struct Proxy {
    _child: Reaper,
    log: PathBuf,
}

impl Proxy {
    fn start(config: &Path, log: PathBuf) -> Proxy {
        let child = Command::new(env!("CARGO_BIN_EXE_sipc"))
            .args(["run"])
            .arg(config)
            .env("RUST_LOG", "info")
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sipc starts");
        let proxy = Proxy { _child: Reaper(child), log };
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            assert!(Instant::now() < deadline, "sipc never answered OPTIONS:\n{}", proxy.log());
            let ping = format!(
                "OPTIONS sip:{PROXY} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-wait\r\n\
                 Max-Forwards: 70\r\nTo: <sip:{PROXY}>\r\nFrom: <sip:t@127.0.0.1>;tag=w\r\n\
                 Call-ID: wait\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                sock.local_addr().unwrap()
            );
            sock.send_to(ping.as_bytes(), PROXY).unwrap();
            if let Ok(n) = sock.recv(&mut buf)
                && buf[..n].starts_with(b"SIP/2.0 200")
            {
                return proxy;
            }
        }
    }

    fn example(log: PathBuf) -> Proxy {
        Proxy::start(&root().join("examples/nat-rtpengine.route"), log)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A SIPp UAS at 5080 (the example's media server) echoing RTP, logging
/// the messages it sees to `messages`.
fn uas(scen: &str, messages: &Path) -> Reaper {
    Reaper(
        Command::new("sipp")
            .arg("-sf")
            .arg(scenario(scen))
            .args(["-i", "127.0.0.1", "-p", "5080", "-mp", "17000", "-rtp_echo", "-nostdin"])
            .args(["-trace_msg", "-message_file"])
            .arg(messages)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp uas starts"),
    )
}

/// One call from a SIPp UAC at 5070 to `ivr` (not registered: the media
/// server), bounded to a minute.
fn uac(scen: &str, messages: &Path) -> ExitStatus {
    Command::new("timeout")
        .arg("60")
        .arg("sipp")
        .arg("-sf")
        .arg(scenario(scen))
        .args([PROXY, "-s", "ivr", "-i", "127.0.0.1", "-p", "5070", "-mp", "16000"])
        .args(["-m", "1", "-nostdin", "-recv_timeout", "10000", "-timeout", "30", "-timeout_error"])
        .args(["-trace_msg", "-message_file"])
        .arg(messages)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp uac runs")
}

/// The `m=audio` port of the first message in a SIPp message log that
/// starts with `start` (e.g. `INVITE sip:`, `SIP/2.0 200`).
fn audio_port(messages: &Path, start: &str) -> u16 {
    let text = std::fs::read_to_string(messages).unwrap_or_default();
    let at = text.find(start).unwrap_or_else(|| panic!("no {start:?} in\n{text}"));
    let port = text[at..]
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .unwrap_or_else(|| panic!("no m=audio after {start:?} in\n{text}"));
    port.split(' ').next().unwrap().parse().unwrap()
}

/// Waits (at most 5 s) until rtpengine holds no session.
fn assert_no_session(rtpe: &Rtpengine, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let calls = rtpe.calls();
        if calls.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {after} rtpengine still holds {calls:?}:\n{}",
            rtpe.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The packet counts of rtpengine's "Final packet stats" for RTP ports.
fn final_rtp_packets(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("--------- Port") && !l.contains("(RTCP)"))
        .filter_map(|l| {
            let p = l.split(", ").find(|f| f.ends_with(" p"))?;
            p.trim_end_matches(" p").trim().parse().ok()
        })
        .collect()
}

#[test]
fn a_call_with_rtp_goes_through_rtpengine_and_leaves_no_session() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if !tools_present() {
        return;
    }
    let dir = scratch("rtp");
    let rtpe = Rtpengine::start_at(NG.parse().unwrap(), MEDIA).unwrap();
    let proxy = Proxy::example(dir.join("sipc.log"));
    let _uas = uas("uas.xml", &dir.join("uas.msg"));
    let status = uac("uac_rtp.xml", &dir.join("uac.msg"));
    assert!(status.success(), "the call failed ({status}):\n{}\n{}", proxy.log(), rtpe.log());

    // Both sides saw rtpengine's media address instead of each other's.
    let range = MEDIA.0..=MEDIA.1;
    let at_uas = audio_port(&dir.join("uas.msg"), "INVITE sip:");
    assert!(range.contains(&at_uas), "the UAS was offered port {at_uas}, not rtpengine's");
    let at_uac = audio_port(&dir.join("uac.msg"), "SIP/2.0 200");
    assert!(range.contains(&at_uac), "the UAC was answered port {at_uac}, not rtpengine's");
    assert_ne!(at_uas, at_uac);

    assert_no_session(&rtpe, "the BYE");
    // rtpengine's own counts, logged when the BYE deleted the call: RTP
    // reached the UAS (the callee's leg) and its echo came back (the
    // caller's leg).
    let log = rtpe.log();
    let packets = final_rtp_packets(&log);
    assert_eq!(packets.len(), 2, "one RTP stream per leg:\n{log}");
    assert!(packets.iter().all(|&p| p >= 20), "RTP through rtpengine: {packets:?}\n{log}");
    for cmd in ["offer", "answer", "delete"] {
        assert!(log.contains(&format!("Received command '{cmd}'")), "no {cmd}:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_busy_callee_and_a_cancelled_call_leave_no_session() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if !tools_present() {
        return;
    }
    let dir = scratch("busy");
    let rtpe = Rtpengine::start_at(NG.parse().unwrap(), MEDIA).unwrap();
    let proxy = Proxy::example(dir.join("sipc.log"));
    for (uas_scen, uac_scen, what) in
        [("uas_busy.xml", "uac_busy.xml", "a 486"), ("uas_ring.xml", "uac_cancel.xml", "a CANCEL")]
    {
        let uas = uas(uas_scen, &dir.join("uas.msg"));
        let status = uac(uac_scen, &dir.join("uac.msg"));
        assert!(status.success(), "{what}: SIPp failed ({status}):\n{}", proxy.log());
        drop(uas);
        let at_uas = audio_port(&dir.join("uas.msg"), "INVITE sip:");
        assert!((MEDIA.0..=MEDIA.1).contains(&at_uas), "{what}: offer not relayed");
        assert_no_session(&rtpe, what);
    }
    let log = rtpe.log();
    assert_eq!(log.matches("Received command 'offer'").count(), 2, "{log}");
    assert_eq!(log.matches("Deleting entire call").count(), 2, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a fake rtpengine does with each command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fake {
    Error,
    Garbage,
    Silent,
}

/// A fake rtpengine on the example's ng socket, in `mode` until told
/// otherwise; stops when `stop` is set.
fn fake_rtpengine(
    mode: std::sync::Arc<Mutex<Fake>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let sock = UdpSocket::bind(NG).expect("the ng port is free");
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            let Some(sp) = buf[..n].iter().position(|&c| c == b' ') else { continue };
            let cookie = String::from_utf8_lossy(&buf[..sp]).into_owned();
            let reply = match *mode.lock().unwrap() {
                Fake::Error => {
                    format!("{cookie} d12:error-reason16:Ran out of ports6:result5:errore")
                }
                Fake::Garbage => format!("{cookie} this is not bencode"),
                Fake::Silent => continue,
            };
            let _ = sock.send_to(reply.as_bytes(), from);
        }
    })
}

/// A plain UDP user agent for hand-written requests.
struct Ua {
    sock: UdpSocket,
}

impl Ua {
    fn bind(addr: &str) -> Ua {
        let sock = UdpSocket::bind(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Ua { sock }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn send(&self, to: &str, text: &str) {
        self.sock.send_to(text.as_bytes(), to).unwrap();
    }

    /// The next message that is not a 100 Trying, within `wait`.
    fn recv(&self, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            let Ok(n) = self.sock.recv(&mut buf) else { continue };
            let m = Message::parse(Bytes::copy_from_slice(&buf[..n])).expect("valid SIP");
            if m.status() != Some(100) {
                return Some(m);
            }
        }
        None
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 16000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// An INVITE from `ua` to `user` through the example, with `body` typed
/// `content_type`.
fn invite(ua: &Ua, user: &str, call_id: &str, content_type: Option<&str>, body: &str) -> String {
    let ct = content_type.map(|c| format!("Content-Type: {c}\r\n")).unwrap_or_default();
    format!(
        "INVITE sip:{user}@{PROXY} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nTo: <sip:{user}@{PROXY}>\r\nFrom: <sip:caller@127.0.0.1>;tag=c-{call_id}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{addr}>\r\n{ct}\
         Content-Length: {}\r\n\r\n{body}",
        body.len(),
        addr = ua.addr()
    )
}

#[test]
fn rtpengine_errors_garbage_and_silence_refuse_the_call_and_name_it() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("faults");
    let mode = std::sync::Arc::new(Mutex::new(Fake::Error));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fake = fake_rtpengine(mode.clone(), stop.clone());
    let proxy = Proxy::example(dir.join("sipc.log"));
    let caller = Ua::bind("127.0.0.1:0");
    let callee = Ua::bind("127.0.0.1:5080");

    // An error, garbage, then nothing at all (1.5 s: 500 ms × 3 sends).
    for (m, word) in
        [(Fake::Error, "error"), (Fake::Garbage, "malformed"), (Fake::Silent, "timeout")]
    {
        *mode.lock().unwrap() = m;
        let call_id = format!("fault-{word}@127.0.0.1");
        caller.send(PROXY, &invite(&caller, "ivr", &call_id, Some("application/sdp"), SDP));
        let reply = caller.recv(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!("{m:?}: no reply:\n{}", proxy.log());
        });
        assert_eq!(reply.status(), Some(503), "{m:?}");
        assert!(callee.recv(Duration::from_millis(100)).is_none(), "{m:?}: the call went on");
        let log = proxy.log();
        let line = log
            .lines()
            .find(|l| l.contains(&call_id) && l.contains(&format!("rtpengine: {word}")))
            .unwrap_or_else(|| panic!("{m:?}: no log line naming {call_id} and `{word}`:\n{log}"));
        assert!(line.contains("WARN"), "{line}");
    }
    // The silent instance is down now: calls are refused at once.
    let call_id = "fault-down@127.0.0.1";
    let sent = Instant::now();
    caller.send(PROXY, &invite(&caller, "ivr", call_id, Some("application/sdp"), SDP));
    assert_eq!(caller.recv(Duration::from_secs(5)).and_then(|r| r.status()), Some(503));
    assert!(sent.elapsed() < Duration::from_millis(500), "waited for a down instance");
    assert!(proxy.log().contains("rtpengine: unavailable for INVITE of call fault-down@127.0.0.1"));

    // No SDP yet (a late offer): nothing to relay, the call goes on.
    caller.send(PROXY, &invite(&caller, "ivr", "no-sdp@127.0.0.1", None, ""));
    let got = callee.recv(Duration::from_secs(3)).expect("an INVITE without SDP is relayed");
    assert_eq!(got.method_str(), Some("INVITE"));
    assert!(got.body().is_empty());
    // A body that claims to be SDP and is not: skipped with a warning,
    // relayed as it came.
    let junk = "this is not a session description";
    caller
        .send(PROXY, &invite(&caller, "ivr", "junk-sdp@127.0.0.1", Some("application/sdp"), junk));
    let got = callee.recv(Duration::from_secs(3)).expect("an INVITE with a broken SDP is relayed");
    assert_eq!(&got.body()[..], junk.as_bytes());
    let log = proxy.log();
    assert!(
        log.lines().any(|l| l.contains("junk-sdp@127.0.0.1") && l.contains("no SDP body")),
        "{log}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    fake.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_rtpengine_hands_the_calls_next_offer_to_the_other_instance() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if !have_rtpengine() {
        return;
    }
    let dir = scratch("failover");
    let ng_b: SocketAddr = "127.0.0.1:22223".parse().unwrap();
    let mut a = Rtpengine::start_at(NG.parse().unwrap(), MEDIA).unwrap();
    let mut b = Rtpengine::start_at(ng_b, MEDIA_B).unwrap();
    // The example with a second instance.
    let example = std::fs::read_to_string(root().join("examples/nat-rtpengine.route")).unwrap();
    let two = example.replace(
        "instances = \"udp:127.0.0.1:22222\";",
        "instances = \"udp:127.0.0.1:22222 udp:127.0.0.1:22223\";",
    );
    assert_ne!(two, example, "the example's instances line moved");
    let config = dir.join("two.route");
    std::fs::write(&config, two).unwrap();
    let proxy = Proxy::start(&config, dir.join("sipc.log"));
    let caller = Ua::bind("127.0.0.1:0");
    let callee = Ua::bind("127.0.0.1:5080");

    let call_id = "failover@127.0.0.1";
    caller.send(PROXY, &invite(&caller, "ivr", call_id, Some("application/sdp"), SDP));
    let inv = callee.recv(Duration::from_secs(5)).expect("the INVITE reaches the callee");
    let port = audio_of(&inv);
    let (serving, other, other_range) = if (MEDIA.0..=MEDIA.1).contains(&port) {
        (&mut a, &mut b, MEDIA_B)
    } else {
        assert!((MEDIA_B.0..=MEDIA_B.1).contains(&port), "offered port {port}");
        (&mut b, &mut a, MEDIA)
    };
    // The callee's tag is `uas1` (support::response_to).
    let answer_sdp = SDP.replace("16000", "17000");
    let ok = support::response_to(&inv, 200, "OK").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Contact: <sip:ivr@127.0.0.1:5080>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{answer_sdp}",
            answer_sdp.len()
        ),
    );
    callee.send(PROXY, &ok);
    let answer = caller.recv(Duration::from_secs(5)).expect("the 200 reaches the caller");
    assert_eq!(answer.status(), Some(200), "{}", proxy.log());
    assert!(serving.calls().contains(&call_id.to_owned()));

    // The serving rtpengine dies mid-call; the caller re-INVITEs.
    serving.child.kill().unwrap();
    serving.child.wait().unwrap();
    let reinvite = format!(
        "INVITE sip:ivr@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK-re\r\n\
         Route: <sip:{PROXY};lr>\r\nMax-Forwards: 70\r\nTo: <sip:ivr@{PROXY}>;tag=uas1\r\n\
         From: <sip:caller@127.0.0.1>;tag=c-{call_id}\r\nCall-ID: {call_id}\r\nCSeq: 2 INVITE\r\n\
         Contact: <sip:caller@{addr}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len(),
        addr = caller.addr()
    );
    caller.send(PROXY, &reinvite);
    let re = callee.recv(Duration::from_secs(5)).expect("the re-INVITE reaches the callee");
    assert_eq!(re.method_str(), Some("INVITE"), "{}", proxy.log());
    let port = audio_of(&re);
    assert!(
        (other_range.0..=other_range.1).contains(&port),
        "the re-offer went to {port}, not the live instance:\n{}",
        proxy.log()
    );
    assert!(other.calls().contains(&call_id.to_owned()), "{}", other.log());
    let _ = std::fs::remove_dir_all(&dir);
}

fn audio_of(m: &Message) -> u16 {
    let body = String::from_utf8_lossy(&m.body()).into_owned();
    body.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|p| p.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in\n{body}"))
}
