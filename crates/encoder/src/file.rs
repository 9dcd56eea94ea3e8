//! The packed model file: a header, the tokenizer's pieces and
//! normalisation map, then a directory of named tensors.

use std::collections::HashMap;

use crate::LoadError;

/// Reads little-endian values in order, failing on a truncated file.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], at: usize) -> Self {
        Self { bytes, at }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| LoadError("the file is truncated".into()))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, LoadError> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, LoadError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A count or size: a non-negative 32-bit integer.
    pub(crate) fn size(&mut self) -> Result<usize, LoadError> {
        Ok(self.u32()? as usize)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, LoadError> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn f32(&mut self) -> Result<f32, LoadError> {
        self.array().map(f32::from_le_bytes)
    }
}

/// Little-endian `f32`s.
pub(crate) fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The tensors by name, as byte ranges of the file.
pub(crate) struct Tensors<'a>(HashMap<String, &'a [u8]>);

impl<'a> Tensors<'a> {
    pub(crate) fn read(reader: &mut Reader<'a>, file: &'a [u8]) -> Result<Self, LoadError> {
        let count = reader.size()?;
        let mut tensors = HashMap::with_capacity(count);
        for _ in 0..count {
            let name_len = usize::from(reader.u16()?);
            let name = String::from_utf8_lossy(reader.take(name_len)?).into_owned();
            let _dtype = reader.u8()?;
            let _elements = reader.u32()?;
            let (offset, len) = (reader.u64()? as usize, reader.u64()? as usize);
            let bytes = offset
                .checked_add(len)
                .and_then(|end| file.get(offset..end))
                .ok_or_else(|| LoadError(format!("tensor {name} lies outside the file")))?;
            tensors.insert(name, bytes);
        }
        Ok(Self(tensors))
    }

    pub(crate) fn get(&self, name: &str) -> Result<&'a [u8], LoadError> {
        self.0
            .get(name)
            .copied()
            .ok_or_else(|| LoadError(format!("the tensor {name} is missing")))
    }

    pub(crate) fn floats(&self, name: &str, len: usize) -> Result<Vec<f32>, LoadError> {
        let values = floats(self.get(name)?);
        if values.len() < len {
            return Err(LoadError(format!("the tensor {name} is too short")));
        }
        Ok(values)
    }
}
