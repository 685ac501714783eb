//! uTP (BEP 29) against hostile datagrams: packet decoding never panics and re-encodes what it
//! decoded, and a connection fed arbitrary datagrams and timeouts never panics and never hands
//! out more bytes than it received.
#![no_main]

use std::time::{Duration, Instant};

use utp::packet::{Header, Packet, PacketType};
use utp::{Config, Connection};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        let mut out = vec![0u8; data.len() + 64];
        let sack = p.selective_ack.map(|s| s.as_bytes().to_vec());
        if let Ok(n) = p.header.encode(sack.as_deref(), p.payload, &mut out) {
            let again = Packet::decode(&out[..n]).expect("our own encoding decodes");
            assert_eq!(again.header, p.header);
            assert_eq!(again.payload, p.payload);
        }
    }

    // A connection accepted from a well-formed SYN, then fed the input as datagrams, each
    // prefixed by a length byte, with the clock moving by the byte after it.
    let syn = Header {
        packet_type: PacketType::Syn,
        connection_id: 1000,
        timestamp_us: 1,
        timestamp_diff_us: 0,
        wnd_size: 1 << 20,
        seq_nr: 7,
        ack_nr: 0,
    };
    let mut buf = [0u8; 64];
    let n = syn.encode(None, &[], &mut buf).expect("a SYN fits");
    let mut now = Instant::now();
    let Ok(mut conn) = Connection::accept(Config::default(), &buf[..n], 300, now) else {
        return;
    };
    let mut out = vec![0u8; 2048];
    let mut received = 0usize;
    let mut read = vec![0u8; 4096];
    let mut rest = data;
    while let [len, step, tail @ ..] = rest {
        let take = (*len as usize).min(tail.len());
        let _ = conn.handle_packet(&tail[..take], now);
        received += take;
        rest = &tail[take..];
        now += Duration::from_millis(u64::from(*step) * 10);
        conn.handle_timeout(now);
        while conn.poll_transmit(now, &mut out).is_some() {}
        let got = conn.read(&mut read);
        assert!(got <= received, "read more than was received");
    }
});
