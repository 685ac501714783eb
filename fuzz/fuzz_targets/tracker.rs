//! Tracker decoders against hostile bytes: bencoded HTTP announce bodies, HTTP response framing
//! (whole and fed in two parts), and UDP tracker packets read as IPv4 and IPv6 answers.
#![no_main]

use tracker::{http, udp};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = tracker::parse_http_response(data) {
        assert!(resp.peers.iter().all(|p| p.port() != 0), "port-0 peers must be dropped");
    }

    for decode in [udp::decode_response, udp::decode_response_ipv6] {
        if let Ok(udp::UdpResponse::Announce { resp, .. }) = decode(data) {
            assert!(resp.peers.iter().all(|p| p.port() != 0), "port-0 peers must be dropped");
        }
    }

    // Framing is monotonic: once a prefix frames a complete response, more bytes do not change it.
    let whole = http::decode_message(data, true);
    if let Some(resp) = whole.as_ref().ok().and_then(Option::as_ref) {
        assert!(resp.body.len() <= http::MAX_BODY_BYTES);
    }
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    if let Ok(Some(early)) = http::decode_message(&data[..split], false) {
        assert_eq!(http::decode_message(data, false).ok().flatten().as_ref(), Some(&early));
    }
});
