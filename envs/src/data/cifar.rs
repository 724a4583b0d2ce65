//! Reader of the CIFAR-10 binary version, and the paper's data augmentation.
//!
//! The binary version (`cifar-10-batches-bin/`) holds `data_batch_1.bin` ..
//! `data_batch_5.bin` (10 000 training images each) and `test_batch.bin`. Each file is
//! a sequence of 3073-byte records: one label byte (`0..=9`), then 3072 pixel bytes,
//! 1024 red, 1024 green and 1024 blue, each plane row-major 32x32. That is exactly the
//! `[3, 32, 32]` layout of an image tensor, so records are staged without reordering.
//!
//! Files may also be gzip-compressed (detected by the magic bytes). Every problem is a
//! typed [`DataError`] naming the file and the byte offset; a corrupt file never panics.
//!
//! [`augment`] is the CIFAR augmentation of the paper (after He et al.): zero-padding,
//! a random crop back to the original size, and a random horizontal flip, with all
//! randomness drawn from a caller's ChaCha stream.

use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::idx::{check_label_range, read_maybe_gzip};
use super::Dataset;
use crate::error::{DataError, Result};

/// Bytes of one image: 3 channels of 32x32.
pub const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label byte and the image.
pub const CIFAR_RECORD_BYTES: usize = 1 + CIFAR_IMAGE_BYTES;
/// Number of classes of CIFAR-10.
pub const CIFAR10_CLASSES: usize = 10;
/// The training files, in the order their records are concatenated.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";

/// Splits CIFAR-10 records held in memory; `path` names the file in errors.
pub(crate) fn parse_cifar(path: &Path, bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let malformed = |offset: usize, reason: String| DataError::Malformed {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.is_empty() {
        return Err(malformed(0, "empty file: no CIFAR record".into()));
    }
    let remainder = bytes.len() % CIFAR_RECORD_BYTES;
    if remainder != 0 {
        return Err(malformed(
            bytes.len() - remainder,
            format!(
                "file size {} is not a whole number of {CIFAR_RECORD_BYTES}-byte records: \
                 {remainder} bytes after the last whole record",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / CIFAR_RECORD_BYTES;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * CIFAR_IMAGE_BYTES);
    for record in bytes.chunks_exact(CIFAR_RECORD_BYTES) {
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    check_label_range(path, &labels, CIFAR10_CLASSES, 0, CIFAR_RECORD_BYTES)?;
    Ok((pixels, labels))
}

/// Reads one CIFAR-10 binary file (raw, or gzip-compressed).
///
/// Returns `(pixels, labels)`: `n * 3072` pixel bytes (image after image, each
/// `[3, 32, 32]`) and `n` labels. Errors: a missing or unreadable file
/// ([`DataError::Io`]); an empty file, a size that is not a whole number of records
/// (offset = where the incomplete record starts), a label above 9 (offset of that
/// label byte), or a corrupt gzip stream ([`DataError::Malformed`]).
pub fn read_cifar_file(path: impl AsRef<Path>) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    parse_cifar(path, &bytes)
}

/// Stages pixels and labels as a dataset with float inputs `[n, 3, 32, 32]` in `[0, 1]`.
fn to_dataset(name: &str, pixels: &[u8], labels: &[u8]) -> Result<Dataset> {
    let n = labels.len() as i64;
    let inputs = Tensor::from_slice(pixels)
        .view([n, 3, 32, 32])
        .to_kind(Kind::Float)
        / 255.0;
    let labels = Tensor::from_slice(labels).to_kind(Kind::Int64);
    Dataset::new(name, inputs, labels, CIFAR10_CLASSES)
}

/// Loads CIFAR-10 from the binary version's folder (`cifar-10-batches-bin`).
///
/// The training split concatenates `data_batch_1.bin` .. `data_batch_5.bin` in that
/// order; the test split is `test_batch.bin`. They are named `cifar10/train` and
/// `cifar10/test`, with float inputs `[n, 3, 32, 32]` scaled to `[0, 1]` (not yet
/// normalised: see [`super::transform::normalise_per_channel`]) and int64 labels.
/// Errors: those of [`read_cifar_file`], for the first bad file.
pub fn load_cifar10(dir: impl AsRef<Path>) -> Result<(Dataset, Dataset)> {
    let dir = dir.as_ref();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for file in CIFAR10_TRAIN_FILES {
        let (p, l) = read_cifar_file(dir.join(file))?;
        pixels.extend_from_slice(&p);
        labels.extend_from_slice(&l);
    }
    let train = to_dataset("cifar10/train", &pixels, &labels)?;
    drop((pixels, labels));
    let (pixels, labels) = read_cifar_file(dir.join(CIFAR10_TEST_FILE))?;
    let test = to_dataset("cifar10/test", &pixels, &labels)?;
    Ok((train, test))
}

/// Random crop with zero padding and random horizontal flip, per instance.
///
/// `batch_inputs` is `[B, C, H, W]`. Each image is padded with `padding` zeros on every
/// side (4 in the paper; a negative value counts as 0), a window of `H x W` is cropped
/// at an offset drawn uniformly from `0..=2*padding` in each direction, and the result
/// is mirrored left-right with probability 1/2. The draws come from `rng` only, in the
/// order (row offset, column offset, flip) for instance 0, then instance 1, and so on;
/// libtorch's global generator is never used, so the same stream gives the same batch.
///
/// The padding value is 0 in the units of `batch_inputs`: pad before normalising to
/// get black borders, after normalising to get mean-coloured ones.
///
/// # Panics
/// If `batch_inputs` is not 4-dimensional (a caller's error, never a file's).
pub fn augment(batch_inputs: &Tensor, rng: &mut ChaCha8Rng, padding: i64) -> Tensor {
    let size = batch_inputs.size();
    let (batch, height, width) = (size[0], size[2], size[3]);
    if batch == 0 {
        return batch_inputs.shallow_clone();
    }
    let padding = padding.max(0);
    let padded = if padding > 0 {
        batch_inputs.constant_pad_nd([padding, padding, padding, padding])
    } else {
        batch_inputs.shallow_clone()
    };
    let images: Vec<Tensor> = (0..batch)
        .map(|i| {
            let dy = rng.gen_range(0..=2 * padding);
            let dx = rng.gen_range(0..=2 * padding);
            let flip = rng.gen_bool(0.5);
            let crop = padded.get(i).narrow(1, dy, height).narrow(2, dx, width);
            if flip {
                crop.flip([2])
            } else {
                crop
            }
        })
        .collect();
    Tensor::stack(&images, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::gzip;
    use crate::error::EnvError;
    use crate::seeding::{stream_rng, Stream};
    use proptest::prelude::*;
    use rand::Rng;

    /// `n` records with labels `first_label + i (mod 10)` and distinct pixels.
    fn records(n: usize, first_label: u8, salt: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.push((first_label as usize + i) as u8 % 10);
            out.extend((0..CIFAR_IMAGE_BYTES).map(|j| (j * 7 + i * 13 + salt as usize) as u8));
        }
        out
    }

    fn write_cifar(dir: &Path) -> (Vec<u8>, Vec<u8>) {
        let mut all = Vec::new();
        for (k, file) in CIFAR10_TRAIN_FILES.iter().enumerate() {
            let bytes = records(2, k as u8, k as u8);
            all.extend_from_slice(&bytes);
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        let test = records(3, 7, 99);
        std::fs::write(dir.join(CIFAR10_TEST_FILE), &test).unwrap();
        (all, test)
    }

    fn split(records: &[u8]) -> (Vec<u8>, Vec<i64>) {
        let mut px = Vec::new();
        let mut lb = Vec::new();
        for r in records.chunks(CIFAR_RECORD_BYTES) {
            lb.push(r[0] as i64);
            px.extend_from_slice(&r[1..]);
        }
        (px, lb)
    }

    fn to_u8(t: &Tensor) -> Vec<u8> {
        let scaled = (t * 255.0).round().to_kind(Kind::Uint8).flatten(0, -1);
        Vec::<u8>::try_from(&scaled).unwrap()
    }

    #[test]
    fn loads_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (train_bytes, test_bytes) = write_cifar(dir.path());
        let (train, test) = load_cifar10(dir.path()).unwrap();
        assert_eq!(train.inputs().size(), [10, 3, 32, 32]);
        assert_eq!(test.inputs().size(), [3, 3, 32, 32]);
        assert_eq!(train.name(), "cifar10/train");
        let (px, lb) = split(&train_bytes);
        assert_eq!(to_u8(train.inputs()), px);
        assert_eq!(Vec::<i64>::try_from(train.labels()).unwrap(), lb);
        let (px, lb) = split(&test_bytes);
        assert_eq!(to_u8(test.inputs()), px);
        assert_eq!(Vec::<i64>::try_from(test.labels()).unwrap(), lb);
        // Plane layout: the first green pixel of image 0 is byte 1 + 1024 of record 0.
        let g = test.inputs().double_value(&[0, 1, 0, 0]);
        assert_eq!((g * 255.0).round() as u8, test_bytes[1 + 1024]);
        // Row-major: pixel (row 1, col 2) of the red plane is byte 1 + 32 + 2.
        let r = test.inputs().double_value(&[0, 0, 1, 2]);
        assert_eq!((r * 255.0).round() as u8, test_bytes[1 + 32 + 2]);
    }

    #[test]
    fn reads_gzip_records() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = records(2, 3, 5);
        let path = dir.path().join("batch.bin");
        std::fs::write(&path, gzip(&bytes)).unwrap();
        let (px, lb) = read_cifar_file(&path).unwrap();
        assert_eq!(lb, vec![3, 4]);
        assert_eq!(px, split(&bytes).0);
    }

    fn expect_malformed(path: &Path, offset: u64) -> String {
        crate::data::test_support::expect_malformed(
            read_cifar_file(path).unwrap_err(),
            path,
            offset,
        )
    }

    #[test]
    fn bad_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial.bin");
        let mut bytes = records(3, 0, 0);
        bytes.truncate(2 * CIFAR_RECORD_BYTES + 100);
        std::fs::write(&path, &bytes).unwrap();
        let msg = expect_malformed(&path, 2 * CIFAR_RECORD_BYTES as u64);
        assert!(msg.contains("100 bytes"), "{msg}");

        let path = dir.path().join("empty.bin");
        std::fs::write(&path, []).unwrap();
        assert!(expect_malformed(&path, 0).contains("empty"));

        let path = dir.path().join("label.bin");
        let mut bytes = records(3, 0, 0);
        bytes[2 * CIFAR_RECORD_BYTES] = 10;
        std::fs::write(&path, &bytes).unwrap();
        let msg = expect_malformed(&path, 2 * CIFAR_RECORD_BYTES as u64);
        assert!(msg.contains("label 10"), "{msg}");

        let path = dir.path().join("missing.bin");
        match read_cifar_file(&path).unwrap_err() {
            DataError::Io { path: p, .. } => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_batch_names_it() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar(dir.path());
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        let err = load_cifar10(dir.path()).unwrap_err();
        assert!(err.to_string().contains("data_batch_4.bin"), "{err}");
        assert!(matches!(err, EnvError::Data(DataError::Io { .. })));
    }

    #[test]
    fn augment_crops_and_flips_deterministically() {
        let x =
            Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, tch::Device::Cpu)).view([2, 3, 4, 5]) + 1.0;
        let a = augment(&x, &mut stream_rng(3, Stream::Augmentation), 2);
        let b = augment(&x, &mut stream_rng(3, Stream::Augmentation), 2);
        assert_eq!(a.size(), x.size());
        assert!(a.equal(&b), "same stream, same batch");

        // Replay the draws and check each image against a direct construction.
        let mut rng = stream_rng(3, Stream::Augmentation);
        for i in 0..2 {
            let dy: i64 = rng.gen_range(0..=4);
            let dx: i64 = rng.gen_range(0..=4);
            let flip = rng.gen_bool(0.5);
            for c in 0..3 {
                for r in 0..4 {
                    for col in 0..5 {
                        let src_col = if flip { 4 - col } else { col };
                        let (sr, sc) = (r + dy - 2, src_col + dx - 2);
                        let want = if (0..4).contains(&sr) && (0..5).contains(&sc) {
                            x.double_value(&[i, c, sr, sc])
                        } else {
                            0.0
                        };
                        assert_eq!(a.double_value(&[i, c, r, col]), want);
                    }
                }
            }
        }
    }

    #[test]
    fn augment_without_padding_only_flips() {
        let x = Tensor::arange(2 * 16, (Kind::Float, tch::Device::Cpu)).view([2, 1, 4, 4]);
        let mut rng = stream_rng(0, Stream::Augmentation);
        let mut flipped = 0;
        for _ in 0..20 {
            let y = augment(&x, &mut rng, 0);
            for i in 0..2 {
                let (yi, xi) = (y.get(i), x.get(i));
                if yi.equal(&xi.flip([2])) {
                    flipped += 1;
                } else {
                    assert!(yi.equal(&xi));
                }
            }
        }
        assert!(flipped > 5 && flipped < 35, "{flipped} of 40 flipped");
        let empty = Tensor::zeros([0, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
        assert_eq!(augment(&empty, &mut rng, 4).size(), [0, 3, 4, 4]);
    }

    /// A valid file, raw or gzip, cut at a random point and with random bytes flipped.
    fn mutated_cifar() -> impl Strategy<Value = Vec<u8>> {
        (
            1usize..3,
            any::<bool>(),
            any::<prop::sample::Index>(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        )
            .prop_map(|(n, gz, cut, flips)| {
                let plain = records(n, 0, 1);
                let bytes = if gz { gzip(&plain) } else { plain };
                crate::data::test_support::corrupt(bytes, &flips, cut)
            })
    }

    /// Random bytes of sizes near whole records, so both size and label checks run.
    fn random_cifar_bytes() -> impl Strategy<Value = Vec<u8>> {
        (0usize..3, -2i64..3, any::<u8>(), any::<u64>()).prop_map(|(n, delta, label, seed)| {
            let len = (n as i64 * CIFAR_RECORD_BYTES as i64 + delta).max(0) as usize;
            let mut rng = stream_rng(seed, Stream::Data);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let Some(b) = bytes.first_mut() {
                *b = label;
            }
            bytes
        })
    }

    fn exercise_cifar(bytes: &[u8]) {
        let path = Path::new("fuzz");
        let _ = parse_cifar(path, bytes);
        if let Ok(decoded) = super::super::idx::decode_maybe_gzip(path, bytes.to_vec()) {
            if let Ok((px, lb)) = parse_cifar(path, &decoded) {
                assert_eq!(px.len(), lb.len() * CIFAR_IMAGE_BYTES);
                assert!(lb.iter().all(|&l| l < 10));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn cifar_random_bytes_never_panic(
            bytes in random_cifar_bytes(),
            small in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            exercise_cifar(&bytes);
            exercise_cifar(&small);
        }

        #[test]
        fn cifar_mutated_files_never_panic(bytes in mutated_cifar()) {
            exercise_cifar(&bytes);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: crate::data::idx::tests::fuzz_cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Long fuzz run: `L2T_FUZZ_CASES=N cargo test -p l2t-envs --lib -- --ignored fuzz_cifar`.
        #[test]
        #[ignore = "long fuzz run; see idx::tests::fuzz_cases"]
        fn fuzz_cifar_long(
            bytes in random_cifar_bytes(),
            small in prop::collection::vec(any::<u8>(), 0..64),
            mutated in mutated_cifar(),
        ) {
            exercise_cifar(&bytes);
            exercise_cifar(&small);
            exercise_cifar(&mutated);
        }
    }
}
