//! Decoding a file whose model the registry finds: the file names its family and level.

use super::{Backend, Codec, Limits, Packed, RgbImage};
use crate::error::Result;

/// Parses `.tfci` bytes, loads the family named in them from `registry`, and decodes the image
/// (on the CPU backend).
pub fn decompress(
    registry: &crate::model::Registry,
    bytes: &[u8],
    limits: &Limits,
) -> Result<(RgbImage, String)> {
    let (image, model, _) = decompress_with(registry, bytes, limits, &Backend::cpu())?;
    Ok((image, model))
}

/// [`decompress`] with the transforms on `backend`; also returns the codec's fallback notes.
pub fn decompress_with(
    registry: &crate::model::Registry,
    bytes: &[u8],
    limits: &Limits,
    backend: &Backend,
) -> Result<(RgbImage, String, Vec<String>)> {
    let packed = Packed::from_bytes(bytes)?;
    let (entry, _) = resolve_packed(registry, &packed)?;
    let codec = Codec::with_backend(registry.load(entry)?, backend)?;
    let image = codec.decompress_packed(&packed, limits)?;
    let notes = codec.take_notes();
    Ok((image, packed.model, notes))
}

/// The installed family and level a parsed file names: `FAMILY-LEVEL`, or the family alone when
/// the file carries a continuous rate parameter (the level then comes from `"RD"`).
pub fn resolve_packed<'r>(
    registry: &'r crate::model::Registry,
    packed: &Packed,
) -> Result<(&'r crate::model::FamilyEntry, u32)> {
    Ok(match packed.rd_parameter {
        Some(_) => (
            registry
                .family(&packed.model)
                .ok_or_else(|| registry.unknown(&packed.model))?,
            0,
        ),
        None => registry.resolve(&packed.model)?,
    })
}
