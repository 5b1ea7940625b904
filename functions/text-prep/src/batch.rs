//! Token ids of several texts to the model's three i64 inputs, `[batch, seq]`:
//! padded to the longest text, attention mask 1 on tokens and 0 on padding,
//! token types all 0 (one segment per text).

/// One `[batch, seq]` i64 tensor per input, row-major.
#[derive(Debug, PartialEq)]
pub struct Batch {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub token_type_ids: Vec<i64>,
}

impl Batch {
    pub fn new(texts: &[Vec<u32>], pad_id: u32) -> Self {
        let batch = texts.len();
        let seq = texts.iter().map(Vec::len).max().unwrap_or(0);
        let mut input_ids = vec![i64::from(pad_id); batch * seq];
        let mut attention_mask = vec![0; batch * seq];
        for (row, ids) in texts.iter().enumerate() {
            let start = row * seq;
            for (i, &id) in ids.iter().enumerate() {
                input_ids[start + i] = i64::from(id);
                attention_mask[start + i] = 1;
            }
        }
        Self {
            batch,
            seq,
            input_ids,
            attention_mask,
            token_type_ids: vec![0; batch * seq],
        }
    }

    /// The values of the input named `name`, if it is one of the three.
    pub fn input(&self, name: &str) -> Option<&[i64]> {
        match name {
            "input_ids" => Some(&self.input_ids),
            "attention_mask" => Some(&self.attention_mask),
            "token_type_ids" => Some(&self.token_type_ids),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_longest_and_masks_the_padding() {
        let b = Batch::new(
            &[vec![101, 7, 102], vec![101, 102], vec![101, 8, 9, 102]],
            0,
        );
        assert_eq!((b.batch, b.seq), (3, 4));
        #[rustfmt::skip]
        assert_eq!(b.input_ids, [
            101, 7, 102, 0,
            101, 102, 0, 0,
            101, 8, 9, 102,
        ]);
        #[rustfmt::skip]
        assert_eq!(b.attention_mask, [
            1, 1, 1, 0,
            1, 1, 0, 0,
            1, 1, 1, 1,
        ]);
        assert_eq!(b.token_type_ids, [0; 12]);
    }

    #[test]
    fn uses_the_given_pad_id() {
        let b = Batch::new(&[vec![1], vec![1, 2]], 5);
        assert_eq!(b.input_ids, [1, 5, 1, 2]);
    }

    #[test]
    fn names_its_inputs() {
        let b = Batch::new(&[vec![1]], 0);
        assert_eq!(b.input("input_ids"), Some(&[1][..]));
        assert_eq!(b.input("attention_mask"), Some(&[1][..]));
        assert_eq!(b.input("token_type_ids"), Some(&[0][..]));
        assert_eq!(b.input("pixel_values"), None);
    }
}
