//! Text classification tasks: a tokenizer, a vocabulary, and the loaders of the IMDB
//! movie-review folders (aclImdb) and the Rotten Tomatoes snippets.
//!
//! # Tokenizer
//! [`tokenize`] applies one fixed rule, so that a saved vocabulary stays valid:
//! 1. the HTML line breaks `<br />` and `<br/>` (frequent in aclImdb) become spaces;
//! 2. the text is lowercased (Unicode lowercase);
//! 3. a word is a maximal run of alphanumeric characters (Unicode letters and digits);
//!    an apostrophe (`'` or the typographic `’`, both kept as `'`) that stands between
//!    two alphanumeric characters stays inside the word (`don't`, `rock'n'roll`), any
//!    other apostrophe and every other character (spaces, punctuation, `-`, `_`,
//!    symbols) separates words.
//!
//! # Vocabulary
//! [`Vocabulary::build`] keeps the `max_size` most frequent words of the training texts,
//! ties broken alphabetically; id 0 is padding, id 1 the unknown word, words from 2.
//!
//! # Staged tensors
//! A [`TextTask`] holds int64 token ids `[n, max_length]` (first `max_length` tokens,
//! padded with 0), int64 labels (1 = positive, 0 = negative) and the token counts
//! (`with_lengths`), from which the environment derives the sentence-length feature.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use tch::Tensor;

use super::idx::read_maybe_gzip;
use super::Dataset;
use crate::error::{invalid_config, DataError, EnvError, Result};
use crate::seeding::{stream_rng, Stream};

/// Splits `text` into lowercase words by the rule in the [module docs](self).
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text
        .replace("<br />", " ")
        .replace("<br/>", " ")
        .replace("<BR />", " ")
        .replace("<BR/>", " ")
        .to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            word.push(c);
        } else if (c == '\'' || c == '\u{2019}')
            && !word.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())
        {
            word.push('\'');
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A word-to-id mapping: id 0 = padding, id 1 = unknown word, words from id 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    words: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Vocabulary {
    /// Id of the padding after the last token.
    pub const PAD: i64 = 0;
    /// Id of every word outside the vocabulary.
    pub const UNKNOWN: i64 = 1;
    /// Display name of [`Self::PAD`] (never a token: tokens hold no `<`).
    pub const PAD_WORD: &'static str = "<pad>";
    /// Display name of [`Self::UNKNOWN`].
    pub const UNKNOWN_WORD: &'static str = "<unk>";

    /// The `max_size` most frequent words of `texts` (tokenised by [`tokenize`]),
    /// ties broken alphabetically (by Unicode code points), so the result does not
    /// depend on the order of the texts. The vocabulary then has at most
    /// `max_size + 2` ids.
    pub fn build<I, S>(texts: I, max_size: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tokens: Vec<Vec<String>> = texts.into_iter().map(|t| tokenize(t.as_ref())).collect();
        Self::from_tokens(&tokens, max_size)
    }

    /// As [`Self::build`], from texts already tokenised.
    pub fn from_tokens(token_lists: &[Vec<String>], max_size: usize) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for token in token_lists.iter().flatten() {
            *counts.entry(token.as_str()).or_insert(0) += 1;
        }
        let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked.truncate(max_size);
        let mut words = vec![Self::PAD_WORD.to_string(), Self::UNKNOWN_WORD.to_string()];
        words.extend(ranked.into_iter().map(|(w, _)| w.to_string()));
        let ids = words
            .iter()
            .enumerate()
            .skip(2)
            .map(|(i, w)| (w.clone(), i as i64))
            .collect();
        Self { words, ids }
    }

    /// Number of ids, the two special ones included (the embedding table's size).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Always false: padding and unknown are always there.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The id of `word` (lowercase, as [`tokenize`] gives it), [`Self::UNKNOWN`] if absent.
    pub fn id(&self, word: &str) -> i64 {
        self.ids.get(word).copied().unwrap_or(Self::UNKNOWN)
    }

    /// The word of `id` (`<pad>`, `<unk>` for the special ids), `None` out of range.
    pub fn word(&self, id: i64) -> Option<&str> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.words.get(i))
            .map(String::as_str)
    }

    /// All words by id, the two special names first.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Token ids of `text`, truncated (first tokens kept) or padded with [`Self::PAD`]
    /// to `max_length`, and the length `min(tokens, max_length)`, at least 1 (a text
    /// without words gives all padding and length 1; 0 only if `max_length` is 0).
    pub fn encode(&self, text: &str, max_length: usize) -> (Vec<i64>, usize) {
        self.encode_tokens(&tokenize(text), max_length)
    }

    /// As [`Self::encode`], for a text already tokenised.
    pub fn encode_tokens(&self, tokens: &[String], max_length: usize) -> (Vec<i64>, usize) {
        let mut ids: Vec<i64> = tokens.iter().take(max_length).map(|t| self.id(t)).collect();
        ids.resize(max_length, Self::PAD);
        (ids, tokens.len().max(1).min(max_length))
    }
}

/// A text classification task: train and test splits and the vocabulary of the train
/// split.
///
/// Inputs are int64 token ids `[n, max_length]`, labels int64 (1 positive, 0
/// negative), and each split carries its token lengths (`Dataset::has_lengths`). The
/// dev split the reward needs is carved from `train` by the caller.
#[derive(Debug)]
pub struct TextTask {
    /// Training split.
    pub train: Dataset,
    /// Test split.
    pub test: Dataset,
    /// Vocabulary built from the training split only.
    pub vocabulary: Vocabulary,
}

/// One document: its tokens and label.
struct Doc {
    tokens: Vec<String>,
    label: i64,
}

fn check_sizes(vocab_size: usize, max_length: usize) -> Result<()> {
    if vocab_size == 0 {
        return Err(invalid_config("vocab_size", "must be > 0"));
    }
    if max_length == 0 {
        return Err(invalid_config("max_length", "must be > 0"));
    }
    Ok(())
}

/// Stages documents as a text dataset with lengths.
fn text_dataset(
    name: &str,
    docs: &[Doc],
    vocabulary: &Vocabulary,
    max_length: usize,
) -> Result<Dataset> {
    let mut ids = Vec::with_capacity(docs.len() * max_length);
    let mut lengths = Vec::with_capacity(docs.len());
    for doc in docs {
        let (row, len) = vocabulary.encode_tokens(&doc.tokens, max_length);
        ids.extend_from_slice(&row);
        lengths.push(len as i64);
    }
    let labels: Vec<i64> = docs.iter().map(|d| d.label).collect();
    let inputs = Tensor::from_slice(&ids).view([docs.len() as i64, max_length as i64]);
    Dataset::new(name, inputs, Tensor::from_slice(&labels), 2)?
        .with_lengths(Tensor::from_slice(&lengths), max_length)
}

/// Decodes a text file's bytes and tokenises them; non-UTF-8 or word-less content is a
/// [`DataError::Malformed`] naming the file.
fn tokenize_file(path: &Path, bytes: Vec<u8>) -> Result<Vec<String>, DataError> {
    let text = String::from_utf8(bytes).map_err(|e| DataError::Malformed {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to() as u64,
        reason: "not valid UTF-8".into(),
    })?;
    let tokens = tokenize(&text);
    if tokens.is_empty() {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            offset: 0,
            reason: "empty text: no word after tokenising".into(),
        });
    }
    Ok(tokens)
}

/// The `*.txt` files of `dir`, sorted by file name (byte order).
fn sorted_txt_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "txt") && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Reads `root/split/pos` (label 1) then `root/split/neg` (label 0).
fn read_aclimdb_split(root: &Path, split: &str) -> Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for (class, label) in [("pos", 1), ("neg", 0)] {
        let dir = root.join(split).join(class);
        let files = sorted_txt_files(&dir)?;
        if files.is_empty() {
            return Err(EnvError::InvalidDataset {
                name: format!("aclImdb/{split}/{class}"),
                reason: format!("no .txt file in {}", dir.display()),
            });
        }
        for path in files {
            let bytes = std::fs::read(&path).map_err(|source| DataError::Io {
                path: path.clone(),
                source,
            })?;
            let tokens = tokenize_file(&path, bytes)?;
            docs.push(Doc { tokens, label });
        }
    }
    Ok(docs)
}

/// Loads the IMDB movie-review task from the `aclImdb` folder.
///
/// Reads `train/pos/*.txt`, `train/neg/*.txt`, `test/pos/*.txt` and `test/neg/*.txt`
/// (other files and folders, e.g. `train/unsup`, are ignored). Within each folder the
/// files are read in sorted file-name order, positives first; label 1 = pos, 0 = neg.
/// The vocabulary holds the `vocab_size` most frequent words of the training split
/// (the paper: 10 000); texts are cut or padded to `max_length` tokens. The splits are
/// named `aclImdb/train` and `aclImdb/test`.
///
/// Errors: `vocab_size` or `max_length` of 0 ([`EnvError::InvalidConfig`]); a missing
/// folder or unreadable file ([`DataError::Io`] naming it); a class folder without any
/// `.txt` file ([`EnvError::InvalidDataset`]); a file that is not UTF-8 (offset of the
/// first bad byte) or holds no word ([`DataError::Malformed`] naming it).
pub fn load_aclimdb(
    dir: impl AsRef<Path>,
    vocab_size: usize,
    max_length: usize,
) -> Result<TextTask> {
    check_sizes(vocab_size, max_length)?;
    let root = dir.as_ref();
    let train_docs = read_aclimdb_split(root, "train")?;
    let test_docs = read_aclimdb_split(root, "test")?;
    let tokens: Vec<Vec<String>> = train_docs.iter().map(|d| d.tokens.clone()).collect();
    let vocabulary = Vocabulary::from_tokens(&tokens, vocab_size);
    Ok(TextTask {
        train: text_dataset("aclImdb/train", &train_docs, &vocabulary, max_length)?,
        test: text_dataset("aclImdb/test", &test_docs, &vocabulary, max_length)?,
        vocabulary,
    })
}

/// Offset and description of where CSV data row `record` (1-based; 0 = the header)
/// starts, for error messages.
fn csv_where(record: usize, pos: Option<&csv::Position>) -> (u64, String) {
    let row = if record == 0 {
        "header".to_string()
    } else {
        format!("row {record}")
    };
    match pos {
        Some(p) => (p.byte(), format!("{row} (line {})", p.line())),
        None => (0, row),
    }
}

/// Maps a `csv` error of data row `record` (1-based, header excluded) to a
/// [`DataError`] naming the file and the row.
fn csv_error(path: &Path, record: usize, err: csv::Error) -> DataError {
    let malformed = |pos: Option<&csv::Position>, what: String| {
        let (offset, row) = csv_where(record, pos);
        DataError::Malformed {
            path: path.to_path_buf(),
            offset,
            reason: format!("{row}: {what}"),
        }
    };
    match err.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        csv::ErrorKind::Utf8 { pos, err } => malformed(
            pos.as_ref(),
            format!("field {} is not valid UTF-8", err.field() + 1),
        ),
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => malformed(
            pos.as_ref(),
            format!("{len} fields, the header has {expected_len}"),
        ),
        other => malformed(None, format!("{other:?}")),
    }
}

/// Parses the Rotten Tomatoes CSV held in `bytes` into documents, dropping `plot` rows.
fn parse_rotten_tomatoes(path: &Path, bytes: &[u8]) -> Result<Vec<Doc>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header = reader.headers().map_err(|e| csv_error(path, 0, e))?.clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .ok_or_else(|| DataError::Malformed {
                path: path.to_path_buf(),
                offset: 0,
                reason: format!(
                    "header lacks the column `{name}` (found {:?}; expected \
                     category,text,movie_name,has_plot_and_reviews)",
                    header.iter().collect::<Vec<_>>()
                ),
            })
    };
    let (category_col, text_col) = (column("category")?, column("text")?);
    let mut docs = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut row = 0;
    loop {
        row += 1;
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, row, e)),
        }
        let malformed = |what: String| {
            let (offset, at) = csv_where(row, record.position());
            DataError::Malformed {
                path: path.to_path_buf(),
                offset,
                reason: format!("{at}: {what}"),
            }
        };
        let label = match record.get(category_col) {
            Some("fresh") => 1,
            Some("rotten") => 0,
            Some("plot") => continue,
            Some(other) => {
                return Err(malformed(format!(
                    "unknown category `{other}`, expected fresh, rotten or plot"
                )))
            }
            None => return Err(malformed("no `category` field".into())),
        };
        let tokens = tokenize(record.get(text_col).unwrap_or(""));
        if tokens.is_empty() {
            return Err(malformed("empty text: no word after tokenising".into()));
        }
        docs.push(Doc { tokens, label });
    }
    Ok(docs)
}

/// Loads the Rotten Tomatoes sentiment task from `rotten_tomatoes_corpus_full.csv`.
///
/// The CSV (optionally gzip-compressed) has a header with the columns `category`,
/// `text`, `movie_name`, `has_plot_and_reviews` (only the first two are used; quoted
/// fields may hold commas, quotes and newlines). `category` is `fresh` (label 1),
/// `rotten` (label 0) or `plot` (row dropped). The file has no official split, so the
/// rows are split by the seed: within each class (rotten first, then fresh) the rows
/// are shuffled by `stream_rng(seed, Stream::Data)` and `round(test_fraction * n_class)`
/// of them go to the test split; each split keeps the file's order. The vocabulary comes
/// from the train split only. Splits are named `rotten-tomatoes/train` and
/// `rotten-tomatoes/test`.
///
/// Errors: `vocab_size` or `max_length` of 0, or `test_fraction` outside `(0, 1)`
/// ([`EnvError::InvalidConfig`]); a missing file ([`DataError::Io`]); a header without
/// `category` or `text`, a row with a different number of fields, non-UTF-8 content, an
/// unknown category or a text without words ([`DataError::Malformed`] naming the row and
/// its line); a split left without rows ([`EnvError::InvalidDataset`]).
pub fn load_rotten_tomatoes(
    csv_path: impl AsRef<Path>,
    vocab_size: usize,
    max_length: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<TextTask> {
    check_sizes(vocab_size, max_length)?;
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(invalid_config(
            "test_fraction",
            format!("{test_fraction} is not in (0, 1)"),
        ));
    }
    let path = csv_path.as_ref();
    let docs = parse_rotten_tomatoes(path, &read_maybe_gzip(path)?)?;
    let mut rng = stream_rng(seed, Stream::Data);
    let mut is_test = vec![false; docs.len()];
    for label in [0, 1] {
        let mut rows: Vec<usize> = (0..docs.len())
            .filter(|&i| docs[i].label == label)
            .collect();
        rows.shuffle(&mut rng);
        let n_test = (test_fraction * rows.len() as f64).round() as usize;
        for &i in &rows[..n_test.min(rows.len())] {
            is_test[i] = true;
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (doc, t) in docs.into_iter().zip(is_test) {
        if t {
            test.push(doc);
        } else {
            train.push(doc);
        }
    }
    let tokens: Vec<Vec<String>> = train.iter().map(|d| d.tokens.clone()).collect();
    let vocabulary = Vocabulary::from_tokens(&tokens, vocab_size);
    Ok(TextTask {
        train: text_dataset("rotten-tomatoes/train", &train, &vocabulary, max_length)?,
        test: text_dataset("rotten-tomatoes/test", &test, &vocabulary, max_length)?,
        vocabulary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn tokenizer_rule() {
        assert_eq!(
            tokenize("Don't STOP!<br /><br />It's rock'n'roll, 'quoted' dogs' end-to-end_x 42"),
            strings(&[
                "don't",
                "stop",
                "it's",
                "rock'n'roll",
                "quoted",
                "dogs",
                "end",
                "to",
                "end",
                "x",
                "42"
            ])
        );
        assert_eq!(
            tokenize("Café ÜBER l’été"),
            strings(&["café", "über", "l'été"])
        );
        assert!(tokenize("  ... '' -- ").is_empty());
        assert_eq!(tokenize("a''b"), strings(&["a", "b"]));
    }

    #[test]
    fn vocabulary_ranks_by_count_then_alphabet() {
        let v = Vocabulary::build(["b a c", "a b d", "a e"], 3);
        // a:3, b:2, then c, d, e tie at 1: c wins alphabetically.
        assert_eq!(v.words(), &strings(&["<pad>", "<unk>", "a", "b", "c"])[..]);
        assert_eq!(v.len(), 5);
        assert_eq!(v.id("a"), 2);
        assert_eq!(v.id("d"), Vocabulary::UNKNOWN);
        assert_eq!(v.id("<pad>"), Vocabulary::UNKNOWN);
        assert_eq!(v.word(4), Some("c"));
        assert_eq!(v.word(5), None);
        assert_eq!(v.word(-1), None);
        // Order of the texts does not matter.
        assert_eq!(v, Vocabulary::build(["a e", "a b d", "b a c"], 3));
    }

    #[test]
    fn encode_pads_and_truncates() {
        let v = Vocabulary::build(["a b c"], 10);
        assert_eq!(v.encode("A z b", 5), (vec![2, 1, 3, 0, 0], 3));
        assert_eq!(v.encode("a b c a b c", 4), (vec![2, 3, 4, 2], 4));
        assert_eq!(v.encode("!!", 3), (vec![0, 0, 0], 1));
        assert_eq!(v.encode("a", 0), (vec![], 0));
    }

    fn write_imdb(root: &Path) {
        let files = [
            ("train/pos/10_9.txt", "Great film, great cast."),
            ("train/pos/2_8.txt", "Great fun<br />loved it"),
            ("train/neg/0_1.txt", "Awful. Just awful film"),
            ("train/neg/1_2.txt", "Boring"),
            ("test/pos/0_10.txt", "great unknown words"),
            ("test/neg/0_3.txt", "awful"),
            ("train/unsup/0_0.txt", "\u{0}ignored"),
        ];
        for (rel, text) in files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::write(root.join("train/pos/notes.md"), [0xff]).unwrap();
    }

    fn ids(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(&t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn loads_aclimdb_tree() {
        let dir = tempfile::tempdir().unwrap();
        write_imdb(dir.path());
        let task = load_aclimdb(dir.path(), 4, 4).unwrap();
        let v = &task.vocabulary;
        // great:3, awful:2, film:2, then ties at 1 alphabetically: boring.
        assert_eq!(
            v.words(),
            &strings(&["<pad>", "<unk>", "great", "awful", "film", "boring"])[..]
        );
        let train = &task.train;
        assert_eq!(train.name(), "aclImdb/train");
        assert_eq!(train.inputs().size(), [4, 4]);
        assert!(train.has_lengths());
        assert_eq!(train.max_length(), 4);
        // Sorted file names: "10_9.txt" before "2_8.txt"; pos before neg.
        assert_eq!(ids(train.labels()), vec![1, 1, 0, 0]);
        assert_eq!(
            ids(train.inputs()),
            vec![
                2, 4, 2, 1, // great film great cast
                2, 1, 1, 1, // great fun loved it (4 tokens, <br /> removed)
                3, 1, 3, 4, // awful just awful film
                5, 0, 0, 0, // boring
            ]
        );
        let lengths = train.slice(0, 4).lengths.unwrap();
        assert_eq!(ids(&lengths), vec![4, 4, 4, 1]);
        assert_eq!(ids(task.test.inputs()), vec![2, 1, 1, 0, 3, 0, 0, 0]);
        assert_eq!(ids(task.test.labels()), vec![1, 0]);
    }

    #[test]
    fn aclimdb_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_imdb(dir.path());
        let bad = dir.path().join("train/neg/5_1.txt");
        std::fs::write(&bad, b"ok \xff\xfe bad").unwrap();
        let err = load_aclimdb(dir.path(), 10, 5).unwrap_err();
        assert!(err.to_string().contains("5_1.txt"), "{err}");
        match err {
            EnvError::Data(DataError::Malformed { path, offset, .. }) => {
                assert_eq!((path, offset), (bad.clone(), 3));
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&bad, " ... ").unwrap();
        let err = load_aclimdb(dir.path(), 10, 5).unwrap_err();
        assert!(err.to_string().contains("5_1.txt") && err.to_string().contains("empty"));
        assert!(matches!(err, EnvError::Data(DataError::Malformed { .. })));
        std::fs::remove_file(&bad).unwrap();

        std::fs::remove_dir_all(dir.path().join("test/neg")).unwrap();
        match load_aclimdb(dir.path(), 10, 5).unwrap_err() {
            EnvError::Data(DataError::Io { path, .. }) => {
                assert_eq!(path, dir.path().join("test/neg"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            load_aclimdb(dir.path(), 0, 5),
            Err(EnvError::InvalidConfig {
                field: "vocab_size",
                ..
            })
        ));
        assert!(matches!(
            load_aclimdb(dir.path(), 5, 0),
            Err(EnvError::InvalidConfig {
                field: "max_length",
                ..
            })
        ));
    }

    const RT_CSV: &str = "category,text,movie_name,has_plot_and_reviews\n\
        plot,\"A plot, with commas\nand a newline\",m0,True\n\
        fresh,\"Brilliant, \"\"moving\"\" film\",m1,True\n\
        rotten,dull and long,m2,False\n\
        fresh,a brilliant cast,m3,True\n\
        rotten,\"dull, dull, dull\",m4,True\n\
        fresh,moving,m5,False\n\
        rotten,long film,m6,True\n\
        fresh,film of the year,m7,True\n\
        rotten,no,m8,False\n";

    fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn parses_rotten_tomatoes_rows() {
        let docs = parse_rotten_tomatoes(Path::new("rt.csv"), RT_CSV.as_bytes()).unwrap();
        assert_eq!(docs.len(), 8, "the plot row is dropped");
        assert_eq!(docs[0].tokens, strings(&["brilliant", "moving", "film"]));
        assert_eq!(docs[0].label, 1);
        assert_eq!(docs[3].tokens, strings(&["dull", "dull", "dull"]));
        assert_eq!(
            docs.iter().map(|d| d.label).collect::<Vec<_>>(),
            vec![1, 0, 1, 0, 1, 0, 1, 0]
        );
    }

    #[test]
    fn rotten_tomatoes_split_is_seeded_and_stratified() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "rt.csv", RT_CSV.as_bytes());
        let a = load_rotten_tomatoes(&path, 50, 6, 0.25, 11).unwrap();
        let b = load_rotten_tomatoes(&path, 50, 6, 0.25, 11).unwrap();
        assert_eq!(a.train.len(), 6);
        assert_eq!(a.test.len(), 2);
        assert_eq!(
            ids(a.test.labels()).iter().sum::<i64>(),
            1,
            "one test row per class"
        );
        assert!(a.train.inputs().equal(b.train.inputs()));
        assert!(a.test.inputs().equal(b.test.inputs()));
        assert_eq!(a.vocabulary, b.vocabulary);
        assert_eq!(a.train.name(), "rotten-tomatoes/train");
        assert!(a.train.has_lengths() && a.test.has_lengths());
        // Round trip: decoding the training ids gives back the training rows' words.
        let docs = parse_rotten_tomatoes(&path, RT_CSV.as_bytes()).unwrap();
        let rows = ids(a.train.inputs());
        let decoded: Vec<Vec<String>> = rows
            .chunks(6)
            .map(|r| {
                r.iter()
                    .filter(|&&i| i != Vocabulary::PAD)
                    .map(|&i| a.vocabulary.word(i).unwrap().to_string())
                    .collect()
            })
            .collect();
        for words in &decoded {
            assert!(docs.iter().any(|d| &d.tokens == words), "{words:?}");
        }
        // Another seed gives another split (checked over a few seeds).
        let differs = (0..8).any(|s| {
            let c = load_rotten_tomatoes(&path, 50, 6, 0.25, s).unwrap();
            !c.test.inputs().equal(a.test.inputs())
        });
        assert!(differs);
        // Gzip-compressed file reads the same.
        let gz = write(
            dir.path(),
            "rt.csv.gz",
            &crate::data::idx::tests::gzip(RT_CSV.as_bytes()),
        );
        let c = load_rotten_tomatoes(&gz, 50, 6, 0.25, 11).unwrap();
        assert!(c.train.inputs().equal(a.train.inputs()));
    }

    fn rt_error(content: &[u8]) -> (DataError, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bad.csv", content);
        let err = load_rotten_tomatoes(&path, 50, 6, 0.25, 1).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.csv"), "{msg}");
        match err {
            EnvError::Data(d) => (d, msg),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rotten_tomatoes_errors_name_the_row() {
        let header = "category,text,movie_name,has_plot_and_reviews\n";
        let (err, msg) =
            rt_error(format!("{header}fresh,good,m,True\nsplat,bad,m,True\n").as_bytes());
        let row2 = (header.len() + "fresh,good,m,True\n".len()) as u64;
        assert!(
            matches!(err, DataError::Malformed { offset, .. } if offset == row2),
            "{err:?}"
        );
        assert!(
            msg.contains("row 2") && msg.contains("line 3") && msg.contains("splat"),
            "{msg}"
        );

        let (err, msg) =
            rt_error(format!("{header}fresh,good,m,True\nrotten,\"  ...\",m,True\n").as_bytes());
        assert!(matches!(err, DataError::Malformed { .. }));
        assert!(msg.contains("row 2") && msg.contains("empty"), "{msg}");

        let (err, msg) = rt_error(format!("{header}fresh,good,m,True\nrotten,bad\n").as_bytes());
        assert!(matches!(err, DataError::Malformed { .. }));
        assert!(msg.contains("row 2") && msg.contains("2 fields"), "{msg}");

        let (err, msg) = rt_error(b"category,movie_name\nfresh,m\n");
        assert!(matches!(err, DataError::Malformed { offset: 0, .. }));
        assert!(msg.contains("`text`"), "{msg}");

        let mut bytes = format!("{header}fresh,good,m,True\nrotten,ba").into_bytes();
        bytes.extend_from_slice(b"\xff\xfed,m,True\n");
        let (err, msg) = rt_error(&bytes);
        assert!(matches!(err, DataError::Malformed { .. }));
        assert!(msg.contains("row 2") && msg.contains("UTF-8"), "{msg}");

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.csv");
        match load_rotten_tomatoes(&missing, 5, 5, 0.2, 0).unwrap_err() {
            EnvError::Data(DataError::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("{other:?}"),
        }
        let ok = write(dir.path(), "ok.csv", RT_CSV.as_bytes());
        for bad in [0.0, 1.0, f64::NAN, -0.5] {
            assert!(matches!(
                load_rotten_tomatoes(&ok, 5, 5, bad, 0),
                Err(EnvError::InvalidConfig {
                    field: "test_fraction",
                    ..
                })
            ));
        }
    }

    /// Loads the real corpus when it is in the cache (`~/.cache/l2t/data/...`); run with
    /// `cargo test -p l2t-envs --lib -- --ignored real_rotten_tomatoes`.
    #[test]
    #[ignore = "needs the real rotten_tomatoes_corpus_full.csv"]
    fn real_rotten_tomatoes() {
        let Some(home) = std::env::var_os("HOME") else {
            return;
        };
        let path = Path::new(&home)
            .join(".cache/l2t/data/rotten-tomatoes/rotten_tomatoes_corpus_full.csv");
        if !path.is_file() {
            eprintln!("skipped: {} not found", path.display());
            return;
        }
        let start = std::time::Instant::now();
        let task = load_rotten_tomatoes(&path, 10_000, 60, 0.2, 0).unwrap();
        let (train, test) = (task.train.len(), task.test.len());
        eprintln!(
            "train {train}, test {test}, vocabulary {}, {:?}",
            task.vocabulary.len(),
            start.elapsed()
        );
        // 7403 fresh + 5405 rotten rows; the 1097 plot rows are dropped.
        assert_eq!(train + test, 7403 + 5405);
        let positives: i64 = ids(task.train.labels()).iter().sum::<i64>()
            + ids(task.test.labels()).iter().sum::<i64>();
        assert_eq!(positives, 7403);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn tokens_are_lowercase_nonempty_words(text in "\\PC{0,60}") {
            for token in tokenize(&text) {
                prop_assert!(!token.is_empty());
                prop_assert!(!token.starts_with('\'') && !token.ends_with('\''));
                prop_assert!(token.chars().all(|c| c.is_alphanumeric() || c == '\''));
                prop_assert_eq!(token.to_lowercase(), token.clone());
            }
        }

        #[test]
        fn rt_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut csv = b"category,text,movie_name,has_plot_and_reviews\n".to_vec();
            csv.extend(bytes);
            let _ = parse_rotten_tomatoes(Path::new("fuzz.csv"), &csv);
        }
    }
}
