//! Splitting a job's items into chunks, the same way in the client and the runner.
//!
//! A chunk size of 0 is treated as 1: a size comes from configuration, and a zero there should
//! make the work slow, not make it loop forever or panic.

use core::ops::Range;

/// The size actually used for a requested chunk size: at least 1.
///
/// ```
/// use catalog_domain::chunk::effective_size;
/// assert_eq!((effective_size(0), effective_size(500)), (1, 500));
/// ```
pub const fn effective_size(size: usize) -> usize {
    if size == 0 {
        1
    } else {
        size
    }
}

/// The items in consecutive chunks of `size` (0 is treated as 1), in order; the last chunk may be
/// shorter. No chunk is empty, and an empty slice has no chunks.
///
/// ```
/// use catalog_domain::chunks;
/// let ids = ["a", "b", "c", "d", "e"];
/// assert_eq!(chunks(&ids, 2).collect::<Vec<_>>(), [&ids[0..2], &ids[2..4], &ids[4..]]);
/// ```
pub fn chunks<T>(items: &[T], size: usize) -> core::slice::Chunks<'_, T> {
    items.chunks(effective_size(size))
}

/// How many chunks of `size` (0 is treated as 1) `len` items make.
///
/// ```
/// use catalog_domain::chunk_count;
/// assert_eq!(chunk_count(25_000, 10_000), 3);
/// assert_eq!(chunk_count(0, 10_000), 0);
/// ```
pub const fn chunk_count(len: usize, size: usize) -> usize {
    len.div_ceil(effective_size(size))
}

/// The index ranges of the chunks of `len` items, in order: for the runner, which keeps a job's
/// payload in the store and resumes it by position.
///
/// ```
/// use catalog_domain::chunk_ranges;
/// assert_eq!(chunk_ranges(2_500, 1_000).collect::<Vec<_>>(), [0..1_000, 1_000..2_000, 2_000..2_500]);
/// ```
pub fn chunk_ranges(len: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    let size = effective_size(size);
    (0..chunk_count(len, size)).map(move |i| {
        let start = i * size;
        start..len.min(start.saturating_add(size))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_in_order() {
        let items = [1, 2, 3, 4, 5];
        let got: Vec<&[i32]> = chunks(&items, 2).collect();
        assert_eq!(got, vec![&[1, 2][..], &[3, 4], &[5]]);
        assert_eq!(chunk_count(5, 2), 3);
    }

    #[test]
    fn size_zero_is_one() {
        let items = [1, 2, 3];
        assert_eq!(chunks(&items, 0).count(), 3);
        assert_eq!(chunk_count(3, 0), 3);
        assert_eq!(chunk_ranges(3, 0).collect::<Vec<_>>(), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let items: [u8; 0] = [];
        assert_eq!(chunks(&items, 10).count(), 0);
        assert_eq!(chunk_count(0, 10), 0);
        assert_eq!(chunk_ranges(0, 10).count(), 0);
    }

    #[test]
    fn ranges_match_chunks() {
        assert_eq!(chunk_ranges(2500, 1000).collect::<Vec<_>>(), vec![0..1000, 1000..2000, 2000..2500]);
        assert_eq!(chunk_count(usize::MAX, usize::MAX), 1);
    }
}
