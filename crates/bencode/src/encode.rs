//! Canonical bencode writer.

use crate::Value;

/// Writes bencode into a caller-owned buffer.
///
/// Dictionaries written through [`Encoder::value`] have their keys sorted. When writing a dictionary
/// by hand with [`Encoder::dict_start`], the caller must emit keys in ascending byte order.
pub struct Encoder<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Encoder<'o> {
    /// An encoder appending to `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Self { out }
    }

    /// `i<n>e`
    pub fn int(&mut self, n: i64) -> &mut Self {
        self.out.push(b'i');
        self.out.extend_from_slice(n.to_string().as_bytes());
        self.out.push(b'e');
        self
    }

    /// `<len>:<bytes>`
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b.len().to_string().as_bytes());
        self.out.push(b':');
        self.out.extend_from_slice(b);
        self
    }

    /// Opens a dictionary; keys must follow in ascending byte order.
    pub fn dict_start(&mut self) -> &mut Self {
        self.out.push(b'd');
        self
    }

    /// Opens a list.
    pub fn list_start(&mut self) -> &mut Self {
        self.out.push(b'l');
        self
    }

    /// Closes the innermost list or dictionary.
    pub fn end(&mut self) -> &mut Self {
        self.out.push(b'e');
        self
    }

    /// Appends pre-encoded bencode verbatim (an info dictionary kept as received).
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.out.extend_from_slice(encoded);
        self
    }

    /// Writes a whole value canonically.
    pub fn value(&mut self, v: &Value<'_>) -> &mut Self {
        match v {
            Value::Int(n) => self.int(*n),
            Value::Bytes(b) => self.bytes(b),
            Value::List(l) => {
                self.list_start();
                for item in &l.items {
                    self.value(item);
                }
                self.end()
            }
            Value::Dict(d) => {
                let mut entries: Vec<_> = d.entries.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                self.dict_start();
                for (k, v) in entries {
                    self.bytes(k);
                    self.value(v);
                }
                self.end()
            }
        }
    }
}
