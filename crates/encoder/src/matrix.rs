//! 4-bit weight matrices (Q4_0: blocks of 32 weights sharing an f16 scale)
//! and their product with 8-bit quantised activations (Q8_0), in integers:
//! each output is the sum over blocks of
//! `scale_w * scale_a * (<nibbles, a> - 8 * sum(a))`.

use crate::LoadError;

/// Weights per block.
pub(crate) const BLOCK: usize = 32;
/// Bytes per stored block: an f16 scale, then 16 bytes of nibbles.
const BLOCK_BYTES: usize = 18;

/// IEEE half precision to single.
fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exponent = u32::from((h >> 10) & 0x1f);
    let mantissa = u32::from(h & 0x3ff);
    let magnitude = match exponent {
        // Zero and subnormals: mantissa * 2^-24.
        0 => mantissa as f32 * f32::from_bits((127 - 24) << 23),
        31 => f32::from_bits(0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(((exponent + 127 - 15) << 23) | (mantissa << 13)),
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// The 32 nibbles of a stored block, 0..=15: byte j holds weight j in its
/// low half and weight j + 16 in its high half.
fn nibbles(block: &[u8], out: &mut [i8]) {
    for j in 0..16 {
        out[j] = (block[2 + j] & 0x0f) as i8;
        out[j + 16] = (block[2 + j] >> 4) as i8;
    }
}

fn scale(block: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([block[0], block[1]]))
}

/// A table of 4-bit rows kept packed, read a row at a time (the word
/// embeddings: 250,000 rows of which a prompt needs a few dozen).
pub(crate) struct PackedRows<'a> {
    bytes: &'a [u8],
    cols: usize,
}

impl<'a> PackedRows<'a> {
    pub(crate) fn new(bytes: &'a [u8], rows: usize, cols: usize) -> Result<Self, LoadError> {
        if !cols.is_multiple_of(BLOCK) || bytes.len() < rows * cols / BLOCK * BLOCK_BYTES {
            return Err(LoadError("the word embeddings are too short".into()));
        }
        Ok(Self { bytes, cols })
    }

    /// Row `row`, as floats, into `out`.
    pub(crate) fn row(&self, row: usize, out: &mut [f32]) {
        let blocks = self.cols / BLOCK;
        let mut q = [0i8; BLOCK];
        for b in 0..blocks {
            let block = &self.bytes[(row * blocks + b) * BLOCK_BYTES..][..BLOCK_BYTES];
            let d = scale(block);
            nibbles(block, &mut q);
            for (o, &w) in out[b * BLOCK..][..BLOCK].iter_mut().zip(&q) {
                *o = f32::from(w - 8) * d;
            }
        }
    }
}

/// A weight matrix `[rows][cols]` with its nibbles unpacked once to bytes
/// (~21 MB for the twelve layers), so the inner loop is a plain integer dot
/// product the compiler vectorises.
pub(crate) struct Matrix {
    rows: usize,
    cols: usize,
    nibbles: Vec<i8>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

/// Activations quantised per block of 32 to bytes, each block's scale and
/// the sum of its values (which folds in the weights' offset of 8).
#[derive(Default)]
pub(crate) struct Quantised {
    values: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
}

impl Quantised {
    /// Quantises `x` (tokens' rows, each a whole number of blocks).
    pub(crate) fn quantise(&mut self, x: &[f32]) {
        let blocks = x.len() / BLOCK;
        self.values.resize(x.len(), 0);
        self.scales.resize(blocks, 0.0);
        self.sums.resize(blocks, 0);
        for (b, block) in x.chunks_exact(BLOCK).enumerate() {
            let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = max / 127.0;
            let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0;
            for (q, &v) in self.values[b * BLOCK..][..BLOCK].iter_mut().zip(block) {
                let rounded = (v * inverse).round_ties_even().clamp(-128.0, 127.0) as i32;
                *q = rounded as i8;
                sum += rounded;
            }
            self.scales[b] = d;
            self.sums[b] = sum;
        }
    }
}

impl Matrix {
    pub(crate) fn new(
        bytes: &[u8],
        bias: Vec<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<Self, LoadError> {
        let blocks = cols / BLOCK;
        if !cols.is_multiple_of(BLOCK)
            || bytes.len() < rows * blocks * BLOCK_BYTES
            || bias.len() < rows
        {
            return Err(LoadError("a weight matrix is too short".into()));
        }
        let mut nibbles_out = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows * blocks];
        for (i, block) in bytes
            .chunks_exact(BLOCK_BYTES)
            .take(rows * blocks)
            .enumerate()
        {
            scales[i] = scale(block);
            nibbles(block, &mut nibbles_out[i * BLOCK..][..BLOCK]);
        }
        Ok(Self {
            rows,
            cols,
            nibbles: nibbles_out,
            scales,
            bias,
        })
    }

    /// `y[t][o] = bias[o] + sum_i w[o][i] * x[t][i]` for every token `t` of
    /// the quantised input.
    pub(crate) fn apply(&self, x: &Quantised, y: &mut [f32]) {
        let (cols, blocks) = (self.cols, self.cols / BLOCK);
        let tokens = x.values.len() / cols;
        for o in 0..self.rows {
            let weights = &self.nibbles[o * cols..][..cols];
            let scales = &self.scales[o * blocks..][..blocks];
            for t in 0..tokens {
                let a = &x.values[t * cols..][..cols];
                let (a_scales, a_sums) = (
                    &x.scales[t * blocks..][..blocks],
                    &x.sums[t * blocks..][..blocks],
                );
                let mut acc = 0f32;
                for b in 0..blocks {
                    let dot = block_dot(&weights[b * BLOCK..][..BLOCK], &a[b * BLOCK..][..BLOCK]);
                    acc += scales[b] * a_scales[b] * (dot - 8 * a_sums[b]) as f32;
                }
                y[t * self.rows + o] = self.bias[o] + acc;
            }
        }
    }
}

/// The integer dot product of one block (slices of `BLOCK` bytes): a loop
/// of known length over bytes widened to `i32`, which the compiler turns
/// into vector multiply-adds.
fn block_dot(w: &[i8], a: &[i8]) -> i32 {
    let mut sum = 0i32;
    for j in 0..BLOCK {
        sum += i32::from(w[j]) * i32::from(a[j]);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_reads_as_ieee() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn the_integer_product_matches_the_float_one() {
        // One row of 32 weights, scale 0.5, nibble j % 16.
        let mut block = vec![0x00, 0x38]; // f16 0.5
        block.extend((0..16u8).map(|j| j | (j << 4)));
        let matrix = Matrix::new(&block, vec![1.0], 1, BLOCK).unwrap();
        let x: Vec<f32> = (0..BLOCK).map(|i| (i as f32 - 10.0) / 7.0).collect();
        let mut quantised = Quantised::default();
        quantised.quantise(&x);
        let mut y = [0f32];
        matrix.apply(&quantised, &mut y);
        let exact: f32 = 1.0
            + (0..BLOCK)
                .map(|i| (f32::from((i % 16) as u8) - 8.0) * 0.5 * x[i])
                .sum::<f32>();
        // Within the 8-bit activations' rounding.
        assert!(
            (y[0] - exact).abs() < 0.005 * exact.abs(),
            "{} against {exact}",
            y[0]
        );
    }
}
