//! Bit-level writer and reader (least significant bit first) and LEB128
//! varints, the building blocks of the chunk codecs.

/// Appends bit fields to a byte vector.
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    used: u32,
}

impl<'a> BitWriter<'a> {
    /// A writer appending to `out` (at a byte boundary).
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            used: 0,
        }
    }

    /// Writes the low `width` bits of `v` (`width <= 64`).
    #[inline]
    pub fn write(&mut self, v: u64, width: u32) {
        if width == 0 {
            return;
        }
        let v = if width == 64 {
            v
        } else {
            v & ((1 << width) - 1)
        };
        let free = 64 - self.used;
        if width < free {
            self.acc |= v << self.used;
            self.used += width;
            return;
        }
        // Fill the accumulator, spill it, keep the rest.
        self.acc |= v.checked_shl(self.used).unwrap_or(0);
        self.out.extend_from_slice(&self.acc.to_le_bytes());
        self.acc = v.checked_shr(free).unwrap_or(0);
        self.used = width - free;
    }

    /// Writes `n` one bits followed by a zero bit (unary code of `n`).
    #[inline]
    pub fn write_unary(&mut self, mut n: u32) {
        while n >= 32 {
            self.write(u32::MAX as u64, 32);
            n -= 32;
        }
        self.write((1u64 << n) - 1, n + 1);
    }

    /// Flushes the last partial byte(s), padding with zeros.
    pub fn finish(self) {
        let bytes = self.used.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// Reads bit fields written by [`BitWriter`].
pub struct BitReader<'a> {
    buf: &'a [u8],
    /// Next bit to read.
    pos: usize,
}

/// The input ended early or holds an invalid value.
#[derive(Debug, thiserror::Error)]
#[error("corrupt chunk: {0}")]
pub struct Corrupt(pub &'static str);

impl<'a> BitReader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, pos: 0 }
    }

    /// Bytes consumed so far (a partial byte counts).
    pub fn bytes_read(&self) -> usize {
        self.pos.div_ceil(8)
    }

    /// The next up to 64 bits without consuming them (zeros past the end).
    #[inline]
    fn peek(&self) -> u64 {
        let byte = self.pos / 8;
        let shift = (self.pos % 8) as u32;
        // Up to 64 + 7 bits: 16 bytes, zero padded at the end.
        let word = match self.buf.get(byte..byte + 16) {
            Some(w) => u128::from_le_bytes(w.try_into().expect("16 bytes")),
            None => {
                let mut w = [0u8; 16];
                let rest = self.buf.get(byte..).unwrap_or(&[]);
                w[..rest.len()].copy_from_slice(rest);
                u128::from_le_bytes(w)
            }
        };
        (word >> shift) as u64
    }

    #[inline]
    fn advance(&mut self, bits: usize) -> Result<(), Corrupt> {
        self.pos += bits;
        if self.pos > self.buf.len() * 8 {
            return Err(Corrupt("bit stream ends early"));
        }
        Ok(())
    }

    /// Reads `width` bits (`width <= 64`).
    #[inline]
    pub fn read(&mut self, width: u32) -> Result<u64, Corrupt> {
        if width == 0 {
            return Ok(0);
        }
        // Fast path: one 8-byte load holds at least 57 bits from `pos`.
        let byte = self.pos / 8;
        if width <= 57
            && let Some(w) = self.buf.get(byte..byte + 8)
        {
            let v = u64::from_le_bytes(w.try_into().expect("8 bytes")) >> (self.pos % 8);
            self.pos += width as usize;
            return Ok(v & ((1 << width) - 1));
        }
        let v = self.peek();
        self.advance(width as usize)?;
        Ok(if width == 64 {
            v
        } else {
            v & ((1 << width) - 1)
        })
    }

    /// Reads a unary code (ones ended by a zero), at most `max` ones.
    #[inline]
    pub fn read_unary(&mut self, max: u32) -> Result<u32, Corrupt> {
        let mut n = 0;
        loop {
            let ones = self.peek().trailing_ones();
            if ones < 64 {
                self.advance(ones as usize + 1)?;
                n += ones;
                break;
            }
            self.advance(64)?;
            n += 64;
            if n > max {
                break;
            }
        }
        if n > max {
            return Err(Corrupt("unary code too long"));
        }
        Ok(n)
    }
}

/// Zigzag: small magnitudes of either sign to small unsigned numbers.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint from the front of `buf`, advancing it.
pub fn get_varint(buf: &mut &[u8]) -> Result<u64, Corrupt> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or(Corrupt("varint ends early"))?;
        *buf = rest;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Corrupt("varint too long"))
}

/// Reads one byte from the front of `buf`, advancing it.
pub fn get_u8(buf: &mut &[u8]) -> Result<u8, Corrupt> {
    let (&b, rest) = buf.split_first().ok_or(Corrupt("chunk ends early"))?;
    *buf = rest;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_fields_of_every_width_round_trip() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        let fields: Vec<(u64, u32)> = (0..=64u32)
            .flat_map(|width| {
                let max = if width == 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                [(max, width), (max / 3, width), (0, width)]
            })
            .collect();
        for &(v, width) in &fields {
            w.write(v, width);
            w.write_unary(width % 40);
        }
        w.finish();
        let mut r = BitReader::new(&out);
        for &(v, width) in &fields {
            assert_eq!(r.read(width).unwrap(), v, "width {width}");
            assert_eq!(r.read_unary(64).unwrap(), width % 40);
        }
        assert!(r.read(16).is_err(), "reading past the end is an error");
    }

    #[test]
    fn varints_and_zigzag_round_trip() {
        let mut out = Vec::new();
        let vals = [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40];
        for v in vals {
            put_varint(&mut out, zigzag(v));
        }
        let mut buf = &out[..];
        for v in vals {
            assert_eq!(unzigzag(get_varint(&mut buf).unwrap()), v);
        }
        assert!(buf.is_empty());
        assert!(get_varint(&mut buf).is_err());
    }
}
