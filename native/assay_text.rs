//! assay's compiled text kernel: spaCy-exact English words and Gopher's n-gram repetition
//! statistics over a batch of documents, for `assay.text.kernel` (loaded with ctypes).
//!
//! The pure-Python modules (`assay/text/spacy_words.py`, `spacy_rules.py`,
//! `steps/filters/gopher_repetition.py`) are the reference; this file computes the same
//! numbers faster and without a memo of every chunk seen. Words are split here only when a
//! chunk takes the tokenizer's shortcut (letters or digits with at most one affix character
//! on either side, `spacy_rules._split_simple`); every other chunk is marked "complex" and
//! split by the Python rules. Whenever a check here is not certain (a hash that matches an
//! exception, a merge pair or a unit), the chunk is complex: a hash collision can only send
//! a chunk to the reference path, never change a word.
//!
//! No dependencies (no crates registry is needed to build it): `rustc -O --crate-type
//! cdylib`. Written for Rust 1.63 (Debian 12's rustc).

// Character classes, one bit each, in the table the Python side builds (`kernel.py`).
const SPACE: u32 = 1; // str.isspace: what str.split() splits on
const ALNUM: u32 = 2; // str.isalnum
const ALPHA: u32 = 4; // str.isalpha
const PREFIX: u32 = 8; // a one-character prefix of spaCy's English rules
const SUFFIX: u32 = 16; // a one-character suffix
const DOT_FOLLOWS: u32 = 32; // a "." after this character is a suffix
const UPPER: u32 = 64; // spaCy's ALPHA_UPPER
const PUNCT: u32 = 128; // datatrove's PUNCTUATION_SET (a word of these is a symbol)
const S_ALPHA: u32 = 256; // spaCy's ALPHA
const S_LOWER: u32 = 512; // spaCy's ALPHA_LOWER
const QUOTE: u32 = 1024; // spaCy's quotes
const ICON: u32 = 2048; // spaCy's icons (other symbols)
const INFIX: u32 = 4096; // a character an infix starts with
const PAIR_END: u32 = 8192; // the last character of the first token of a merge pair
const PAIR_START: u32 = 16384; // the first character of the second token of a merge pair
const FINAL: u32 = 32768; // spaCy's sentence-final punctuation (the sentencizer's)
const P_CATEGORY: u32 = 1 << 16; // Unicode category P* (spaCy's is_punct)

// Polynomial word hashes, as `assay/text/ngram_hashes.py`: two primes below 2**31, base
// 2**32 mod p, each character counted as its code point plus one.
const P: [u64; 2] = [1610612741, 1879048201];
const B: [u64; 2] = [(1u64 << 32) % P[0], (1u64 << 32) % P[1]];

/// FNV-1a over code points: the key of a string in the exception, pair and unit sets (the
/// Python side hashes the same way). `seed` continues a hash (for pairs).
fn fnv(s: &[u32], seed: u64) -> u64 {
    let mut h = seed;
    for &c in s {
        h ^= c as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

const FNV_START: u64 = 0xcbf29ce484222325;
const PAIR_SEPARATOR: u32 = 0xFFFF_FFFF;

fn pair_hash(a: &[u32], b: &[u32]) -> u64 {
    fnv(b, fnv(&[PAIR_SEPARATOR], fnv(a, FNV_START)))
}

/// A set of strings (code points), looked up by FNV-1a hash and then compared, so that a
/// look-up is exact. Entry i (in hash order): `info[4i..4i+4]` = (offset in `chars`,
/// length, offset in `tokens`, number of tokens); `tokens` are token lengths (exceptions).
struct StringSet<'a> {
    max_len: usize,
    bloom: Vec<u64>, // 2**16 bits, one per (length, first, last character) bucket in use
    hashes: &'a [u64],
    info: &'a [i64],
    chars: &'a [u32],
    tokens: &'a [i64],
}

/// The bloom-filter bit of a string: a cheap mix of its length and end characters.
fn bloom_bit(s: &[u32]) -> usize {
    let key = (s.len() as u64) ^ ((s[0] as u64) << 8) ^ ((s[s.len() - 1] as u64) << 29);
    (key.wrapping_mul(0x9E3779B97F4A7C15) >> 48) as usize
}

impl<'a> StringSet<'a> {
    fn find(&self, s: &[u32]) -> Option<usize> {
        if s.is_empty() || s.len() > self.max_len {
            return None;
        }
        let b = bloom_bit(s);
        if self.bloom[b >> 6] & (1 << (b & 63)) == 0 {
            return None;
        }
        let i = self.hashes.binary_search(&fnv(s, FNV_START)).ok()?;
        let (off, len) = (self.info[4 * i] as usize, self.info[4 * i + 1] as usize);
        if &self.chars[off..off + len] == s {
            Some(i)
        } else {
            None
        }
    }

    fn contains(&self, s: &[u32]) -> bool {
        self.find(s).is_some()
    }

    /// Token lengths of entry i.
    fn tokens(&self, i: usize) -> &[i64] {
        let (off, n) = (self.info[4 * i + 2] as usize, self.info[4 * i + 3] as usize);
        &self.tokens[off..off + n]
    }
}

pub struct Rules<'a> {
    flags: &'a [u32],
    exceptions: StringSet<'a>, // the tokenizer exceptions, with their tokens
    units: StringSet<'a>,      // units, currencies and "+" (a suffix after a digit)
    units_max: usize,
    pairs: &'a [u64],    // sorted hashes of the token pairs that start a merge
    url_match: UrlMatch, // spaCy's URL_MATCH, from the Python side
}

/// A callback answering whether a string (code points) is a URL by spaCy's URL_MATCH
/// pattern; it runs only on the rare strings that have what a URL needs.
type UrlMatch = Option<unsafe extern "C" fn(*const u32, i64) -> i32>;

const DOT: u32 = '.' as u32;

fn is_digit(c: u32) -> bool {
    ('0' as u32..='9' as u32).contains(&c)
}

impl<'a> Rules<'a> {
    fn flag(&self, c: u32) -> u32 {
        if (c as usize) < self.flags.len() {
            self.flags[c as usize]
        } else {
            0
        }
    }

    fn has(&self, c: u32, bits: u32) -> bool {
        self.flag(c) & bits != 0
    }

    fn all(&self, s: &[u32], bit: u32) -> bool {
        !s.is_empty() && s.iter().all(|&c| self.flag(c) & bit != 0)
    }

    /// `spacy_rules._find_prefix`.
    fn find_prefix(&self, s: &[u32]) -> usize {
        let first = s[0];
        if self.has(first, PREFIX) {
            return 1;
        }
        if first == DOT {
            let dots = s.iter().take_while(|&&c| c == DOT).count();
            return if dots > 1 { dots } else { 0 };
        }
        if first == '+' as u32 {
            return if s.len() > 1 && is_digit(s[1]) { 0 } else { 1 };
        }
        let dollar = '$' as u32;
        if s.len() >= 3 && first == 'U' as u32 && s[1] == 'S' as u32 && s[2] == dollar {
            return 3;
        }
        if s.len() >= 2 && (first == 'C' as u32 || first == 'A' as u32) && s[1] == dollar {
            return 2;
        }
        0
    }

    /// `spacy_rules._find_suffix`.
    fn find_suffix(&self, s: &[u32]) -> usize {
        let n = s.len();
        if n == 0 {
            return 0;
        }
        let last = s[n - 1];
        if last == DOT {
            let dots = s.iter().rev().take_while(|&&c| c == DOT).count();
            if dots > 1 {
                return dots;
            }
            if n > 1 && self.has(s[n - 2], DOT_FOLLOWS) {
                return 1;
            }
            if n > 2 {
                let two_upper = self.has(s[n - 3], UPPER) && self.has(s[n - 2], UPPER);
                let degrees = s[n - 3] == 0xB0 && "FfCcKk".chars().any(|u| u as u32 == s[n - 2]);
                if two_upper || degrees {
                    return 1;
                }
            }
            return 0;
        }
        let mut best = if self.has(last, SUFFIX) { 1 } else { 0 };
        if n > 1 {
            let (a, b) = (s[n - 2], s[n - 1]);
            let apostrophe = a == '\'' as u32 || a == 0x2019;
            if (apostrophe && (b == 's' as u32 || b == 'S' as u32)) || (a == 0x2026 && b == 0x2026)
            {
                best = 2;
            }
        }
        // A unit, currency or "+" right after an ASCII digit near the end, leftmost first.
        let lo = n.saturating_sub(self.units_max + 1);
        for at in lo..n - 1 {
            if !is_digit(s[at]) {
                continue;
            }
            if n - at - 1 <= best {
                break;
            }
            if self.units.contains(&s[at + 1..]) {
                return n - at - 1;
            }
        }
        best
    }

    /// `spacy_rules._plain`: letters, or letters and digits with no suffix.
    fn plain(&self, s: &[u32]) -> bool {
        self.all(s, ALPHA) || (self.all(s, ALNUM) && self.find_suffix(s) == 0)
    }

    /// `spacy_rules._split_simple` as (prefix, suffix) lengths around one core word, when
    /// it applies and the core is not an exception that splits; None otherwise.
    fn shortcut(&self, s: &[u32]) -> Option<(usize, usize)> {
        let n = s.len();
        if n >= 3 && !self.all(&s[1..n - 1], ALNUM) {
            return None;
        }
        let (pre, suf) = if self.all(s, ALNUM) {
            if !self.plain(s) {
                return None;
            }
            (0, 0)
        } else {
            if n < 2 || self.find_prefix(s) > 1 {
                return None;
            }
            let prefix = self.has(s[0], PREFIX);
            if prefix && self.plain(&s[1..]) {
                (1, 0)
            } else if self.find_suffix(s) != 1 {
                return None;
            } else if self.plain(&s[..n - 1]) {
                (0, 1)
            } else if n > 2 && prefix && self.plain(&s[1..n - 1]) {
                if self.exceptions.contains(&s[1..]) || self.exceptions.contains(&s[..n - 1]) {
                    return None;
                }
                (1, 1)
            } else {
                return None;
            }
        };
        match self.exceptions.find(&s[pre..n - suf]) {
            Some(e) if self.exceptions.tokens(e).len() > 1 => None,
            _ => Some((pre, suf)),
        }
    }

    /// `spacy_rules.split_chunk`: the tokens of a chunk as (start, length) pairs in `out`;
    /// false when the reference rules must decide (a merge of exceptions that the affix
    /// rules split, or a possible URL without the callback).
    fn split(&self, s: &[u32], out: &mut Vec<(usize, usize)>) -> bool {
        out.clear();
        let n = s.len();
        if let Some(e) = self.exceptions.find(s) {
            let mut at = 0;
            for &l in self.exceptions.tokens(e) {
                out.push((at, l as usize));
                at += l as usize;
            }
            return true;
        }
        if n == 1 {
            out.push((0, 1));
            return true;
        }
        if let Some((pre, suf)) = self.shortcut(s) {
            for &(a, l) in [(0, pre), (pre, n - pre - suf), (n - suf, suf)].iter() {
                if l > 0 {
                    out.push((a, l));
                }
            }
        } else if !self.affixes(s, out) {
            return false;
        }
        // spaCy re-merges exceptions that the affix rules split: leave those to the rules.
        for w in out.windows(2) {
            let (a, b) = (&s[w[0].0..w[0].0 + w[0].1], &s[w[1].0..w[1].0 + w[1].1]);
            if self.has(a[a.len() - 1], PAIR_END)
                && self.has(b[0], PAIR_START)
                && self.pairs.binary_search(&pair_hash(a, b)).is_ok()
            {
                return false;
            }
        }
        true
    }

    /// `spacy_rules._split_chunk`: peel prefixes and suffixes, then split infixes.
    fn affixes(&self, chunk: &[u32], out: &mut Vec<(usize, usize)>) -> bool {
        let (mut lo, mut hi) = (0usize, chunk.len());
        let mut suffixes: Vec<(usize, usize)> = Vec::new();
        let mut last_size = 0usize;
        while hi > lo && hi - lo != last_size {
            let string = &chunk[lo..hi];
            if self.exceptions.contains(string) {
                break;
            }
            last_size = hi - lo;
            let pre_len = self.find_prefix(string);
            if pre_len > 0 && hi - lo > pre_len && self.exceptions.contains(&string[pre_len..]) {
                out.push((lo, pre_len));
                lo += pre_len;
                break;
            }
            let suf_len = self.find_suffix(&string[pre_len..]);
            if suf_len > 0
                && hi - lo > suf_len
                && self.exceptions.contains(&string[..hi - lo - suf_len])
            {
                suffixes.push((hi - suf_len, suf_len));
                hi -= suf_len;
                break;
            }
            if pre_len > 0 && suf_len > 0 && pre_len + suf_len <= hi - lo {
                out.push((lo, pre_len));
                suffixes.push((hi - suf_len, suf_len));
                lo += pre_len;
                hi -= suf_len;
            } else if pre_len > 0 {
                out.push((lo, pre_len));
                lo += pre_len;
            } else if suf_len > 0 {
                suffixes.push((hi - suf_len, suf_len));
                hi -= suf_len;
            }
        }
        if hi > lo {
            let string = &chunk[lo..hi];
            if let Some(e) = self.exceptions.find(string) {
                let mut at = lo;
                for &l in self.exceptions.tokens(e) {
                    out.push((at, l as usize));
                    at += l as usize;
                }
            } else if !string.iter().any(|&c| self.has(c, INFIX | ICON)) {
                out.push((lo, hi - lo));
            } else if !self.url_possible(string) {
                self.infixes(string, lo, out);
            } else {
                match self.url_match {
                    // SAFETY: the callback reads `len` code points from the pointer.
                    Some(is_url)
                        if unsafe { is_url(string.as_ptr(), string.len() as i64) } != 0 =>
                    {
                        out.push((lo, hi - lo));
                    }
                    Some(_) => self.infixes(string, lo, out),
                    None => return false,
                }
            }
        }
        out.extend(suffixes.iter().rev());
        true
    }

    /// Whether `s` may match spaCy's URL_MATCH: it needs `\.[lower]{2}` or
    /// `[0-9]\.[0-9]` somewhere and, unless it has a path (`/`, `?`, `#`) or a port
    /// (`:`), it must end the way a host does: two lower-case letters (a top-level domain)
    /// or a digit after at least three dots (an IPv4 address).
    fn url_possible(&self, s: &[u32]) -> bool {
        let n = s.len();
        let delimited = s.iter().any(|&c| "/?#:".chars().any(|x| x as u32 == c));
        let tld = n >= 2 && self.has(s[n - 1], S_LOWER) && self.has(s[n - 2], S_LOWER);
        let ip = n >= 1 && is_digit(s[n - 1]) && s.iter().filter(|&&c| c == DOT).count() >= 3;
        if !(delimited || tld || ip) {
            return false;
        }
        (0..s.len()).any(|i| {
            s[i] == DOT
                && ((i + 2 < s.len() && self.has(s[i + 1], S_LOWER) && self.has(s[i + 2], S_LOWER))
                    || (i > 0 && i + 1 < s.len() && is_digit(s[i - 1]) && is_digit(s[i + 1])))
        })
    }

    /// Length of the infix match at `i` of `s` (spaCy's English infix alternatives, in
    /// order; look-behind and look-ahead stay inside `s`), or 0.
    fn infix_at(&self, s: &[u32], i: usize) -> usize {
        let n = s.len();
        let c = s[i];
        let next = |k: usize| if i + k < n { Some(s[i + k]) } else { None };
        if c == DOT && next(1) == Some(DOT) {
            return s[i..].iter().take_while(|&&x| x == DOT).count();
        }
        if c == 0x2026 || self.has(c, ICON) {
            return 1;
        }
        if i == 0 {
            return 0;
        }
        let before = s[i - 1];
        let alpha_at = |k: usize| next(k).map_or(false, |x| self.has(x, S_ALPHA));
        if is_digit(before) && "+-*^".chars().any(|x| x as u32 == c) {
            if let Some(x) = next(1) {
                if is_digit(x) || x == '-' as u32 {
                    return 1;
                }
            }
        }
        if c == DOT
            && self.has(before, S_LOWER | QUOTE)
            && next(1).map_or(false, |x| self.has(x, UPPER | QUOTE))
        {
            return 1;
        }
        if c == ',' as u32 && self.has(before, S_ALPHA) && alpha_at(1) {
            return 1;
        }
        if self.has(before, S_ALPHA) || is_digit(before) {
            for hyphen in [
                "-",
                "\u{2013}",
                "\u{2014}",
                "--",
                "---",
                "\u{2014}\u{2014}",
                "~",
            ]
            .iter()
            {
                let len = hyphen.chars().count();
                if hyphen
                    .chars()
                    .enumerate()
                    .all(|(k, h)| next(k) == Some(h as u32))
                    && alpha_at(len)
                {
                    return len;
                }
            }
            if ":<>=/".chars().any(|x| x as u32 == c) && alpha_at(1) {
                return 1;
            }
        }
        0
    }

    /// The infix split of `s` (which starts at `offset` in the chunk), as spaCy's
    /// `finditer` loop: a match at the very start is skipped.
    fn infixes(&self, s: &[u32], offset: usize, out: &mut Vec<(usize, usize)>) {
        let mut start = 0;
        let mut i = 0;
        while i < s.len() {
            let len = self.infix_at(s, i);
            if len == 0 {
                i += 1;
                continue;
            }
            if i != 0 {
                if i != start {
                    out.push((offset + start, i - start));
                }
                out.push((offset + i, len));
                start = i + len;
            }
            i += len;
        }
        if start < s.len() {
            out.push((offset + start, s.len() - start));
        }
    }
}

unsafe fn slice<'a, T>(ptr: *const T, len: i64) -> &'a [T] {
    if len <= 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len as usize)
    }
}

unsafe fn slice_mut<'a, T>(ptr: *mut T, len: i64) -> &'a mut [T] {
    if len <= 0 {
        &mut []
    } else {
        std::slice::from_raw_parts_mut(ptr, len as usize)
    }
}

/// The rule tables, built once per process: a handle the other entry points take. The
/// caller keeps the arrays alive as long as the handle (assay's `kernel._Rules` does).
#[no_mangle]
pub unsafe extern "C" fn assay_rules_new(
    flags: *const u32,
    n_flags: i64,
    sets: *const *const u8, // exceptions (hashes, info, chars, tokens), then units (4 more)
    set_sizes: *const i64,  // their lengths
    units_max: i64,
    pairs: *const u64,
    n_pairs: i64,
    url_match: UrlMatch,
) -> *mut Rules<'static> {
    let ptrs = slice(sets, 8);
    let sizes = slice(set_sizes, 8);
    let set = |k: usize| {
        let info: &[i64] = slice(ptrs[k + 1] as *const i64, sizes[k + 1]);
        let chars: &[u32] = slice(ptrs[k + 2] as *const u32, sizes[k + 2]);
        let mut bloom = vec![0u64; 1024];
        for e in info.chunks(4) {
            let (off, len) = (e[0] as usize, e[1] as usize);
            if len > 0 {
                let b = bloom_bit(&chars[off..off + len]);
                bloom[b >> 6] |= 1 << (b & 63);
            }
        }
        StringSet {
            max_len: info.chunks(4).map(|e| e[1] as usize).max().unwrap_or(0),
            bloom,
            hashes: slice(ptrs[k] as *const u64, sizes[k]),
            info,
            chars,
            tokens: slice(ptrs[k + 3] as *const i64, sizes[k + 3]),
        }
    };
    Box::into_raw(Box::new(Rules {
        flags: slice(flags, n_flags),
        exceptions: set(0),
        units: set(4),
        units_max: units_max.max(0) as usize,
        pairs: slice(pairs, n_pairs),
        url_match,
    }))
}

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
    let bounds = slice(doc_starts, n_docs + 1);
    let total = if n_docs > 0 {
        bounds[n_docs as usize]
    } else {
        0
    };
    let cp = slice(cp, total);
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
            while i < hi && rules.has(cp[i], SPACE) {
                i += 1;
            }
            if i == hi {
                break;
            }
            let start = i;
            while i < hi && !rules.has(cp[i], SPACE) {
                i += 1;
            }
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
    for w in 0..n {
        let word = &cp[starts[w] as usize..starts[w] as usize + lens[w] as usize];
        let mut all_punct = true;
        let mut any_alpha = false;
        let mut acc = [0u64; 2];
        let mut power = [1u64; 2];
        for &c in word {
            let f = rules.flag(c);
            all_punct &= f & PUNCT != 0;
            any_alpha |= f & ALPHA != 0;
            for k in 0..2 {
                acc[k] = (acc[k] + (c as u64 + 1) * power[k]) % P[k];
                power[k] = power[k] * B[k] % P[k];
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

/// One slot of `Table`: a key, the generation that wrote it, a count and a first position.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    stamp: u32,
    count: u32,
    first: u32,
}

/// An open-addressing hash table from window keys (already hashes) to a count and a first
/// position, emptied in O(1) between uses by a generation stamp.
struct Table {
    slots: Vec<Slot>,
    stamp: u32,
    mask: usize,
}

impl Table {
    fn new() -> Table {
        Table {
            slots: Vec::new(),
            stamp: 0,
            mask: 0,
        }
    }

    /// Empty the table, with room for `n` keys at most half full.
    fn reset(&mut self, n: usize) {
        let size = (2 * n).next_power_of_two().max(16);
        if size > self.slots.len() || self.stamp == u32::MAX {
            self.slots = vec![Slot::default(); size.max(self.slots.len())];
            self.stamp = 0;
        }
        self.stamp += 1;
        self.mask = size - 1;
    }

    /// Count one occurrence of `key` at `at`: its slot, and its (count, first position)
    /// after it.
    fn add(&mut self, key: u64, at: u32) -> (usize, u32, u32) {
        let mut i = (key.wrapping_mul(0x9E3779B97F4A7C15) >> 20) as usize & self.mask;
        loop {
            let slot = &mut self.slots[i];
            if slot.stamp != self.stamp {
                *slot = Slot {
                    key,
                    stamp: self.stamp,
                    count: 1,
                    first: at,
                };
                return (i, 1, at);
            }
            if slot.key == key {
                slot.count += 1;
                return (i, slot.count, slot.first);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// Keys of the word windows of one document, for any n: prefix sums of the words' hashes
/// weighted by powers of the base at each word's character offset (as `NgramHashes`).
/// Its buffers are reused from one document to the next.
struct Windows {
    prefix: [Vec<u64>; 2],
    align: [Vec<u64>; 2], // per word: the base to the power (characters to the end)
    offsets: Vec<u64>,    // characters before each word (and the total, last)
}

impl Windows {
    fn new() -> Windows {
        Windows {
            prefix: [Vec::new(), Vec::new()],
            align: [Vec::new(), Vec::new()],
            offsets: Vec::new(),
        }
    }

    fn fill(&mut self, lens: &[i32], hashes: [&[i32]; 2], spaced: bool, powers: &mut Powers) {
        let m = lens.len();
        self.offsets.clear();
        let mut total = 0u64;
        self.offsets.push(0);
        for &l in lens {
            total += l as u64 + spaced as u64;
            self.offsets.push(total);
        }
        powers.grow(total as usize + 1);
        for k in 0..2 {
            let (prefix, align, table) =
                (&mut self.prefix[k], &mut self.align[k], &powers.table[k]);
            prefix.clear();
            align.clear();
            let mut acc = 0u64;
            prefix.push(0);
            for j in 0..m {
                let at = self.offsets[j] as usize;
                acc = (acc + hashes[k][j] as u64 * table[at]) % P[k];
                prefix.push(acc);
                // Multiplying a window by B**(characters to the end) moves every window of
                // the document to the same origin, its end.
                align.push(table[total as usize - at]);
            }
        }
    }

    /// The key of the window of `n` words at `i`.
    fn key(&self, i: usize, n: usize) -> u64 {
        let mut out = [0u64; 2];
        for k in 0..2 {
            // window < 2p < 2**32 and the power < 2**31: the product fits, one reduction.
            let window = self.prefix[k][i + n] + P[k] - self.prefix[k][i];
            out[k] = window * self.align[k][i] % P[k];
        }
        out[0] * P[1] + out[1]
    }

    /// Characters of the window of `n` words at `i` (separating spaces included if spaced).
    fn chars(&self, i: usize, n: usize, spaced: bool) -> u64 {
        self.offsets[i + n] - self.offsets[i] - spaced as u64
    }
}

struct Powers {
    table: [Vec<u64>; 2],
}

impl Powers {
    fn grow(&mut self, size: usize) {
        for k in 0..2 {
            let t = &mut self.table[k];
            if t.is_empty() {
                t.push(1);
            }
            while t.len() < size {
                let next = t[t.len() - 1] * B[k] % P[k];
                t.push(next);
            }
        }
    }
}

/// Gopher's n-gram repetition statistics per document, as datatrove computes them: for
/// each n of `top` (rows, then documents) the characters of the most frequent n-gram
/// (words joined by spaces; ties go to the earliest) times its occurrences, or 0 when the
/// document has fewer than n words; for each n of `dup` the characters of duplicate
/// n-grams (words joined without spaces) in datatrove's left-to-right scan, which jumps n
/// words after each duplicate.
#[no_mangle]
pub unsafe extern "C" fn assay_repetition(
    lens: *const i32,
    h: *const i32,  // 2 x n_words
    hs: *const i32, // 2 x n_words
    n_words: i64,
    doc_starts: *const i64,
    n_docs: i64,
    top: *const i64,
    n_top: i64,
    dup: *const i64,
    n_dup: i64,
    out_top: *mut i64, // n_top x n_docs
    out_dup: *mut i64, // n_dup x n_docs
) {
    let n = n_words as usize;
    let lens = slice(lens, n_words);
    let h = slice(h, 2 * n_words);
    let hs = slice(hs, 2 * n_words);
    let bounds = slice(doc_starts, n_docs + 1);
    let top = slice(top, n_top);
    let dup = slice(dup, n_dup);
    let nd = n_docs as usize;
    let out_top = slice_mut(out_top, n_top * n_docs);
    let out_dup = slice_mut(out_dup, n_dup * n_docs);
    let mut powers = Powers {
        table: [Vec::new(), Vec::new()],
    };
    let mut table = Table::new();
    let (mut spaced, mut plain) = (Windows::new(), Windows::new());
    let mut slots: Vec<u32> = Vec::new(); // the table slot of each position (u32::MAX: none)
    let mut repeated: Vec<bool> = Vec::new(); // whether the n-gram at each position repeats
    for d in 0..nd {
        let (lo, hi) = (bounds[d] as usize, bounds[d + 1] as usize);
        let m = hi - lo;
        let doc_lens = &lens[lo..hi];
        if !top.is_empty() {
            spaced.fill(
                doc_lens,
                [&hs[lo..hi], &hs[n + lo..n + hi]],
                true,
                &mut powers,
            );
            // An n-gram occurs twice only if both of its (n-1)-grams do: when n-1 was counted
            // just before, only those positions can repeat (`repeated`).
            let mut previous = 0usize;
            for (row, &g) in top.iter().enumerate() {
                let g = g as usize;
                if g == 0 || m < g {
                    out_top[row * nd + d] = 0;
                    previous = 0;
                    continue;
                }
                let pruned = previous > 0 && previous + 1 == g;
                table.reset(m - g + 1);
                slots.clear();
                let (mut best, mut best_at) = (1u64, 0usize); // every n-gram occurs once
                for i in 0..=m - g {
                    if pruned && !(repeated[i] && repeated[i + 1]) {
                        slots.push(u32::MAX);
                        continue;
                    }
                    let (slot, c, first) = table.add(spaced.key(i, g), i as u32);
                    slots.push(slot as u32);
                    let (c, first) = (c as u64, first as usize);
                    if c > best || (c == best && first < best_at) {
                        best = c;
                        best_at = first;
                    }
                }
                out_top[row * nd + d] = (spaced.chars(best_at, g, true) * best) as i64;
                repeated.clear();
                repeated.extend(
                    slots
                        .iter()
                        .map(|&k| k != u32::MAX && table.slots[k as usize].count > 1),
                );
                previous = g;
            }
        }
        if !dup.is_empty() {
            plain.fill(
                doc_lens,
                [&h[lo..hi], &h[n + lo..n + hi]],
                false,
                &mut powers,
            );
            for (row, &g) in dup.iter().enumerate() {
                let g = g as usize;
                let mut repeated = 0u64;
                if g > 0 && m >= g {
                    table.reset(m - g + 1);
                    let mut i = 0usize;
                    while i + g <= m {
                        if table.add(plain.key(i, g), i as u32).1 > 1 {
                            repeated += plain.chars(i, g, false);
                            i += g;
                        } else {
                            i += 1;
                        }
                    }
                }
                out_dup[row * nd + d] = repeated as i64;
            }
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
    let bounds = slice(text_starts, n_texts + 1);
    let total = if n_texts > 0 {
        bounds[n_texts as usize]
    } else {
        0
    };
    let cp = slice(cp, total);
    let rules = &*rules;
    let out = slice_mut(out, n_texts);
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    let is_space = |c: u32| rules.has(c, SPACE);
    // A token of one sentence-final character, and a token made only of punctuation (P*).
    let final_token = |t: &[u32]| t.len() == 1 && rules.has(t[0], FINAL);
    let punct_token = |t: &[u32]| t.iter().all(|&c| rules.has(c, P_CATEGORY));
    for t in 0..n_texts as usize {
        let text = &cp[bounds[t] as usize..bounds[t + 1] as usize];
        if text.is_empty() {
            out[t] = 0;
            continue;
        }
        let first_final = text.iter().position(|&c| rules.has(c, FINAL));
        match first_final {
            None => {
                out[t] = 1;
                continue;
            }
            Some(f) if punct_token(&text[f..]) => {
                out[t] = 1;
                continue;
            }
            _ => {}
        }
        let mut starts = 0i64;
        let mut seen_final = false;
        let mut i = 0usize;
        let n = text.len();
        let mut unsure = false;
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
            if !rules.split(chunk, &mut tokens) {
                unsure = true;
                break;
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
        out[t] = if unsure { -1 } else { 1 + starts };
    }
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
    let bounds = slice(text_starts, n_texts + 1);
    let total = if n_texts > 0 {
        bounds[n_texts as usize]
    } else {
        0
    };
    let cp = slice(cp, total);
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
