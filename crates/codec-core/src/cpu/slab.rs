//! Packed weights side by side in shared slabs of memory, not one allocation each.
//!
//! Why: the binaries map every block of 1 MiB or more on its own in whole 2 MiB huge pages, and
//! the kernel zeroes a whole huge page at its first touch. A 64-channel Winograd layer's packed
//! weights are 2.4 MB, so each took two huge pages and a third of them was zeroed for nothing:
//! 15 MB of mbt2018-mean-msssim's encoder weights touched 24 MB of fresh memory, which is what a
//! one-shot call pays most for (docs/benchmarks.md, the one-shot section). Here consecutive
//! buffers share huge pages; a slab's pages that nothing was handed out of are never touched.
//! A slab lives while any buffer in it does (the current one is held weakly), so dropping a
//! codec gives its weights back as before.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, Weak};

/// Floats per slab (16 MiB of address space, touched only where handed out).
const SLAB: usize = 4 << 20;

/// Buffers are handed out this many floats apart (64 bytes, a cache line, from the slab's start).
const ALIGN: usize = 16;

/// A zeroed block of floats, freed when every [`Packed`] in it is dropped; or a packed-weights
/// file mapped read-only (`pack_cache.rs`), unmapped when the last [`Packed`] in it is dropped.
struct Slab {
    ptr: NonNull<f32>,
    backing: Backing,
}

enum Backing {
    /// Allocated here with this layout.
    Heap(Layout),
    /// Floats inside a file's bytes, never written; held only to keep them alive (never read
    /// through this field, hence the allowance).
    File(#[allow(dead_code)] Arc<dyn AsRef<[u8]> + Send + Sync>),
}

// SAFETY: a slab is plain memory; which parts of a heap slab each `Packed` may touch is decided
// once, under the lock of `CURRENT`, and never overlaps; a file's slab is one `Packed`'s alone and
// only read (its bytes are `Send + Sync`).
unsafe impl Send for Slab {}
// SAFETY: as above.
unsafe impl Sync for Slab {}

impl Slab {
    fn new(len: usize) -> Arc<Slab> {
        // A float's own alignment: the system allocator then takes its zeroed-allocation path
        // (fresh pages the kernel zeroes at first touch, after the huge-page advice below), where
        // a larger alignment would have it write zeros over the whole slab first.
        let layout = Layout::array::<f32>(len.max(1))
            .unwrap_or_else(|_| panic!("a slab of {len} floats overflows"));
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr.cast::<f32>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        let slab = Slab {
            ptr,
            backing: Backing::Heap(layout),
        };
        // SAFETY: the allocation just made, `len` floats long.
        super::advise_huge_pages(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) });
        Arc::new(slab)
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        if let Backing::Heap(layout) = self.backing {
            // SAFETY: allocated in `Slab::new` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

/// The slab buffers are handed out of now, and how many floats of it are taken.
static CURRENT: Mutex<(Weak<Slab>, usize)> = Mutex::new((Weak::new(), 0));

/// A zeroed buffer of floats in a shared slab (module docs).
pub(crate) struct Packed {
    slab: Arc<Slab>,
    at: usize,
    len: usize,
}

impl Packed {
    /// `len` zeroed floats. Buffers over half a slab get a slab of their own.
    pub fn zeroed(len: usize) -> Packed {
        if len > SLAB / 2 {
            return Packed {
                slab: Slab::new(len),
                at: 0,
                len,
            };
        }
        let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        let (weak, taken) = &mut *current;
        let slab = match weak.upgrade() {
            Some(slab) if *taken + len <= SLAB => slab,
            _ => {
                let slab = Slab::new(SLAB);
                *weak = Arc::downgrade(&slab);
                *taken = 0;
                slab
            }
        };
        let at = *taken;
        *taken = (at + len).next_multiple_of(ALIGN);
        Packed { slab, at, len }
    }

    /// `len` floats at byte `at` of `file`, read in place (never written: a mapped file is
    /// read-only); `None` unless they lie inside it, aligned for floats.
    pub fn in_file(
        file: Arc<dyn AsRef<[u8]> + Send + Sync>,
        at: usize,
        len: usize,
    ) -> Option<Packed> {
        let bytes = (*file)
            .as_ref()
            .get(at..at.checked_add(len.checked_mul(4)?)?)?;
        let floats: &[f32] = bytemuck::try_cast_slice(bytes).ok()?;
        let ptr = NonNull::new(floats.as_ptr().cast_mut())?;
        Some(Packed {
            slab: Arc::new(Slab {
                ptr,
                backing: Backing::File(file),
            }),
            at: 0,
            len,
        })
    }

    /// Whether the floats are a file's (see [`Packed::in_file`]).
    pub fn is_in_file(&self) -> bool {
        matches!(self.slab.backing, Backing::File(_))
    }

    /// # Panics
    /// If the floats are a file's (read-only memory).
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        assert!(!self.is_in_file(), "a file's packed weights are read-only");
        // SAFETY: floats `at..at + len` of the slab belong to this buffer alone (handed out once
        // under the lock), and `&mut self` makes this the only reference through it.
        unsafe { std::slice::from_raw_parts_mut(self.slab.ptr.as_ptr().add(self.at), self.len) }
    }
}

impl std::ops::Deref for Packed {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: as in `as_mut_slice`; shared references only read.
        unsafe { std::slice::from_raw_parts(self.slab.ptr.as_ptr().add(self.at), self.len) }
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} floats)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buffers handed out together are zeroed, apart, and keep their values while others are
    /// written and dropped; a large one gets its own slab.
    #[test]
    fn buffers_are_zeroed_and_disjoint() {
        let mut bufs: Vec<Packed> = (1..40).map(|i| Packed::zeroed(i * 1000 + 7)).collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            assert!(b.iter().all(|&v| v == 0.0));
            b.as_mut_slice().fill(i as f32);
        }
        let kept: Vec<(usize, Packed)> = bufs.into_iter().enumerate().step_by(2).collect();
        let big = Packed::zeroed(SLAB);
        assert_eq!(big.len(), SLAB);
        assert!(big.iter().all(|&v| v == 0.0));
        assert!(kept.iter().all(|(_, b)| !Arc::ptr_eq(&b.slab, &big.slab)));
        for (i, b) in &kept {
            assert_eq!(b.len(), (i + 1) * 1000 + 7);
            assert!(b.iter().all(|&v| v == *i as f32));
        }
    }
}
