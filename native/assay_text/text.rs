//! Entry points over the texts of a batch: words, their attributes, sentences, lines.

use crate::rules::*;
use crate::{batch, slice, slice_mut};

/// Split the documents `cp[doc_starts[d]..doc_starts[d + 1]]` into words: one entry per
/// word (its start in `cp` and length) or per complex chunk (`complex` = 1, the whole
/// chunk). `doc_entries[d]` receives the number of entries of document d. Returns the
/// number of entries, or -1 when more than `cap` would be needed (`cap` = the number of
/// code points always suffices).
#[no_mangle]
pub unsafe extern "C" fn assay_split_words(
    cp: *const u32,
    doc_starts: *const i64,
    n_docs: i64,
    rules: *const Rules<'static>,
    out_start: *mut i64,
    out_len: *mut i32,
    out_complex: *mut u8,
    cap: i64,
    doc_entries: *mut i64,
) -> i64 {
    let (bounds, cp) = batch(cp, doc_starts, n_docs);
    let rules = &*rules;
    let starts = slice_mut(out_start, cap);
    let lens = slice_mut(out_len, cap);
    let complex = slice_mut(out_complex, cap);
    let counts = slice_mut(doc_entries, n_docs);
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    let mut k = 0usize;
    for d in 0..n_docs as usize {
        let (lo, hi) = (bounds[d] as usize, bounds[d + 1] as usize);
        let before = k;
        let mut i = lo;
        while i < hi {
            i += cp[i..hi]
                .iter()
                .position(|&c| !rules.is_space(c))
                .unwrap_or(hi - i);
            if i == hi {
                break;
            }
            let start = i;
            i += cp[i..hi]
                .iter()
                .position(|&c| rules.is_space(c))
                .unwrap_or(hi - i);
            let chunk = &cp[start..i];
            if k + chunk.len() > starts.len() {
                return -1;
            }
            if rules.split(chunk, &mut tokens) {
                for &(a, l) in tokens.iter() {
                    starts[k] = (start + a) as i64;
                    lens[k] = l as i32;
                    complex[k] = 0;
                    k += 1;
                }
            } else {
                starts[k] = start as i64;
                lens[k] = chunk.len() as i32;
                complex[k] = 1;
                k += 1;
            }
        }
        counts[d] = (k - before) as i64;
    }
    k as i64
}

/// Per word (start in `cp`, length): whether it is a symbol word (every character in the
/// punctuation set), whether it contains a letter, and its two polynomial hashes without
/// (`h`) and with (`hs`) a following space.
#[no_mangle]
pub unsafe extern "C" fn assay_word_attributes(
    cp: *const u32,
    n_cp: i64,
    rules: *const Rules<'static>,
    starts: *const i64,
    lens: *const i32,
    n_words: i64,
    out_symbol: *mut u8,
    out_alpha: *mut u8,
    out_h: *mut i32,  // 2 x n_words: prime 0, then prime 1
    out_hs: *mut i32, // 2 x n_words
) {
    let cp = slice(cp, n_cp);
    let rules = &*rules;
    let starts = slice(starts, n_words);
    let lens = slice(lens, n_words);
    let symbol = slice_mut(out_symbol, n_words);
    let alpha = slice_mut(out_alpha, n_words);
    let h = slice_mut(out_h, 2 * n_words);
    let hs = slice_mut(out_hs, 2 * n_words);
    let n = n_words as usize;
    // B**j for the characters of a short word: a term (code point + 1) * B**j is below
    // 2**21 * 2**31, so a word of up to SHORT characters sums without overflow and is
    // reduced once; longer words take the running power.
    const SHORT: usize = 64;
    let mut powers = [[1u64; SHORT + 1]; 2];
    for k in 0..2 {
        for j in 1..=SHORT {
            powers[k][j] = powers[k][j - 1] * B[k] % P[k];
        }
    }
    for w in 0..n {
        let word = &cp[starts[w] as usize..starts[w] as usize + lens[w] as usize];
        let mut all_punct = true;
        let mut any_alpha = false;
        let mut acc = [0u64; 2];
        let mut power = [1u64; 2]; // B**len(word)
        if word.len() <= SHORT {
            for (j, &c) in word.iter().enumerate() {
                let f = rules.flag(c);
                all_punct &= f & PUNCT != 0;
                any_alpha |= f & ALPHA != 0;
                acc[0] += (c as u64 + 1) * powers[0][j];
                acc[1] += (c as u64 + 1) * powers[1][j];
            }
            for k in 0..2 {
                acc[k] %= P[k];
                power[k] = powers[k][word.len()];
            }
        } else {
            for &c in word {
                let f = rules.flag(c);
                all_punct &= f & PUNCT != 0;
                any_alpha |= f & ALPHA != 0;
                for k in 0..2 {
                    acc[k] = (acc[k] + (c as u64 + 1) * power[k]) % P[k];
                    power[k] = power[k] * B[k] % P[k];
                }
            }
        }
        symbol[w] = all_punct as u8;
        alpha[w] = any_alpha as u8;
        for k in 0..2 {
            h[k * n + w] = acc[k] as i32;
            hs[k * n + w] = ((acc[k] + 33 * power[k]) % P[k]) as i32;
        }
    }
}

/// Sentences spaCy's rule-based sentencizer finds in each text `cp[starts[t]..starts[t + 1]]`
/// (`spacy_words.WordSplitter.count_sentences`), or -1 for a text with a chunk the
/// reference rules must split.
#[no_mangle]
pub unsafe extern "C" fn assay_count_sentences(
    cp: *const u32,
    text_starts: *const i64,
    n_texts: i64,
    rules: *const Rules<'static>,
    out: *mut i64,
) {
    let (bounds, cp) = batch(cp, text_starts, n_texts);
    let rules = &*rules;
    let out = slice_mut(out, n_texts);
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    for t in 0..n_texts as usize {
        let text = &cp[bounds[t] as usize..bounds[t + 1] as usize];
        out[t] = count_sentences_of(rules, text, &mut tokens);
    }
}

/// The sentences of one text (see `assay_count_sentences`), or -1 when a chunk needs the
/// reference rules; `tokens` is scratch space.
pub(crate) fn count_sentences_of(
    rules: &Rules,
    text: &[u32],
    tokens: &mut Vec<(usize, usize)>,
) -> i64 {
    let is_space = |c: u32| rules.has(c, SPACE);
    // A token of one sentence-final character, and a token made only of punctuation (P*).
    let final_token = |t: &[u32]| t.len() == 1 && rules.has(t[0], FINAL);
    let punct_token = |t: &[u32]| t.iter().all(|&c| rules.has(c, P_CATEGORY));
    if text.is_empty() {
        return 0;
    }
    match text.iter().position(|&c| rules.has(c, FINAL)) {
        None => return 1,
        Some(f) if punct_token(&text[f..]) => return 1,
        _ => {}
    }
    let mut starts = 0i64;
    let mut seen_final = false;
    let mut i = 0usize;
    let n = text.len();
    while i < n {
        while i < n && is_space(text[i]) {
            i += 1;
        }
        if i == n {
            break; // only whitespace left: the previous gap had it
        }
        let chunk_start = i;
        while i < n && !is_space(text[i]) {
            i += 1;
        }
        let chunk = &text[chunk_start..i];
        if !rules.split(chunk, tokens) {
            return -1;
        }
        for &(a, l) in tokens.iter() {
            let token = &chunk[a..a + l];
            let fin = final_token(token);
            if seen_final && !fin && !punct_token(token) {
                starts += 1;
                seen_final = false;
            } else if fin {
                seen_final = true;
            }
        }
        let gap_start = i;
        while i < n && is_space(text[i]) {
            i += 1;
        }
        let gap = &text[gap_start..i];
        if seen_final && !gap.is_empty() && (gap[0] != ' ' as u32 || gap.len() > 1) {
            starts += 1;
            seen_final = false;
        }
    }
    1 + starts
}

/// Per text `cp[starts[t]..starts[t + 1]]`, as Gopher's quality rules count its lines
/// (Python's `str.splitlines`: `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`-`\x1e`, U+0085,
/// U+2028 and U+2029 end a line): the lines, those that start with a bullet (`•` or `-`)
/// after whitespace, and those that end with an ellipsis (`...` or `…`) before whitespace.
#[no_mangle]
pub unsafe extern "C" fn assay_line_marks(
    cp: *const u32,
    text_starts: *const i64,
    n_texts: i64,
    rules: *const Rules<'static>,
    out_lines: *mut i64,
    out_bullets: *mut i64,
    out_ellipses: *mut i64,
) {
    let (bounds, cp) = batch(cp, text_starts, n_texts);
    let rules = &*rules;
    let lines = slice_mut(out_lines, n_texts);
    let bullets = slice_mut(out_bullets, n_texts);
    let ellipses = slice_mut(out_ellipses, n_texts);
    let is_break = |c: u32| matches!(c, 0x0A..=0x0D | 0x1C..=0x1E | 0x85 | 0x2028 | 0x2029);
    for t in 0..n_texts as usize {
        let text = &cp[bounds[t] as usize..bounds[t + 1] as usize];
        let (mut n, mut b, mut e) = (0i64, 0i64, 0i64);
        let mut i = 0usize;
        while i < text.len() {
            let start = i;
            while i < text.len() && !is_break(text[i]) {
                i += 1;
            }
            let line = &text[start..i];
            if i < text.len() {
                i += if text[i] == 0x0D && i + 1 < text.len() && text[i + 1] == 0x0A {
                    2
                } else {
                    1
                };
            }
            n += 1;
            let first = line.iter().position(|&c| !rules.has(c, SPACE));
            if let Some(f) = first {
                if line[f] == 0x2022 || line[f] == '-' as u32 {
                    b += 1;
                }
                let last = line.iter().rposition(|&c| !rules.has(c, SPACE)).unwrap();
                let dots = last >= 2 && line[last - 2..=last].iter().all(|&c| c == DOT);
                if line[last] == 0x2026 || dots {
                    e += 1;
                }
            }
        }
        lines[t] = n;
        bullets[t] = b;
        ellipses[t] = e;
    }
}
