//! Character classes, the rule tables and spaCy's affix rules (`spacy_rules.py`).

use crate::slice;

pub(crate) const SPACE: u32 = 1; // str.isspace: what str.split() splits on
pub(crate) const ALNUM: u32 = 2; // str.isalnum
pub(crate) const ALPHA: u32 = 4; // str.isalpha
pub(crate) const PREFIX: u32 = 8; // a one-character prefix of spaCy's English rules
pub(crate) const SUFFIX: u32 = 16; // a one-character suffix
pub(crate) const DOT_FOLLOWS: u32 = 32; // a "." after this character is a suffix
pub(crate) const UPPER: u32 = 64; // spaCy's ALPHA_UPPER
pub(crate) const PUNCT: u32 = 128; // datatrove's PUNCTUATION_SET (a word of these is a symbol)
pub(crate) const S_ALPHA: u32 = 256; // spaCy's ALPHA
pub(crate) const S_LOWER: u32 = 512; // spaCy's ALPHA_LOWER
pub(crate) const QUOTE: u32 = 1024; // spaCy's quotes
pub(crate) const ICON: u32 = 2048; // spaCy's icons (other symbols)
pub(crate) const INFIX: u32 = 4096; // a character an infix starts with
pub(crate) const PAIR_END: u32 = 8192; // the last character of the first token of a merge pair
pub(crate) const PAIR_START: u32 = 16384; // the first character of the second token of a merge pair
pub(crate) const FINAL: u32 = 32768; // spaCy's sentence-final punctuation (the sentencizer's)
pub(crate) const P_CATEGORY: u32 = 1 << 16; // Unicode category P* (spaCy's is_punct)
pub(crate) const DECIMAL: u32 = 1 << 17; // str.isdecimal (a regex's \d)
pub(crate) const LOWER_ASCII: u32 = 1 << 18; // not ASCII, but str.lower gives an ASCII character

// Polynomial word hashes, as `assay/text/ngram_hashes.py`: two primes below 2**31, base
// 2**32 mod p, each character counted as its code point plus one.
pub(crate) const P: [u64; 2] = [1610612741, 1879048201];
pub(crate) const B: [u64; 2] = [(1u64 << 32) % P[0], (1u64 << 32) % P[1]];

/// FNV-1a over code points: the key of a string in the exception, pair and unit sets (the
/// Python side hashes the same way). `seed` continues a hash (for pairs).
pub(crate) fn fnv(s: &[u32], seed: u64) -> u64 {
    let mut h = seed;
    for &c in s {
        h ^= c as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

pub(crate) const FNV_START: u64 = 0xcbf29ce484222325;
pub(crate) const PAIR_SEPARATOR: u32 = 0xFFFF_FFFF;

pub(crate) fn pair_hash(a: &[u32], b: &[u32]) -> u64 {
    fnv(b, fnv(&[PAIR_SEPARATOR], fnv(a, FNV_START)))
}

/// A set of strings (code points), looked up by FNV-1a hash and then compared, so that a
/// look-up is exact. Entry i (in hash order): `info[4i..4i+4]` = (offset in `chars`,
/// length, offset in `tokens`, number of tokens); `tokens` are token lengths (exceptions).
pub(crate) struct StringSet<'a> {
    pub(crate) max_len: usize,
    pub(crate) bloom: Vec<u64>, // 2**16 bits, one per (length, first, last character) bucket in use
    pub(crate) hashes: &'a [u64],
    pub(crate) info: &'a [i64],
    pub(crate) chars: &'a [u32],
    pub(crate) tokens: &'a [i64],
}

/// The bloom-filter bit of a string: a cheap mix of its length and end characters.
pub(crate) fn bloom_bit(s: &[u32]) -> usize {
    let key = (s.len() as u64) ^ ((s[0] as u64) << 8) ^ ((s[s.len() - 1] as u64) << 29);
    (key.wrapping_mul(0x9E3779B97F4A7C15) >> 48) as usize
}

impl<'a> StringSet<'a> {
    pub(crate) fn find(&self, s: &[u32]) -> Option<usize> {
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

    pub(crate) fn contains(&self, s: &[u32]) -> bool {
        self.find(s).is_some()
    }

    /// Token lengths of entry i.
    pub(crate) fn tokens(&self, i: usize) -> &[i64] {
        let (off, n) = (self.info[4 * i + 2] as usize, self.info[4 * i + 3] as usize);
        &self.tokens[off..off + n]
    }
}

pub struct Rules<'a> {
    pub(crate) flags: &'a [u32],
    pub(crate) exceptions: StringSet<'a>, // the tokenizer exceptions, with their tokens
    pub(crate) units: StringSet<'a>,      // units, currencies and "+" (a suffix after a digit)
    pub(crate) units_max: usize,
    pub(crate) pairs: &'a [u64], // sorted hashes of the token pairs that start a merge
    pub(crate) url_match: UrlMatch, // spaCy's URL_MATCH, from the Python side
}

/// A callback answering whether a string (code points) is a URL by spaCy's URL_MATCH
/// pattern; it runs only on the rare strings that have what a URL needs.
pub(crate) type UrlMatch = Option<unsafe extern "C" fn(*const u32, i64) -> i32>;

pub(crate) const DOT: u32 = '.' as u32;

pub(crate) fn is_digit(c: u32) -> bool {
    ('0' as u32..='9' as u32).contains(&c)
}

impl<'a> Rules<'a> {
    pub(crate) fn flag(&self, c: u32) -> u32 {
        if (c as usize) < self.flags.len() {
            self.flags[c as usize]
        } else {
            0
        }
    }

    pub(crate) fn has(&self, c: u32, bits: u32) -> bool {
        self.flag(c) & bits != 0
    }

    /// `has(c, SPACE)`, without the table for printable ASCII (most characters).
    pub(crate) fn is_space(&self, c: u32) -> bool {
        c.wrapping_sub(0x21) >= 0x5E && self.has(c, SPACE)
    }

    pub(crate) fn all(&self, s: &[u32], bit: u32) -> bool {
        !s.is_empty() && s.iter().all(|&c| self.flag(c) & bit != 0)
    }

    /// `spacy_rules._find_prefix`.
    pub(crate) fn find_prefix(&self, s: &[u32]) -> usize {
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
    pub(crate) fn find_suffix(&self, s: &[u32]) -> usize {
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
