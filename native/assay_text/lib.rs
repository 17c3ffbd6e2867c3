//! assay's compiled text kernel, for `assay.text.kernel` (loaded with ctypes): spaCy-exact
//! English words with the attributes the quality rules need, sentence counts, line marks,
//! Gopher's repeated lines and n-gram counts and C4's line cleaning over a batch of documents.
//!
//! The pure-Python modules of `assay/text/` and `steps/filters/` are the reference; the
//! kernel computes the same numbers faster and without a memo of every chunk seen. A chunk
//! whose split needs a rule left to Python (spaCy's re-merging of split exceptions) is
//! marked "complex" and split by the Python rules; string sets are looked up by hash and
//! then compared, and a hash only ever sends work to the reference, never changes a word.
//!
//! No dependencies (no crates registry is needed to build it): `rustc --edition 2021 -O
//! --crate-type cdylib lib.rs`. Written for Rust 1.63 (Debian 12's rustc).

pub mod c4;
pub mod lines;
pub mod ngrams;
pub mod rules;
pub mod split;
pub mod text;

/// A slice from a pointer and a length (empty for a length of 0 or less).
unsafe fn slice<'a, T>(ptr: *const T, len: i64) -> &'a [T] {
    if len <= 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len as usize)
    }
}

/// A mutable slice from a pointer and a length.
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: i64) -> &'a mut [T] {
    if len <= 0 {
        &mut []
    } else {
        std::slice::from_raw_parts_mut(ptr, len as usize)
    }
}

/// The texts `cp[starts[t]..starts[t + 1]]` of a batch: the bounds and all code points.
unsafe fn batch<'a>(cp: *const u32, starts: *const i64, n_texts: i64) -> (&'a [i64], &'a [u32]) {
    let bounds = slice(starts, n_texts + 1);
    let total = if n_texts > 0 {
        bounds[n_texts as usize]
    } else {
        0
    };
    (bounds, slice(cp, total))
}
