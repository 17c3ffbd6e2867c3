//! Gopher's n-gram repetition counts (`gopher_repetition.py`, datatrove's definitions).

use crate::rules::{B, P};
use crate::{slice, slice_mut};

/// One slot of `Table`: a key (0: empty), a count and a first position; 16 bytes, so that
/// a document's table stays in cache.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    count: u32,
    first: u32,
}

/// Where a key goes first in a table of `mask + 1` slots.
fn home(key: u64, mask: usize) -> usize {
    (key.wrapping_mul(0x9E3779B97F4A7C15) >> 20) as usize & mask
}

/// Room for `n` keys at most half full: the table's size, a power of two.
fn size_for(n: usize) -> usize {
    (2 * n).next_power_of_two().max(16)
}

/// An open-addressing hash table from window keys (already hashes, below 2**62, stored
/// plus one so that 0 marks an empty slot) to a count and a first position.
struct Table {
    slots: Vec<Slot>,
    mask: usize,
}

impl Table {
    fn new() -> Table {
        Table {
            slots: Vec::new(),
            mask: 0,
        }
    }

    /// Empty the table, with room for `n` keys.
    fn reset(&mut self, n: usize) {
        let size = size_for(n);
        if size > self.slots.len() {
            self.slots = vec![Slot::default(); size];
        } else {
            self.slots[..size].fill(Slot::default());
        }
        self.mask = size - 1;
    }

    /// Count one occurrence of `key` at `at`: its (count, first position) after it.
    fn add(&mut self, key: u64, at: u32) -> (u32, u32) {
        let key = key + 1;
        let mut i = home(key, self.mask);
        loop {
            let slot = &mut self.slots[i];
            if slot.key == 0 {
                *slot = Slot {
                    key,
                    count: 1,
                    first: at,
                };
                return (1, at);
            }
            if slot.key == key {
                slot.count += 1;
                return (slot.count, slot.first);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// A set of window keys (stored plus one, 0: empty), for the duplicate scans, which only
/// ask whether a window was seen: 8 bytes a slot.
struct KeySet {
    slots: Vec<u64>,
    mask: usize,
}

impl KeySet {
    fn reset(&mut self, n: usize) {
        let size = size_for(n);
        if size > self.slots.len() {
            self.slots = vec![0; size];
        } else {
            self.slots[..size].fill(0);
        }
        self.mask = size - 1;
    }

    /// Add `key`; whether it was there already.
    fn seen(&mut self, key: u64) -> bool {
        let key = key + 1;
        let mut i = home(key, self.mask);
        loop {
            let slot = &mut self.slots[i];
            if *slot == 0 {
                *slot = key;
                return false;
            }
            if *slot == key {
                return true;
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
    let mut seen = KeySet {
        slots: Vec::new(),
        mask: 0,
    };
    let (mut spaced, mut plain) = (Windows::new(), Windows::new());
    let mut repeated: Vec<bool> = Vec::new(); // whether the (n-1)-gram at each position repeats
    let mut repeats: Vec<bool> = Vec::new(); // the same for the n-gram being counted
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
                repeats.clear();
                repeats.resize(m - g + 1, false);
                let (mut best, mut best_at) = (1u64, 0usize); // every n-gram occurs once
                for i in 0..=m - g {
                    if pruned && !(repeated[i] && repeated[i + 1]) {
                        continue;
                    }
                    let (c, first) = table.add(spaced.key(i, g), i as u32);
                    if c > 1 {
                        repeats[i] = true;
                        repeats[first as usize] = true;
                    }
                    let (c, first) = (c as u64, first as usize);
                    if c > best || (c == best && first < best_at) {
                        best = c;
                        best_at = first;
                    }
                }
                out_top[row * nd + d] = (spaced.chars(best_at, g, true) * best) as i64;
                std::mem::swap(&mut repeated, &mut repeats);
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
                    seen.reset(m - g + 1);
                    let mut i = 0usize;
                    while i + g <= m {
                        if seen.seen(plain.key(i, g)) {
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
