//! Codecs: gzip and brotli bodies for serving and export, and `Html`, post HTML kept
//! deflate-compressed in memory. Thread-local libdeflate compressors, deterministic output
//! (no file name, no mtime). A leaf: depends on nothing of ours.

use std::io::{Read, Write};

/// Runs `f` with this thread's libdeflate compressor for `level` (1-12) and a scratch
/// buffer: compressors hold large match-finder tables, too costly to set up per call.
pub(crate) fn with_compressor<T>(
    level: u32,
    f: impl FnOnce(&mut libdeflater::Compressor, &mut Vec<u8>) -> Option<T>,
) -> Option<T> {
    use std::cell::RefCell;
    thread_local! {
        static COMPRESSORS: RefCell<Vec<(u32, libdeflater::Compressor)>> =
            const { RefCell::new(Vec::new()) };
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let level = level.clamp(1, 12);
    COMPRESSORS.with(|compressors| {
        SCRATCH.with(|scratch| {
            let mut compressors = compressors.try_borrow_mut().ok()?;
            let mut scratch = scratch.try_borrow_mut().ok()?;
            let index = match compressors.iter().position(|(l, _)| *l == level) {
                Some(i) => i,
                None => {
                    let lvl = libdeflater::CompressionLvl::new(level as i32).ok()?;
                    compressors.push((level, libdeflater::Compressor::new(lvl)));
                    compressors.len() - 1
                }
            };
            let result = f(&mut compressors[index].1, &mut scratch);
            // Do not keep a huge buffer around after one huge file.
            if scratch.capacity() > 8 << 20 {
                *scratch = Vec::new();
            }
            result
        })
    })
}

/// HTML kept deflate-compressed in memory; `text()` gives it back.
#[derive(Clone, PartialEq, Eq)]
pub struct Html {
    compressed: Box<[u8]>,
    len: usize,
}

impl Html {
    /// Compresses `html` (libdeflate level 1: fast, about 4x smaller on post HTML).
    pub fn new(html: &str) -> Html {
        let compressed = with_compressor(1, |compressor, scratch| {
            scratch.resize(compressor.deflate_compress_bound(html.len()), 0);
            let n = compressor.deflate_compress(html.as_bytes(), scratch).ok()?;
            Some(Box::<[u8]>::from(&scratch[..n]))
        });
        match compressed {
            Some(compressed) => Html {
                compressed,
                len: html.len(),
            },
            // Cannot happen with a buffer of the bound's size; keep it uncompressed then.
            None => Html {
                compressed: html.as_bytes().into(),
                len: usize::MAX,
            },
        }
    }

    /// The HTML text.
    pub fn text(&self) -> String {
        if self.len == usize::MAX {
            return String::from_utf8_lossy(&self.compressed).into_owned();
        }
        let mut out = vec![0; self.len];
        match libdeflater::Decompressor::new().deflate_decompress(&self.compressed, &mut out) {
            Ok(n) if n == self.len => String::from_utf8(out).unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Bytes held in memory.
    pub fn compressed_len(&self) -> usize {
        self.compressed.len()
    }
}

impl std::fmt::Debug for Html {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Html({} bytes, {} compressed)",
            self.len,
            self.compressed.len()
        )
    }
}

/// gzip at `level` (1-12) with libdeflate: no file name, no mtime, so the bytes are
/// deterministic. libdeflate's level 9 is both smaller and faster than zlib's level 9.
pub fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    let compressed = with_compressor(level, |compressor, scratch| {
        scratch.resize(compressor.gzip_compress_bound(body.len()), 0);
        let n = compressor.gzip_compress(body, scratch).ok()?;
        Some(scratch[..n].to_vec())
    });
    compressed.unwrap_or_else(|| {
        // Cannot happen with a buffer of the bound's size; fall back to a stored stream.
        let mut fallback = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::none());
        let _ = fallback.write_all(body);
        fallback.finish().unwrap_or_default()
    })
}

/// Decompresses our own gzip output of known length.
pub fn gunzip(gzip: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    match libdeflater::Decompressor::new().gzip_decompress(gzip, &mut out) {
        Ok(n) if n == len => out,
        _ => {
            let mut out = Vec::with_capacity(len);
            let _ = flate2::read::GzDecoder::new(gzip).read_to_end(&mut out);
            out
        }
    }
}

/// brotli with the given quality; the window is no larger than the body needs (less
/// encoder memory for small feeds), and the result is stored at its exact size.
pub fn brotli(body: &[u8], quality: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4);
    // 2^lgwin - 16 bytes of window cover the body; brotli allows 10..=24.
    let needed = usize::BITS - body.len().saturating_add(16).leading_zeros();
    let params = brotli::enc::BrotliEncoderParams {
        quality: quality as i32,
        lgwin: needed.clamp(16, 22) as i32,
        size_hint: body.len(),
        ..Default::default()
    };
    let mut input = body;
    let _ = brotli::BrotliCompress(&mut input, &mut out, &params);
    out.shrink_to_fit();
    out
}
