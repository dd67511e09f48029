//! HEP v3 capture (`module hep`) through `sipc run`, decoded by programs
//! that did not write it: the test is the collector, writes the HEP
//! datagrams it receives into a pcap file (as UDP to port 9060), lets
//! sngrep (built with EEP/HEP support) take the SIP messages out of them,
//! and reads those with tshark. A MESSAGE relayed to a UAS and its 202
//! make four messages, each with the addresses and ports it had on the
//! wire and its Call-ID; a keepalive OPTIONS whose route says
//! `hep_capture(false)` is not captured, nor is its reply. Without sngrep
//! or tshark the test says so loudly; under CI (`CI=true`) it fails.
//! The same runs with the collector over UDP (a datagram per packet) and
//! over TCP (packets batched on one connection).
//! Bounded: every wait is a few seconds.

mod support;

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{free_udp_port, sipc_run, wait_started};

/// Whether `program` runs (`version`: its flag that prints the version
/// and exits; sngrep's `-v` would start its screen).
fn present(program: &str, version: &str) -> bool {
    if Command::new(program).arg(version).output().is_ok() {
        return true;
    }
    let msg = format!("{program} is not installed: HEP capture was NOT decoded by it");
    assert!(std::env::var("CI").is_err(), "{msg}");
    eprintln!("{msg}");
    false
}

/// A pcap file (Ethernet) of `datagrams`, each as UDP from 127.0.0.1:40000
/// to 127.0.0.1:9060.
fn pcap(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // time zone, accuracy
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, d) in datagrams.iter().enumerate() {
        let udp_len = 8 + d.len();
        let ip_len = 20 + udp_len;
        let mut ip = vec![0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&40_000u16.to_be_bytes());
        frame.extend_from_slice(&9060u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(d);
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = sock.recv_from(&mut buf).expect("a message within 3 s");
    buf.truncate(n);
    (buf, from)
}

fn bind() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// The test's end of `module hep`: a UDP socket that gets a datagram per
/// packet, or a TCP listener whose one connection carries packets back to
/// back (each says its own length).
enum Collector {
    Udp(UdpSocket),
    Tcp(TcpListener),
}

impl Collector {
    fn destination(&self) -> String {
        match self {
            Collector::Udp(s) => format!("udp:{}", s.local_addr().unwrap()),
            Collector::Tcp(l) => format!("tcp:{}", l.local_addr().unwrap()),
        }
    }

    /// The packets that arrive until `want + 1` have or nothing more
    /// comes; at most a few seconds.
    fn packets(&self, want: usize) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        match self {
            Collector::Udp(sock) => {
                sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                while packets.len() <= want && Instant::now() < deadline {
                    let mut buf = vec![0u8; 65_536];
                    if let Ok(n) = sock.recv(&mut buf) {
                        buf.truncate(n);
                        packets.push(buf);
                    } else if packets.len() >= want {
                        break;
                    }
                }
            }
            Collector::Tcp(listener) => {
                listener.set_nonblocking(true).unwrap();
                let mut conn = loop {
                    match listener.accept() {
                        Ok((c, _)) => break c,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(e) => panic!("the proxy did not connect to the collector: {e}"),
                    }
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                let mut stream = Vec::new();
                while Instant::now() < deadline {
                    let mut buf = [0u8; 65_536];
                    match conn.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => stream.extend_from_slice(&buf[..n]),
                        Err(_) if !stream.is_empty() => break,
                        Err(_) => {}
                    }
                }
                let mut rest = &stream[..];
                while rest.len() >= 6 {
                    assert_eq!(&rest[..4], b"HEP3", "packets follow each other on the stream");
                    let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
                    assert!(len >= 6 && len <= rest.len(), "a whole packet");
                    packets.push(rest[..len].to_vec());
                    rest = &rest[len..];
                }
                assert!(rest.is_empty(), "no partial packet at the end");
            }
        }
        packets
    }
}

#[test]
fn every_message_goes_to_the_collector_as_it_was_on_the_wire() {
    capture_through(Collector::Udp(bind()));
}

#[test]
fn over_tcp_packets_arrive_batched_on_one_connection() {
    capture_through(Collector::Tcp(TcpListener::bind("127.0.0.1:0").unwrap()));
}

fn capture_through(collector: Collector) {
    let uas = bind();
    let phone = bind();
    let kind = if matches!(collector, Collector::Udp(_)) { "udp" } else { "tcp" };
    let dir = std::env::temp_dir().join(format!("sipc-hep-{}-{kind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_udp_port();
    let route = dir.join("hep.route");
    std::fs::write(
        &route,
        format!(
            r#"listen udp 127.0.0.1:{port};
settings {{ log_stderror = true; dns = false; }}
module hep {{
    destination = "{}";
    capture_id = 42;
}}

request_route {{
    if is_method("OPTIONS") {{
        hep_capture(false);
        reply(200, "OK");
        exit;
    }}
    $du = "sip:{}";
    relay();
}}
"#,
            collector.destination(),
            uas.local_addr().unwrap()
        ),
    )
    .unwrap();
    let control = dir.join("control.sock");
    let _proxy = sipc_run(&route, &["--control", control.to_str().unwrap()], None);
    wait_started(&control);
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let me = phone.local_addr().unwrap();

    let options = format!(
        "OPTIONS sip:{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKo1;rport\r\nMax-Forwards: 70\r\n\
         To: <sip:{proxy}>\r\nFrom: <sip:ping@example.com>;tag=o1\r\nCall-ID: quiet-keepalive\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    phone.send_to(options.as_bytes(), proxy).unwrap();
    let _ = recv(&phone);
    let message = format!(
        "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKm1;rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=m1\r\n\
         Call-ID: hep-call-1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    );
    phone.send_to(message.as_bytes(), proxy).unwrap();
    let (relayed, _) = recv(&uas);
    let relayed = sipc::sip::Message::parse(bytes::Bytes::from(relayed)).unwrap();
    let mut ok = String::from("SIP/2.0 202 Accepted\r\n");
    for h in relayed.headers() {
        let name = relayed.name_of(h);
        if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name) {
            ok += &format!("{name}: {}\r\n", relayed.value_of(h));
        }
    }
    ok += "Content-Length: 0\r\n\r\n";
    uas.send_to(ok.as_bytes(), proxy).unwrap();
    let _ = recv(&phone);

    // Four packets: MESSAGE in and out, 202 in and out; nothing more.
    let packets = collector.packets(4);
    assert_eq!(packets.len(), 4, "MESSAGE, its copy, 202, its copy; the OPTIONS left out");
    assert!(packets.iter().all(|p| p.starts_with(b"HEP3")));

    if !(present("sngrep", "-V") && present("tshark", "-v")) {
        return;
    }
    let hep_file = dir.join("hep.pcap");
    std::fs::write(&hep_file, pcap(&packets)).unwrap();
    let sip_file = dir.join("sip.pcap");
    let out = Command::new("sngrep")
        .args(["-N", "-q", "-E", "-F", "-I"])
        .arg(&hep_file)
        .arg("-O")
        .arg(&sip_file)
        .output()
        .unwrap();
    assert!(sip_file.exists(), "sngrep wrote nothing: {}", String::from_utf8_lossy(&out.stderr));
    let fields = [
        "ip.src",
        "udp.srcport",
        "ip.dst",
        "udp.dstport",
        "sip.CSeq.method",
        "sip.Status-Code",
        "sip.Call-ID",
    ];
    let mut args = vec!["-r", sip_file.to_str().unwrap(), "-T", "fields"];
    for f in &fields {
        args.extend(["-e", f]);
    }
    let out = Command::new("tshark").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // sngrep writes each message it takes out of a HEP packet twice.
    let mut rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    rows.dedup();
    let (phone_port, uas_port) =
        (me.port().to_string(), uas.local_addr().unwrap().port().to_string());
    let port = port.to_string();
    let expect = [
        (phone_port.as_str(), port.as_str(), "MESSAGE", ""),
        (port.as_str(), uas_port.as_str(), "MESSAGE", ""),
        (uas_port.as_str(), port.as_str(), "MESSAGE", "202"),
        (port.as_str(), phone_port.as_str(), "MESSAGE", "202"),
    ];
    assert_eq!(rows.len(), 4, "tshark read:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    for (row, (from, to, method, status)) in rows.iter().zip(expect) {
        assert_eq!(row[0], "127.0.0.1", "{text}");
        assert_eq!((row[1], row[3]), (from, to), "{text}");
        assert_eq!((row[4], row[5]), (method, status), "{text}");
        assert_eq!(row[6], "hep-call-1", "{text}");
    }
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
