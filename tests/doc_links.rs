//! Every relative link in the user docs and the studies resolves: the link targets of
//! README.md, docs/**/*.md and studies/**/*.md (inline links and images,
//! `[text](target)` and `![alt](target)`, reference definitions `[label]: target`, and
//! `<img src="target">`) name a file or folder that exists, relative to the page that
//! holds them (or to the repository root for a target starting with `/`). External links
//! (`http://`, `https://`, `mailto:`) and links to an anchor of the same page are not
//! checked; a `#anchor` or `?query` after a path is stripped. Fenced code blocks and code
//! spans hold no links. Only std: a small hand parser, not a Markdown crate.

use std::fs;
use std::path::{Path, PathBuf};

/// The Markdown files the check reads, in a stable order: README.md, then every `.md`
/// under docs/ and studies/.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    for top in ["docs", "studies"] {
        walk(&root.join(top), &mut files);
    }
    files
}

/// Appends the `.md` files under `dir` (recursively, sorted by path) to `out`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// `text` with its fenced code blocks (``` or ~~~) blanked, line breaks kept, so that a
/// link's text may run over lines but nothing inside a block is read as a link.
fn without_code_blocks(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    // The open fence: its character and length.
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|&c| c == '`' || c == '~');
        let run = marker.map_or(0, |c| trimmed.chars().take_while(|&x| x == c).count());
        match fence {
            None if run >= 3 => fence = marker.map(|c| (c, run)),
            None => {
                kept.push_str(line);
                continue;
            }
            Some((c, n)) => {
                let closes = marker == Some(c) && run >= n && trimmed[run..].trim().is_empty();
                if closes {
                    fence = None;
                }
            }
        }
        if line.ends_with('\n') {
            kept.push('\n');
        }
    }
    kept
}

/// The index just past the `]` that closes the `[` at `open`, within one paragraph
/// (no blank line between), counting nested brackets and skipping escaped ones.
fn closing_bracket(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'\n' if bytes.get(i + 1) == Some(&b'\n') => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The target of the link destination that starts at `start` (just past the `(`):
/// `<target>`, or the text up to whitespace or the `)` that balances the opening one;
/// a title after the target is left out.
fn destination(text: &str, start: usize) -> Option<String> {
    let rest = text[start..].trim_start_matches([' ', '\t']);
    if let Some(inner) = rest.strip_prefix('<') {
        return inner.find('>').map(|end| inner[..end].to_string());
    }
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(rest[..i].to_string()),
            ')' => depth -= 1,
            c if c.is_whitespace() => return Some(rest[..i].to_string()),
            _ => {}
        }
    }
    None
}

/// The `src` values of the `<img ...>` tags in `text`.
fn img_sources(text: &str, out: &mut Vec<String>) {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<img") {
        let tag_start = from + at;
        let tag_end = lower[tag_start..]
            .find('>')
            .map_or(lower.len(), |e| tag_start + e);
        let tag = &lower[tag_start..tag_end];
        if let Some(src) = tag.find("src=") {
            let value_start = tag_start + src + "src=".len();
            let value = &text[value_start..tag_end];
            let target = match value.chars().next() {
                Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
                _ => value
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('/'),
            };
            out.push(target.to_string());
        }
        from = tag_end;
    }
}

/// Every link target of the Markdown `text`, in order of appearance.
fn link_targets(text: &str) -> Vec<String> {
    let text = without_code_blocks(text);
    let bytes = text.as_bytes();
    let mut targets = Vec::new();
    // The text outside code spans, for the `<img>` tags.
    let mut prose = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                // An escaped character is text, whatever it is.
                let width = 1 + text[i + 1..].chars().next().map_or(0, char::len_utf8);
                prose.push_str(&text[i..i + width]);
                i += width;
                continue;
            }
            b'`' => {
                // A code span: a run of n backticks up to the next run of exactly n.
                let n = bytes[i..].iter().take_while(|&&b| b == b'`').count();
                let fence = "`".repeat(n);
                let mut search = i + n;
                let mut end = None;
                while let Some(at) = text[search..].find(&fence) {
                    let at = search + at;
                    let run = bytes[at..].iter().take_while(|&&b| b == b'`').count();
                    if run == n {
                        end = Some(at + n);
                        break;
                    }
                    search = at + run;
                }
                match end {
                    Some(end) => i = end,
                    None => {
                        prose.push_str(&fence);
                        i += n;
                    }
                }
                continue;
            }
            b'[' => {
                if let Some(close) = closing_bracket(bytes, i) {
                    let at_line_start = text[..i]
                        .rsplit('\n')
                        .next()
                        .is_some_and(|before| before.len() < 4 && before.trim().is_empty());
                    if bytes.get(close) == Some(&b'(') {
                        targets.extend(destination(&text, close + 1));
                    } else if at_line_start && bytes.get(close) == Some(&b':') {
                        // A reference definition: `[label]: target`.
                        let rest = text[close + 1..].trim_start_matches([' ', '\t']);
                        let target = rest.split_whitespace().next().unwrap_or("");
                        let target = target.trim_start_matches('<').trim_end_matches('>');
                        targets.push(target.to_string());
                    }
                }
            }
            _ => {}
        }
        let width = text[i..].chars().next().map_or(1, char::len_utf8);
        prose.push_str(&text[i..i + width]);
        i += width;
    }
    img_sources(&prose, &mut targets);
    targets
}

/// The path part of `target` to look for on disk: None for an external link or a link
/// to an anchor of the same page.
fn local_path(target: &str) -> Option<&str> {
    let lower = target.to_ascii_lowercase();
    if ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
        || target.starts_with('#')
    {
        return None;
    }
    let end = target.find(['#', '?']).unwrap_or(target.len());
    Some(&target[..end])
}

/// `file: target` for every link of the docs under `root` that names nothing on disk,
/// `file` relative to `root`.
fn broken_links(root: &Path) -> Vec<String> {
    let mut broken = Vec::new();
    for file in markdown_files(root) {
        let text = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let dir = file.parent().expect("a file has a folder");
        for target in link_targets(&text) {
            let Some(path) = local_path(&target) else {
                continue;
            };
            let resolved = match path.strip_prefix('/') {
                Some(from_root) => root.join(from_root),
                None => dir.join(path),
            };
            if path.is_empty() || !resolved.exists() {
                let name = file.strip_prefix(root).unwrap_or(&file);
                let name = name.to_string_lossy().replace('\\', "/");
                broken.push(format!("{name}: {target}"));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checked = markdown_files(root);
    assert!(
        checked.len() > 10,
        "expected README.md and the pages of docs/ and studies/, found {checked:?}"
    );
    let broken = broken_links(root);
    assert!(
        broken.is_empty(),
        "{} broken relative link(s) in README.md, docs/ or studies/ (file: target):\n  {}",
        broken.len(),
        broken.join("\n  ")
    );
}

#[test]
fn the_check_finds_links_and_reports_each_broken_one() {
    let root = std::env::temp_dir().join(format!("l2t-doc-links-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("docs/figures")).unwrap();
    fs::create_dir_all(root.join("studies/one")).unwrap();
    fs::write(root.join("docs/figures/plot.png"), b"").unwrap();
    fs::write(
        root.join("studies/one/README.md"),
        "[up](../../README.md#top)\n",
    )
    .unwrap();
    let readme = "\
# Title

[a page](docs/page.md), [a folder](studies/one/), [an anchor](#title), [external](https://example.invalid/x),
[mail](mailto:someone@example.invalid) and ![a figure](docs/figures/plot.png \"its title\").
[link text over
two lines](docs/missing.md#section) and [nested [brackets]](<studies/one/README.md>).
`[code span](docs/not-a-link.md)` and \\[escaped](docs/not-a-link-either.md).

```sh
echo [not](docs/in-a-fence.md)
```

<img src=\"docs/figures/gone.png\" alt=\"gone\">
[ref]: docs/figures/plot.png
[bad ref]: docs/nowhere/
";
    fs::write(root.join("README.md"), readme).unwrap();
    fs::write(
        root.join("docs/page.md"),
        "[home](../README.md), [study](/studies/one), [a typo](../studies/two/README.md)\n",
    )
    .unwrap();

    let targets = link_targets(readme);
    assert_eq!(
        targets,
        [
            "docs/page.md",
            "studies/one/",
            "#title",
            "https://example.invalid/x",
            "mailto:someone@example.invalid",
            "docs/figures/plot.png",
            "docs/missing.md#section",
            "studies/one/README.md",
            "docs/figures/plot.png",
            "docs/nowhere/",
            "docs/figures/gone.png",
        ]
    );
    let broken = broken_links(&root);
    fs::remove_dir_all(&root).unwrap();
    assert_eq!(
        broken,
        [
            "README.md: docs/missing.md#section",
            "README.md: docs/nowhere/",
            "README.md: docs/figures/gone.png",
            "docs/page.md: ../studies/two/README.md",
        ]
    );
}
