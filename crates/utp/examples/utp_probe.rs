//! A minimal BitTorrent peer over uTP, for interop tests against other clients.
//!
//! ```text
//! utp_probe fetch <peer addr> <info hash hex> <total bytes> <piece bytes> <piece hashes file>
//!     dials the peer, does the BitTorrent handshake, waits for its bitfield, then downloads every
//!     piece with sequential 16 KiB requests and checks each piece's SHA-1 (the hashes file is the
//!     torrent's `pieces` string).
//! utp_probe serve <info hash hex> <payload file> <piece bytes>
//!     prints `LISTEN <port>`, accepts one uTP connection and seeds the payload to it until the
//!     peer closes the connection.
//! ```
//! Results are printed as `KEY value…` lines for the test script. With `IDLE_SECS=n`, `fetch`
//! stays silent for n seconds after the bitfield before it asks for data.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use utp::UtpSocket;

const BLOCK: usize = 16 * 1024;
const PIPELINE: usize = 64;
const PSTR: &[u8] = b"\x13BitTorrent protocol";

fn parse_hex20(s: &str) -> Result<[u8; 20]> {
    ensure!(s.len() == 40, "info hash must be 40 hex digits");
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

fn handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    let mut h = PSTR.to_vec();
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(info_hash);
    h.extend_from_slice(b"-UP0001-utpprobe0000");
    h
}

async fn read_handshake(r: &mut (impl AsyncRead + Unpin), info_hash: &[u8; 20]) -> Result<()> {
    let mut theirs = [0u8; 68];
    r.read_exact(&mut theirs)
        .await
        .context("reading handshake")?;
    ensure!(&theirs[..20] == PSTR, "not a BitTorrent handshake");
    ensure!(
        &theirs[28..48] == info_hash,
        "peer answered for another torrent"
    );
    Ok(())
}

/// Reads one length-prefixed message; `None` for a keep-alive.
async fn read_message(r: &mut (impl AsyncRead + Unpin)) -> Result<Option<(u8, Vec<u8>)>> {
    let len = r.read_u32().await? as usize;
    if len == 0 {
        return Ok(None);
    }
    ensure!(
        len <= BLOCK + 64 || len <= 1 << 20,
        "message of {len} bytes"
    );
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let id = body[0];
    body.remove(0);
    Ok(Some((id, body)))
}

fn message(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    m.push(id);
    m.extend_from_slice(payload);
    m
}

async fn fetch(args: &[String]) -> Result<()> {
    let [addr, ih, total, piece_len, hashes] = args else {
        bail!("usage: fetch <addr> <info hash> <total> <piece len> <hashes file>");
    };
    let addr: SocketAddr = addr.parse()?;
    let info_hash = parse_hex20(ih)?;
    let total: usize = total.parse()?;
    let piece_len: usize = piece_len.parse()?;
    let hashes = std::fs::read(hashes)?;
    let pieces = total.div_ceil(piece_len);
    ensure!(
        hashes.len() == pieces * 20,
        "hashes file does not match the size"
    );

    let socket = UtpSocket::bind("127.0.0.1:0".parse()?).await?;
    let stream = socket.connect(addr).await.context("uTP connect")?;
    println!("CONNECTED {}", stream.peer_addr());
    let (mut r, mut w) = stream.into_split();
    w.write_all(&handshake(&info_hash)).await?;
    read_handshake(&mut r, &info_hash).await?;
    println!("HANDSHAKE ok");

    let bitfield = loop {
        match read_message(&mut r).await? {
            Some((5, bits)) => break bits,
            Some((id, _)) => println!("MSG id {id} before bitfield"),
            None => {}
        }
    };
    let have = (0..pieces)
        .filter(|i| {
            bitfield
                .get(i / 8)
                .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
        })
        .count();
    println!("BITFIELD {} bytes, {have}/{pieces} pieces", bitfield.len());
    ensure!(have == pieces, "the peer is not a seed");
    // IDLE_SECS: stay quiet first, to check that a connection carrying nothing but BitTorrent
    // keep-alives survives.
    if let Some(secs) = std::env::var("IDLE_SECS").ok().and_then(|s| s.parse().ok()) {
        // Only BitTorrent keep-alives (every 100 s, under libtorrent's 120 s peer timeout).
        let end = Instant::now() + std::time::Duration::from_secs(secs);
        while Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(std::time::Duration::from_secs(100))).await;
            w.write_all(&0u32.to_be_bytes()).await?;
        }
        println!("IDLE {secs} s survived");
    }

    w.write_all(&message(2, &[])).await?;
    loop {
        match read_message(&mut r).await? {
            Some((1, _)) => break,
            Some((id, _)) => println!("MSG id {id} before unchoke"),
            None => {}
        }
    }

    let blocks: Vec<(usize, usize, usize)> = (0..pieces)
        .flat_map(|p| {
            let len = piece_len.min(total - p * piece_len);
            (0..len.div_ceil(BLOCK)).map(move |b| (p, b * BLOCK, BLOCK.min(len - b * BLOCK)))
        })
        .collect();
    let start = Instant::now();
    let mut next = 0;
    let mut outstanding = 0;
    let mut piece_buf = vec![0u8; piece_len];
    let mut piece_got = 0;
    let mut verified = 0;
    let mut received = 0usize;
    while verified < pieces {
        while outstanding < PIPELINE && next < blocks.len() {
            let (p, begin, len) = blocks[next];
            let mut req = Vec::with_capacity(12);
            req.extend_from_slice(&(p as u32).to_be_bytes());
            req.extend_from_slice(&(begin as u32).to_be_bytes());
            req.extend_from_slice(&(len as u32).to_be_bytes());
            w.write_all(&message(6, &req)).await?;
            next += 1;
            outstanding += 1;
        }
        let Some((id, body)) = read_message(&mut r).await? else {
            continue;
        };
        match id {
            7 => {
                ensure!(body.len() >= 8, "short piece message");
                let index = u32::from_be_bytes(body[..4].try_into()?) as usize;
                let begin = u32::from_be_bytes(body[4..8].try_into()?) as usize;
                let data = &body[8..];
                // Requests are answered in order; the block belongs to the piece being assembled.
                ensure!(
                    index == verified,
                    "piece {index} arrived while assembling {verified}"
                );
                piece_buf[begin..begin + data.len()].copy_from_slice(data);
                piece_got += data.len();
                received += data.len();
                outstanding -= 1;
                let this_len = piece_len.min(total - index * piece_len);
                if piece_got == this_len {
                    let digest = Sha1::digest(&piece_buf[..this_len]);
                    ensure!(
                        digest[..] == hashes[index * 20..index * 20 + 20],
                        "piece {index} failed its SHA-1 check"
                    );
                    verified += 1;
                    piece_got = 0;
                }
            }
            0 => bail!("peer choked us"),
            _ => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "DOWNLOADED {received} bytes, {verified} pieces verified, in {secs:.2} s = {:.1} MB/s",
        received as f64 / secs / 1e6
    );
    Ok(())
}

async fn serve(args: &[String]) -> Result<()> {
    let [ih, payload, piece_len] = args else {
        bail!("usage: serve <info hash> <payload file> <piece len>");
    };
    let info_hash = parse_hex20(ih)?;
    let data = std::fs::read(payload)?;
    let piece_len: usize = piece_len.parse()?;
    let pieces = data.len().div_ceil(piece_len);

    let socket = UtpSocket::bind("127.0.0.1:0".parse()?).await?;
    println!("LISTEN {}", socket.local_addr()?.port());
    let stream = socket.accept().await?;
    println!("ACCEPTED {}", stream.peer_addr());
    let (mut r, mut w) = stream.into_split();
    read_handshake(&mut r, &info_hash).await?;
    w.write_all(&handshake(&info_hash)).await?;
    println!("HANDSHAKE ok");
    let mut bits = vec![0u8; pieces.div_ceil(8)];
    for i in 0..pieces {
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    w.write_all(&message(5, &bits)).await?;

    let start = Instant::now();
    let mut served = 0usize;
    let result = async {
        loop {
            let Some((id, body)) = read_message(&mut r).await? else {
                continue;
            };
            match id {
                2 => w.write_all(&message(1, &[])).await?,
                6 if body.len() == 12 => {
                    let index = u32::from_be_bytes(body[..4].try_into()?) as usize;
                    let begin = u32::from_be_bytes(body[4..8].try_into()?) as usize;
                    let len = u32::from_be_bytes(body[8..12].try_into()?) as usize;
                    let at = index * piece_len + begin;
                    ensure!(len <= BLOCK && at + len <= data.len(), "bad request");
                    let mut msg = ((9 + len) as u32).to_be_bytes().to_vec();
                    msg.push(7);
                    msg.extend_from_slice(&body[..8]);
                    msg.extend_from_slice(&data[at..at + len]);
                    w.write_all(&msg).await?;
                    served += len;
                }
                _ => {}
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "SERVED {served} bytes in {secs:.2} s = {:.1} MB/s (ended: {})",
        served as f64 / secs / 1e6,
        result.err().map_or("ok".to_string(), |e| e.to_string())
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fetch") => fetch(&args[1..]).await,
        Some("serve") => serve(&args[1..]).await,
        _ => bail!("usage: utp_probe fetch|serve …"),
    }
}
