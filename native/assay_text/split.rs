//! spaCy's split of one whitespace-free chunk (`spacy_rules.split_chunk`).

use crate::rules::*;

/// The hyphens of spaCy's infix between letters (or a digit and a letter), in the order of
/// its alternatives.
const HYPHENS: [&[u32]; 7] = [
    &[0x2D],
    &[0x2013],
    &[0x2014],
    &[0x2D, 0x2D],
    &[0x2D, 0x2D, 0x2D],
    &[0x2014, 0x2014],
    &[0x7E],
];

impl<'a> Rules<'a> {
    /// `spacy_rules._plain`: letters, or letters and digits with no suffix.
    pub(crate) fn plain(&self, s: &[u32]) -> bool {
        self.all(s, ALPHA) || (self.all(s, ALNUM) && self.find_suffix(s) == 0)
    }

    /// `spacy_rules._split_simple` as (prefix, suffix) lengths around one core word, when
    /// it applies and the core is not an exception that splits; None otherwise.
    pub(crate) fn shortcut(&self, s: &[u32]) -> Option<(usize, usize)> {
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
    pub(crate) fn split(&self, s: &[u32], out: &mut Vec<(usize, usize)>) -> bool {
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
        if n == 1 || self.all(s, ALPHA) {
            out.push((0, n)); // letters alone: no affix rule applies (the common case)
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
    pub(crate) fn affixes(&self, chunk: &[u32], out: &mut Vec<(usize, usize)>) -> bool {
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
    pub(crate) fn url_possible(&self, s: &[u32]) -> bool {
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
    pub(crate) fn infix_at(&self, s: &[u32], i: usize) -> usize {
        let n = s.len();
        let c = s[i];
        if !self.has(c, INFIX | ICON) {
            return 0; // every alternative starts with one of these characters
        }
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
            for hyphen in HYPHENS.iter() {
                let len = hyphen.len();
                if hyphen.iter().enumerate().all(|(k, &h)| next(k) == Some(h)) && alpha_at(len) {
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
    pub(crate) fn infixes(&self, s: &[u32], offset: usize, out: &mut Vec<(usize, usize)>) {
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
