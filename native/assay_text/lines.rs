//! Repeated lines and paragraphs (`lines.find_duplicates`, as Gopher's repetition rules use
//! it in `gopher_repetition.py`).

use crate::rules::*;
use crate::{batch, slice_mut};

/// A hash of an item: two code points at a time, as rustc's FxHasher mixes words (the
/// slots compare the code points after a hash match, so it only has to spread items).
fn item_hash(s: &[u32]) -> u64 {
    let step = |h: u64, v: u64| (h.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    let mut pairs = s.chunks_exact(2);
    let mut h = s.len() as u64;
    for p in &mut pairs {
        h = step(h, p[0] as u64 | (p[1] as u64) << 32);
    }
    for &c in pairs.remainder() {
        h = step(h, c as u64);
    }
    h
}

/// Items of a text (spans of code points) seen before: how many, and their characters.
/// Items are compared by hash and then by their code points, so the counts are exact.
struct Seen {
    slots: Vec<(u64, u32, u32)>, // hash, start + 1 (0: empty slot), length
    mask: usize,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            slots: Vec::new(),
            mask: 0,
        }
    }

    /// The repeated items among `items` of `text`: (count, characters).
    fn repeats(&mut self, text: &[u32], items: &[(usize, usize)]) -> (i64, i64) {
        let size = (2 * items.len()).next_power_of_two().max(16);
        self.slots.clear();
        self.slots.resize(size, (0, 0, 0));
        self.mask = size - 1;
        let (mut count, mut chars) = (0i64, 0i64);
        for &(start, len) in items {
            let item = &text[start..start + len];
            let hash = item_hash(item);
            let mut i = (hash.wrapping_mul(0x9E3779B97F4A7C15) >> 20) as usize & self.mask;
            loop {
                let (h, s, l) = self.slots[i];
                if s == 0 {
                    self.slots[i] = (hash, start as u32 + 1, len as u32);
                    break;
                }
                if h == hash && &text[s as usize - 1..s as usize - 1 + l as usize] == item {
                    count += 1;
                    chars += len as i64;
                    break;
                }
                i = (i + 1) & self.mask;
            }
        }
        (count, chars)
    }
}

/// Per text `cp[starts[t]..starts[t + 1]]`, Gopher's repetition counts of its paragraphs (the
/// text stripped of surrounding whitespace, split at runs of 2+ `\n`) and of its lines (split
/// at `\n`, empty lines dropped but for the first and the last): six numbers in `out`, per
/// text: paragraphs, repeated paragraphs, their characters, lines, repeated lines, theirs.
#[no_mangle]
pub unsafe extern "C" fn assay_line_repeats(
    cp: *const u32,
    text_starts: *const i64,
    n_texts: i64,
    rules: *const Rules<'static>,
    out: *mut i64, // 6 x n_texts
) {
    let (bounds, cp) = batch(cp, text_starts, n_texts);
    let rules = &*rules;
    let out = slice_mut(out, 6 * n_texts);
    let nt = n_texts as usize;
    let newline = '\n' as u32;
    let mut seen = Seen::new();
    let mut items: Vec<(usize, usize)> = Vec::new();
    for t in 0..nt {
        let text = &cp[bounds[t] as usize..bounds[t + 1] as usize];
        let n = text.len();
        // Paragraphs of the stripped text.
        let mut a = 0;
        while a < n && rules.has(text[a], SPACE) {
            a += 1;
        }
        let mut b = n;
        while b > a && rules.has(text[b - 1], SPACE) {
            b -= 1;
        }
        items.clear();
        let (mut start, mut i) = (a, a);
        while i < b {
            if text[i] == newline && i + 1 < b && text[i + 1] == newline {
                let mut j = i;
                while j < b && text[j] == newline {
                    j += 1;
                }
                items.push((start, i - start));
                start = j;
                i = j;
            } else {
                i += 1;
            }
        }
        items.push((start, b - start));
        let (para_dups, para_chars) = seen.repeats(text, &items);
        let paragraphs = items.len() as i64;
        // Lines, the empty ones between the first and the last dropped.
        items.clear();
        let mut start = 0;
        for (i, &c) in text.iter().enumerate() {
            if c == newline {
                items.push((start, i - start));
                start = i + 1;
            }
        }
        items.push((start, n - start));
        if items.len() > 2 {
            let last = items.len() - 1;
            let mut kept = 1;
            for k in 1..last {
                if items[k].1 > 0 {
                    items[kept] = items[k];
                    kept += 1;
                }
            }
            items[kept] = items[last];
            items.truncate(kept + 1);
        }
        let (line_dups, line_chars) = seen.repeats(text, &items);
        let row = [
            paragraphs,
            para_dups,
            para_chars,
            items.len() as i64,
            line_dups,
            line_chars,
        ];
        for (k, value) in row.iter().enumerate() {
            out[k * nt + t] = *value;
        }
    }
}
