//! Reader of the IDX format of MNIST and Fashion-MNIST.
//!
//! An IDX file is a big-endian header followed by raw unsigned bytes:
//!
//! | bytes | images (`*-images-idx3-ubyte`) | labels (`*-labels-idx1-ubyte`) |
//! | --- | --- | --- |
//! | 0..4 | magic `0x00000803` | magic `0x00000801` |
//! | 4..8 | number of images `n` | number of labels `n` |
//! | 8..12 | rows | (data start) |
//! | 12..16 | columns | |
//! | 16.. | `n * rows * cols` pixels, row-major | `n` labels |
//!
//! Files may be gzip-compressed (as distributed) or raw; the compression is detected by
//! the gzip magic bytes `0x1f 0x8b`, whatever the file's extension. Every problem is a
//! typed [`DataError`] naming the file and, where it applies, the byte offset in the
//! decompressed stream; a corrupt or hostile file never panics and never makes the
//! reader allocate from a size read in its header.
//!
//! [`load_mnist_like`] reads the four standard files of a folder into a train and a
//! test [`Dataset`] with pixels scaled to `[0, 1]`; normalisation is a separate step
//! ([`super::transform::normalise_per_channel`]), fitted on the training split.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use tch::{Kind, Tensor};

use super::Dataset;
use crate::error::{DataError, Result};

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
/// Number of classes of MNIST and Fashion-MNIST.
pub const MNIST_CLASSES: usize = 10;

/// The two magic bytes that start every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes.
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_maybe_gzip(path, raw)
}

/// Decompresses `raw` when it starts with the gzip magic bytes, else returns it as is.
///
/// `path` only names the file in errors. A corrupt or truncated gzip stream is a
/// [`DataError::Malformed`] whose offset is the number of bytes decompressed before
/// the problem.
pub(crate) fn decode_maybe_gzip(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    match MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        // `read_to_end` keeps in `out` every byte read before the error.
        Err(err) => Err(DataError::Malformed {
            path: path.to_path_buf(),
            offset: out.len() as u64,
            reason: format!("corrupt gzip stream: {err}"),
        }),
    }
}

fn malformed(path: &Path, offset: usize, reason: impl Into<String>) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.into(),
    }
}

/// Reads the big-endian `u32` at `offset`; the caller has checked the length.
fn be_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_be_bytes(word)
}

/// Checks the magic number and the data size of an IDX file held in `bytes`, and
/// returns its dimensions with the header removed from `bytes`.
///
/// `what` names the expected content ("images", "labels") in error messages.
fn parse_idx(
    path: &Path,
    mut bytes: Vec<u8>,
    expected_magic: u32,
    what: &str,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if bytes.len() < 4 {
        return Err(malformed(
            path,
            bytes.len(),
            format!(
                "file ends inside the 4-byte magic number ({} bytes)",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(&bytes, 0);
    if magic != expected_magic {
        return Err(malformed(
            path,
            0,
            format!(
                "wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} \
                 (IDX unsigned-byte {what})"
            ),
        ));
    }
    let ndims = (expected_magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(malformed(
            path,
            bytes.len(),
            format!(
                "file ends inside the {header_len}-byte header ({} bytes)",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| be_u32(&bytes, 4 + 4 * d) as usize)
        .collect();
    let data_len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header_len))
        .ok_or_else(|| {
            malformed(
                path,
                4,
                format!("dimensions {dims:?} overflow the addressable size"),
            )
        })?
        - header_len;
    let available = bytes.len() - header_len;
    if available < data_len {
        return Err(malformed(
            path,
            bytes.len(),
            format!(
                "truncated: the header announces {dims:?} = {data_len} bytes of {what} \
                 after the {header_len}-byte header, but the data end after {available} bytes"
            ),
        ));
    }
    if available > data_len {
        return Err(malformed(
            path,
            header_len + data_len,
            format!(
                "{} trailing bytes after the {data_len} bytes of {what} the header announces",
                available - data_len
            ),
        ));
    }
    bytes.drain(..header_len);
    Ok((dims, bytes))
}

/// Parses an IDX image file already in memory (decompressed); `path` names it in errors.
pub(crate) fn parse_idx_images(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    let (dims, pixels) = parse_idx(path, bytes, IDX_IMAGES_MAGIC, "images")?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        let offset = if rows == 0 { 8 } else { 12 };
        return Err(malformed(
            path,
            offset,
            format!("image size {rows}x{cols} has no pixel"),
        ));
    }
    Ok((pixels, n, rows, cols))
}

/// Parses an IDX label file already in memory (decompressed); `path` names it in errors.
pub(crate) fn parse_idx_labels(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    parse_idx(path, bytes, IDX_LABELS_MAGIC, "labels").map(|(_, labels)| labels)
}

/// Reads an IDX image file (gzip-compressed or raw).
///
/// Returns `(pixels, n, rows, cols)`: `n * rows * cols` bytes, image after image, each
/// row-major. Errors: a missing or unreadable file ([`DataError::Io`]); a wrong magic
/// number, a header or data shorter than the header announces (offset = where the data
/// end), trailing bytes, zero rows or columns, or a corrupt gzip stream
/// ([`DataError::Malformed`]).
pub fn read_idx_images(
    path: impl AsRef<Path>,
) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    let path = path.as_ref();
    parse_idx_images(path, read_maybe_gzip(path)?)
}

/// Reads an IDX label file (gzip-compressed or raw): one byte per instance.
///
/// The values are not range-checked here (see [`load_mnist_like`]). Errors as for
/// [`read_idx_images`].
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    parse_idx_labels(path, read_maybe_gzip(path)?)
}

/// The file `dir/base.gz` if it exists, else `dir/base` if it exists, else an
/// [`DataError::Io`] naming `dir/base`.
fn find_file(dir: &Path, base: &str) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{base}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(base);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(DataError::Io {
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "neither `{base}.gz` nor `{base}` found in {}",
                dir.display()
            ),
        ),
        path: raw,
    })
}

/// Checks every label is below `num_classes`; `header_len` turns an index into a file
/// offset.
pub(crate) fn check_label_range(
    path: &Path,
    labels: &[u8],
    num_classes: usize,
    header_len: usize,
    stride: usize,
) -> Result<(), DataError> {
    match labels.iter().position(|&l| l as usize >= num_classes) {
        Some(i) => Err(malformed(
            path,
            header_len + i * stride,
            format!(
                "label {} of instance {i} is outside 0..{num_classes}",
                labels[i]
            ),
        )),
        None => Ok(()),
    }
}

/// Reads one split (`train` or `t10k`) of an MNIST-like folder.
fn load_split(dir: &Path, prefix: &str, name: &str) -> Result<Dataset> {
    let images_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (pixels, n, rows, cols) = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != n {
        return Err(DataError::Mismatch {
            path: labels_path,
            reason: format!(
                "{} labels, but {} holds {n} images",
                labels.len(),
                images_path.display()
            ),
        }
        .into());
    }
    check_label_range(&labels_path, &labels, MNIST_CLASSES, 8, 1)?;
    let inputs = Tensor::from_slice(&pixels)
        .view([n as i64, 1, rows as i64, cols as i64])
        .to_kind(Kind::Float)
        / 255.0;
    let labels = Tensor::from_slice(&labels).to_kind(Kind::Int64);
    Dataset::new(name, inputs, labels, MNIST_CLASSES)
}

/// Loads MNIST or Fashion-MNIST from the four standard files in `dir`.
///
/// Reads `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
/// and `t10k-labels-idx1-ubyte`, each either with a `.gz` suffix (preferred when both
/// exist) or raw. Returns the training and test splits, named `{name}/train` and
/// `{name}/test`, with float inputs `[n, 1, rows, cols]` (28x28 for the real data)
/// scaled to `[0, 1]` but not normalised, and int64 labels in `0..10`.
///
/// Errors: a missing file ([`DataError::Io`] naming it), any error of
/// [`read_idx_images`]/[`read_idx_labels`], image and label counts that differ
/// ([`DataError::Mismatch`] naming the label file), a label `>= 10`
/// ([`DataError::Malformed`] at its offset), or train and test images of different
/// sizes ([`DataError::Mismatch`] naming the test images).
pub fn load_mnist_like(dir: impl AsRef<Path>, name: &str) -> Result<(Dataset, Dataset)> {
    let dir = dir.as_ref();
    let train = load_split(dir, "train", &format!("{name}/train"))?;
    let test = load_split(dir, "t10k", &format!("{name}/test"))?;
    if train.input_shape() != test.input_shape() {
        return Err(DataError::Mismatch {
            path: find_file(dir, "t10k-images-idx3-ubyte")?,
            reason: format!(
                "test images have shape {:?}, training images {:?}",
                test.input_shape(),
                train.input_shape()
            ),
        }
        .into());
    }
    Ok((train, test))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::EnvError;
    use flate2::{write::GzEncoder, Compression};
    use proptest::prelude::*;
    use std::io::Write;

    /// The bytes of an IDX image file.
    pub(crate) fn idx_images(n: usize, rows: usize, cols: usize, pixels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [IDX_IMAGES_MAGIC, n as u32, rows as u32, cols as u32] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(pixels);
        out
    }

    /// The bytes of an IDX label file.
    pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
        out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        out.extend_from_slice(labels);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn pixels(n: usize, len: usize) -> Vec<u8> {
        (0..n * len).map(|i| (i * 37 % 256) as u8).collect()
    }

    fn write_mnist(dir: &Path, gz: bool, n_train: usize, n_test: usize) -> (Vec<u8>, Vec<u8>) {
        let train_px = pixels(n_train, 28 * 28);
        let test_px: Vec<u8> = pixels(n_test, 28 * 28).iter().map(|p| 255 - p).collect();
        let train_lb: Vec<u8> = (0..n_train).map(|i| (i % 10) as u8).collect();
        let test_lb: Vec<u8> = (0..n_test).map(|i| (9 - i % 10) as u8).collect();
        let files = [
            (
                "train-images-idx3-ubyte",
                idx_images(n_train, 28, 28, &train_px),
            ),
            ("train-labels-idx1-ubyte", idx_labels(&train_lb)),
            (
                "t10k-images-idx3-ubyte",
                idx_images(n_test, 28, 28, &test_px),
            ),
            ("t10k-labels-idx1-ubyte", idx_labels(&test_lb)),
        ];
        for (base, bytes) in files {
            if gz {
                std::fs::write(dir.join(format!("{base}.gz")), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(base), bytes).unwrap();
            }
        }
        (train_px, train_lb)
    }

    fn to_u8(t: &Tensor) -> Vec<u8> {
        let scaled = (t * 255.0).round().to_kind(Kind::Uint8).flatten(0, -1);
        Vec::<u8>::try_from(&scaled).unwrap()
    }

    fn check_round_trip(gz: bool) {
        let dir = tempfile::tempdir().unwrap();
        let (train_px, train_lb) = write_mnist(dir.path(), gz, 5, 3);
        let (train, test) = load_mnist_like(dir.path(), "mnist").unwrap();
        assert_eq!(train.name(), "mnist/train");
        assert_eq!(test.name(), "mnist/test");
        assert_eq!(train.inputs().size(), [5, 1, 28, 28]);
        assert_eq!(test.inputs().size(), [3, 1, 28, 28]);
        assert_eq!(train.inputs().kind(), Kind::Float);
        assert_eq!(to_u8(train.inputs()), train_px);
        let labels = Vec::<i64>::try_from(train.labels()).unwrap();
        assert_eq!(
            labels,
            train_lb.iter().map(|&l| l as i64).collect::<Vec<_>>()
        );
        assert_eq!(Vec::<i64>::try_from(test.labels()).unwrap(), vec![9, 8, 7]);
        assert!(train.inputs().max().double_value(&[]) <= 1.0);
        assert!(train.inputs().min().double_value(&[]) >= 0.0);
    }

    #[test]
    fn loads_raw_mnist() {
        check_round_trip(false);
    }

    #[test]
    fn loads_gzip_mnist() {
        check_round_trip(true);
    }

    #[test]
    fn gzip_detected_by_magic_not_extension() {
        let dir = tempfile::tempdir().unwrap();
        let px = pixels(2, 6);
        // A raw file named `.gz` and a gzip file without the suffix both read.
        let raw_named_gz = dir.path().join("a.gz");
        std::fs::write(&raw_named_gz, idx_images(2, 2, 3, &px)).unwrap();
        let gz_no_suffix = dir.path().join("b");
        std::fs::write(&gz_no_suffix, gzip(&idx_images(2, 2, 3, &px))).unwrap();
        for path in [raw_named_gz, gz_no_suffix] {
            let (got, n, rows, cols) = read_idx_images(&path).unwrap();
            assert_eq!((n, rows, cols), (2, 2, 3));
            assert_eq!(got, px);
        }
    }

    use crate::data::test_support::expect_malformed;

    #[test]
    fn wrong_magic_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels-as-images");
        std::fs::write(&path, idx_labels(&[1, 2, 3])).unwrap();
        let msg = expect_malformed(read_idx_images(&path).unwrap_err(), &path, 0);
        assert!(
            msg.contains("0x00000801") && msg.contains("0x00000803"),
            "{msg}"
        );
        let path = dir.path().join("images-as-labels");
        std::fs::write(&path, idx_images(1, 1, 1, &[0])).unwrap();
        expect_malformed(read_idx_labels(&path).unwrap_err(), &path, 0);
    }

    #[test]
    fn truncated_data_reports_where_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = idx_images(3, 2, 2, &pixels(3, 4));
        bytes.truncate(16 + 7);
        for gz in [false, true] {
            let path = dir.path().join(format!("trunc-{gz}"));
            let content = if gz { gzip(&bytes) } else { bytes.clone() };
            std::fs::write(&path, content).unwrap();
            let msg = expect_malformed(read_idx_images(&path).unwrap_err(), &path, 23);
            assert!(msg.contains("truncated"), "{msg}");
        }
        // Inside the header.
        let path = dir.path().join("short-header");
        std::fs::write(&path, &bytes[..10]).unwrap();
        expect_malformed(read_idx_images(&path).unwrap_err(), &path, 10);
        // Labels.
        let mut labels = idx_labels(&[1, 2, 3, 4]);
        labels.truncate(10);
        let path = dir.path().join("short-labels");
        std::fs::write(&path, labels).unwrap();
        expect_malformed(read_idx_labels(&path).unwrap_err(), &path, 10);
    }

    #[test]
    fn trailing_bytes_and_empty_images_are_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = idx_labels(&[1, 2]);
        bytes.push(0);
        let path = dir.path().join("trailing");
        std::fs::write(&path, bytes).unwrap();
        expect_malformed(read_idx_labels(&path).unwrap_err(), &path, 10);
        let path = dir.path().join("zero-rows");
        std::fs::write(&path, idx_images(2, 0, 5, &[])).unwrap();
        expect_malformed(read_idx_images(&path).unwrap_err(), &path, 8);
    }

    #[test]
    fn huge_header_does_not_allocate_or_panic() {
        let path = Path::new("huge");
        let bytes = idx_images(u32::MAX as usize, u32::MAX as usize, u32::MAX as usize, &[]);
        assert!(matches!(
            parse_idx_images(path, bytes),
            Err(DataError::Malformed { .. })
        ));
    }

    #[test]
    fn corrupt_gzip_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let gz = gzip(&idx_labels(&[1; 1000]));
        let path = dir.path().join("cut.gz");
        std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        let err = read_idx_labels(&path).unwrap_err();
        assert!(matches!(err, DataError::Malformed { .. }), "{err:?}");
        assert!(err.to_string().contains("cut.gz"));
    }

    #[test]
    fn missing_file_is_io_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope");
        match read_idx_images(&path).unwrap_err() {
            DataError::Io { path: p, .. } => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
        write_mnist(dir.path(), true, 2, 2);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let err = load_mnist_like(dir.path(), "m").unwrap_err();
        let msg = err.to_string();
        match err {
            EnvError::Data(DataError::Io { path, .. }) => {
                assert_eq!(path, dir.path().join("t10k-labels-idx1-ubyte"))
            }
            other => panic!("{other:?}"),
        }
        assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
    }

    #[test]
    fn count_mismatch_names_label_file() {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), false, 4, 2);
        let labels = dir.path().join("train-labels-idx1-ubyte");
        std::fs::write(&labels, idx_labels(&[1, 2, 3])).unwrap();
        match load_mnist_like(dir.path(), "m").unwrap_err() {
            EnvError::Data(DataError::Mismatch { path, reason }) => {
                assert_eq!(path, labels);
                assert!(reason.contains("3 labels") && reason.contains("4 images"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn label_out_of_range_gives_offset() {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), false, 4, 2);
        let labels = dir.path().join("train-labels-idx1-ubyte");
        std::fs::write(&labels, idx_labels(&[1, 2, 10, 3])).unwrap();
        match load_mnist_like(dir.path(), "m").unwrap_err() {
            EnvError::Data(err) => {
                let msg = expect_malformed(err, &labels, 8 + 2);
                assert!(msg.contains("label 10"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn train_test_size_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), false, 2, 2);
        let path = dir.path().join("t10k-images-idx3-ubyte");
        std::fs::write(&path, idx_images(2, 4, 4, &pixels(2, 16))).unwrap();
        match load_mnist_like(dir.path(), "m").unwrap_err() {
            EnvError::Data(DataError::Mismatch { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
    }

    /// Loads the real Fashion-MNIST when present (Debian `dataset-fashion-mnist`); run
    /// with `cargo test -p l2t-envs --lib -- --ignored real_fashion_mnist`.
    #[test]
    #[ignore = "needs /usr/share/datasets/fashion-mnist"]
    fn real_fashion_mnist() {
        let dir = Path::new("/usr/share/datasets/fashion-mnist");
        if !dir.is_dir() {
            eprintln!("skipped: {} not found", dir.display());
            return;
        }
        let start = std::time::Instant::now();
        let (train, test) = load_mnist_like(dir, "fashion-mnist").unwrap();
        let loaded = start.elapsed();
        assert_eq!(train.inputs().size(), [60_000, 1, 28, 28]);
        assert_eq!(test.inputs().size(), [10_000, 1, 28, 28]);
        // Balanced classes: 6000 per class in train.
        let counts = train.labels().bincount(None::<Tensor>, 10);
        assert_eq!(Vec::<i64>::try_from(&counts).unwrap(), vec![6000; 10]);
        let (tn, others, stats) =
            crate::data::transform::normalise_per_channel(train.inputs(), &[test.inputs()])
                .unwrap();
        eprintln!(
            "loaded in {loaded:?}, mean {:?} std {:?}, total {:?}",
            stats.mean,
            stats.std,
            start.elapsed()
        );
        assert!(tn.mean(Kind::Double).double_value(&[]).abs() < 1e-4);
        assert_eq!(others[0].size(), [10_000, 1, 28, 28]);
    }

    /// Runs both IDX parsers, raw and through the gzip detector; they must not panic.
    pub(crate) fn exercise_idx(bytes: &[u8]) {
        let path = Path::new("fuzz");
        let _ = parse_idx_images(path, bytes.to_vec());
        let _ = parse_idx_labels(path, bytes.to_vec());
        if let Ok(decoded) = decode_maybe_gzip(path, bytes.to_vec()) {
            let _ = parse_idx_images(path, decoded.clone());
            let _ = parse_idx_labels(path, decoded);
        }
    }

    /// A valid image or label file, raw or gzip, cut at a random point and with random
    /// bytes flipped.
    pub(crate) fn mutated_idx() -> impl Strategy<Value = Vec<u8>> {
        (
            1usize..5,
            1usize..4,
            1usize..4,
            any::<bool>(),
            any::<bool>(),
            any::<prop::sample::Index>(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        )
            .prop_map(|(n, rows, cols, labels, gz, cut, flips)| {
                let plain = if labels {
                    idx_labels(&pixels(n, 1))
                } else {
                    idx_images(n, rows, cols, &pixels(n, rows * cols))
                };
                let bytes = if gz { gzip(&plain) } else { plain };
                crate::data::test_support::corrupt(bytes, &flips, cut)
            })
    }

    /// Random bytes, sometimes starting with a valid IDX or gzip magic so that the
    /// parsers get past the first check.
    pub(crate) fn random_idx_bytes() -> impl Strategy<Value = Vec<u8>> {
        (0u8..4, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(prefix, tail)| {
            let mut bytes = match prefix {
                0 => IDX_IMAGES_MAGIC.to_be_bytes().to_vec(),
                1 => IDX_LABELS_MAGIC.to_be_bytes().to_vec(),
                2 => GZIP_MAGIC.to_vec(),
                _ => Vec::new(),
            };
            bytes.extend(tail);
            bytes
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn idx_random_bytes_never_panic(bytes in random_idx_bytes()) {
            exercise_idx(&bytes);
        }

        #[test]
        fn idx_mutated_files_never_panic(bytes in mutated_idx()) {
            exercise_idx(&bytes);
        }

        #[test]
        fn idx_round_trips(n in 0usize..4, rows in 1usize..5, cols in 1usize..5, gz: bool) {
            let px = pixels(n, rows * cols);
            let plain = idx_images(n, rows, cols, &px);
            let bytes = if gz { gzip(&plain) } else { plain };
            let decoded = decode_maybe_gzip(Path::new("x"), bytes).unwrap();
            let got = parse_idx_images(Path::new("x"), decoded).unwrap();
            prop_assert_eq!(got, (px, n, rows, cols));
        }
    }

    /// Number of cases of the long fuzz runs: `L2T_FUZZ_CASES`, default 100 000.
    pub(crate) fn fuzz_cases() -> u32 {
        std::env::var("L2T_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: fuzz_cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Long fuzz run: `L2T_FUZZ_CASES=N cargo test -p l2t-envs --lib -- --ignored fuzz_idx`.
        #[test]
        #[ignore = "long fuzz run; see fuzz_cases"]
        fn fuzz_idx_long(bytes in random_idx_bytes(), mutated in mutated_idx()) {
            exercise_idx(&bytes);
            exercise_idx(&mutated);
        }
    }
}
