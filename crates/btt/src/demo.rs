//! `btt demo`: the whole client on an embedded default, with nothing to set up.
//!
//! Generates data in a temporary directory, creates a torrent of it, starts a seeding session and a
//! downloading session on 127.0.0.1 (two real sessions speaking the peer protocol over TCP), shows the
//! progress and checks the downloaded bytes against the original.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use engine::{AddTorrent, Config, Session};

use crate::progress;

/// Writes `len` bytes of cheap pseudo-random data (xorshift) to `path`.
fn generate(path: &Path, len: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// A session on 127.0.0.1 over TCP: on loopback uTP is bound by per-datagram system calls, and
/// the demo shows the engine's speed (`docs/benchmarks.md` has the uTP figures). No DHT or LSD:
/// the demo never leaves this machine.
fn config(data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        data_dir: data_dir.to_owned(),
        utp: false,
        ..Config::default()
    }
}

/// Runs the demo.
pub(crate) async fn run(size_mb: u64, piece_size: Option<u32>, keep: bool) -> Result<()> {
    ensure!(size_mb > 0, "--size-mb must be at least 1");
    let root = std::env::temp_dir().join(format!("btt-demo-{}", std::process::id()));
    let (src, dst) = (root.join("seed"), root.join("download"));
    std::fs::create_dir_all(&src).with_context(|| format!("cannot create {}", src.display()))?;
    let file = src.join("demo.bin");
    eprintln!(
        "generating {} of data in {}",
        progress::bytes(size_mb << 20),
        root.display()
    );
    generate(&file, size_mb << 20).with_context(|| format!("cannot write {}", file.display()))?;
    let opts = engine::create::CreateOptions {
        piece_length: piece_size,
        ..Default::default()
    };
    let torrent =
        tokio::task::spawn_blocking(move || engine::create::create_torrent(&file, &opts)).await??;
    eprintln!(
        "torrent {}: {} pieces of {}",
        torrent.info_hash,
        torrent.info.num_pieces(),
        progress::bytes(u64::from(torrent.info.piece_length))
    );

    let seeder = Session::start(config(&root.join("seeder-state"))).await?;
    let mut add = AddTorrent::new(torrent.clone(), src.clone());
    add.seed_only = true;
    seeder.add_torrent(add).await?;
    let leecher = Session::start(config(&root.join("leecher-state"))).await?;
    let mut add = AddTorrent::new(torrent.clone(), dst.clone());
    add.peers = vec![([127, 0, 0, 1], seeder.listen_port()).into()];
    let handle = leecher.add_torrent(add).await?;
    eprintln!(
        "seeding on 127.0.0.1:{}, downloading on 127.0.0.1:{}",
        seeder.listen_port(),
        leecher.listen_port()
    );

    let started = Instant::now();
    crate::watch_progress(&handle, 1).await?;
    let secs = started.elapsed().as_secs_f64();
    leecher.shutdown().await;
    seeder.shutdown().await;

    let rel = torrent.info.file_path(0);
    let same = std::fs::read(src.join(&rel))? == std::fs::read(dst.join(&rel))?;
    ensure!(same, "downloaded data differs from the original");
    println!(
        "downloaded {} in {secs:.2} s ({}/s); every piece verified and the bytes match",
        progress::bytes(torrent.info.total_length),
        progress::bytes((torrent.info.total_length as f64 / secs) as u64)
    );
    if keep {
        println!("files kept in {}", root.display());
    } else {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot remove {}", root.display()))?;
    }
    Ok(())
}
