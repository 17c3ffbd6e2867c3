//! C4's line cleaning (`steps/filters/c4.py`, `C4Quality._clean`, datatrove's
//! `C4QualityFilter`) over a batch of texts.

use crate::rules::*;
use crate::text::count_sentences_of;
use crate::{batch, slice, slice_mut};

/// The rows of `assay_c4_lines`'s counts, in `C4Quality`'s order (`_COUNTS`).
const ROWS: usize = 11;

/// Lines about site policies (`POLICY_SUBSTRINGS`), matched against the lower-cased line.
const POLICY: [&[u8]; 6] = [
    b"terms of use",
    b"privacy policy",
    b"cookie policy",
    b"uses cookies",
    b"use of cookies",
    b"use cookies",
];

/// Whether `line` lower-cased mentions lorem ipsum, javascript and a site policy
/// (`POLICY`), in one pass. Only ASCII letters lower-case to ASCII here: a text with a
/// character whose lower case has an ASCII character (`LOWER_ASCII`: U+0130, the Kelvin
/// sign) is left to the reference.
fn mentions(line: &[u32]) -> (bool, bool, bool) {
    let lower = |c: u32| {
        if ('A' as u32..='Z' as u32).contains(&c) {
            c + 32
        } else {
            c
        }
    };
    let at = |i: usize, needle: &[u8]| {
        line.len() - i >= needle.len()
            && line[i..i + needle.len()]
                .iter()
                .zip(needle.iter())
                .all(|(&c, &n)| lower(c) == n as u32)
    };
    let (mut lorem, mut javascript, mut policy) = (false, false, false);
    for (i, &c) in line.iter().enumerate() {
        match lower(c) {
            0x6C => lorem |= at(i, b"lorem ipsum"),     // l
            0x6A => javascript |= at(i, b"javascript"), // j
            0x74 | 0x70 | 0x63 | 0x75 => policy |= POLICY.iter().any(|p| at(i, p)), // t p c u
            _ => {}
        }
    }
    (lorem, javascript, policy)
}

/// `CITATION.sub("", line)`: `[` digits `]`, `[edit]` and `[citation needed]` removed,
/// left to right, into `out`.
fn remove_citations(rules: &Rules, line: &[u32], out: &mut Vec<u32>) {
    out.clear();
    let words: [&[u32]; 2] = [
        &[0x65, 0x64, 0x69, 0x74], // edit
        &[
            0x63, 0x69, 0x74, 0x61, 0x74, 0x69, 0x6F, 0x6E, 0x20, 0x6E, 0x65, 0x65, 0x64, 0x65,
            0x64,
        ], // citation needed
    ];
    let close = ']' as u32;
    let mut i = 0;
    while i < line.len() {
        if line[i] == '[' as u32 {
            let mut j = i + 1;
            while j < line.len() && rules.has(line[j], DECIMAL) {
                j += 1;
            }
            if j < line.len() && line[j] == close {
                i = j + 1;
                continue;
            }
            let rest = &line[i + 1..];
            if let Some(w) = words
                .iter()
                .find(|w| rest.len() > w.len() && rest.starts_with(w) && rest[w.len()] == close)
            {
                i += w.len() + 2;
                continue;
            }
        }
        out.push(line[i]);
        i += 1;
    }
}

/// The settings of `C4QualityParams` that decide which lines are kept.
struct Settings {
    max_word: Option<i64>,
    citations: bool,
    punct: bool,
    min_words: usize, // 0: off
    javascript: bool,
    policy: bool,
}

/// Per text `cp[starts[t]..starts[t + 1]]`: C4's line counts (`ROWS` rows, then texts; the
/// rows of `C4Quality._clean`) and the cleaned text (the kept lines joined by `\n`,
/// stripped), written end to end to `out_cp` with its length in `out_len`. A text the
/// kernel leaves to the reference (it has a character that lower-cases to ASCII) has `todo`
/// set and its outputs unset; the sentences of a line with a chunk that needs the
/// reference rules come from `sentences` (a callback into Python). `settings`:
/// max word length (i64::MIN: none), remove citations, the terminal punctuation rule, the
/// minimum words per line (0: none), the javascript rule, the policy rule.
#[no_mangle]
pub unsafe extern "C" fn assay_c4_lines(
    cp: *const u32,
    text_starts: *const i64,
    n_texts: i64,
    rules: *const Rules<'static>,
    settings: *const i64,
    sentences: Sentences,
    out_counts: *mut i64, // ROWS x n_texts
    out_cp: *mut u32,     // as long as cp: a cleaned text is never longer than its text
    out_len: *mut i64,
    todo: *mut u8,
) {
    let (bounds, cp) = batch(cp, text_starts, n_texts);
    let rules = &*rules;
    let s = slice(settings, 6);
    let settings = Settings {
        max_word: if s[0] == i64::MIN { None } else { Some(s[0]) },
        citations: s[1] != 0,
        punct: s[2] != 0,
        min_words: s[3].max(0) as usize,
        javascript: s[4] != 0,
        policy: s[5] != 0,
    };
    let nt = n_texts as usize;
    let counts = slice_mut(out_counts, ROWS as i64 * n_texts);
    let out = slice_mut(out_cp, cp.len() as i64);
    let out_len = slice_mut(out_len, n_texts);
    let todo = slice_mut(todo, n_texts);
    let mut k = 0usize; // where the next cleaned text goes in `out`
    let mut line_buf: Vec<u32> = Vec::new();
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    for t in 0..nt {
        let text = &cp[bounds[t] as usize..bounds[t + 1] as usize];
        let start = k;
        let row = match clean(
            rules,
            &settings,
            sentences,
            text,
            out,
            &mut k,
            &mut line_buf,
            &mut tokens,
        ) {
            Some(row) => row,
            None => {
                todo[t] = 1;
                k = start;
                continue;
            }
        };
        todo[t] = 0;
        // "\n".join(kept).strip(): the kept lines are stripped already, but a line may be
        // empty or end in spaces once its citations are gone.
        let mut a = start;
        while a < k && rules.has(out[a], SPACE) {
            a += 1;
        }
        while k > a && rules.has(out[k - 1], SPACE) {
            k -= 1;
        }
        out.copy_within(a..k, start);
        k = start + (k - a);
        out_len[t] = (k - start) as i64;
        for (r, value) in row.iter().enumerate() {
            counts[r * nt + t] = *value;
        }
        counts[10 * nt + t] = text.len() as i64 - out_len[t];
    }
}

/// The sentences of a line (code points) by the reference rules.
pub(crate) type Sentences = unsafe extern "C" fn(*const u32, i64) -> i64;

/// One text's line rules (`C4Quality._clean`): its counts but the last (characters
/// removed), the kept lines appended to `out` at `k` joined by `\n`; None for a text with
/// a `LOWER_ASCII` character.
#[allow(clippy::too_many_arguments)]
fn clean(
    rules: &Rules,
    settings: &Settings,
    reference: Sentences,
    text: &[u32],
    out: &mut [u32],
    k: &mut usize,
    line_buf: &mut Vec<u32>,
    tokens: &mut Vec<(usize, usize)>,
) -> Option<[i64; 10]> {
    let is_space = |c: u32| rules.has(c, SPACE);
    let (mut lines, mut kept, mut long_word, mut punct, mut few) = (0i64, 0i64, 0i64, 0i64, 0i64);
    let (mut javascript, mut policy, mut sentences) = (0i64, 0i64, 0i64);
    let (mut lorem_line, mut curly_line) = (-1i64, -1i64);
    let mut i = 0usize;
    while i < text.len() {
        // str.splitlines
        let raw_start = i;
        while i < text.len() {
            let c = text[i];
            if c < 0x80 {
                if matches!(c, 0x0A..=0x0D | 0x1C..=0x1E) {
                    break;
                }
            } else if matches!(c, 0x85 | 0x2028 | 0x2029) {
                break;
            } else if rules.has(c, LOWER_ASCII) {
                return None;
            }
            i += 1;
        }
        let raw = &text[raw_start..i];
        if i < text.len() {
            i += if text[i] == 0x0D && i + 1 < text.len() && text[i + 1] == 0x0A {
                2
            } else {
                1
            };
        }
        let index = lines;
        lines += 1;
        // strip
        let a = raw.iter().position(|&c| !is_space(c)).unwrap_or(raw.len());
        let b = raw.iter().rposition(|&c| !is_space(c)).map_or(a, |p| p + 1);
        let stripped = &raw[a..b];
        if let Some(max_word) = settings.max_word {
            if stripped.len() as i64 > max_word
                && stripped
                    .split(|&c| is_space(c))
                    .filter(|w| !w.is_empty())
                    .any(|w| w.len() as i64 > max_word)
            {
                long_word += 1;
                continue;
            }
        }
        let line: &[u32] = if settings.citations && stripped.contains(&('[' as u32)) {
            remove_citations(rules, stripped, line_buf);
            line_buf
        } else {
            stripped
        };
        if settings.punct {
            let n = line.len();
            let ends = n > 0 && ".?!\"'".chars().any(|p| line[n - 1] == p as u32);
            let ellipsis = n >= 3 && line[n - 3..].iter().all(|&c| c == DOT);
            if !ends || ellipsis {
                punct += 1;
                continue;
            }
        }
        if settings.min_words > 0 {
            // words of the stripped line before its citations went, as datatrove counts
            let words = stripped
                .split(|&c| is_space(c))
                .filter(|w| !w.is_empty())
                .take(settings.min_words)
                .count();
            if words < settings.min_words {
                few += 1;
                continue;
            }
        }
        let (lorem, javascript_line, policy_line) = mentions(line);
        if lorem_line < 0 && lorem {
            lorem_line = index;
        }
        if settings.javascript && javascript_line {
            javascript += 1;
            continue;
        }
        if curly_line < 0 && line.contains(&('{' as u32)) {
            curly_line = index;
        }
        if settings.policy && policy_line {
            policy += 1;
            continue;
        }
        let found = count_sentences_of(rules, line, tokens);
        sentences += if found >= 0 {
            found
        } else {
            // SAFETY: the callback reads `len` code points from the pointer.
            unsafe { reference(line.as_ptr(), line.len() as i64) }
        };
        if kept > 0 {
            out[*k] = '\n' as u32;
            *k += 1;
        }
        out[*k..*k + line.len()].copy_from_slice(line);
        *k += line.len();
        kept += 1;
    }
    Some([
        lines, kept, long_word, punct, few, javascript, policy, sentences, lorem_line, curly_line,
    ])
}
